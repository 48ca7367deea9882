"""Resolving a run's config: defaults < preset < the algorithm's published settings < a named budget < config
file < --set < flags, with the protocol keys it changes recorded as `modified`."""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import registry
from ..errors import UserError
from .overrides import apply_mapping, parse_set
from .presets import BUDGET_KEYS, budget_settings, load_preset, preset_keeps_budget, read_yaml
from .schema import NOT_PROTOCOL, Config
from .serial import differences


def protocol_of(cfg: Config) -> Config:
    """What the run's preset runs at the run's budget, with the run's algorithm and model kind and nothing else
    changed (the reference that `modified` is measured against, and that run names are made from). Resolved once
    per process for each (preset, algorithm, model, budget)."""
    return _protocol(cfg.preset, cfg.train.algo, cfg.model.kind, cfg.budget)


@functools.lru_cache(maxsize=64)
def _protocol(preset: str, algo: str, kind: str, budget: str) -> Config:
    return resolve(preset or None, flags={"train.algo": algo, "model.kind": kind}, budget=budget or None,
                   record_modified=False)


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
