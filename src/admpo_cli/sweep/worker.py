"""One run of a sweep, trained in a worker process (a local pool's or a Ray worker's): the same steps as
`admpo train-off`/`train-on` (resolve, create or open the run, seed, train_stage), under the run's lock."""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path

from ..errors import UserError
from ..files import atomic_write_text
from .state import ERROR, run_lock


def run_one(spec: dict, threads: int, cwd: str, lock: str) -> dict:
    """Train spec (RunSpec.to_dict) to the end, resuming from its checkpoint if it has one. Returns
    {"state": done | failed | interrupted | busy, "error": one line, "final": the summary's final figures}."""
    import torch

    from ..config import from_dict
    from ..stages.setup import start_run
    from ..stages.train import train_stage

    os.chdir(cwd)  # relative paths in configs (data/, runs/) mean what they meant for the sweep
    torch.set_num_threads(max(1, threads))
    path = Path(spec["path"])
    with run_lock(Path(lock)) as mine:
        if not mine:
            return {"state": "busy", "error": "another process is training this run"}
        handler = None
        try:
            cfg = from_dict(spec["config"])
            rd, device = start_run(cfg, path)
            handler = _log_to(path / "log.txt")
            trial = spec.get("trial") or {}  # a tuning trial (sweep/tune.py): prune, then the offline criterion
            pruned: list[int] = []
            watch = _pruning_watch(trial, pruned) if trial.get("prune") else None
            res = train_stage(cfg, rd, device, watch=watch)
            (path / ERROR).unlink(missing_ok=True)
            s = res.summary
            if pruned:  # kept in the run, so a search that stops before it hears of this still knows
                atomic_write_text(path / "pruned.txt", f"pruned at step {pruned[0]} (median pruner)\n")
            out = {"state": "done", "final": {k: s.get(k) for k in ("final_score", "final_return", "label")},
                   "pruned": (path / "pruned.txt").exists()}
            if trial.get("offline_value"):
                from ..stages.evaluate import offline_value_stage

                out["model_return"] = offline_value_stage(cfg, rd, device, trial["ope_horizon"],
                                                          trial["ope_starts"])["model_return"]
            if trial.get("fqe"):
                from ..stages.evaluate import fqe_stage

                out["fqe_value"] = fqe_stage(cfg, rd, device, trial["fqe_steps"])["fqe_value"]
            return out
        except KeyboardInterrupt:
            return {"state": "interrupted", "error": "interrupted (the checkpoint was saved)"}
        except UserError as e:
            return _failed(path, str(e), str(e))
        except Exception as e:  # a bug or a diverged run: one line for the table, the traceback in the run
            line = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            return _failed(path, line, traceback.format_exc())
        finally:
            if handler is not None:
                logging.getLogger("admpo").removeHandler(handler)
                handler.close()


def _pruning_watch(trial: dict, pruned: list[int]):
    """Report each evaluation's score to the trial in the study's storage; end the run normally (a checkpoint,
    the policy, a summary) when the pruner says its curve has fallen behind."""
    import optuna

    from ..algos.training_run import StopTraining

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    handle = optuna.trial.Trial(optuna.load_study(study_name=trial["study"], storage=trial["storage"]),
                                trial["trial_id"])

    def watch(step: int, row: dict) -> None:
        value = row.get(trial["metric"])
        if value in (None, ""):
            return
        handle.report(float(value), step)
        if handle.should_prune():
            pruned.append(step)
            raise StopTraining(f"pruned at step {step} (median pruner)")

    return watch


def _failed(path: Path, line: str, text: str) -> dict:
    if path.is_dir():
        atomic_write_text(path / ERROR, text.rstrip() + "\n" + line + "\n")
    return {"state": "failed", "error": line}


def _log_to(file: Path) -> logging.Handler:
    """The run's messages (resumed from, kernels built, rows dropped) go to its log.txt."""
    h = logging.FileHandler(file)
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("admpo")
    log.addHandler(h)
    log.setLevel(logging.INFO)
    return h


def init_local_worker() -> None:
    """A local pool's worker: SIGTERM (and the sweep's death) end it like Ctrl-C, so the run saves its
    checkpoint on the way out."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:  # Linux: be sent SIGTERM when the sweep process dies (killed with -9 too)
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
