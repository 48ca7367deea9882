"""What admpo can use: the registered dynamics models, algorithms, uncertainty penalties and dataset formats,
built-in or from plugins.

Each is one module that ends with its registration (`MODEL = ModelSpec(...)`, `ALGORITHM = AlgorithmSpec(...)`,
`PENALTY = PenaltySpec(...)`, `FORMAT = FormatSpec(...)`). admpo's own are listed in the BUILTIN_* tables below
(the one line a new built-in adds); another package registers its own through the entry-point groups
`admpo.models`, `admpo.algorithms`, `admpo.penalties` and `admpo.formats`, e.g. in its pyproject.toml:

    [project.entry-points."admpo.penalties"]
    mypenalty = "mypkg.mypenalty:PENALTY"

Each kind may declare a frozen settings dataclass: its fields are its own keys of the config section it
extends (a model's in `model:`, an algorithm's in `train:`, a penalty's in `rollout:`, a format's in `data:`).
Names are known without importing anything (`--help` stays fast); a module is imported the first time its
entry is asked for, and one that fails to import costs one line naming its package, in the commands that use
it only. This module is torch-free: the specs hold callables, which the modules provide.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

from .errors import UserError

Setting = Literal["offline", "online"]

BUILTIN_MODELS = {
    "adm": "admpo_cli.models.adm:MODEL",
    "ensemble": "admpo_cli.models.ensemble:MODEL",
    "bootrnn": "admpo_cli.models.bootrnn:MODEL",
    "adm-transformer": "admpo_cli.models.adm_transformer:MODEL",
}
BUILTIN_ALGORITHMS = {
    "admpo": "admpo_cli.algos.admpo:ALGORITHM",
    "mopo": "admpo_cli.algos.mopo:ALGORITHM",
    "bc": "admpo_cli.algos.bc:ALGORITHM",
    "sac": "admpo_cli.algos.sac:ALGORITHM",
    "mbpo": "admpo_cli.algos.mbpo:ALGORITHM",
}
BUILTIN_PENALTIES = {
    "authors": "admpo_cli.models.uncertainty:AUTHORS",
    "paper": "admpo_cli.models.uncertainty:PAPER",
    "max_aleatoric": "admpo_cli.models.uncertainty:MAX_ALEATORIC",
    "ensemble_std": "admpo_cli.models.uncertainty:ENSEMBLE_STD",
    "none": "admpo_cli.models.uncertainty:NONE",
}
BUILTIN_FORMATS = {
    "d4rl": "admpo_cli.data.d4rl:FORMAT",
    "neorl": "admpo_cli.data.neorl:FORMAT",
    "minari": "admpo_cli.data.minari_io:FORMAT",
    "collect": "admpo_cli.data.collected:FORMAT",
}


@dataclass(frozen=True)
class NoSettings:
    """The settings of a kind that declares no keys of its own."""


@dataclass(frozen=True)
class ModelSpec:
    """A dynamics model's registration.

    build(obs_dim, act_dim, m, settings) -> a models.base.DynamicsModel; `settings` is an instance of the
    frozen dataclass `settings` (its fields are the model's own keys of the config's `model` section, next
    to the shared ones: kind, m, lr, batch_size, hold-out and early stopping)."""

    kind: str
    build: Callable[..., Any]
    settings: type
    # Uncertainty quantifiers its steppers support; the first is its default (rollout.uncertainty=auto).
    uncertainties: tuple[str, ...]
    description: str = ""
    # Whether `model.dropout_at_inference: auto` keeps dropout on in roll-outs with this uncertainty (ADM
    # with the authors' formula, as their code never switches the model to eval mode).
    dropout_auto: Callable[[str], bool] = field(default=lambda uncertainty: False)


@dataclass(frozen=True)
class AlgorithmSpec:
    """An algorithm's registration.

    train(cfg, run, device, data, model, hooks) -> summary dict: `data` (a Transitions) is given to
    offline algorithms, `model` (fitted on it) to offline algorithms with a model; online algorithms get
    neither. `published(task, setting)` -> {section: {key: value}}: the settings its authors publish, which
    a run takes over the preset (a baseline with ADMPO's settings is an ablation and labelled as one)."""

    name: str
    label: str
    setting: Setting
    command: str
    train: Callable[..., dict]
    # Default dynamics model kind (None: model-free) and roll-out uncertainty.
    model: str | None = None
    uncertainty: str = "none"
    published: Callable[[str, str], dict[str, dict[str, Any]]] | None = None
    # Whether the task has a published setting (False: the label says so).
    published_for: Callable[[str], bool] | None = None
    # The settings an algorithm also trains in (ADMPO: online too), with the fields that differ there
    # (label, train, uncertainty, ...).
    also: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    # (cfg) -> (the metrics.csv column counting a run's progress, its final value), where the loop is not
    # counted in the offline loop's updates (epochs x steps_per_epoch) or the online loop's env steps.
    length: Callable[[Any], tuple[str, int]] | None = None
    # Its own keys of the config's `train` section (a frozen dataclass; cfg.train.settings() is the instance).
    settings: type = NoSettings

    def in_setting(self, setting: str) -> AlgorithmSpec:
        """This algorithm as it runs in `setting` (its label and loop there)."""
        if setting == self.setting or setting not in self.also:
            return self
        command = "train-on" if setting == "online" else "train-off"
        return dataclasses.replace(self, **{"command": command, **self.also[setting]}, setting=setting, also={})

    @property
    def trains_in(self) -> tuple[str, ...]:
        """The settings (offline, online) it trains in."""
        return (self.setting, *self.also)


@dataclass(frozen=True)
class PenaltySpec:
    """An uncertainty penalty's registration: a roll-out rewards r - beta * U.

    compute(mean, var, obs_dim, settings) -> U, shape (B,): from the K candidate predictions of the same next
    step that the imagined-step engine hands it (mean, var: (B, K, obs_dim + 1), the absolute next state then
    the reward; ADM's K are its k = 1..m, an ensemble's its members). `settings` is an instance of the frozen
    dataclass `settings`, whose fields are the penalty's own keys of the config's `rollout` section."""

    name: str
    compute: Callable[..., Any]
    settings: type = NoSettings
    description: str = ""
    # False for a penalty that reads no prediction (none): a roll-out may then predict the drawn candidate alone.
    uses_predictions: bool = True


@dataclass(frozen=True)
class FormatSpec:
    """A dataset format's registration.

    load(source, data, settings, context) -> (Transitions, Reference | None, where): the dataset that `source`
    (data.path: a file, an id, or "" for the preset's default) names, read in this format; `data` is the
    config's data section, `settings` an instance of `settings` (the format's own keys of the `data` section),
    `context` a data.formats.LoadContext (seed, env spec, progress: what a format that makes its data needs).
    The Reference is the format's own reference returns where the dataset carries them (Minari), else None
    (then `reference(env)`, the env family's reference returns for this format, decides); `where` is the
    source as the run records it. A file whose name ends in one of `suffixes` is read with this format whatever
    data.benchmark says; `recognises(path)` tells an id of this format's (Minari's namespace/name/version) to
    `data info`. write(path, data, qpos, qvel, meta) writes one (`admpo collect --format NAME`)."""

    name: str
    load: Callable[..., Any]
    reference: Callable[[str], Any]
    suffixes: tuple[str, ...] = ()
    recognises: Callable[[str], bool] = field(default=lambda path: False)
    settings: type = NoSettings
    # The observation layout its tasks use (envs/specs.py): d4rl, or neorl (the x position kept).
    layout: str = "d4rl"
    write: Callable[..., None] | None = None
    description: str = ""


@functools.lru_cache(maxsize=64)
def _entry_points(group: str, path: tuple[str, ...]) -> tuple:
    """A group's entry points, read once per import path (reading every distribution's metadata took ~30 ms a
    call, and resolving one config asked ~20 times: 80 % of `resolve`'s time)."""
    return tuple(metadata.entry_points(group=group))


class Registry:
    """Names -> specs, from a built-in table and an entry-point group; modules load on first use."""

    def __init__(self, what: str, group: str, builtin: dict[str, str], spec_type: type, attr: str,
                 check: Callable[[str, Any, str], None] | None = None):
        self.what, self.group, self.builtin, self.spec_type, self.attr = what, group, builtin, spec_type, attr
        self.check = check  # (name, spec, source) -> None or a UserError: what a registration must hold
        self._loaded: dict[str, Any] = {}

    def _targets(self) -> dict[str, tuple[str, str]]:
        """name -> (module:attr, where it comes from), built-ins first; a plugin cannot replace a built-in."""
        out = {name: (target, "admpo (built-in)") for name, target in self.builtin.items()}
        for ep in _entry_points(self.group, tuple(sys.path)):
            if ep.name in out:
                continue
            dist = getattr(ep, "dist", None)
            source = f"{dist.metadata['Name']} {dist.version}" if dist is not None else "entry point"
            out[ep.name] = (ep.value, source)
        return out

    def names(self) -> tuple[str, ...]:
        return tuple(self._targets())

    def sources(self) -> dict[str, tuple[str, str]]:
        """name -> (module:attr, distribution) for `admpo doctor`."""
        return self._targets()

    def get(self, name: str, where: str = "") -> Any:
        if name in self._loaded:
            return self._loaded[name]
        targets = self._targets()
        if name not in targets:
            import difflib

            close = difflib.get_close_matches(name, list(targets), n=1, cutoff=0.0)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{where or self.what}: unknown {self.what} {name!r}{hint}; registered: "
                            f"{', '.join(targets)}")
        target, source = targets[name]
        module_name, _, attr = target.partition(":")
        try:
            obj = getattr(importlib.import_module(module_name), attr or self.attr)
        except Exception as exc:  # noqa: BLE001 - whatever a plugin raises on import costs one line, not a traceback
            text = str(exc).strip().splitlines()
            raise UserError(f"{self.what} {name!r} ({source}): cannot load {target}: {type(exc).__name__}"
                            f"{': ' + text[0] if text else ''}") from None
        if not isinstance(obj, self.spec_type):
            raise UserError(f"{self.what} {name!r} ({source}): {target} is not a {self.spec_type.__name__}")
        if self.check is not None:
            self.check(name, obj, source)
        self._loaded[name] = obj
        return obj

    def fields(self, name: str) -> dict[str, Any]:
        """The config keys `name` declares (its settings dataclass's fields) and their types."""
        import typing

        cls = self.get(name).settings
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    def settings(self, name: str, options: dict[str, Any], where: str) -> Any:
        """`name`'s settings from the keys set for it (the others are left to the kinds that own them); its own
        checks (raising ValueError or TypeError) become one line naming `where`."""
        cls = self.get(name).settings
        own = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in options.items() if k in own})
        except (ValueError, TypeError) as exc:
            raise UserError(f"{exc} ({where}={name})") from None

    def all(self) -> dict[str, Any]:
        return {name: self.get(name) for name in self.names()}


def _check_model(name: str, spec: ModelSpec, source: str) -> None:
    """A model's declared uncertainties are registered penalties (checked when it loads, not mid-training)."""
    unknown = [u for u in spec.uncertainties if u not in PENALTIES.names()]
    if not spec.uncertainties or unknown:
        raise UserError(f"model {name!r} ({source}): its uncertainties {list(spec.uncertainties)} must name "
                        f"registered penalties ({', '.join(PENALTIES.names())}); unknown: {unknown or 'none given'}")


MODELS = Registry("model", "admpo.models", BUILTIN_MODELS, ModelSpec, "MODEL", _check_model)
ALGORITHMS = Registry("algorithm", "admpo.algorithms", BUILTIN_ALGORITHMS, AlgorithmSpec, "ALGORITHM")
PENALTIES = Registry("penalty", "admpo.penalties", BUILTIN_PENALTIES, PenaltySpec, "PENALTY")
FORMATS = Registry("dataset format", "admpo.formats", BUILTIN_FORMATS, FormatSpec, "FORMAT")
# The config sections a registered kind extends with its own keys: section -> (the field naming it, registry).
EXTENDED = {"model": ("kind", MODELS), "train": ("algo", ALGORITHMS), "rollout": ("uncertainty", PENALTIES),
            "data": ("benchmark", FORMATS)}


def model(kind: str, where: str = "model.kind") -> ModelSpec:
    return MODELS.get(kind, where)


def algorithm(name: str, setting: str | None = None, where: str = "train.algo") -> AlgorithmSpec:
    spec = ALGORITHMS.get(name, where)
    return spec.in_setting(setting) if setting else spec


def default_model(algo: str) -> str | None:
    return ALGORITHMS.get(algo).model if algo in ALGORITHMS.names() else None


def format_of(data: Any, explicit: bool = True) -> str:
    """The format a data section reads: data.benchmark, unless data.path is a file whose suffix another format
    owns (a NeoRL .npz given to a D4RL preset), or a path is given to `collect` (a given file is read, never
    made: the format its suffix names, else d4rl). explicit=False (`data info PATH`): the suffix's owner, else the
    format that recognises the id, else d4rl."""
    path = str(data.path if explicit else data)
    if explicit and not path:
        return data.benchmark
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    owners, recognisers = [], []
    for name in FORMATS.names():
        try:
            spec = FORMATS.get(name)
        except UserError:  # a plugin that does not load claims no file
            continue
        if suffix and suffix in spec.suffixes:
            owners.append(name)
        elif not explicit and spec.recognises(path):
            recognisers.append(name)
    if explicit:
        if data.benchmark in owners or (owners == [] and data.benchmark != "collect"):
            return data.benchmark
        return owners[0] if owners else "d4rl"
    return (owners or recognisers or ["d4rl"])[0]


def uncertainty_for(kind: str, configured: str) -> str:
    """The quantifier a roll-out uses: the configured one, or the model's default for `auto`."""
    return MODELS.get(kind).uncertainties[0] if configured == "auto" else configured


def dropout_at_inference(setting: str, kind: str, uncertainty: str) -> bool:
    """`auto` follows what the model's registration says (ADM: on with the authors' formula and without a
    penalty, as their code runs it); on | off force it."""
    if setting == "auto":
        return bool(MODELS.get(kind).dropout_auto(uncertainty))
    return setting == "on"


def penalty(name: str, where: str = "rollout.uncertainty") -> PenaltySpec:
    return PENALTIES.get(name, where)


def dataset_format(name: str, where: str = "data.benchmark") -> FormatSpec:
    return FORMATS.get(name, where)


def load_parts(cfg: Any) -> None:
    """Every registered part a run uses, loaded before it starts: a plugin that cannot load fails in one line
    before any data is collected or any model fitted (its penalty used to load at the first roll-out)."""
    algo = algorithm(cfg.train.algo)
    if algo.model is not None or cfg.train.setting == "offline":
        model(cfg.model.kind)
        penalty(uncertainty_for(cfg.model.kind, cfg.rollout.uncertainty))
    if cfg.train.setting == "offline":
        dataset_format(format_of(cfg.data))


def variant_label(algo: str, model: str | None, uncertainty: str | None = None, published: bool = True,
                  setting: str = "offline", budget: str = "", modified: tuple[str, ...] | list[str] = ()) -> str:
    """Report label: the algorithm's, and an ablation named as one where the model or uncertainty is not the
    algorithm's own (e.g. ADMPO-OFF's settings with MOPO's ensemble); a baseline on a task its authors publish
    no setting for says so; a run at a named reduced budget says "(reduced budget: NAME)", and a run that
    changed protocol keys names them: "(modified: train.total_steps)"."""
    label = _variant_label(algo, model, uncertainty, published, setting)
    notes = [f"reduced budget: {budget}"] if budget else []
    if modified:
        notes.append(f"modified: {modified_text(modified)}")
    return f"{label} ({'; '.join(notes)})" if notes else label


def modified_text(keys: tuple[str, ...] | list[str], most: int = 4) -> str:
    """The modified keys for a label: all of them up to `most`, then how many more."""
    keys = list(keys)
    shown = ", ".join(keys[:most])
    return shown + (f" +{len(keys) - most} more" if len(keys) > most else "")


def _variant_label(algo: str, model: str | None, uncertainty: str | None, published: bool, setting: str) -> str:
    if algo not in ALGORITHMS.names():
        return algo
    a = algorithm(algo, setting)
    if not published:
        return f"{a.label.replace(' (published)', '')} (no published setting for this task)"
    parts = []
    if model and a.model and model != a.model:
        parts.append(f"{model} model")
    if uncertainty and a.model and uncertainty not in ("auto", uncertainty_for(model or a.model, "auto"),
                                                       a.uncertainty):
        parts.append(f"{uncertainty} uncertainty")
    if not parts:
        return a.label
    return f"{a.label.replace(' (published)', '')} with {', '.join(parts)} (ablation)"


def check_command(command: str, algo: str, setting: str, preset: str) -> None:
    """Refuse, in one line naming the command to use, settings that belong to another command."""
    a = algorithm(algo)
    if command == "train-off":
        if setting == "online":
            raise UserError(f"preset {preset or '(config)'} is an online task (train.setting=online): run it with "
                            f"`admpo train-on --preset {preset or '...'}`; train-off trains on a fixed dataset")
        if "offline" not in a.trains_in:
            raise UserError(f"train.algo={algo}: {a.label} is an online algorithm; run it with `admpo {a.command}`, "
                            "not train-off")
    if command == "train-on":
        if setting != "online":
            raise UserError(f"preset {preset or '(config)'} is an offline task (a fixed dataset): run it with "
                            f"`admpo train-off --preset {preset or '...'}`; train-on needs an online preset "
                            "(e.g. hopper-online)")
        if "online" not in a.trains_in:
            raise UserError(f"train.algo={algo}: {a.label} trains offline; run it with `admpo {a.command}`")


def run_length(cfg: Any) -> tuple[str, int]:
    """The metrics.csv column that counts a run's progress, and its final value."""
    spec = algorithm(cfg.train.algo, cfg.train.setting)
    if spec.length is not None:
        return spec.length(cfg)
    t = cfg.train
    return ("env_steps", t.total_steps) if t.setting == "online" else ("step", t.epochs * t.steps_per_epoch)
