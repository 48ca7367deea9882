"""The `collect` format: a D4RL-layout file that admpo makes once, with a random policy in the task's gymnasium
environment, when the preset's file is not there yet (the quick start's data)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..registry import FormatSpec
from . import d4rl
from .dataset import Transitions


def default_collect_path(data) -> Path:
    """Where a data section's collected file lives: data.data_dir (default data/) / TASK.hdf5."""
    return Path(data.data_dir or "data") / f"{data.task}.hdf5"


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


def _load(source: str, data, settings, context) -> tuple[Transitions, None, str]:
    from .simulate import collect

    path = default_collect_path(data)
    if not path.exists():
        spec = context.spec
        out, qpos, qvel = collect(spec, data.collect_steps, None, seed=context.seed, progress=context.progress)
        d4rl.write_d4rl(path, out, qpos, qvel, {"policy": "random", "env": spec.gym_id,
                                                "collect_steps": data.collect_steps, "seed": context.seed})
    check_collected(path, data.collect_steps)
    return d4rl.load_d4rl(path), None, str(path)


FORMAT = FormatSpec("collect", load=_load, reference=d4rl.FORMAT.reference,
                    description="made once with a random policy in the task's environment (data.collect_steps "
                                "transitions, D4RL layout, data/TASK.hdf5)")
