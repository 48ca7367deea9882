"""Dataset resolution from a config: which loader, which file, and validation against the task."""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..envs.specs import spec_for
from .collected import check_collected, default_collect_path  # noqa: F401 - where callers find them
from .dataset import Transitions, validate
from .formats import LoadContext, read, reference


def load_dataset(cfg: Config, progress=None) -> tuple[Transitions, dict[str, Any]]:
    """Load (or, for the collect format, make once) the dataset a config names, in its registered format,
    validated for its task."""
    spec = spec_for(cfg.data)
    data, own_ref, source, fmt = read(cfg.data, LoadContext(spec, cfg.run.seed, progress))
    data = validate(data, source, spec.obs_dim, spec.act_dim, cfg.data.nonfinite)
    ref = own_ref or reference(fmt, cfg.data.env)
    info = {
        "source": source,
        "format": fmt,
        "fingerprint": data.fingerprint(),
        "transitions": len(data),
        "episodes": int(data.ends.sum()),
        "obs_dim": data.obs_dim,
        "act_dim": data.act_dim,
        "dropped_nonfinite": data.dropped_nonfinite,
        "reference": None if ref is None else {"random": ref.random, "expert": ref.expert, "source": ref.source},
    }
    return data, info
