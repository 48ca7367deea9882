"""A Config as plain data and YAML (config.yaml), and the keys two configs differ in."""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from .. import registry
from .schema import SECTIONS, Config


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


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
