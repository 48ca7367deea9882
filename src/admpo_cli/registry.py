"""What admpo can train and fit: the registered dynamics models and algorithms, built-in or from plugins.

A model or an algorithm is one module that ends with its registration (`MODEL = ModelSpec(...)` or
`ALGORITHM = AlgorithmSpec(...)`). admpo's own are listed in `BUILTIN_MODELS` / `BUILTIN_ALGORITHMS`
below (the one line a new built-in adds); another package registers its own through the entry-point
groups `admpo.models` and `admpo.algorithms`, e.g. in its pyproject.toml:

    [project.entry-points."admpo.models"]
    mymodel = "mypkg.mymodel:MODEL"

Names are known without importing anything (`--help` stays fast); a module is imported the first time its
entry is asked for. This module is torch-free: the specs hold callables, which the modules provide.
"""

from __future__ import annotations

import dataclasses
import importlib
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


def lazy(target: str) -> Callable[..., Any]:
    """A function given as "module:name", imported on its first call: a registration that only names its
    loop keeps resolving a config (presets show) free of torch."""

    def call(*args: Any, **kwargs: Any) -> Any:
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__qualname__ = call.__name__ = target
    return call


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

    def in_setting(self, setting: str) -> AlgorithmSpec:
        """This algorithm as it runs in `setting` (its label and loop there)."""
        if setting == self.setting or setting not in self.also:
            return self
        command = "train-on" if setting == "online" else "train-off"
        return dataclasses.replace(self, **{"command": command, **self.also[setting]}, setting=setting, also={})

    @property
    def settings(self) -> tuple[str, ...]:
        return (self.setting, *self.also)


class Registry:
    """Names -> specs, from a built-in table and an entry-point group; modules load on first use."""

    def __init__(self, what: str, group: str, builtin: dict[str, str], spec_type: type, attr: str):
        self.what, self.group, self.builtin, self.spec_type, self.attr = what, group, builtin, spec_type, attr
        self._loaded: dict[str, Any] = {}

    def _targets(self) -> dict[str, tuple[str, str]]:
        """name -> (module:attr, where it comes from), built-ins first; a plugin cannot replace a built-in."""
        out = {name: (target, "admpo (built-in)") for name, target in self.builtin.items()}
        for ep in metadata.entry_points(group=self.group):
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
        except (ImportError, AttributeError) as exc:
            raise UserError(f"{self.what} {name!r} ({source}): cannot load {target}: {exc}") from None
        if not isinstance(obj, self.spec_type):
            raise UserError(f"{self.what} {name!r} ({source}): {target} is not a {self.spec_type.__name__}")
        self._loaded[name] = obj
        return obj

    def all(self) -> dict[str, Any]:
        return {name: self.get(name) for name in self.names()}


MODELS = Registry("model", "admpo.models", BUILTIN_MODELS, ModelSpec, "MODEL")
ALGORITHMS = Registry("algorithm", "admpo.algorithms", BUILTIN_ALGORITHMS, AlgorithmSpec, "ALGORITHM")


def model(kind: str, where: str = "model.kind") -> ModelSpec:
    return MODELS.get(kind, where)


def algorithm(name: str, setting: str | None = None, where: str = "train.algo") -> AlgorithmSpec:
    spec = ALGORITHMS.get(name, where)
    return spec.in_setting(setting) if setting else spec


def default_model(algo: str) -> str | None:
    return ALGORITHMS.get(algo).model if algo in ALGORITHMS.names() else None


def uncertainty_for(kind: str, configured: str) -> str:
    """The quantifier a roll-out uses: the configured one, or the model's default for `auto`."""
    return MODELS.get(kind).uncertainties[0] if configured == "auto" else configured


def dropout_at_inference(setting: str, kind: str, uncertainty: str) -> bool:
    """`auto` follows what the model's registration says (ADM: on with the authors' formula and without a
    penalty, as their code runs it); on | off force it."""
    if setting == "auto":
        return bool(MODELS.get(kind).dropout_auto(uncertainty))
    return setting == "on"


def settings_fields(kind: str) -> dict[str, Any]:
    """The model kind's own config keys and their types."""
    import typing

    cls = MODELS.get(kind).settings
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


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
        if "offline" not in a.settings:
            raise UserError(f"train.algo={algo}: {a.label} is an online algorithm; run it with `admpo {a.command}`, "
                            "not train-off")
    if command == "train-on":
        if setting != "online":
            raise UserError(f"preset {preset or '(config)'} is an offline task (a fixed dataset): run it with "
                            f"`admpo train-off --preset {preset or '...'}`; train-on needs an online preset "
                            "(e.g. hopper-online)")
        if "online" not in a.settings:
            raise UserError(f"train.algo={algo}: {a.label} trains offline; run it with `admpo {a.command}`")


def run_length(cfg: Any) -> tuple[str, int]:
    """The metrics.csv column that counts a run's progress, and its final value."""
    spec = algorithm(cfg.train.algo, cfg.train.setting)
    if spec.length is not None:
        return spec.length(cfg)
    t = cfg.train
    return ("env_steps", t.total_steps) if t.setting == "online" else ("step", t.epochs * t.steps_per_epoch)
