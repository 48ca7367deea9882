"""Every random stream a training run draws from, captured into and restored from a checkpoint, so that a
resumed run continues exactly where it stopped."""

from __future__ import annotations

import ast
import random

import numpy as np
import torch


def rng_state(gen: torch.Generator) -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        # numpy's MT19937 key as a tensor: checkpoints load with weights_only=True (no numpy pickles)
        "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": repr(random.getstate()),
        "gen": gen.get_state(),
    }


def set_rng_state(sd: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(sd["torch"])
    if torch.cuda.is_available() and sd.get("cuda"):
        torch.cuda.set_rng_state_all(sd["cuda"])
    np.random.set_state(("MT19937", sd["numpy"].numpy().astype(np.uint32), sd["numpy_pos"], 0, 0.0))
    random.setstate(ast.literal_eval(sd["python"]))
    gen.set_state(sd["gen"])
