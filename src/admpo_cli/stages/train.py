"""The training stage of `admpo train-off`, `train-bc`, `train-on` and `resume`: the run's data and model in
(offline) or the environment (online), one algorithm's loop, summary.json out. A finished run is not
trained again unless forced."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .. import registry
from ..algos.training_run import Hooks
from ..config import Config
from ..data.load import load_dataset
from ..events import SILENT, Progress, log
from ..rundir import RunDir
from .fit import dataset_for_run, model_for_training
from .loggers import make_loggers


@contextmanager
def _loggers(names: list[str] | None, run: RunDir, cfg: Config) -> Iterator[list]:
    sinks = make_loggers(names or [], run, cfg)
    try:
        yield sinks
    finally:
        for s in sinks:
            s.close()


@dataclass
class TrainResult:
    summary: dict
    # True when the run had already finished and nothing was trained
    already_finished: bool = False
    # the update a resumed run continued from (0: from the start)
    resumed_from: int = 0


def train_stage(cfg: Config, run: RunDir, device: torch.device, force: bool = False,
                progress: Progress = SILENT, loggers: list[str] | None = None,
                watch: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train the run to the end (resuming from its checkpoint); `loggers` (tensorboard, wandb) get every
    evaluation row that goes to metrics.csv; `watch(step, row)` hears every row too (it may raise
    algos.training_run.StopTraining to end the run early, normally)."""
    if run.file("summary.json").exists() and run.training_status() == "done" and not force:
        return TrainResult(run.read_json("summary.json"), already_finished=True)
    if force:
        run.clear_training()
    algo = cfg.train.algo
    spec = registry.algorithm(algo, cfg.train.setting)
    result = TrainResult({})
    online = cfg.train.setting == "online"
    with run.stage(f"train-{algo}", cfg, str(device)), _loggers(loggers, run, cfg) as sinks:
        data = model = None
        if not online:  # offline: the dataset, and the model fitted on it when the algorithm uses one
            data = dataset_for_run(cfg, run, progress)
            if spec.model is not None:
                model = model_for_training(cfg, run, device, cfg.model.kind, data, force, progress)[0]
        elif cfg.train.init_from and cfg.train.init_dataset == "keep":  # fine-tuning: the source's dataset
            data = load_dataset(RunDir.open(cfg.train.init_from).config())[0]
        unit = "env steps" if online else "updates"
        with progress.task(f"{algo} {cfg.data.task} ({unit})") as bar:

            def on_start(step: int, total: int) -> None:
                result.resumed_from = step
                if step:
                    log.info(f"resuming {run.path} from {unit[:-1]} {step}")
                bar.update(total=total, completed=step)

            def on_progress(step: int, row: dict) -> None:
                if "return_mean" in row:  # an evaluation row, as written to metrics.csv
                    for sink in sinks:
                        sink.log(step, row)
                if watch is not None:
                    watch(step, row)
                info = f"epoch {row['epoch']}  " if "epoch" in row else ""
                info += f"{row.get('updates_per_s', 0):.0f} upd/s"
                if row.get("score_mean") not in (None, ""):
                    info += f"  score {float(row['score_mean']):.1f}"
                elif row.get("return_mean") not in (None, ""):
                    info += f"  return {float(row['return_mean']):.1f}"
                bar.update(completed=step, info=info)

            result.summary = spec.train(cfg, run, device, data, model, Hooks(on_start, on_progress))
    return result


def fine_tune_settings(init_from: str | None, keep_dataset: bool) -> dict:
    """The settings `train-on --init-from RUN` adds: the source run, whether its dataset starts D_env, and the
    architecture keys the source's policy and model need (algos/fine_tune.py); {} without --init-from."""
    if not init_from:
        return {}
    from ..algos import fine_tune

    source = fine_tune.open_source(init_from)
    return {"train.init_from": str(source.path), "train.init_dataset": "keep" if keep_dataset else "drop",
            **fine_tune.adopted_settings(source)}
