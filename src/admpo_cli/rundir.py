"""The run-directory contract: every stage reads and writes here, atomically."""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from . import __version__
from .config import Config, differences, dump_yaml, fingerprint, from_dict
from .errors import UserError
from .files import atomic_write_json, atomic_write_text


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "admpo": __version__}
    for name in ("torch", "numpy", "gymnasium", "mujoco", "h5py", "pandas"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except ImportError:
            out[name] = "missing"
    return out


# What a run's training writes; `--force` removes it before starting over.
TRAINING_OUTPUTS = ("checkpoints", "summary.json", "metrics.csv", "policy")


class RunDir:
    """One folder per run. config.yaml is the run's identity: a command whose settings differ is refused
    (`--force` starts the run over with the new settings)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # made by this command: a failure before any result removes it again (no empty run directories)
        self.fresh = False
        self._made: list[Path] = []

    # ------------------------------------------------------------ create / open
    @classmethod
    def create_or_open(cls, path: str | Path, cfg: Config, force: bool = False) -> RunDir:
        """Create the run (writing config.yaml), or open an existing one made with the same settings."""
        run = cls(path)
        cfg_path = run.path / "config.yaml"
        if cfg_path.exists():
            existing = run.config()
            if existing.data.task != cfg.data.task or existing.data.env != cfg.data.env:
                raise UserError(
                    f"{run.path}: run belongs to task '{existing.data.task}' ({existing.data.env}), "
                    f"not '{cfg.data.task}' ({cfg.data.env}); use another --run"
                )
            diff = differences(existing, cfg)
            if diff and not force:
                shown = "; ".join(f"{k} {new!r} here, {old!r} in the run" for k, (old, new) in list(diff.items())[:3])
                more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
                raise UserError(f"{run.path}: made with other settings ({shown}{more}); use another --run, "
                                "or --force to start it over")
            if diff:
                run.clear_training()
        else:
            run.fresh = not run.path.exists() or not any(run.path.iterdir())
            # folders this command makes (runs/<preset>/...): removed again with a fresh run that failed
            run._made = [p for p in [run.path, *run.path.parents] if not p.exists()]
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cfg_path, dump_yaml(cfg))
        return run

    def _remove(self) -> None:
        """Remove a run this command made, and the empty folders it made for it."""
        shutil.rmtree(self.path, ignore_errors=True)
        for p in self._made[1:]:
            with contextlib.suppress(OSError):
                p.rmdir()  # only if empty

    def clear_training(self) -> None:
        for name in TRAINING_OUTPUTS:
            p = self.file(name)
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        run = cls(path)
        if not run.path.is_dir():
            raise UserError(f"run directory {run.path} does not exist")
        if not (run.path / "config.yaml").exists():
            raise UserError(f"{run.path}: not an admpo run directory (no config.yaml)")
        return run

    def config(self) -> Config:
        p = self.path / "config.yaml"
        try:
            mapping = yaml.safe_load(p.read_text()) or {}
        except (OSError, yaml.YAMLError):
            raise UserError(f"{p}: missing or not valid YAML") from None
        return from_dict(mapping)

    # ------------------------------------------------------------ files
    def file(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    def require(self, *parts: str, hint: str = "") -> Path:
        """An upstream artifact; a clear error names the command that makes it."""
        p = self.file(*parts)
        if not p.exists():
            extra = f"; run `{hint}` first" if hint else ""
            raise UserError(f"{self.path}: missing {'/'.join(parts)}{extra}")
        return p

    def read_json(self, *parts: str) -> dict[str, Any]:
        p = self.file(*parts)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            raise UserError(f"{p}: no such file") from None
        except json.JSONDecodeError:
            raise UserError(f"{p}: not valid JSON") from None

    # ------------------------------------------------------------ meta.json
    def _meta(self) -> dict[str, Any]:
        p = self.file("meta.json")
        if p.exists():
            try:
                return json.loads(p.read_text())
            except json.JSONDecodeError:
                return {}
        return {}

    @contextmanager
    def stage(self, name: str, cfg: Config, device: str, overrides: dict | None = None) -> Iterator[dict[str, Any]]:
        """Record a stage's life in meta.json, each stage with its own status: running -> done | failed |
        interrupted. A run this command made is removed again when the stage fails on a user error before
        it wrote a result (a missing dataset leaves no empty run directory)."""
        meta = self._meta()
        entry: dict[str, Any] = {
            "argv": sys.argv,
            "seed": cfg.run.seed,
            "device": device,
            "fingerprint": fingerprint(cfg),
            "start": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "end": None,
            "status": "running",
        }
        if overrides:
            entry["overrides"] = overrides
        meta.pop("status", None)  # written by admpo < 0.2: one status for the whole directory
        meta.update({"task": cfg.data.task, "versions": versions(), "git_revision": git_revision(),
                     "seed": cfg.run.seed, "device": device, "stage": name})
        meta.setdefault("stages", {})[name] = entry
        atomic_write_json(self.file("meta.json"), meta)
        status = "done"
        try:
            yield entry
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except UserError:
            status = "failed"
            if self.fresh and not any(self.file(p).exists() for p in ("checkpoints", "summary.json")):
                self._remove()
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            if self.path.exists():
                meta = self._meta()
                entry.update({"end": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": status})
                meta.setdefault("stages", {})[name] = entry
                atomic_write_json(self.file("meta.json"), meta)

    def stage_status(self, name: str) -> str | None:
        return (self._meta().get("stages", {}).get(name) or {}).get("status")

    def training_status(self) -> str | None:
        """The status of the run's training stage (train-<algo>); evaluations do not change it."""
        stages = self._meta().get("stages", {})
        names = [n for n in stages if n.startswith("train-")]
        return stages[names[-1]].get("status") if names else None
