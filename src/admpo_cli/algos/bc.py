"""Behaviour cloning: the `bc` baseline, and the one BC loop (eval-uncertainty's behaviour policy uses it too)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..agents.bc import BC
from ..config import Config
from ..data.dataset import Transitions
from ..errors import DivergenceError
from ..registry import AlgorithmSpec
from ..rundir import RunDir
from .buffers import table_of
from .plumbing import evaluate, finish, write_policy
from .training_run import Hooks, TrainingRun


def behaviour_cloning(bc: BC, obs: torch.Tensor, act: torch.Tensor, steps: int, batch_size: int, every: int,
                      gen: torch.Generator, after: Callable[[int, int, float], None] | None = None,
                      done: int = 0) -> None:
    """BC updates on minibatches of (obs, act) from update `done` to `steps`; after each `every` of them,
    after(updates done, updates in the chunk, their mean loss)."""
    while done < steps:
        n = min(every, steps - done)
        loss = float(bc.train_steps(obs, act, n, batch_size, gen)) / n
        done += n
        if after:
            after(done, n, loss)


@dataclass(frozen=True)
class BCSettings:
    """BC's own keys of the `train` section."""

    bc_steps: int = 20000  # gradient steps

    def __post_init__(self):
        if self.bc_steps <= 0:
            raise ValueError(f"train.bc_steps: expected a positive number of steps, got {self.bc_steps}")


@dataclass
class BCState:
    step: int = 0  # BC updates done


def train_bc(cfg: Config, run: RunDir, device: torch.device, data: Transitions, model=None,
             hooks: Hooks | None = None) -> dict:
    """BC on the dataset, evaluated and checkpointed 10 times over the run (resumable like the others)."""
    bc = BC(data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.agent.actor_lr * 10, device)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed)
    total = cfg.train.settings("bc").bc_steps
    every = max(total // 10, 1)
    tr = TrainingRun(cfg, run, BCState(), {"bc": bc}, gen, total, "step", hooks, rate_of="step")
    state = tr.start(lambda s: s.step)

    def evaluate_and_log(step: int, n: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise DivergenceError(f"BC loss is not finite at step {step}")
        state.step = step
        row = {"step": step, "epoch": math.ceil(step / every),
               **evaluate(cfg, run, lambda o: bc.act(o), step, device),
               "bc_loss": loss, "updates_per_s": tr.rate()}
        tr.log(step, row, checkpoint=True)
        tr.restart_rate()

    real = table_of(data, device).data
    with tr.running():
        behaviour_cloning(bc, real["obs"], real["act"], total, cfg.agent.batch_size, every, gen, evaluate_and_log,
                          done=state.step)
    for name in ("actor", "bc"):
        write_policy(cfg, run, bc.actor, data.obs_dim, data.act_dim, name=name)
    return finish(cfg, run, None, {"gradient_steps": state.step})


ALGORITHM = AlgorithmSpec(
    name="bc", label="BC", setting="offline", command="train-off --algo bc", train=train_bc, model=None,
    uncertainty="none", description="behaviour cloning: the policy fitted to the dataset's actions",
    length=lambda cfg: ("step", cfg.train.settings("bc").bc_steps), settings=BCSettings,
)
