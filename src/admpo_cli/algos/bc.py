"""Behaviour cloning: the `bc` baseline, and the one BC loop (eval-uncertainty's behaviour policy uses it too)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from ..agents.bc import BC
from ..config import Config
from ..data.dataset import Transitions
from ..data.scores import reference_for
from ..envs.registry import spec_for
from ..errors import DivergenceError
from ..evaluate.policy import evaluation_row
from ..files import append_csv
from ..registry import AlgorithmSpec
from ..rundir import RunDir
from .buffers import table_of
from .policy_files import save_policy
from .summary import read_rows, write_summary
from .training_run import Hooks


def behaviour_cloning(bc: BC, obs: torch.Tensor, act: torch.Tensor, steps: int, batch_size: int, every: int,
                      gen: torch.Generator, after: Callable[[int, int, float], None] | None = None) -> None:
    """`steps` BC updates on minibatches of (obs, act); after each `every` of them, after(done, n, mean loss)."""
    done = 0
    while done < steps:
        n = min(every, steps - done)
        loss = float(bc.train_steps(obs, act, n, batch_size, gen)) / n
        done += n
        if after:
            after(done, n, loss)


def train_bc(cfg: Config, run: RunDir, device: torch.device, data: Transitions, model=None,
             hooks: Hooks | None = None) -> dict:
    """BC on the dataset, evaluated 10 times over the run like the other offline algorithms."""
    hooks = hooks or Hooks()
    spec, ref = spec_for(cfg.data), reference_for(cfg.data.task, cfg.data.env)
    bc = BC(data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.agent.actor_lr * 10, device)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed)
    metrics = run.file("metrics.csv")
    if metrics.exists():
        metrics.unlink()
    total, every = cfg.train.bc_steps, max(cfg.train.bc_steps // 10, 1)
    if hooks.on_start:
        hooks.on_start(0, total)
    clock = [time.perf_counter()]

    def evaluate_and_log(step: int, n: int, loss: float) -> None:
        if not math.isfinite(loss):
            raise DivergenceError(f"BC loss is not finite at step {step}")
        row = {"step": step, "epoch": math.ceil(step / every),
               **evaluation_row(lambda o: bc.act(o), spec, cfg.eval.episodes, cfg.run.seed, step, ref,
                                cfg.eval.max_episode_steps, device),
               "bc_loss": loss, "updates_per_s": n / max(time.perf_counter() - clock[0], 1e-9),
               "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        append_csv(metrics, row)
        clock[0] = time.perf_counter()
        if hooks.on_progress:
            hooks.on_progress(step, row)

    real = table_of(data, device).data
    behaviour_cloning(bc, real["obs"], real["act"], total, cfg.agent.batch_size, every, gen, evaluate_and_log)
    for name in ("actor", "bc"):
        save_policy(run, bc.actor, data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.data.task, "bc", name=name)
    return write_summary(run, cfg, "bc", None, read_rows(metrics), ref, {"gradient_steps": total})


ALGORITHM = AlgorithmSpec(
    name="bc", label="BC", setting="offline", command="train-off --algo bc", train=train_bc, model=None,
    uncertainty="none", description="behaviour cloning: the policy fitted to the dataset's actions",
    length=lambda cfg: ("step", cfg.train.bc_steps),
)
