"""A run's identity: the fingerprint of the settings that decide a result, and its default directory name."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from .. import registry
from .resolution import protocol_of
from .schema import Config
from .serial import differences, to_dict


def fingerprint(cfg: Config, sections: tuple[str, ...] | None = None, **replace_fields: Any) -> str:
    """A short hash of the resolved settings that decide a result (not where it runs: run.device and
    run.root are left out). `sections` limits it (a model depends on data, model and seed only). Computed once
    per process for each config (a command asks for it at every stage)."""
    key = tuple(sorted(replace_fields.items()))
    try:
        return _fingerprint(cfg, sections, key)
    except TypeError:  # a value that cannot be hashed (a list in a plugin's settings): computed every time
        return _fingerprint.__wrapped__(cfg, sections, key)


@functools.lru_cache(maxsize=256)
def _fingerprint(cfg: Config, sections: tuple[str, ...] | None, replace_fields: tuple) -> str:
    d = to_dict(cfg)
    d["run"] = {"seed": cfg.run.seed}
    d.pop("preset")
    d.pop("modified")  # derived from the settings hashed here
    if not d["budget"]:
        d.pop("budget")  # fingerprints of runs without a budget as before budgets existed
    if sections is not None:
        d = {k: v for k, v in d.items() if k in sections}
    for dotted, value in replace_fields:
        section, key = dotted.split("__")
        d[section] = {**d[section], key: value}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def model_fingerprint(cfg: Config, kind: str) -> str:
    """What a fitted model depends on: the data, the model settings (as this kind) and the seed."""
    return fingerprint(cfg, ("data", "model", "run"), model__kind=kind)


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
    extra = differences(protocol_of(cfg), cfg, skip=("run.device", "run.root", "run.seed"))
    for key in show:
        if key in extra:
            value = extra[key][1]
            text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            name += f"-{key.split('.')[-1]}{text}"
    if extra:
        name += "-" + hashlib.sha256(json.dumps(sorted((k, v[1]) for k, v in extra.items())).encode()).hexdigest()[:8]
    return f"{cfg.preset or cfg.data.task}/{name}"
