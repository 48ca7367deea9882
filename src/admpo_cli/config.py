"""Typed configuration: one frozen dataclass per section, presets, and strict overrides.

Precedence (lowest to highest): defaults < preset < --config file < --set a.b=c < explicit flags.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import typing
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from . import registry
from .errors import UserError

# The environment families admpo knows (envs/registry.py has their specs); written here once.
Env = Literal["hopper", "halfcheetah", "walker2d", "ant", "humanoid"]
ENVS: tuple[str, ...] = typing.get_args(Env)


def env_of(task: str) -> str:
    """The environment family a task name contains (hopper-medium-v2 -> hopper); the task itself if none."""
    return next((e for e in sorted(ENVS, key=len, reverse=True) if e in task), task)


class Extended:
    """A section that a registered kind extends with keys of its own (registry.EXTENDED: a model kind's in
    `model`, an algorithm's in `train`, a penalty's in `rollout`, a dataset format's in `data`): the keys set
    are kept in `options`, as sorted (key, value) pairs, flat in YAML and config.yaml."""

    SECTION = ""

    @classmethod
    def of(cls, **keys: Any) -> Any:
        """A section from flat keys, as a preset writes them: the shared ones and any kind's own."""
        shared = {f.name for f in fields(cls)} - {"options"}
        own = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in keys.items() if k not in shared))
        return cls(**{k: v for k, v in keys.items() if k in shared}, options=own)

    def settings(self, name: str | None = None) -> Any:
        """The typed settings of `name` (default: the section's own kind): its defaults and the keys set here."""
        kind_field, reg = registry.EXTENDED[self.SECTION]
        name = name or getattr(self, kind_field)
        return reg.settings(name, dict(self.options), f"{self.SECTION}.{kind_field}")  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DataConfig(Extended):
    # Task name used for reference returns, termination and the evaluation env, e.g. "hopper-medium-v2",
    # "neorl-hopper-low" or "quickstart-hopper".
    task: str = "quickstart-hopper"
    # Environment family (ENVS): hopper | halfcheetah | walker2d | ant | humanoid.
    env: Env = "hopper"
    # The dataset format (a registered one; admpo's: d4rl (HDF5) | neorl (npz) | minari | collect (made locally
    # when absent); `admpo doctor` lists them with plugins').
    benchmark: str = "collect"
    # Dataset file or id (D4RL id like hopper-medium-v2, Minari id, or a path). Empty = the preset's default.
    path: str = ""
    # Extra folder searched for D4RL/NeoRL files before $D4RL_DATASET_DIR and ~/.d4rl/datasets.
    data_dir: str = ""
    # Rows with NaN/inf: "reject" (error) or "drop" (removed, reported).
    nonfinite: Literal["reject", "drop"] = "reject"
    # collect: transitions gathered with a random policy when no dataset file exists yet.
    collect_steps: int = 20000
    # Minari: allow downloading a dataset that is not on disk (needs network and huggingface_hub).
    download: bool = False
    # The format's own keys that were set (Extended).
    options: tuple[tuple[str, Any], ...] = ()

    SECTION = "data"


@dataclass(frozen=True)
class ModelConfig(Extended):
    """The settings every dynamics model shares (what is fitted and how). A model kind's own keys (ADM's
    hidden, layers, head_blocks, dropout; the ensemble's ensemble_size, elites, ...) sit in the same YAML
    section; they are declared by the model's module (its `settings` dataclass) and kept in `options`."""

    # Dynamics model: a registered kind (admpo models: adm, ensemble, bootrnn; `admpo doctor` lists them).
    kind: str = "adm"
    # Max backtracking length m (Table 5 / Table 4): the history a sequence model is fitted on.
    m: int = 5
    # Dropout when predicting (roll-outs, evaluation): auto = what the model's registration says (ADM: on
    # with the authors' uncertainty formula, as their code never switches the model to eval mode and
    # Table 5's beta were tuned so; off otherwise); on | off force it. Every run records the value it used.
    dropout_at_inference: Literal["auto", "on", "off"] = "auto"
    # Eq. (2) per minibatch: "all" k at once (one GRU pass; each k averaged over its own windows, then the
    # plain average over k) or "one" k drawn per minibatch (authors' code).
    k_sampling: Literal["all", "one"] = "all"
    lr: float = 3e-4
    batch_size: int = 256
    # Hold-out of min(ratio * N, max) transitions (authors' code: 20 %, 1000 offline, 500 online).
    holdout_ratio: float = 0.2
    holdout_max: int = 1000
    # Which transitions are held out: "last" (the newest ones, and no training window reaches into them: the
    # authors' learn_dynamics_from, offline and online), "episodes" (whole episodes drawn at random) or
    # "random" (single transitions drawn afresh at each fit: MBPO's and OfflineRL-Kit's split).
    holdout: Literal["last", "episodes", "random"] = "last"
    # Early stopping: epochs without hold-out improvement (authors' code: 25) and a hard cap (0 = none: the
    # authors' and MBPO's fits train until early stopping ends them).
    patience: int = 25
    max_epochs: int = 200
    # What counts as an improvement: "mean" hold-out MSE over k (authors' ADM code) or "members" (OfflineRL-Kit's
    # ensemble: an epoch improves when any member beats its own best by more than min_improvement, relative;
    # each member keeps its own best weights).
    early_stopping: Literal["mean", "members"] = "mean"
    min_improvement: float = 0.0
    # How an epoch is scored for early stopping and for the weights kept: "batch" (the ADM authors'
    # learn_dynamics_from: a fresh random batch of batch_size held-out windows per k, dropout on), "all" (every
    # held-out window, dropout off: deterministic), or auto (batch for the any-step models, all for the others,
    # whose authors score the whole hold-out). Every fit records the one it used.
    validation: Literal["auto", "batch", "all"] = "auto"
    # Minibatches per epoch; 0 = N_train // batch_size (times m with k_sampling=one, as the authors' code).
    steps_per_epoch: int = 0
    # Start from the run's existing model weights instead of a fresh init.
    warm_start: bool = False
    # Matrix products while fitting on the CPU: fp32, or bf16 (inputs rounded to bfloat16, float32
    # accumulation and outputs; oneDNN on AMX/AVX512-BF16 CPUs: ~1.3x ADM, ~1.5x ensemble here). Hold-out
    # evaluation always runs in float32.
    matmul_precision: Literal["fp32", "bf16"] = "fp32"
    # The model kinds' own keys that were set (Extended).
    options: tuple[tuple[str, Any], ...] = ()

    SECTION = "model"


@dataclass(frozen=True)
class RolloutConfig(Extended):
    # Imagined horizon H (Table 5).
    horizon: int = 5
    # Start windows per roll-out (authors' code: 50 000).
    batch_size: int = 50000
    # Reward penalty coefficient beta: r - beta * U (Table 5).
    beta: float = 1.0
    # Uncertainty: auto (the model's default: authors for adm, max_aleatoric for ensemble) | authors (the
    # formula of the authors' code, with which Table 5's beta were tuned: sqrt of the mean over state dims of
    # the variance of the m means; `code` is read as this) | paper (Eq. 4) |
    # max_aleatoric (MOPO: max over all members of the norm of the predicted std) | ensemble_std | none | a
    # plugin's penalty (registry.PENALTIES; `admpo doctor` lists them).
    uncertainty: str = "auto"
    # Backtracking k: one per imagined step for the whole batch (authors' code) or one per row (paper text).
    k_mode: Literal["batch", "row"] = "batch"
    # Rows processed at once inside a roll-out (bounds memory traffic of large elementwise ops).
    chunk_size: int = 1000
    # Matrix precision of roll-outs: fp32 | bf16.
    dtype: Literal["fp32", "bf16"] = "fp32"
    # The penalty's own keys that were set (Extended).
    options: tuple[tuple[str, Any], ...] = ()

    SECTION = "rollout"


@dataclass(frozen=True)
class AgentConfig:
    # SAC (Table 3): two critics, FC(256, 256) ReLU.
    hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    # Entropy temperature; fixed unless auto_alpha (offline configs of the authors fix it). With auto_alpha
    # it is the starting value (the authors', MBPO's and CleanRL's: log alpha = 0, alpha = 1).
    alpha: float = 0.2
    auto_alpha: bool = False
    alpha_lr: float = 3e-4
    # Target entropy for auto alpha; 0 = -act_dim.
    target_entropy: float = 0.0
    # The space log pi is measured in, for the target entropy and the entropy terms of the losses: "env" (the
    # env's action units: log pi includes -sum log(action scale), as the ADMPO authors' SAC and CleanRL) or
    # "normalized" (the [-1, 1] actions the policy outputs, as MBPO/softlearning). They differ only where the
    # action bound is not 1 (Humanoid: +-0.4, so -8 in env units is about +7.58 normalised).
    entropy_space: Literal["env", "normalized"] = "env"
    # The temperature's loss: "log_alpha" (-log alpha (log pi + target): the ADMPO authors, MBPO) or "alpha"
    # (-alpha (log pi + target): CleanRL).
    alpha_loss: Literal["log_alpha", "alpha"] = "log_alpha"
    # How the actor's raw log-std is bounded to [-5, 2]: "clamp" (the ADMPO authors' SAC, MBPO) or "tanh"
    # (CleanRL: -5 + 3.5 (tanh(raw) + 1), so a fresh actor starts near std 0.22 rather than 1).
    log_std_bound: Literal["clamp", "tanh"] = "clamp"
    # Actor (and temperature) steps each time the actor is updated (CleanRL's SAC: 2 every 2 env steps).
    actor_steps: int = 1
    batch_size: int = 256
    # Actor learning-rate schedule over the run: cosine (authors' offline code) | none.
    actor_lr_schedule: Literal["cosine", "none"] = "cosine"
    # Actor update every N critic updates (authors' online code: 1 Hopper, 20 others).
    actor_update_every: int = 1
    # SAC's update: fast (hand-written backward, fused critics; measured ~2x on the CPU), reference (nn.Linear
    # and autograd as agents/sac_reference.py: the readable version the tests hold the fast one equal to),
    # or auto: fast on the CPU, reference on CUDA until the fast path is measured correct and faster there.
    backend: Literal["auto", "fast", "reference"] = "auto"
    # Polyak-average the target critics every N updates (mbrl-lib's MBPO: 4).
    target_update_every: int = 1


@dataclass(frozen=True)
class TrainConfig(Extended):
    # A registered algorithm (registry.py; admpo's: admpo, mopo, bc offline (train-off); admpo, sac, mbpo
    # online (train-on); `admpo doctor` lists them with plugins').
    algo: str = "admpo"
    # offline (train-off: a fixed dataset) or online (train-on: the online presets, Table 4).
    setting: Literal["offline", "online"] = "offline"
    # Offline: epochs of steps_per_epoch updates (authors' code: 5000 x 1000).
    epochs: int = 5000
    steps_per_epoch: int = 1000
    # Roll out every rollout_freq updates; the model buffer keeps the last model_retain_epochs roll-outs.
    rollout_freq: int = 1000
    model_retain_epochs: int = 5
    # Fraction of each SAC batch drawn from the real data.
    real_ratio: float = 0.05
    checkpoint_every: int = 10
    # Save the model buffer in checkpoints (needed for a resume identical to an uninterrupted run;
    # without it a resumed run refills the buffer with a fresh roll-out).
    checkpoint_buffer: bool = True
    # Online (Table 4): learning env steps (after warm-up, as the authors' n_steps), random warm-up env
    # steps taken first and not counted in total_steps, updates per env step, model refit/roll-out interval.
    total_steps: int = 50000
    warmup_steps: int = 5000
    utd: int = 20
    model_update_interval: int = 250
    # Each model fit: from_scratch (a fresh model: the ADMPO authors' code) or warm_start (the last fit and
    # its optimiser state continued, the normaliser refitted: MBPO's code; also the `cpu` budgets, where at
    # equal time its hold-out MSE was half from_scratch's, benchmarks/bench_online.py).
    model_refit: Literal["warm_start", "from_scratch"] = "from_scratch"
    model_retain_rollouts: int = 4
    # Roll-out length schedule [x, y, a, b]: x -> y over learning env steps a -> b (counted after warm-up).
    rollout_schedule: tuple[float, ...] = (1.0, 15.0, 0.0, 50000.0)
    # The algorithm's own keys that were set (Extended).
    options: tuple[tuple[str, Any], ...] = ()

    SECTION = "train"


@dataclass(frozen=True)
class EvalConfig:
    # Deterministic evaluation episodes and how often (in epochs offline, env steps online).
    episodes: int = 10
    every: int = 1
    # The final score is the mean of the last N evaluations.
    final_window: int = 10
    # Maximum episode length in evaluation.
    max_episode_steps: int = 1000


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    # auto | cpu | cuda | cuda:N
    device: str = "auto"
    # Parent folder for run directories when --run is not given.
    root: str = "runs"


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # Name of the preset this config came from ("" = defaults).
    preset: str = ""
    # Named reduced budget of the preset applied on top of the protocol ("" = the preset's full protocol);
    # the run's label and the report say "(reduced budget: NAME)".
    budget: str = ""
    # The protocol keys this run changes (by --config, --set or a flag) from its preset at its budget, sorted;
    # derived by resolve() (never set by hand). The label says "(modified: KEYS)" and the report keeps such
    # runs apart from protocol runs.
    modified: tuple[str, ...] = ()


TOP_LEVEL = ("preset", "budget", "modified")
# Where and how a run executes, not what it runs: changing these never marks a run as modified.
NOT_PROTOCOL = frozenset({"run.seed", "run.device", "run.root", "data.path", "data.data_dir", "data.download",
                          "train.checkpoint_every", "train.checkpoint_buffer", "rollout.chunk_size",
                          "agent.backend"})
SECTIONS = {f.name: f.type for f in fields(Config) if f.name not in TOP_LEVEL}


def _section_class(name: str) -> type:
    return type(getattr(Config(), name))


def _closest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.0)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the field's declared type, or fail naming the field."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = [str(v) for v in typing.get_args(tp)]
        if isinstance(value, bool) and "on" in allowed:  # YAML true/false for an on/off switch
            value = "on" if value else "off"
        if value == "code" and "authors" in allowed:  # the authors' uncertainty formula's name before 0.2
            value = "authors"
        if isinstance(value, (dict, list)) or str(value) not in allowed:
            raise UserError(f"{where}: expected one of {', '.join(allowed)}, got {value!r}"
                            f"{_closest(str(value), allowed)}")
        return str(value)
    if origin is tuple:
        (inner, *_) = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value if value.strip().startswith("[") else f"[{value}]")
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, inner, where) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0"}:
            return value.lower() in {"true", "yes", "1"}
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise UserError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).replace("_", ""))
        except ValueError:
            raise UserError(f"{where}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise UserError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise UserError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def apply_mapping(cfg: Config, mapping: dict[str, Any], source: str) -> Config:
    """Apply a nested {section: {key: value}} mapping strictly; unknown names fail with a suggestion."""
    if not isinstance(mapping, dict):
        raise UserError(f"{source}: expected a mapping of sections, got {type(mapping).__name__}")
    updates: dict[str, Any] = {}
    for section, values in mapping.items():
        if section == "modified":  # derived: resolve() recomputes it
            continue
        if section in TOP_LEVEL:
            updates[section] = "" if values is None else str(values)
            continue
        if section not in SECTIONS:
            raise UserError(
                f"{source}: unknown section '{section}'{_closest(section, list(SECTIONS))}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise UserError(f"{source}: section '{section}' must be a mapping of keys")
        current = getattr(cfg, section)
        updates[section] = _apply_section(section, current, values, source)
    cfg = replace(cfg, **updates)
    for section in updates:
        if section in registry.EXTENDED and getattr(cfg, section).options:  # defaults are valid: nothing to check
            _check_options(cfg, section, source)
    validate(cfg)
    return cfg


def _apply_section(section: str, current: Any, values: dict[str, Any], source: str) -> Any:
    """`current` with `values` set: its own fields typed as declared, the keys of the kind that extends it
    (registry.EXTENDED) typed as that kind declares them, the kind's name checked against its registry."""
    types = _field_types(type(current))
    kind_field, reg = registry.EXTENDED.get(section, ("", None))
    changes, options = {}, {}
    for key, value in values.items():
        where = f"{source}: {section}.{key}"
        if key in types and key != "options":
            changes[key] = _coerce(value, types[key], where)
        elif reg is not None:
            kind = str(values.get(kind_field, getattr(current, kind_field)))
            options[key] = _coerce(value, _option_type(section, key, kind, list(types), source), where)
        else:
            raise UserError(f"{source}: unknown key '{section}.{key}'{_closest(key, list(types))}")
    if reg is not None and kind_field in changes:
        changes[kind_field] = _registered(section, kind_field, changes[kind_field], source)
    if options:
        changes["options"] = tuple(sorted({**dict(current.options), **options}.items()))
    return replace(current, **changes)


def _registered(section: str, kind_field: str, name: str, source: str) -> str:
    """A kind's name as its registry knows it (the error names the registered ones); rollout.uncertainty also
    takes auto (the model's default) and `code` (the authors' formula's name before 0.2)."""
    if section == "rollout":
        if name == "code":
            return "authors"
        if name == "auto":
            return name
    _, reg = registry.EXTENDED[section]
    if name not in reg.names():
        reg.get(name, f"{source}: {section}.{kind_field}")  # raises, naming the choices
    return name


def _option_type(section: str, key: str, kind: str, common: list[str], source: str) -> Any:
    """The type of a key a kind declares: as `kind` (the section's kind) declares it, else as the first
    registered kind that has it (a key kept for another kind is typed as that kind's)."""
    _, reg = registry.EXTENDED[section]
    known, broken = [], []
    for name in [kind, *(k for k in reg.names() if k != kind)]:
        if name not in reg.names():
            continue  # rollout.uncertainty=auto: the model's default, looked up among all penalties
        try:
            own = reg.fields(name)
        except UserError as exc:  # a plugin that does not load spoils only its own keys
            broken.append(str(exc))
            continue
        if key in own:
            return own[key]
        known += list(own)
    why = f"; {'; '.join(broken)}" if broken else ""
    hint = _closest(key, [k for k in common if k != "options"] + known)
    raise UserError(f"{source}: unknown key '{section}.{key}'{hint}{why}")


def _check_options(cfg: Config, section: str, source: str) -> None:
    """The section's kind's settings built from the keys it owns, so its own checks run now, not at fit time;
    keys other kinds own (kept for a later --model/--algo) are not checked against this kind."""
    current = getattr(cfg, section)
    name = None
    if section == "rollout":
        name = registry.uncertainty_for(cfg.model.kind, current.uncertainty) if current.uncertainty == "auto" \
            else current.uncertainty
    try:
        current.settings(name)
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None


def parse_set(items: list[str]) -> dict[str, Any]:
    """Turn ["model.m=3", "train.epochs=10"] into a nested mapping (values parsed as YAML scalars)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or not all(parts):
            raise UserError(f"--set {item!r}: expected section.key=value (e.g. model.m=3)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.setdefault(parts[0], {})[parts[1]] = value
    return out


_POSITIVE = {
    ("model", "m"), ("model", "batch_size"), ("agent", "actor_steps"),
    ("rollout", "horizon"), ("rollout", "batch_size"), ("rollout", "chunk_size"),
    ("agent", "batch_size"), ("train", "steps_per_epoch"), ("train", "rollout_freq"),
    ("train", "model_retain_epochs"), ("eval", "episodes"), ("eval", "every"),
    ("eval", "final_window"), ("train", "epochs"),
}


def choices(section: str, key: str) -> tuple[str, ...]:
    """The allowed values of a field with a Literal type (its choices live on the field)."""
    tp = _field_types(_section_class(section))[key]
    return tuple(str(v) for v in typing.get_args(tp)) if typing.get_origin(tp) is Literal else ()


def validate(cfg: Config) -> None:
    for section, key in _POSITIVE:
        if getattr(getattr(cfg, section), key) <= 0:
            raise UserError(f"{section}.{key}: expected a positive number")
    if not 0.0 <= cfg.train.real_ratio <= 1.0:
        raise UserError("train.real_ratio: expected a fraction in [0, 1]")
    if len(cfg.train.rollout_schedule) != 4:
        raise UserError("train.rollout_schedule: expected [x, y, a, b]")
    if cfg.model.max_epochs < 0:
        raise UserError("model.max_epochs: expected a number of epochs >= 0 (0 = no cap)")
    if cfg.model.min_improvement < 0:
        raise UserError("model.min_improvement: expected a relative improvement >= 0")


# ---------------------------------------------------------------- presets

def _preset_dirs() -> list[Path]:
    dirs = [Path(str(resources.files("admpo_cli") / "presets"))]
    # A source checkout also has the top-level presets/ folder (a link to the same files).
    return [d for d in dirs if d.is_dir()]


def preset_paths() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in _preset_dirs():
        for p in sorted(d.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


# libyaml's loader where PyYAML was built with it (~10x the pure-Python one: `presets list` reads 27 files)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path, what: str = "config file") -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{what} {path}: no such file")
    try:
        data = yaml.load(path.read_text(), Loader=_LOADER)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise UserError(f"{what} {path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{what} {path}: expected a mapping of sections at the top level")
    return data


def load_preset(name: str) -> Config:
    presets = preset_paths()
    if name not in presets:
        raise UserError(f"unknown preset '{name}'{_closest(name, list(presets))}; see `admpo presets list`")
    mapping = _preset_file(name)
    cfg = apply_mapping(Config(), {k: v for k, v in mapping.items() if k not in PRESET_NOTES}, f"preset {name}")
    return replace(cfg, preset=name)


@functools.cache
def _preset_file(name: str) -> dict[str, Any]:
    """A shipped preset's YAML, read once per process (do not modify the mapping)."""
    return read_yaml(preset_paths()[name], "preset")


# The training budget inside an algorithm's published settings; a preset with `budget: preset` (the
# quickstarts) keeps its own values of these.
BUDGET_KEYS = {"train": ("epochs", "steps_per_epoch", "rollout_freq", "total_steps", "warmup_steps",
                         "model_update_interval", "rollout_schedule"),
               "rollout": ("batch_size",), "eval": ("episodes",),
               "model": ("max_epochs", "steps_per_epoch")}

# Top-level preset keys that are notes rather than config: a description, and `budget: preset` on the
# quickstart presets (their small training budget wins over a baseline's published one).
PRESET_NOTES = ("description", "budget", "budgets")


def preset_keeps_budget(name: str | None) -> bool:
    return bool(name) and _preset_file(name).get("budget") == "preset"


def preset_columns(name: str) -> tuple[str, int, int, float]:
    """(benchmark, m, H, beta) as the preset's file says them (defaults where it does not), for `presets list`:
    read, not resolved, so that listing loads no model or algorithm module."""
    raw = _preset_file(name)
    get = lambda section, key, default: (raw.get(section) or {}).get(key, default)  # noqa: E731
    return (str(get("data", "benchmark", DataConfig.benchmark)), int(get("model", "m", ModelConfig.m)),
            int(get("rollout", "horizon", RolloutConfig.horizon)), float(get("rollout", "beta", RolloutConfig.beta)))


def preset_description(name: str) -> str:
    return str(_preset_file(name).get("description", ""))


def preset_budgets(name: str | None) -> dict[str, dict[str, Any]]:
    """The named reduced budgets a preset offers ({name: {"description": .., section: {key: value}}})."""
    if not name:
        return {}
    budgets = _preset_file(name).get("budgets") or {}
    if not isinstance(budgets, dict):
        raise UserError(f"preset {name}: `budgets` must be a mapping of budget names")
    return budgets


def budget_settings(preset: str | None, budget: str) -> dict[str, Any]:
    """A budget's {section: {key: value}} changes, or a one-line error naming the budgets there are."""
    offered = preset_budgets(preset)
    if budget not in offered:
        names = ", ".join(offered) or "none"
        raise UserError(f"--budget {budget}: preset {preset or '(none)'} offers no budget of that name "
                        f"(budgets: {names}){_closest(budget, list(offered)) if offered else ''}")
    return {k: v for k, v in offered[budget].items() if k != "description"}


def protocol_of(cfg: Config) -> Config:
    """What the run's preset runs at the run's budget, with the run's algorithm and model kind and nothing else
    changed (the reference that `modified` is measured against)."""
    return resolve(cfg.preset or None, flags={"train.algo": cfg.train.algo, "model.kind": cfg.model.kind},
                   budget=cfg.budget or None, record_modified=False)


def modified_keys(cfg: Config) -> tuple[str, ...]:
    """The protocol keys (not NOT_PROTOCOL's) whose values differ from protocol_of(cfg); none without a preset."""
    if not cfg.preset:
        return ()
    return tuple(sorted(k for k in differences(protocol_of(cfg), cfg) if k not in NOT_PROTOCOL))


def resolve(
    preset: str | None = None,
    config_file: str | Path | None = None,
    sets: list[str] | None = None,
    flags: dict[str, Any] | None = None,
    base: Config | None = None,
    budget: str | None = None,
    record_modified: bool = True,
) -> Config:
    """Build a Config: defaults (or `base`, e.g. an existing run's) < preset < the algorithm's published
    settings (baselines: their registration, registry.py) < a named reduced budget of the preset (the same for every
    algorithm) < config file < --set < flags; with the protocol keys it changes from its preset recorded in
    `modified` (record_modified)."""

    def build(published: dict[str, Any] | None) -> Config:
        cfg = load_preset(preset) if preset else (base or Config())
        if published:
            cfg = apply_mapping(cfg, published, f"{cfg.train.algo} published settings")
        if budget:
            cfg = apply_mapping(cfg, budget_settings(preset or cfg.preset, budget), f"budget {budget}")
            cfg = replace(cfg, budget=budget)
        if config_file:
            mapping = read_yaml(Path(config_file))
            mapping.pop("description", None)
            cfg = apply_mapping(cfg, mapping, str(config_file))
        if sets:
            cfg = apply_mapping(cfg, parse_set(sets), "--set")
        if flags:
            nested: dict[str, dict[str, Any]] = {}
            for key, value in flags.items():
                if value is None:
                    continue
                section, name = key.split(".")
                nested.setdefault(section, {})[name] = value
            if nested:
                cfg = apply_mapping(cfg, nested, "flag")
        return cfg

    cfg = build(None)
    algo = cfg.train.algo
    spec = registry.algorithm(algo)
    # An existing run's config already holds its algorithm's settings (and the user's changes to them).
    if base is None or base.train.algo != algo:
        published = spec.published(cfg.data.task, cfg.train.setting) if spec.published else {}
        if published and spec.model:  # a baseline runs with its own model (its registration's)
            published = {**published, "model": {"kind": spec.model, **published.get("model", {})}}
        if published:
            mapping = {"train": {"algo": algo}}
            for section, values in published.items():
                keep = BUDGET_KEYS.get(section, ()) if preset_keeps_budget(preset) else ()
                mapping.setdefault(section, {}).update({k: v for k, v in values.items() if k not in keep})
            cfg = build(mapping)
    own = spec.model
    # a baseline runs with its own model where its published settings apply
    if spec.published and own and cfg.model.kind != own and spec.setting == cfg.train.setting:
        raise UserError(f"--model {cfg.model.kind}: {spec.label} uses the {own} model; "
                        f"for ADMPO's settings with another model use --algo admpo --model {cfg.model.kind}")
    return replace(cfg, modified=modified_keys(cfg)) if record_modified else cfg


def fingerprint(cfg: Config, sections: tuple[str, ...] | None = None, **replace_fields: Any) -> str:
    """A short hash of the resolved settings that decide a result (not where it runs: run.device and
    run.root are left out). `sections` limits it (a model depends on data, model and seed only)."""
    d = to_dict(cfg)
    d["run"] = {"seed": cfg.run.seed}
    d.pop("preset")
    d.pop("modified")  # derived from the settings hashed here
    if not d["budget"]:
        d.pop("budget")  # fingerprints of runs without a budget as before budgets existed
    if sections is not None:
        d = {k: v for k, v in d.items() if k in sections}
    for dotted, value in replace_fields.items():
        section, key = dotted.split("__")
        d[section] = {**d[section], key: value}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def model_fingerprint(cfg: Config, kind: str) -> str:
    """What a fitted model depends on: the data, the model settings (as this kind) and the seed."""
    return fingerprint(cfg, ("data", "model", "run"), model__kind=kind)


def differences(a: Config, b: Config, skip: tuple[str, ...] = ("run.device", "run.root")) -> dict[str, tuple]:
    """{"section.key": (value in a, value in b)} for the fields that differ."""
    da, db = to_dict(a), to_dict(b)
    out = {}
    for section in SECTIONS:
        for key in {**da[section], **db[section]}:  # a model kind's keys may be set on one side only
            name = f"{section}.{key}"
            va, vb = da[section].get(key), db[section].get(key)
            if name not in skip and va != vb:
                out[name] = (va, vb)
    return out


def run_name(cfg: Config, show: tuple[str, ...] = ()) -> str:
    """The default run directory under run.root, named by what makes a run different: preset (or task),
    algorithm, model where it is not the algorithm's own, seed, the values of the `show` keys (a sweep's
    grid keys) and a short hash of all other overrides, e.g. quickstart-hopper/admpo-s0,
    quickstart-hopper/admpo-ensemble-s0, hopper-medium/mopo-s1-3f2a9c1b, quickstart-hopper/admpo-s0-m2-1c0ffee5,
    hopper-online/admpo-s0-cpu (a named budget)."""
    algo = cfg.train.algo
    name = algo
    own = registry.default_model(algo)
    if own and cfg.model.kind != own:
        name += f"-{cfg.model.kind}"
    name += f"-s{cfg.run.seed}"
    if cfg.budget:
        name += f"-{cfg.budget}"
    plain = resolve(cfg.preset or None, flags={"train.algo": algo, "model.kind": cfg.model.kind,
                                               "run.seed": cfg.run.seed}, budget=cfg.budget or None,
                    record_modified=False)
    extra = differences(plain, cfg, skip=("run.device", "run.root", "run.seed"))
    for key in show:
        if key in extra:
            value = extra[key][1]
            text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            name += f"-{key.split('.')[-1]}{text}"
    if extra:
        name += "-" + hashlib.sha256(json.dumps(sorted((k, v[1]) for k, v in extra.items())).encode()).hexdigest()[:8]
    return f"{cfg.preset or cfg.data.task}/{name}"


def to_dict(cfg: Config) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    out: dict[str, Any] = {"preset": cfg.preset, "budget": cfg.budget, "modified": list(cfg.modified)}
    for section in SECTIONS:
        out[section] = {k: plain(v) for k, v in dataclasses.asdict(getattr(cfg, section)).items()}
    for section in registry.EXTENDED:
        options = out[section].pop("options")
        out[section].update({k: plain(v) for k, v in options})  # a kind's own keys, flat as in a preset
    return out


def from_dict(mapping: dict[str, Any]) -> Config:
    """A Config from config.yaml: `modified` as the run recorded it (runs before 0.2 did not: measured against
    today's preset where it still exists)."""
    cfg = apply_mapping(Config(), mapping, "config.yaml")
    recorded = mapping.get("modified") if isinstance(mapping, dict) else None
    if isinstance(recorded, list):
        return replace(cfg, modified=tuple(str(k) for k in recorded))
    try:
        return replace(cfg, modified=modified_keys(cfg))
    except UserError:
        return cfg


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
