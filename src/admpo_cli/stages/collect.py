"""`admpo collect`: random, checkpoint or freshly trained (--quality) policies -> D4RL/NeoRL files.

A stage, because --quality first trains a policy online (algos.online_sac)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..algos.online_sac import train_sac_online
from ..algos.policy_files import load_policy
from ..config import AgentConfig
from ..data.dataset import Transitions
from ..data.scores import D4RL_REF
from ..data.simulate import collect, write_dataset
from ..envs.registry import get_spec
from ..errors import UserError
from ..events import SILENT, Progress
from ..runtime import pick_device, seed_everything

# Target returns of --quality, as fractions of the D4RL expert reference (NeoRL's documented levels
# are ~25/50/75 % of SAC's best; D4RL's "medium" policies score about a third of expert).
QUALITY_FRACTION = {"medium": 0.33, "medium-replay": 0.33, "expert": 0.9}


def _actor_policy(actor, device, noise: bool, rng: np.random.Generator):
    def act(obs: np.ndarray) -> np.ndarray:
        o = torch.as_tensor(obs, dtype=torch.float32, device=device)[None]
        with torch.no_grad():
            # NeoRL-style: the mean action 80 % of the time, a sample 20 %.
            stochastic = noise and rng.random() < 0.2
            a = actor(o, deterministic=not stochastic, with_logp=False)[0]
        return a[0].cpu().numpy()

    return act


def run_collect(env: str, out: Path, steps: int, policy: str, fmt: str, noise: bool, quality: str | None,
                target_return: float | None, train_steps: int, seed: int, device: str,
                progress: Progress = SILENT) -> dict:
    layout = "neorl" if fmt == "neorl" else "d4rl"
    spec = get_spec(env, layout)
    dev = pick_device(device)
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    if steps <= 0:
        raise UserError("--steps: expected a positive number of transitions")
    info: dict = {"env": spec.gym_id, "layout": spec.layout, "format": fmt}
    pol = None
    if quality is not None:
        if quality not in QUALITY_FRACTION:
            raise UserError(f"--quality: expected one of {', '.join(QUALITY_FRACTION)}, got {quality!r}")
        if target_return is None:
            ref = D4RL_REF.get(env)
            if ref is None:
                raise UserError(f"--quality for {env}: give --target-return (no reference return known)")
            target_return = ref.random + QUALITY_FRACTION[quality] * (ref.expert - ref.random)
        with progress.task(f"SAC to return {target_return:.0f}", total=train_steps) as t:

            def on_progress(step, ret):
                t.update(completed=step, info="" if ret is None else f"return {ret:.0f}")

            agent, buf, curve = train_sac_online(spec, AgentConfig(actor_lr=3e-4, auto_alpha=True,
                                                                   actor_lr_schedule="none"),
                                                 dev, train_steps, seed, min(5000, train_steps // 4),
                                                 target_return, eval_every=max(min(5000, train_steps // 4), 1),
                                                 on_progress=on_progress)
        info["sac_curve"] = curve
        info["target_return"] = round(target_return, 1)
        if quality == "medium-replay":
            # Everything SAC saw up to the target (D4RL's medium-replay); episode ends are found from
            # next_obs != following obs, time limits included, and the last one is closed as a timeout.
            n = buf.size
            d = {k: v[:n].cpu().numpy() for k, v in buf.data.items()}
            timeouts = np.zeros(n, bool)
            timeouts[-1] = d["done"][-1] < 0.5
            data = Transitions(d["obs"], d["act"], d["rew"], d["next_obs"], d["done"] > 0.5, timeouts,
                               source="collected:replay")
            write_dataset(out, data, fmt, metadata={"policy": "sac-replay", "env": spec.gym_id})
            info.update(transitions=len(data), episodes=int(data.ends.sum()))
            return info
        pol = _actor_policy(agent.actor, dev, noise, rng)
    elif policy != "random":
        actor, payload = load_policy(Path(policy), spec.obs_dim)
        pol = _actor_policy(actor.to(dev), dev, noise, rng)
        info["policy_from"] = f"{policy} ({payload.get('algo')}, {payload.get('task')})"
    with progress.task(f"collect {spec.gym_id}", total=steps) as t:
        data, qpos, qvel = collect(spec, steps, pol, seed, progress=lambda n: t.update(advance=n))
    write_dataset(out, data, fmt, qpos, qvel, {"policy": policy if quality is None else f"sac-{quality}",
                                               "env": spec.gym_id})
    rets = data.episode_returns()
    info.update(transitions=len(data), episodes=int(data.ends.sum()),
                return_mean=round(float(rets.mean()), 2) if len(rets) else None, out=str(out))
    return info
