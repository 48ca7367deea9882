"""`admpo data info` and `admpo data download`: what a dataset file holds, and fetching the benchmarks' files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ENVS
from ..errors import UserError


def data_info_stage(path: str, task: str | None = None, env: str | None = None) -> list[tuple[str, Any]]:
    """(name, value) rows: size, episodes, returns and, where the task is known, the normalised score. The
    file's dimensions are checked against the env's (a wrong --task/--env is one clear line)."""
    import numpy as np

    from ..data import d4rl, neorl
    from ..data.dataset import validate
    from ..data.scores import normalized_score, reference_for
    from ..envs.registry import get_spec, layout_for_task

    p = Path(path)
    minari_ref = None
    if p.suffix == ".npz":
        data = neorl.load_neorl(neorl.find_file(path, 10**9))
    elif is_minari_id(path):  # e.g. mujoco/hopper/medium-v0: its own reference returns come with it
        from ..data.minari_io import load_minari

        data, minari_ref = load_minari(path)
    else:
        data = d4rl.load_d4rl(d4rl.find_file(path))
    data = validate(data, path)
    task = task or ""
    env = env or next((e for e in ENVS if e in (task or (path if minari_ref else p.name)).lower()), None)
    if env is not None:
        layout = "neorl" if p.suffix == ".npz" or task.startswith("neorl-") else layout_for_task(task, env)
        spec = get_spec(env, layout)
        for what, have, want in (("observations", data.obs_dim, spec.obs_dim), ("actions", data.act_dim, spec.act_dim)):
            if have != want:
                raise UserError(f"{path}: {what} have {have} dims, {env} ({layout} layout) expects {want}; "
                                "is --task/--env the dataset's task?")
    rets = data.episode_returns()
    rows: list[tuple[str, Any]] = [
        ("transitions", len(data)), ("obs_dim", data.obs_dim), ("act_dim", data.act_dim),
        ("episodes (complete)", len(rets)), ("terminals", int(data.terminals.sum())),
        ("timeouts", int(data.timeouts.sum()))]
    if len(rets):
        rows += [("return mean ± std", f"{rets.mean():.1f} ± {rets.std():.1f}"),
                 ("return min / max", f"{rets.min():.1f} / {rets.max():.1f}")]
        ref = reference_for(task, env, minari_ref) if env or minari_ref else None
        if ref is not None:
            rows.append(("normalised score", f"{normalized_score(float(np.mean(rets)), ref):.1f} ({ref.source})"))
    return rows


def is_minari_id(path: str) -> bool:
    """A Minari dataset id (namespace/name/version, e.g. mujoco/hopper/medium-v0) rather than a file path."""
    p = Path(path)
    return "/" in path and not p.exists() and p.suffix.lower() not in (".hdf5", ".h5", ".npz")


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
