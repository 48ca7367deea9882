"""The one run setup every entry point shares (the commands, the Python API, a sweep's worker, the model study,
the conformance suite): the run directory, the random streams, the device."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import registry
from ..config import Config, run_name
from ..device import pick_device
from ..process import keep_heap_memory, seed_everything
from ..rundir import RunDir


def start_run(cfg: Config, path: Path | str | None = None, force: bool = False) -> tuple[RunDir, torch.device]:
    """The run directory at `path` (default: run.root / config.run_name) created, or opened when it was made with
    the same settings (`force`: whatever it holds); every random stream seeded from run.seed; the device picked
    (run.device: auto takes CUDA where there is one)."""
    keep_heap_memory()
    registry.load_parts(cfg)
    if cfg.train.init_from:  # a fine-tuned run's source is checked before its directory exists
        from ..algos import fine_tune
        from ..envs.specs import spec_for

        fine_tune.check_compatible(fine_tune.open_source(cfg.train.init_from), cfg, spec_for(cfg.data))
    rd = RunDir.create_or_open(Path(path) if path is not None else Path(cfg.run.root) / run_name(cfg), cfg, force)
    seed_everything(cfg.run.seed)
    return rd, pick_device(cfg.run.device)
