"""A hyper-parameter search space, from the command line or YAML, as Optuna distributions.

Command line, one `--param` each:
    rollout.beta=0.1:10:log        a float drawn log-uniformly in [0.1, 10]
    rollout.beta=0.1:10            a float drawn uniformly
    rollout.horizon=1:20:int       an integer in [1, 20] (`int-log`: log-uniformly)
    rollout.horizon=1,5,10         one of the listed values (read as YAML scalars: numbers stay numbers)
YAML (`--space FILE`): {key: {low: .., high: .., log: bool, int: bool}} or {key: [v1, v2, ...]}.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError


@dataclass(frozen=True)
class Param:
    key: str  # section.key of the config
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def distribution(self):
        import optuna

        d = optuna.distributions
        if self.choices:
            return d.CategoricalDistribution(list(self.choices))
        if self.integer:
            return d.IntDistribution(int(self.low), int(self.high), log=self.log)
        return d.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def describe(self) -> str:
        if self.choices:
            return f"{self.key} in {{{', '.join(map(str, self.choices))}}}"
        kind = ("integer" if self.integer else "float") + (", log" if self.log else "")
        return f"{self.key} in [{self.low:g}, {self.high:g}] ({kind})"


def _scalar(text: str) -> Any:
    return yaml.safe_load(text) if text.strip() else text


def parse_param(text: str) -> Param:
    key, sep, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    where = f"--param {text!r}"
    if not sep or "." not in key or not spec:
        raise UserError(f"{where}: expected section.key=LOW:HIGH[:log|:int|:int-log] or section.key=v1,v2,...")
    if "," in spec or ":" not in spec:
        values = tuple(_scalar(v) for v in spec.split(",") if v.strip())
        if len(values) < 2 or len(set(map(str, values))) != len(values):
            raise UserError(f"{where}: a list needs two or more different values")
        return Param(key, choices=values)
    parts = spec.split(":")
    flags = parts[2] if len(parts) == 3 else ""
    if len(parts) not in (2, 3) or flags not in ("", "log", "int", "int-log"):
        raise UserError(f"{where}: expected LOW:HIGH with an optional :log, :int or :int-log")
    return _range(key, parts[0], parts[1], "log" in flags, "int" in flags, where)


def _range(key: str, low: Any, high: Any, log: bool, integer: bool, where: str) -> Param:
    try:
        lo, hi = (int(low), int(high)) if integer else (float(low), float(high))
    except (TypeError, ValueError):
        raise UserError(f"{where}: LOW and HIGH must be {'integers' if integer else 'numbers'}") from None
    if not lo < hi:
        raise UserError(f"{where}: LOW must be below HIGH")
    if log and lo <= 0:
        raise UserError(f"{where}: a log range needs LOW > 0")
    return Param(key, lo, hi, log, integer)


def read_space(path: Path) -> list[Param]:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"--space {path}: cannot read it as YAML ({e})") from None
    if not isinstance(doc, dict) or not doc:
        raise UserError(f"--space {path}: expected a mapping of section.key to a range or a list")
    params = []
    for key, spec in doc.items():
        where = f"--space {path}: {key}"
        if "." not in str(key):
            raise UserError(f"{where}: keys are section.key, e.g. rollout.beta")
        if isinstance(spec, list):
            if len(spec) < 2:
                raise UserError(f"{where}: a list needs two or more values")
            params.append(Param(str(key), choices=tuple(spec)))
        elif isinstance(spec, dict) and {"low", "high"} <= set(spec):
            params.append(_range(str(key), spec["low"], spec["high"], bool(spec.get("log")), bool(spec.get("int")),
                                 where))
        else:
            raise UserError(f"{where}: expected {{low: .., high: .., log: .., int: ..}} or a list of values")
    return params


def search_space(params: list[str] | None, space_file: Path | None) -> list[Param]:
    out = (read_space(space_file) if space_file else []) + [parse_param(p) for p in params or []]
    keys = [p.key for p in out]
    if not out:
        raise UserError("tune: no search space (--param section.key=LOW:HIGH[:log] or --space FILE)")
    if len(set(keys)) != len(keys):
        raise UserError(f"tune: a key is searched twice ({', '.join(sorted({k for k in keys if keys.count(k) > 1}))})")
    return out
