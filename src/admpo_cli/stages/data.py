"""`admpo data info` and `admpo data download`: what a dataset file holds, and fetching the benchmarks' files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ENVS
from ..errors import UserError


def data_info_stage(path: str, task: str | None = None, env: str | None = None,
                    fmt: str | None = None) -> list[tuple[str, Any]]:
    """(name, value) rows: format, size, episodes, returns and, where the task is known, the normalised score.
    The format is `fmt`, else the one the path's suffix or shape names (registry.format_of); the file's
    dimensions are checked against the env's (a wrong --task/--env is one clear line)."""
    from ..data.dataset import validate
    from ..data.formats import read_path

    data, own_ref, fmt = read_path(path, fmt)
    data = validate(data, path)
    named = task or (path if own_ref else Path(path).name)  # a Minari id names its env anywhere in it
    env = env or next((e for e in ENVS if e in named.lower()), None)
    task_fmt = _task_format(task) or fmt  # a preset's task is scored and laid out as its own format says
    if env is not None:
        _check_dims(path, data, env, task_fmt)
    rows: list[tuple[str, Any]] = [
        ("format", fmt), ("transitions", len(data)), ("obs_dim", data.obs_dim), ("act_dim", data.act_dim)]
    return rows + _return_rows(data, own_ref, task_fmt, env)


def _task_format(task: str | None) -> str | None:
    """The dataset format of a preset named as --task (neorl-hopper-low: neorl), None for other names."""
    from ..config import preset_paths, resolve

    if not task or task not in preset_paths():
        return None
    return resolve(task, record_modified=False).data.benchmark


def _check_dims(path: str, data, env: str, fmt: str) -> None:
    from .. import registry
    from ..envs.specs import get_spec

    layout = registry.dataset_format(fmt).layout
    spec = get_spec(env, layout)
    for what, have, want in (("observations", data.obs_dim, spec.obs_dim), ("actions", data.act_dim, spec.act_dim)):
        if have != want:
            raise UserError(f"{path}: {what} have {have} dims, {env} ({layout} layout) expects {want}; "
                            "is --task/--env the dataset's task?")


def _return_rows(data, own_ref, fmt: str, env: str | None) -> list[tuple[str, Any]]:
    """Episodes, terminals, timeouts, return statistics and the normalised score of the mean return."""
    import numpy as np

    from ..data.formats import reference
    from ..data.scores import normalized_score

    rets = data.episode_returns()
    rows: list[tuple[str, Any]] = [("episodes (complete)", len(rets)), ("terminals", int(data.terminals.sum())),
                                   ("timeouts", int(data.timeouts.sum()))]
    if len(rets):
        rows += [("return mean ± std", f"{rets.mean():.1f} ± {rets.std():.1f}"),
                 ("return min / max", f"{rets.min():.1f} / {rets.max():.1f}")]
        ref = own_ref or (reference(fmt, env) if env else None)
        if ref is not None:
            rows.append(("normalised score", f"{normalized_score(float(np.mean(rets)), ref):.1f} ({ref.source})"))
    return rows


def downloadable() -> list[dict[str, str]]:
    """The datasets `data download` knows: id, benchmark, file."""
    from ..data.download import table

    return [{"id": r.id, "benchmark": r.benchmark, "file": r.filename} for r in table().values()]


def download_stage(ids: list[str], folder: Path | None, base_url: str | None,
                   task: Callable[[str], Any]) -> list[dict[str, Any]]:
    """Fetch each named dataset (resumable, checked, renamed into place when whole). `task(name)` gives a
    progress context whose `update(completed=, total=)` hears the bytes."""
    from ..data.download import default_dir, download, resolve_ids

    if not ids:
        raise UserError("data download: name a dataset (e.g. hopper-medium-v2), all-d4rl or all-neorl; --list "
                        "shows them")
    target = folder or default_dir()
    done = []
    for r in resolve_ids(ids):
        with task(r.id) as bar:
            path = download(r, target, base_url, lambda n, total, bar=bar: bar.update(completed=n, total=total))
        done.append({"id": r.id, "path": str(path), "bytes": path.stat().st_size})
    return done
