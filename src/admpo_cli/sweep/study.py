"""The sweep's driver: which runs still need work, submit them, follow them through their run directories,
and keep study.yaml (the grid) and study.csv (one row per run) next to them."""

from __future__ import annotations

import csv
import io
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..events import SILENT, Progress
from ..files import atomic_write_text
from ..rundir import git_revision, versions
from .plan import RunSpec
from .state import RunState, is_locked, lock_path, read_state

STUDY_COLUMNS = ("run", "preset", "algo", "seed", "grid", "state", "step", "total", "score", "score_kind", "wall_s",
                 "error")


@dataclass
class Row:
    spec: RunSpec
    st: RunState
    note: str = ""  # skipped (done) | resumed | ...

    @property
    def eta_s(self) -> float | None:
        st = self.st
        if st.state != "running" or not st.step or not st.total or st.wall_s <= 0:
            return None
        return st.wall_s * (st.total - st.step) / st.step


@dataclass
class SweepResult:
    rows: list[Row]
    ran: int = 0
    skipped: int = 0
    failed: list[Row] = field(default_factory=list)

    @property
    def all_done(self) -> bool:
        return all(r.st.state == "done" for r in self.rows)


def write_study_yaml(out: Path, grid: dict, runs: list[RunSpec], options: dict) -> None:
    doc = {"study": {"presets": list(dict.fromkeys(r.preset for r in runs)),
                     "algos": list(dict.fromkeys(r.algo for r in runs)),
                     "seeds": list(dict.fromkeys(r.seed for r in runs)), "grid": grid, **options},
           "argv": list(sys.argv), "versions": {k: str(v) for k, v in versions().items()},
           "git_revision": git_revision(),
           "runs": [{"path": r.name_in(out),
                     "preset": r.preset, "algo": r.algo, "seed": r.seed, "grid": dict(r.point)} for r in runs]}
    atomic_write_text(out / "study.yaml", yaml.safe_dump(doc, sort_keys=False))


def write_study_csv(out: Path, rows: list[Row]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=STUDY_COLUMNS)
    w.writeheader()
    for r in rows:
        s = r.spec
        w.writerow({"run": s.name_in(out),
                    "preset": s.preset, "algo": s.algo, "seed": s.seed,
                    "grid": ";".join(f"{k}={v}" for k, v in s.point), "state": r.st.state, "step": r.st.step,
                    "total": r.st.total, "score": "" if r.st.score is None else f"{r.st.score:.4g}",
                    "score_kind": r.st.score_kind, "wall_s": f"{r.st.wall_s:.1f}", "error": r.st.error})
    atomic_write_text(out / "study.csv", buf.getvalue())


def prepare_datasets(runs: list[RunSpec], progress: Progress = SILENT) -> None:
    """Datasets that runs collect themselves (benchmark=collect) are made once here, before any run starts:
    parallel runs would otherwise collect the same file at once."""
    from ..data.load import default_collect_path, load_dataset

    seen = set()
    for r in runs:
        cfg = r.config
        if cfg.train.setting == "online" or cfg.data.benchmark != "collect" or cfg.data.path:
            continue
        p = default_collect_path(cfg.data)
        if p in seen or p.exists():
            continue
        seen.add(p)
        with progress.task(f"collecting {p}", total=cfg.data.collect_steps) as t:
            load_dataset(cfg, progress=lambda n, t=t: t.update(advance=n))


def run_sweep(runs: list[RunSpec], executor, out: Path, on_update: Callable[[list[Row]], None] | None = None,
              poll_s: float = 1.0) -> SweepResult:
    """Skip the runs that are done, resume the interrupted ones and start the rest; returns when all have
    ended. A failed run does not stop the others. Ctrl-C (or SIGTERM) stops the runs, which save their
    checkpoints; running the same sweep again finishes only what is missing."""
    out = Path(out)
    cwd = os.getcwd()
    locks = {r.path: lock_path(out, r.path) for r in runs}
    rows = [Row(r, read_state(r.path, r.config, locks[r.path])) for r in runs]
    res = SweepResult(rows)
    for row in rows:
        if row.st.state == "done":
            row.note = "skipped: done"
            res.skipped += 1
        elif row.st.state == "busy":
            row.note = "skipped: another process trains it"
        else:
            row.note = "resumed" if row.st.state == "interrupted" else ""
            row.st.state = "queued"
            executor.submit(row.spec.path, row.spec.to_dict(), cwd, str(locks[row.spec.path]))
            res.ran += 1
    by_path = {r.spec.path: r for r in rows}
    write_study_csv(out, rows)
    last_csv = time.monotonic()
    try:
        while True:
            for path, outcome in executor.poll(poll_s):
                row = by_path[path]
                st = read_state(path, row.spec.config, locks[path])
                if outcome["state"] != "done":  # the worker's word; "done" is what the run directory says
                    st.state, st.error = outcome["state"], outcome.get("error", "") or st.error
                row.st = st
                if st.state == "failed":
                    res.failed.append(row)
                write_study_csv(out, rows)
            for r in rows:  # progress of the runs in flight, from their directories
                if r.st.state not in ("queued", "running"):
                    continue
                lock = locks[r.spec.path]
                if is_locked(lock):  # a worker holds it: the run is under way
                    fresh = read_state(r.spec.path, r.spec.config, lock, running_here=True)
                    fresh.state = "running"  # "done" only once its worker has returned
                    r.st = fresh
            if on_update:
                on_update(rows)
            if time.monotonic() - last_csv > 10:
                write_study_csv(out, rows)
                last_csv = time.monotonic()
            if not any(r.st.state in ("queued", "running") for r in rows):
                break
    except BaseException:
        executor.close(cancel=True)
        for r in rows:
            if r.st.state in ("queued", "running"):
                r.st = read_state(r.spec.path, r.spec.config, locks[r.spec.path])
        write_study_csv(out, rows)
        raise
    executor.close()
    write_study_csv(out, rows)
    return res
