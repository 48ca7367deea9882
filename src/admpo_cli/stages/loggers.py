"""Logging backends beside the run directory's metrics.csv (which stays the contract): adapters that get
the same evaluation rows as they are written. `--logger csv,tensorboard,wandb`; the last two are optional
extras (pip install 'admpo[tensorboard]' / 'admpo[wandb]'). W&B follows WANDB_MODE (offline in tests)."""

from __future__ import annotations

import numbers

from ..config import Config, to_dict
from ..errors import UserError
from ..rundir import RunDir

CHOICES = ("csv", "tensorboard", "wandb")


def parse_loggers(text: str | None) -> list[str]:
    names = [x.strip() for x in (text or "csv").split(",") if x.strip()]
    for n in names:
        if n not in CHOICES:
            raise UserError(f"--logger: unknown backend {n!r}; expected a comma-separated list of {', '.join(CHOICES)}")
    return list(dict.fromkeys(names))


def _scalars(row: dict) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and k not in ("step", "env_steps", "epoch")}


class TensorBoardLogger:
    """Event files under RUN/tensorboard (tensorboard --logdir RUN/tensorboard)."""

    def __init__(self, run: RunDir, cfg: Config):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--logger tensorboard needs the tensorboard package: "
                            "pip install 'admpo[tensorboard]'") from None
        self.writer = SummaryWriter(log_dir=str(run.file("tensorboard")))
        self.writer.add_text("config", "```\n" + "\n".join(f"{s}: {v}" for s, v in to_dict(cfg).items()) + "\n```")

    def log(self, step: int, row: dict) -> None:
        for k, v in _scalars(row).items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run named after the run directory, its files under RUN/wandb, the resolved config attached."""

    def __init__(self, run: RunDir, cfg: Config):
        try:
            import wandb
        except ImportError:
            raise UserError("--logger wandb needs the wandb package: pip install 'admpo[wandb]'") from None
        self.wandb = wandb
        run.file("wandb").mkdir(parents=True, exist_ok=True)
        try:
            self.run = wandb.init(project="admpo", name=f"{run.path.parent.name}/{run.path.name}",
                                  dir=str(run.path), config=to_dict(cfg), reinit=True)
        except Exception as e:  # no API key, no network: say so in one line
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"--logger wandb: {first} (or set WANDB_MODE=offline to log locally)") from None

    def log(self, step: int, row: dict) -> None:
        self.run.log(_scalars(row), step=step)

    def close(self) -> None:
        self.run.finish()


def make_loggers(names: list[str], run: RunDir, cfg: Config) -> list:
    """csv is metrics.csv itself (always written); the others are adapters."""
    made = []
    try:
        for n in names:
            if n == "tensorboard":
                made.append(TensorBoardLogger(run, cfg))
            elif n == "wandb":
                made.append(WandbLogger(run, cfg))
    except BaseException:
        for lg in made:
            lg.close()
        raise
    return made
