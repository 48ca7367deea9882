"""Reading a dataset through its registered format (registry.FORMATS): the config's format, what a format that
makes its data needs (LoadContext), and the reference returns its scores use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import registry
from ..envs.specs import EnvSpec
from .dataset import Transitions
from .scores import Reference


@dataclass(frozen=True)
class LoadContext:
    """What a format that makes its data (collect) needs besides the data section: the task's environment,
    the run's seed, and a progress callback (transitions done) for the time it takes."""

    spec: EnvSpec | None = None
    seed: int = 0
    progress: Callable[[int], None] | None = None


def read(data: Any, context: LoadContext) -> tuple[Transitions, Reference | None, str, str]:
    """(transitions, the format's own reference or None, where they came from, the format) for a data section."""
    name = registry.format_of(data)
    spec = registry.dataset_format(name)
    out, ref, where = spec.load(data.path, data, data.settings(name), context)
    return out, ref, where, name


def read_path(path: str, name: str | None = None) -> tuple[Transitions, Reference | None, str]:
    """A file or id read as `data info` does: with format `name`, else the one its suffix or shape names."""
    from ..config import DataConfig

    name = name or registry.format_of(path, explicit=False)
    spec = registry.dataset_format(name, "--format")
    data = DataConfig(benchmark=name, path=path)
    out, ref, _ = spec.load(path, data, spec.settings(), LoadContext())
    return out, ref, name


def reference(name: str, env: str) -> Reference | None:
    """The reference returns a format's tasks of `env` are scored with (None: no reference, e.g. Ant)."""
    return registry.dataset_format(name).reference(env)
