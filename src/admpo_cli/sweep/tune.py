"""`admpo tune`: an Optuna search over a preset's settings, its trials trained on the sweep's executors.

The study lives in `<out>/study.db` (SQLite): a search killed at any moment (kill -9 included) and started
again with the same command continues it. Finished and pruned trials are never run again; a trial that was
running is run again with the same parameters in the same run directory, so it resumes from its checkpoint.
Each trial is a run directory `<out>/trials/trial-NNN`; a TPE sampler proposes the parameters, a median
pruner stops trials whose evaluation curve falls behind (selecting on the simulator only), and at the end
`best.yaml` holds the best configuration as a file `train-off --config` reads.

Selection (`select`): `sim` is the final normalised score in the simulator (the final return where a task has no
reference); `model-return` is a value estimated from data only, the policy's return in its own learned model from
the dataset's start windows (evaluate/model_return.py), which tunes an offline method without leaking the test
environment. Both figures are recorded for every trial, and the page reports how well the offline one ranks the
trials against the simulator (Spearman).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .. import registry
from ..config import read_yaml, resolve
from ..errors import UserError
from ..files import atomic_write_json, atomic_write_text
from .plan import command_for
from .search_space import Param
from .state import lock_path

STUDY_NAME = "admpo-tune"
OBJECTIVES = {"sim": "final normalised score (simulator)", "model-return": "return in the learned model (no simulator)",
              "fqe": "fitted Q evaluation on the dataset (no simulator)"}
CRITERIA = {"model-return": "model_return", "fqe": "fqe_value"}  # the offline criteria, as trials record them


@dataclass(frozen=True)
class TuneSettings:
    preset: str
    algo: str
    space: list[Param]
    trials: int
    select: str = "sim"  # sim | model-return
    seed: int = 0  # every trial's run seed (the parameters are what differ)
    sampler_seed: int = 0
    prune: bool = True
    sets: list[str] = field(default_factory=list)
    config: str | None = None
    dataset: str | None = None
    device: str | None = None
    budget: str | None = None
    ope_horizon: int = 100
    ope_starts: int = 500
    fqe_steps: int = 5000

    def identity(self) -> dict[str, Any]:
        """What a study is: a search started again with another identity is refused."""
        return {"preset": self.preset, "algo": self.algo, "space": [p.describe() for p in self.space],
                "select": self.select, "seed": self.seed, "sets": list(self.sets), "config": self.config,
                "budget": self.budget}


def check_settings(s: TuneSettings) -> None:
    """Before anything runs: the objective exists for this algorithm, every key resolves with a sample value."""
    if s.select not in OBJECTIVES:
        raise UserError(f"--select {s.select}: expected one of {', '.join(OBJECTIVES)}")
    if s.trials < 1:
        raise UserError(f"--trials: expected 1 or more, got {s.trials}")
    cfg = _config(s, _first_point(s), Path("."))
    if s.select == "model-return" and (cfg.train.setting != "offline" or registry.algorithm(s.algo).model is None):
        raise UserError(f"--select model-return: needs an offline model-based algorithm (admpo, mopo); "
                        f"{s.algo} on {s.preset} is not one")
    if s.select == "fqe" and cfg.train.setting != "offline":
        raise UserError(f"--select fqe: evaluates a policy on an offline dataset; {s.preset} is an online preset")


def _first_point(s: TuneSettings) -> dict[str, Any]:
    """A point of the space (each list's first value, each range's low end): to check keys, make datasets."""
    return {p.key: (p.choices[0] if p.choices else p.low) for p in s.space}


def _config(s: TuneSettings, params: dict[str, Any], root: Path):
    return resolve(s.preset, s.config, [*s.sets, *(f"{k}={_text(v)}" for k, v in params.items())],
                   {"train.algo": s.algo, "run.seed": s.seed, "data.path": s.dataset, "run.device": s.device,
                    "run.root": str(root)}, budget=s.budget)


def _text(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def open_study(s: TuneSettings, out: Path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{out / 'study.db'}"
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=s.sampler_seed, n_startup_trials=min(4, s.trials)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0) if _prunes(s) else
        optuna.pruners.NopPruner())
    known = study.user_attrs.get("identity")
    if known is None:
        study.set_user_attr("identity", s.identity())
    elif known != s.identity():
        diff = sorted(k for k in known if known[k] != s.identity().get(k))
        raise UserError(f"{out}: holds a search with other settings ({', '.join(diff)}); use another --out")
    return study, storage


def _prunes(s: TuneSettings) -> bool:
    # pruning reads the simulator's evaluation curve: with an offline criterion that would leak the test env
    return s.prune and s.select == "sim"


def trial_spec(s: TuneSettings, out: Path, trial, storage: str) -> dict[str, Any]:
    """What a worker trains for this trial (the sweep's run spec) and how it reports back to the study."""
    from .plan import RunSpec

    cfg = _config(s, trial.params, out / "trials")
    point = tuple((k, _text(v)) for k, v in trial.params.items())
    run = RunSpec(s.preset, s.algo, s.seed, point, command_for(cfg), out / "trials" / f"trial-{trial.number:03d}", cfg)
    return {**run.to_dict(),
            "trial": {"storage": storage, "study": STUDY_NAME, "trial_id": trial._trial_id, "number": trial.number,
                      "prune": _prunes(s), "metric": "score_mean" if s.select == "sim" else "",
                      "offline_value": cfg.train.setting == "offline" and registry.algorithm(s.algo).model is not None,
                      "fqe": cfg.train.setting == "offline", "fqe_steps": s.fqe_steps,
                      "ope_horizon": s.ope_horizon, "ope_starts": s.ope_starts}}


def trial_spec_preview(s: TuneSettings, out: Path):
    """A run spec of the search's first sample point (for the datasets to make before any trial starts)."""
    from .plan import RunSpec

    cfg = _config(s, _first_point(s), out / "trials")
    return RunSpec(s.preset, s.algo, s.seed, (), command_for(cfg), out / "trials", cfg)


def objective(s: TuneSettings, result: dict) -> float | None:
    final = result.get("final") or {}
    if s.select in CRITERIA:
        return result.get(CRITERIA[s.select])
    score = final.get("final_score")
    return score if isinstance(score, int | float) and math.isfinite(score) else final.get("final_return")


@dataclass
class TuneResult:
    trials: pd.DataFrame
    best: dict | None
    agreement: dict
    ran: int  # trials trained by this call
    resumed: int  # trials that were running when an earlier call stopped, run again here
    errors: dict[int, str] = field(default_factory=dict)  # failed trials' one-line errors


def run_tune(s: TuneSettings, executor, out: Path, in_flight: int,
             on_update: Callable[[pd.DataFrame], None] | None = None) -> TuneResult:
    """Ask, train and tell until the study holds `s.trials` trials, `in_flight` at a time; then the best
    configuration, the importances and the page."""
    from optuna.trial import TrialState

    study, storage = open_study(s, out)
    queue = list(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))  # a stopped search's, again
    resumed, ran, running = len(queue), 0, {}
    dists = {p.key: p.distribution() for p in s.space}
    cwd = str(Path.cwd())
    try:
        while True:
            while len(running) < in_flight and (queue or len(study.get_trials(deepcopy=False)) < s.trials):
                t = queue.pop(0) if queue else study.ask(dists)
                spec = trial_spec(s, out, t, storage)
                executor.submit(t.number, spec, cwd, str(lock_path(out, Path(spec["path"]))))
                running[t.number] = (t, spec)
            if not running:
                break
            for number, res in executor.poll(timeout=1.0):
                t, spec = running.pop(number)
                ran += _tell(study, s, t, spec, res)
                if on_update is not None:
                    on_update(trials_frame(study, out))
    except BaseException:
        executor.close(cancel=True)
        raise
    executor.close()
    return _finish(study, s, out, ran, resumed)


def _tell(study, s: TuneSettings, t, spec: dict, res: dict) -> int:
    """Record a trial's outcome; an interrupted or busy one stays running (the next call trains it again)."""
    import optuna
    from optuna.trial import TrialState

    if res.get("state") in ("interrupted", "busy"):
        return 0
    handle = optuna.trial.Trial(study, t._trial_id)
    final = res.get("final") or {}
    for key in ("final_score", "final_return", "model_return", "fqe_value"):
        value = res.get(key, final.get(key))
        if isinstance(value, int | float) and math.isfinite(value):
            handle.set_user_attr(key, float(value))
    handle.set_user_attr("run", Path(spec["path"]).name)
    if res.get("state") != "done":
        handle.set_user_attr("error", str(res.get("error", ""))[:500])
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
    elif res.get("pruned"):
        study.tell(t.number, state=TrialState.PRUNED, skip_if_finished=True)
    else:
        value = objective(s, res)
        study.tell(t.number, value, state=None if value is not None else TrialState.FAIL, skip_if_finished=True)
    return 1


def trials_frame(study, out: Path) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.value is not None else (t.intermediate_values[max(t.intermediate_values)]
                                                     if t.intermediate_values else None)
        rows.append({"number": t.number, "state": t.state.name, **t.params, "value": value,
                     **{k: t.user_attrs.get(k) for k in ("final_score", "final_return", "model_return", "fqe_value")},
                     "run": t.user_attrs.get("run", f"trial-{t.number:03d}")})
    return pd.DataFrame(rows)


def _finish(study, s: TuneSettings, out: Path, ran: int, resumed: int) -> TuneResult:
    """trials.csv, best.yaml, importances.json, tune.json and the page."""
    import optuna
    from optuna.trial import TrialState

    from ..report.tune_page import write_tune_page

    trials = trials_frame(study, out)
    atomic_write_text(out / "trials.csv", trials.to_csv(index=False))
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = None
    if done:
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": b.params}
        write_best_config(s, b.params, out / "best.yaml", f"admpo tune: trial {b.number} of {len(trials)}, "
                          f"{OBJECTIVES[s.select]} {b.value:.4g}")
    importances = {}
    if len(done) >= 2 and len(s.space) > 1:
        importances = optuna.importance.get_param_importances(study)
    atomic_write_json(out / "importances.json", importances)
    header = {"preset": s.preset, "algo": s.algo, "trials": s.trials, "sampler_seed": s.sampler_seed,
              "prune": _prunes(s), "objective": OBJECTIVES[s.select], "space": [p.describe() for p in s.space],
              "best": best, "command": trial_spec_preview(s, out).command}
    agreement = write_tune_page(out, trials, importances, header)
    atomic_write_json(out / "tune.json", {**header, "criterion_agreement": agreement, "settings": s.identity()})
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    errors = {t.number: t.user_attrs.get("error", "") for t in failed}
    return TuneResult(trials, best, agreement, ran, resumed, errors)


def write_best_config(s: TuneSettings, params: dict[str, Any], path: Path, description: str) -> None:
    """The best trial's settings as a config file: the search's own --config and --set, then its parameters."""
    from ..config import parse_set

    mapping: dict[str, Any] = read_yaml(Path(s.config)) if s.config else {}
    mapping.pop("description", None)
    for key, value in [*parse_set(s.sets).items(), *params.items()]:
        if isinstance(value, dict):  # parse_set nests by section already
            mapping.setdefault(key, {}).update(value)
            continue
        section, name = key.split(".", 1)
        mapping.setdefault(section, {})[name] = value
    text = yaml.safe_dump({"description": description, **mapping}, sort_keys=False)
    atomic_write_text(path, text)
