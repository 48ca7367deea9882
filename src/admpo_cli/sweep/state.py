"""What a run directory says about a sweep's run, read without touching it: its state, how far it got,
its last score. The sweep polls these files; workers never report by any other channel, so the same
table works for a local pool and a Ray cluster (whose nodes write to the same shared directory)."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import registry
from ..config import Config
from ..rundir import RunDir

ERROR = "error.txt"
# A run's state: pending (nothing written yet), queued, running, done, failed, interrupted (a checkpoint to
# resume from), busy (another process holds its lock).


@dataclass
class RunState:
    state: str
    step: int = 0
    total: int = 0
    score: float | None = None  # the last evaluation: normalised score where the task has references, else return
    score_kind: str = ""
    wall_s: float = 0.0
    error: str = ""


def total_steps(cfg: Config) -> tuple[str, int]:
    """The metrics.csv column that counts a run's progress, and its final value."""
    return registry.run_length(cfg)


def _last_row(path: Path) -> dict[str, str] | None:
    """The last row of a CSV, read from the end (metrics files grow for a whole run); None before any row."""
    try:
        with path.open("rb") as f:
            header = f.readline().decode(errors="replace").strip()
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            lines = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    if not header or not lines or lines[-1].strip() == header:
        return None
    rows = list(csv.DictReader([header, lines[-1]]))
    return rows[0] if rows else None


def read_state(path: Path, cfg: Config, lock: Path, running_here: bool = False) -> RunState:
    column, total = total_steps(cfg)
    st = RunState("pending", total=total)
    if not (path / "config.yaml").exists():
        return st
    row = _last_row(path / "metrics.csv")
    if row:
        with contextlib.suppress(ValueError, KeyError):
            st.step = int(float(row[column]))
            st.wall_s = float(row.get("wall_s") or 0.0)
        for key, kind in (("score_mean", "score"), ("return_mean", "return")):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                st.score, st.score_kind = float(row[key]), kind
                break
    status = RunDir(path).training_status()
    if status == "done" and (path / "summary.json").exists():
        st.state, st.step = "done", total
        with contextlib.suppress(OSError, ValueError):
            s = json.loads((path / "summary.json").read_text())
            if s.get("final_score") is not None:
                st.score, st.score_kind = float(s["final_score"]), "score"
            elif s.get("final_return") is not None:
                st.score, st.score_kind = float(s["final_return"]), "return"
        return st
    if running_here:
        st.state = "running"
    elif is_locked(lock):
        st.state = "busy"
    elif (path / ERROR).exists() and status == "failed":
        st.state = "failed"
        lines = (path / ERROR).read_text().strip().splitlines()
        st.error = lines[-1] if lines else ""
    elif (path / "checkpoints").exists() or status in ("running", "interrupted"):
        st.state = "interrupted"
    return st


def lock_path(out: Path, run: Path) -> Path:
    """The lock of a run, kept beside the study (out/.locks), not in the run directory: a run that fails
    before writing a result still leaves no directory behind."""
    rel = run.relative_to(out) if run.is_relative_to(out) else Path(str(run).strip("/"))
    return out / ".locks" / ("__".join(rel.parts) + ".lock")


def is_locked(lock: Path) -> bool:
    """Whether a live process holds the lock (a killed one's lock is released with it)."""
    if not lock.exists():
        return False
    try:
        with lock.open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
        return False
    except OSError:
        return True


@contextlib.contextmanager
def run_lock(lock: Path) -> Iterator[bool]:
    """Hold a run's lock while training it: yields False when another process holds it (two sweeps, or a
    worker of a killed sweep still saving its checkpoint, never train one run at once)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
