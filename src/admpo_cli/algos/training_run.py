"""What every training loop does the same way, so that a loop holds only its algorithm's steps.

`TrainingRun` keeps one run's bookkeeping: the checkpoint (one format for every loop: the loop's counters,
each registered part's state — agent, buffers, model, simulator — and every random stream; a checkpoint
written with other settings is refused), the metrics rows (metrics.csv and the caller's hooks: progress
bars, TensorBoard, W&B), the divergence guard (losses that are not finite stop the run and keep the last
good agent), the wall clock, and interrupts (Ctrl-C or SIGTERM end the run at the end of a step, after a
checkpoint, so `admpo resume` continues it to the same result).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..config import Config, fingerprint
from ..errors import DivergenceError, UserError
from ..files import append_csv, atomic_torch_save, torch_load, truncate_csv_after
from ..process import StopNow, interrupts_at_step_ends
from ..rundir import RunDir
from .rng import rng_state, set_rng_state

CHECKPOINT = ("checkpoints", "train.pt")
LOSSES = ("critic_loss", "actor_loss", "q_mean")


class StopTraining(Exception):  # noqa: N818 (a signal to stop, not an error)
    """Raised by a hook to end the run early and normally (a checkpoint, the policy, the summary): e.g.
    `admpo collect --quality` stops SAC at its target return."""


@dataclass
class Hooks:
    """What a loop tells its caller: on_start(step, total) once, on_progress(step, row) after every epoch or
    evaluation (`row` is the metrics.csv row when there is one). A KeyboardInterrupt raised by a hook ends the
    run like Ctrl-C: after a checkpoint."""

    on_start: Callable[[int, int], None] | None = None
    on_progress: Callable[[int, dict], None] | None = None


class Part(Protocol):
    def state_dict(self) -> dict: ...
    def load_state_dict(self, sd: dict) -> Any: ...


def loss_sums() -> dict:
    return {**dict.fromkeys(LOSSES, 0.0), "n": 0}


def add_losses(acc: dict, out: dict) -> None:
    """Add one update's losses (tensors; read only when averaged, so no host sync per update)."""
    for k in LOSSES:
        if k in out:
            acc[k] += out[k]
    acc["n"] += 1


def mean_losses(acc: dict) -> dict[str, float]:
    return {k: float(acc[k]) / max(acc["n"], 1) for k in LOSSES}


def read_checkpoint(path, config_fp: str) -> dict:
    """A checkpoint of this run's settings; one written with other settings is refused."""
    ck = torch_load(path)
    if ck.get("fingerprint") != config_fp:
        raise UserError(f"{path}: written with other settings (config fingerprint {ck.get('fingerprint') or 'none'}, "
                        f"now {config_fp}); --force starts the run over")
    return ck


class TrainingRun:
    """One training run's checkpoint, metrics, divergence guard, clock and interrupts.

    `state` is the loop's dataclass of counters (its `step_field` is the position metrics.csv rows are
    keyed by); `parts` are the objects with state_dict/load_state_dict the checkpoint keeps; `gen` is the
    loop's random stream (saved with torch's, numpy's and Python's)."""

    def __init__(self, cfg: Config, run: RunDir, state: Any, parts: dict[str, Part], gen: torch.Generator,
                 total: int, step_column: str, hooks: Hooks | None = None, agent: Any = None,
                 rate_of: str = "updates", unsaved: tuple[str, ...] = ()):
        self.cfg, self.run, self.state, self.parts, self.gen = cfg, run, state, parts, gen
        self.total, self.step_column, self.hooks, self.agent = total, step_column, hooks or Hooks(), agent
        self.path, self.metrics = run.file(*CHECKPOINT), run.file("metrics.csv")
        self.config_fp = fingerprint(cfg)
        self.acc = loss_sums()
        self._clock0 = time.perf_counter()
        self._wall0 = 0.0
        self._last_good: dict | None = None
        self.rate_of = rate_of  # the counter `rate()` measures
        self.unsaved = unsaved  # parts left out of checkpoints (train.checkpoint_buffer=false: the model buffer)
        self._rate_from = (0, self._clock0)

    # ---- start and resume
    def start(self, logged_step: Callable[[Any], int]) -> Any:
        """Restore the last checkpoint when there is one (metrics rows after it dropped) or start clean
        (rows of an earlier attempt removed); tell the hooks where the run starts. Returns the counters."""
        if self.path.exists():
            ck = read_checkpoint(self.path, self.config_fp)
            fields = {f.name for f in dataclasses.fields(self.state)}
            self.state = dataclasses.replace(self.state, **{k: v for k, v in ck["loop"].items() if k in fields})
            for name, part in self.parts.items():
                if ck["parts"].get(name) is not None:
                    part.load_state_dict(ck["parts"][name])
            set_rng_state(ck["rng"], self.gen)
            self.acc = dict(ck.get("acc") or loss_sums())
            self._wall0 = float(ck.get("wall_s", 0.0))
            truncate_csv_after(self.metrics, self.step_column, logged_step(self.state))
        elif self.metrics.exists():
            self.metrics.unlink()
        if self.agent is not None:
            self._last_good = copy.deepcopy(self.agent.state_dict())
        if self.hooks.on_start:
            self.hooks.on_start(max(logged_step(self.state), 0), self.total)
        self._clock0 = time.perf_counter()
        self._rate_from = (getattr(self.state, self.rate_of), self._clock0)
        return self.state

    # ---- checkpoints
    def save(self, path=None, agent_state: dict | None = None) -> None:
        """Everything needed to continue: counters, parts, random streams, the running losses."""
        parts = {name: (None if name in self.unsaved else part.state_dict()) for name, part in self.parts.items()}
        if agent_state is not None:
            parts["agent"] = agent_state
        atomic_torch_save(path or self.path, {
            "fingerprint": self.config_fp, "loop": dataclasses.asdict(self.state), "parts": parts,
            "rng": rng_state(self.gen), "acc": self.acc, "wall_s": self.wall_s(),
        })

    def rate(self) -> float:
        """The counter `rate_of` (updates) per second since `restart_rate()` (or the start)."""
        n0, t0 = self._rate_from
        return (getattr(self.state, self.rate_of) - n0) / max(time.perf_counter() - t0, 1e-9)

    def restart_rate(self) -> None:
        """Start the next `rate()` interval now (after an evaluation and a checkpoint, which it leaves out)."""
        self._rate_from = (getattr(self.state, self.rate_of), time.perf_counter())

    def wall_s(self) -> float:
        """Training seconds so far, across resumes."""
        return self._wall0 + time.perf_counter() - self._clock0

    # ---- losses and the divergence guard
    def add(self, out: dict) -> None:
        add_losses(self.acc, out)

    def losses(self, where: str) -> dict[str, float]:
        """The mean losses since the last call; not finite: the last good agent is saved and the run stops."""
        losses = mean_losses(self.acc)
        self.acc = loss_sums()
        if not all(math.isfinite(v) for v in losses.values()):
            good = self.run.file("checkpoints", "last_good.pt")
            self.save(good, self._last_good)
            raise DivergenceError(f"non-finite losses at {where} ({losses}); last good state saved to {good}")
        if self.agent is not None:
            self._last_good = copy.deepcopy(self.agent.state_dict())
        return losses

    # ---- rows
    def log(self, step: int, row: dict | None, info: dict | None = None, checkpoint: bool = False) -> None:
        """A metrics.csv row (with the wall clock) when there is one, then a checkpoint if asked (so a resumed
        run never lacks a row it had), then the hooks, which hear of the row or of `info`."""
        if row is not None:
            row.update(wall_s=round(self.wall_s(), 2), time=time.strftime("%Y-%m-%dT%H:%M:%S"))
            append_csv(self.metrics, row)
        if checkpoint:
            self.save()
        if self.hooks.on_progress:
            self.hooks.on_progress(step, row or info or {})

    # ---- interrupts
    @contextmanager
    def undone_if_stopped(self, restore: Callable[[], None] | None = None) -> Iterator[None]:
        """A long phase at the start of a step (a model fit, a roll-out) that a stop request cuts short: the
        check inside it raises, the random streams go back to the step's start and `restore` puts back what the
        phase replaced, so the checkpoint written on the way out holds whole steps and the resumed run redoes
        the phase from the same state (the uninterrupted result)."""
        snapshot = rng_state(self.gen)
        try:
            yield
        except KeyboardInterrupt:
            set_rng_state(snapshot, self.gen)
            if restore is not None:
                restore()
            raise

    @contextmanager
    def running(self) -> Iterator[Callable[[], None]]:
        """Yields `stop_requested()`, which the loop calls between two steps; an interrupt checkpoints first.
        A hook's StopTraining ends the loop here, after a checkpoint, and the run finishes normally."""
        with interrupts_at_step_ends() as stop_requested:
            try:
                yield stop_requested
            except StopNow:  # mid-step: the last whole-step checkpoint stays
                raise
            except KeyboardInterrupt:
                self.save()
                raise
            except StopTraining:
                self.save()
