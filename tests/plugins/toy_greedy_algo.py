"""A toy offline algorithm as a third-party package would write it, in one file, from the plugin contract
(admpo_cli.extend) alone: its own loop (the training-run helper, the model buffer, SAC), its registration with a
label, a setting, a command, a default model (the toy plugin model), published settings and its own key
`train.greedy_every` (roll out every N updates, instead of train.rollout_freq). "Greedy": SAC on model
roll-outs with no uncertainty penalty. Registered through the `admpo.algorithms` entry point."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from admpo_cli.extend import (
    KEYS,
    AlgorithmSpec,
    RingBuffer,
    RolloutSettings,
    TrainingRun,
    evaluate,
    finish,
    make_agent,
    mixed_batch,
    rollout_into_buffer,
    rollout_starts,
    spec_for,
    table_of,
    termination_fn,
    write_policy,
)


@dataclass(frozen=True)
class GreedySettings:
    greedy_every: int = 10  # train.greedy_every

    def __post_init__(self):
        if self.greedy_every <= 0:
            raise ValueError(f"train.greedy_every: expected a positive number, got {self.greedy_every}")


@dataclass
class State:
    step: int = 0


def train_greedy(cfg, run, device, data, model, hooks=None) -> dict:
    total, ro, own = cfg.train.epochs * cfg.train.steps_per_epoch, RolloutSettings.of(cfg), cfg.train.settings()
    agent = make_agent(data.obs_dim, data.act_dim, cfg, device, total)
    real, model_buf = table_of(data, device), RingBuffer(ro.batch_size * ro.horizon, data.obs_dim, data.act_dim,
                                                         device)
    starts = torch.as_tensor(rollout_starts(data, model.context), device=device)
    gen = torch.Generator(device=device).manual_seed(cfg.run.seed)
    tr = TrainingRun(cfg, run, State(), {"agent": agent, "model_buffer": model_buf}, gen, total, "step", hooks,
                     agent, rate_of="step")
    state = tr.start(lambda s: s.step)
    with tr.running() as stop_requested:
        while state.step < total:
            stop_requested()
            if state.step % own.greedy_every == 0:
                rollout_into_buffer(model.eval(), agent, real.data, starts, model_buf, ro,
                                    termination_fn(spec_for(cfg.data)), gen)
            batch = mixed_batch(real.table, model_buf, real, cfg.agent.batch_size, cfg.train.real_ratio, gen)
            tr.add(agent.update(*(batch[k] for k in KEYS)))
            state.step += 1
            if state.step % cfg.train.steps_per_epoch == 0:
                row = {"step": state.step, **evaluate(cfg, run, lambda o: agent.act(o, deterministic=True),
                                                      state.step, device), **tr.losses(f"step {state.step}")}
                tr.log(state.step, row, checkpoint=True)
    write_policy(cfg, run, agent.actor, data.obs_dim, data.act_dim)
    return finish(cfg, run, cfg.model.kind, {"gradient_steps": state.step, "greedy_every": own.greedy_every})


ALGORITHM = AlgorithmSpec(
    name="toy-greedy", label="Greedy (toy)", setting="offline", command="train-off", train=train_greedy,
    model="toy-linear", uncertainty="none", settings=GreedySettings,
    published=lambda task, setting: {"rollout": {"beta": 0.0, "uncertainty": "none"}} if setting == "offline" else {},
    description="SAC on unpenalised model roll-outs (test plugin)",
)
