"""Model-free online SAC: the `sac` baseline and the engine of `admpo collect --quality`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..agents.sac import SAC
from ..config import AgentConfig
from ..envs.registry import EnvSpec, make_env
from ..evaluate.policy import evaluate
from .buffers import KEYS, RingBuffer


def train_sac_online(
    spec: EnvSpec,
    cfg: AgentConfig,
    device: torch.device,
    max_steps: int,
    seed: int = 0,
    warmup: int = 5000,
    target_return: float | None = None,
    eval_every: int = 5000,
    eval_episodes: int = 5,
    on_progress: Callable[[int, float | None], None] | None = None,
) -> tuple[SAC, RingBuffer, list[tuple[int, float]]]:
    """Train SAC until `target_return` (mean of an evaluation) or max_steps. Returns the agent, its
    replay buffer (everything it saw, for a medium-replay dataset) and the evaluation curve."""
    env = make_env(spec)
    rng = np.random.default_rng(seed)
    agent = SAC(spec.obs_dim, spec.act_dim, cfg, device)
    buf = RingBuffer(max_steps, spec.obs_dim, spec.act_dim, device)
    obs, _ = env.reset(seed=seed)
    curve: list[tuple[int, float]] = []
    low, high = env.action_space.low, env.action_space.high
    for t in range(1, max_steps + 1):
        if t <= warmup:
            a = rng.uniform(low, high).astype(np.float32)
        else:
            a = agent.act(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])[0].cpu().numpy()
        nxt, r, term, trunc, _ = env.step(a)
        buf.add({k: torch.as_tensor(np.asarray(v, dtype=np.float32), device=device)[None] for k, v in
                 (("obs", obs), ("act", a), ("rew", r), ("next_obs", nxt), ("done", float(term)))})
        obs = env.reset()[0] if (term or trunc) else nxt
        if t > warmup:
            idx = buf.sample_idx(cfg.batch_size)
            batch = buf.store.split(buf.store.table[idx])
            agent.update(*(batch[k] for k in KEYS))
        if t % eval_every == 0:
            ret = float(np.mean(evaluate(lambda o: agent.act(o, deterministic=True), spec, eval_episodes,
                                         seed=seed + t, device=device)))
            curve.append((t, ret))
            if on_progress:
                on_progress(t, ret)
            if target_return is not None and ret >= target_return:
                break
        elif on_progress and t % 1000 == 0:
            on_progress(t, None)
    env.close()
    return agent, buf, curve
