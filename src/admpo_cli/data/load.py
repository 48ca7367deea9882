"""Dataset resolution from a config: which loader, which file, and validation against the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Config
from ..envs.registry import spec_for
from ..errors import UserError
from . import d4rl, neorl
from .dataset import Transitions, validate
from .scores import Reference, reference_for
from .simulate import collect, write_dataset


def default_collect_path(cfg: Config) -> Path:
    return Path(cfg.data.data_dir or "data") / f"{cfg.data.task}.hdf5"


def check_collected(path: Path, steps: int) -> None:
    """A collected file is reused only for the request it was made for: data.collect_steps transitions."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            have = int(fh["rewards"].shape[0])
    except (OSError, KeyError):
        return  # not a readable D4RL file: the loader says what is wrong with it
    if have != steps:
        raise UserError(f"{path}: holds {have} collected transitions, data.collect_steps={steps} asks for another "
                        "dataset; delete the file or set data.data_dir to collect it in another folder")


def load_dataset(cfg: Config, progress=None) -> tuple[Transitions, dict[str, Any]]:
    """Load (or, for benchmark=collect, make once) the dataset a config names, validated for its task."""
    spec = spec_for(cfg.data)
    path_or_id = cfg.data.path
    minari_ref: Reference | None = None
    bench = cfg.data.benchmark
    suffix = Path(path_or_id).suffix
    if suffix == ".npz":
        bench = "neorl"
    elif path_or_id and bench == "collect":
        # A given dataset is read, never made: collection only fills the preset's default file.
        bench = "d4rl"
    if bench == "collect":
        path = default_collect_path(cfg)
        if not path.exists():
            data, qpos, qvel = collect(spec, cfg.data.collect_steps, None, seed=cfg.run.seed, progress=progress)
            write_dataset(path, data, "d4rl", qpos, qvel, {"policy": "random", "env": spec.gym_id,
                                                           "collect_steps": cfg.data.collect_steps,
                                                           "seed": cfg.run.seed})
        check_collected(path, cfg.data.collect_steps)
        data = d4rl.load_d4rl(path)
        source = str(path)
    elif bench == "d4rl":
        path = d4rl.find_file(path_or_id, cfg.data.data_dir)
        data = d4rl.load_d4rl(path)
        source = str(path)
    elif bench == "neorl":
        path = neorl.find_file(path_or_id, cfg.data.neorl_trajectories, cfg.data.data_dir)
        data = neorl.load_neorl(path, cfg.data.neorl_trajectories)
        source = str(path)
    else:
        from .minari_io import load_minari

        data, minari_ref = load_minari(path_or_id, download=cfg.data.download)
        source = f"minari:{path_or_id}"
    data = validate(data, source, spec.obs_dim, spec.act_dim, cfg.data.nonfinite)
    ref = reference_for(cfg.data.task, cfg.data.env, minari_ref)
    info = {
        "source": source,
        "fingerprint": data.fingerprint(),
        "transitions": len(data),
        "episodes": int(data.ends.sum()),
        "obs_dim": data.obs_dim,
        "act_dim": data.act_dim,
        "dropped_nonfinite": data.dropped_nonfinite,
        "reference": None if ref is None else {"random": ref.random, "expert": ref.expert, "source": ref.source},
    }
    return data, info
