"""Strict overrides: a nested {section: {key: value}} applied to a Config, each value typed as its field (or as
the registered kind that extends the section declares it), unknown names refused with a suggestion."""

from __future__ import annotations

import difflib
import functools
import typing
from dataclasses import fields, replace
from typing import Any, Literal

import yaml

from .. import registry
from ..errors import UserError
from .schema import SECTIONS, TOP_LEVEL, Config


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
