"""D4RL MuJoCo v2 HDF5 files, read directly (the d4rl package cannot be imported on a current stack)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ..errors import UserError
from ..registry import FormatSpec
from .dataset import Transitions


def d4rl_filename(dataset_id: str) -> str:
    """hopper-medium-replay-v2 -> hopper_medium_replay-v2.hdf5 (d4rl's own naming)."""
    name, _, version = dataset_id.rpartition("-")
    if not name or not version.startswith("v"):
        raise UserError(f"data.path: '{dataset_id}' is neither a file nor a D4RL id like hopper-medium-v2")
    return f"{name.replace('-', '_')}-{version}.hdf5"


def search_dirs(data_dir: str = "") -> list[Path]:
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get("D4RL_DATASET_DIR"):
        dirs.append(Path(os.environ["D4RL_DATASET_DIR"]))
    dirs.append(Path.home() / ".d4rl" / "datasets")
    return dirs


def find_file(path_or_id: str, data_dir: str = "") -> Path:
    p = Path(path_or_id).expanduser()
    if p.is_file():
        return p
    if p.suffix in (".hdf5", ".h5"):
        raise UserError(f"{p}: no such file")
    fname = d4rl_filename(path_or_id)
    dirs = search_dirs(data_dir)
    for d in dirs:
        if (d / fname).is_file():
            return d / fname
    looked = ", ".join(str(d) for d in dirs)
    raise UserError(
        f"D4RL dataset {path_or_id}: {fname} not found in {looked}; fetch it with "
        f"`admpo data download {path_or_id}` (or copy it there from a machine with internet), or pass --dataset PATH"
    )


_REQUIRED = ("observations", "actions", "rewards", "terminals")


def load_d4rl(path: Path) -> Transitions:
    """Read a D4RL v2 file. Uses next_observations when present and keeps timeout transitions as
    episode ends (the ADMPO authors' loader); without next_observations, next = observations[i+1]
    and timeout rows are dropped (d4rl.qlearning_dataset)."""
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
    with fh:
        for key in _REQUIRED:
            if key not in fh:
                raise UserError(f"{path}: missing key '{key}' (expected the D4RL v2 layout)")
        try:
            obs = fh["observations"][()]
            act = fh["actions"][()]
            rew = np.asarray(fh["rewards"][()]).reshape(len(obs), -1)[:, 0] if len(obs) else np.zeros(0)
            term = fh["terminals"][()]
            timeouts = fh["timeouts"][()] if "timeouts" in fh else np.zeros(len(obs), dtype=bool)
            nxt = fh["next_observations"][()] if "next_observations" in fh else None
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: truncated or corrupt data ({str(exc).splitlines()[0]})") from None
    for name, arr in (("actions", act), ("terminals", term), ("timeouts", timeouts)):
        if len(arr) != len(obs):
            raise UserError(f"{path}: field '{name}' has {len(arr)} rows, expected {len(obs)}")
    if obs.ndim != 2:
        raise UserError(f"{path}: field 'observations' must be 2-D, got shape {obs.shape}")
    if nxt is None:
        keep = ~timeouts.astype(bool)
        keep[-1] = False
        idx = np.flatnonzero(keep)
        return Transitions(obs[idx], act[idx], rew[idx], obs[idx + 1], term[idx], np.zeros(len(idx), bool),
                           source=str(path))
    if nxt.shape != obs.shape:
        raise UserError(f"{path}: field 'next_observations' has shape {nxt.shape}, expected {obs.shape}")
    return Transitions(obs, act, rew, nxt, term, timeouts, source=str(path))


def write_d4rl(path: Path, data: Transitions, qpos: np.ndarray | None = None,
               qvel: np.ndarray | None = None, metadata: dict | None = None) -> None:
    """Write the D4RL v2 layout (gzip), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as fh:
        kw = {"compression": "gzip", "compression_opts": 4}
        fh.create_dataset("observations", data=data.observations, **kw)
        fh.create_dataset("next_observations", data=data.next_observations, **kw)
        fh.create_dataset("actions", data=data.actions, **kw)
        fh.create_dataset("rewards", data=data.rewards, **kw)
        fh.create_dataset("terminals", data=data.terminals, **kw)
        fh.create_dataset("timeouts", data=data.timeouts, **kw)
        if qpos is not None:
            fh.create_dataset("infos/qpos", data=qpos.astype(np.float32), **kw)
            fh.create_dataset("infos/qvel", data=qvel.astype(np.float32), **kw)
        for key, value in (metadata or {}).items():
            fh.attrs[f"metadata/{key}"] = value
    os.replace(tmp, path)


def _load(source: str, data, settings, context) -> tuple[Transitions, None, str]:
    path = find_file(source, data.data_dir)
    return load_d4rl(path), None, str(path)


def _write(path: Path, data: Transitions, qpos=None, qvel=None, metadata: dict | None = None) -> None:
    write_d4rl(path, data, qpos, qvel, metadata)


def _reference(env: str):
    from .scores import D4RL_REF

    return D4RL_REF.get(env)


FORMAT = FormatSpec("d4rl", load=_load, reference=_reference, suffixes=(".hdf5", ".h5"), write=_write,
                    description="D4RL v2 HDF5 files (a file, or an id like hopper-medium-v2 looked up in "
                                "data.data_dir, $D4RL_DATASET_DIR and ~/.d4rl/datasets)")
