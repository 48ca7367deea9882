"""ADMPO-OFF as one plain loop, CleanRL-style: everything in one screenful, top to bottom, no helpers of the
fast path. The reference SAC (agents/sac_reference.py), ADM run through its `nn.GRU` window by window, and
Algorithm 1 from models/reference.py with the next state sampled from the drawn k's Gaussian. No
checkpoints, no metrics file: it returns its per-epoch losses and evaluations and the trained agent.

tests/test_reference_loop.py runs it and algos/offline.py (with agent.backend=reference) on the same tiny
task and holds them equal: a change to the fast loop that changes what it computes shows there.
"""

from __future__ import annotations

import math

import torch

from ..agents import make_agent
from ..config import Config
from ..data.dataset import Transitions, rollout_starts, start_windows
from ..envs.specs import spec_for
from ..envs.termination import termination_fn
from ..evaluate.policy import evaluate, evaluation_seed
from ..models.reference import penalised_rollout


def adm_nn_gru(model):
    """ADM's forward through the plain nn.GRU: (s_t, a_{t..t+L-1}) -> mean, logvar (B, L, obs + 1)."""

    def forward(s0: torch.Tensor, actions: torch.Tensor):
        L = actions.shape[1]
        x = torch.cat([model.norm.obs(s0)[:, None].expand(-1, L, -1), model.norm.act(actions)], -1)
        mean, logvar = model.head(model.gru(x)[0])
        return mean, logvar

    forward.m = model.m
    return forward


def train_offline_reference(cfg: Config, data: Transitions, model, device: torch.device) -> tuple[list[dict], object]:
    assert cfg.model.kind == "adm" and cfg.rollout.uncertainty in ("auto", "authors", "paper")
    spec = spec_for(cfg.data)
    termination = termination_fn(spec)
    total = cfg.train.epochs * cfg.train.steps_per_epoch
    agent = make_agent(data.obs_dim, data.act_dim, cfg.agent, device,
                       total_actor_updates=math.ceil(total / cfg.agent.actor_update_every))
    model = model.to(device).eval()
    adm = adm_nn_gru(model)
    uncertainty = "authors" if cfg.rollout.uncertainty == "auto" else cfg.rollout.uncertainty

    # the dataset as tensors (done = a true terminal, not a time limit)
    obs = torch.as_tensor(data.observations, device=device)
    act = torch.as_tensor(data.actions, device=device)
    rew = torch.as_tensor(data.rewards, device=device)
    next_obs = torch.as_tensor(data.next_observations, device=device)
    done = torch.as_tensor(data.terminals, device=device).float()
    starts = torch.as_tensor(rollout_starts(data, model.m), device=device)

    # the model buffer: a ring of the newest model_retain_epochs roll-outs
    capacity = cfg.rollout.batch_size * cfg.rollout.horizon * cfg.train.model_retain_epochs
    buf = {k: torch.zeros((capacity, *v.shape[1:]), device=device)
           for k, v in (("obs", obs), ("act", act), ("rew", rew), ("next_obs", next_obs), ("done", done))}
    ptr, size = 0, 0

    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.run.seed)
    rows, sums = [], {"critic_loss": 0.0, "actor_loss": 0.0, "q_mean": 0.0}
    for step in range(total):
        # Algorithm 3, lines 4-8: roll the policy out in the model from real windows, penalise, store
        if step % cfg.train.rollout_freq == 0 or size == 0:
            picked = starts[torch.randint(len(starts), (cfg.rollout.batch_size,), device=device, generator=gen)]
            w = start_windows(obs, act, picked, model.m)
            step_k = torch.randint(model.m, (cfg.rollout.horizon,), device=device, generator=gen)
            with torch.no_grad():
                ro = penalised_rollout(adm, lambda o: agent.actor(o, with_logp=False)[0], w["hist_obs"],
                                       w["hist_act"], w["obs"], cfg.rollout.horizon, termination, cfg.rollout.beta,
                                       step_k, uncertainty, generator=gen)
            n = len(ro["obs"])
            at = (ptr + torch.arange(n, device=device)) % capacity
            for k in buf:
                buf[k][at] = ro[k].float()
            ptr, size = (ptr + n) % capacity, min(size + n, capacity)

        # line 9: a batch of real_ratio real transitions, the rest from the model buffer
        n_real = int(cfg.agent.batch_size * cfg.train.real_ratio)
        i_real = torch.randint(len(obs), (n_real,), device=device, generator=gen)
        i_model = torch.randint(size, (cfg.agent.batch_size - n_real,), device=device, generator=gen)
        batch = [torch.cat([real[i_real], buf[k][i_model]]) for k, real in
                 (("obs", obs), ("act", act), ("rew", rew), ("next_obs", next_obs), ("done", done))]

        # line 10: one SAC update
        out = agent.update(*batch, update_actor=(step % cfg.agent.actor_update_every == 0))
        for k in sums:
            sums[k] += float(out[k])

        if (step + 1) % cfg.train.steps_per_epoch == 0:
            epoch = (step + 1) // cfg.train.steps_per_epoch
            row = {"step": step + 1, **{k: v / cfg.train.steps_per_epoch for k, v in sums.items()}}
            if epoch % cfg.eval.every == 0 or step + 1 == total:
                returns = evaluate(lambda o: agent.act(o, deterministic=True), spec, cfg.eval.episodes,
                                   evaluation_seed(cfg.run.seed, epoch * 1009), cfg.eval.max_episode_steps, device)
                row["return_mean"] = float(returns.mean())
            rows.append(row)
            sums = dict.fromkeys(sums, 0.0)
    return rows, agent
