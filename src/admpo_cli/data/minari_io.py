"""Minari datasets that are already on disk (optional extra: pip install 'admpo[minari]')."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..registry import FormatSpec
from .dataset import Transitions
from .scores import Reference


def _minari():
    try:
        import minari
    except ImportError:
        raise UserError("Minari datasets need the optional package: pip install 'admpo[minari]'") from None
    return minari


def load_minari(dataset_id: str, download: bool = False) -> tuple[Transitions, Reference | None]:
    minari = _minari()
    try:
        if download:
            minari.download_dataset(dataset_id)
        ds = minari.load_dataset(dataset_id)
    except Exception as exc:  # minari raises plain errors for a missing local dataset
        raise UserError(
            f"Minari dataset {dataset_id}: not found under $MINARI_DATASETS_PATH "
            f"({type(exc).__name__}); add --set data.download=true to fetch it where there is internet"
        ) from None
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("o", "a", "r", "n", "t", "u")}
    for ep in ds.iterate_episodes():
        obs = np.asarray(ep.observations)
        parts["o"].append(obs[:-1])
        parts["n"].append(obs[1:])
        parts["a"].append(np.asarray(ep.actions))
        parts["r"].append(np.asarray(ep.rewards))
        parts["t"].append(np.asarray(ep.terminations))
        parts["u"].append(np.asarray(ep.truncations))
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    ref = None
    meta = ds.storage.metadata
    lo, hi = meta.get("ref_min_score"), meta.get("ref_max_score")
    if lo is not None and hi is not None:
        ref = Reference(float(lo), float(hi), f"Minari metadata of {dataset_id}")
    data = Transitions(cat["o"], cat["a"], cat["r"], cat["n"], cat["t"], cat["u"], source=f"minari:{dataset_id}")
    return data, ref


def is_minari_id(path: str) -> bool:
    """A Minari dataset id (namespace/name/version, e.g. mujoco/hopper/medium-v0) rather than a file path."""
    p = Path(path)
    return "/" in path and not p.exists() and p.suffix.lower() not in (".hdf5", ".h5", ".npz")


def _load(source: str, data, settings, context) -> tuple[Transitions, Reference | None, str]:
    out, ref = load_minari(source, download=data.download)
    return out, ref, f"minari:{source}"


def _reference(env: str):
    from .scores import D4RL_REF

    return D4RL_REF.get(env)  # where a dataset's metadata carries none: D4RL's for the same env


FORMAT = FormatSpec("minari", load=_load, reference=_reference, recognises=is_minari_id,
                    description="Minari datasets by id (e.g. mujoco/hopper/medium-v0), their own reference "
                                "returns; data.download=true fetches one (optional extra admpo[minari])")
