"""NeoRL .npz files (keys obs, next_obs, action, reward, done, index), read directly."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..registry import FormatSpec
from .d4rl import search_dirs
from .dataset import Transitions

_KEYS = ("obs", "next_obs", "action", "reward", "done", "index")


def find_file(path_or_name: str, trajectories: int, data_dir: str = "") -> Path:
    """A path, or a name like Hopper-v3-low resolved to the smallest Hopper-v3-low-<N>-train-noise.npz
    with N >= trajectories (NeoRL's own rule)."""
    p = Path(path_or_name).expanduser()
    if p.is_file():
        return p
    if p.suffix == ".npz":
        raise UserError(f"{p}: no such file")
    dirs = search_dirs(data_dir)
    tried = []
    for n in (100, 1000, 10000):
        if n < trajectories:
            continue
        fname = f"{path_or_name}-{n}-train-noise.npz"
        tried.append(fname)
        for d in dirs:
            if (d / fname).is_file():
                return d / fname
    raise UserError(
        f"NeoRL dataset {path_or_name}: none of {', '.join(tried)} found in "
        f"{', '.join(str(d) for d in dirs)}; fetch it with `admpo data download {path_or_name}` (or copy it "
        "there from a machine with internet), or pass --dataset PATH"
    )


def load_neorl(path: Path, trajectories: int = 1000) -> Transitions:
    try:
        npz = np.load(path)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    with npz:
        for key in _KEYS:
            if key not in npz.files:
                raise UserError(f"{path}: missing key '{key}' (expected the NeoRL layout {', '.join(_KEYS)})")
        try:
            arrays = {k: npz[k] for k in _KEYS}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: truncated or corrupt data ({type(exc).__name__})") from None
    # `index` holds each trajectory's end offset; with 0 prepended it gives the start offsets.
    ends = np.asarray(arrays["index"], dtype=np.int64).reshape(-1)
    bounds = np.concatenate([[0], ends])
    if np.any(np.diff(bounds) <= 0) or bounds[-1] > len(arrays["obs"]):
        raise UserError(f"{path}: field 'index' is not an increasing list of trajectory ends within the data")
    n_traj = min(trajectories, len(ends))
    stop = int(bounds[n_traj])
    obs = arrays["obs"][:stop]
    done = np.asarray(arrays["done"]).reshape(-1)[:stop].astype(bool)
    timeouts = np.zeros(stop, dtype=bool)
    last = bounds[1 : n_traj + 1] - 1
    timeouts[last] = ~done[last]
    for name in ("next_obs", "action", "reward"):
        if len(arrays[name]) < stop:
            raise UserError(f"{path}: field '{name}' has {len(arrays[name])} rows, expected at least {stop}")
    return Transitions(
        obs, arrays["action"][:stop], np.asarray(arrays["reward"]).reshape(-1)[:stop],
        arrays["next_obs"][:stop], done, timeouts, source=str(path),
    )


def write_neorl(path: Path, data: Transitions) -> None:
    """Write NeoRL's layout: index = end offset of each trajectory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ends = np.flatnonzero(data.ends) + 1
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(
        tmp, obs=data.observations, next_obs=data.next_observations, action=data.actions,
        reward=data.rewards[:, None], done=data.terminals[:, None], index=ends,
    )
    os.replace(tmp, path)


@dataclass(frozen=True)
class NeoRLSettings:
    """NeoRL's own key of the `data` section."""

    neorl_trajectories: int = 1000  # training trajectories kept (the benchmark and ADMPO use the first 1000)

    def __post_init__(self):
        if self.neorl_trajectories <= 0:
            raise ValueError(f"data.neorl_trajectories: expected a positive number, got {self.neorl_trajectories}")


def _load(source: str, data, settings: NeoRLSettings, context) -> tuple[Transitions, None, str]:
    path = find_file(source, settings.neorl_trajectories, data.data_dir)
    return load_neorl(path, settings.neorl_trajectories), None, str(path)


def _write(path: Path, data: Transitions, qpos=None, qvel=None, metadata: dict | None = None) -> None:
    write_neorl(path, data)


def _reference(env: str):
    from .scores import NEORL_REF

    return NEORL_REF.get(env)


FORMAT = FormatSpec("neorl", load=_load, reference=_reference, suffixes=(".npz",), settings=NeoRLSettings,
                    layout="neorl", write=_write,
                    description="NeoRL npz files (a file, or a name like Hopper-v3-low), x position kept")
