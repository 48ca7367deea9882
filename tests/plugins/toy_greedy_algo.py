"""A toy offline algorithm as a third-party package would write it, in one file: its own loop built from
admpo's parts (the training-run helper, the model buffer, SAC), its registration with a label, a setting,
a command, a default model (the toy plugin model) and published settings. "Greedy": SAC on model roll-outs
with no uncertainty penalty. Registered through the `admpo.algorithms` entry point."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from admpo_cli.agents import make_agent
from admpo_cli.algos.buffers import KEYS, RingBuffer, table_of
from admpo_cli.algos.model_buffer import RolloutSettings, mixed_batch, rollout_into_buffer
from admpo_cli.algos.policy_files import save_policy
from admpo_cli.algos.summary import read_rows, write_summary
from admpo_cli.algos.training_run import TrainingRun
from admpo_cli.data.dataset import rollout_starts
from admpo_cli.data.scores import run_reference
from admpo_cli.envs.registry import spec_for
from admpo_cli.envs.termination import termination_fn
from admpo_cli.evaluate.policy import evaluation_row
from admpo_cli.registry import AlgorithmSpec


@dataclass
class State:
    step: int = 0


def train_greedy(cfg, run, device, data, model, hooks=None) -> dict:
    total, ro = cfg.train.epochs * cfg.train.steps_per_epoch, RolloutSettings.of(cfg)
    agent = make_agent(data.obs_dim, data.act_dim, cfg.agent, device, total_actor_updates=total)
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
            if state.step % cfg.train.rollout_freq == 0:
                rollout_into_buffer(model.eval(), agent, real.data, starts, model_buf, ro, termination_fn(
                    spec_for(cfg.data)), gen)
            batch = mixed_batch(real.table, model_buf, real, cfg.agent.batch_size, cfg.train.real_ratio, gen)
            tr.add(agent.update(*(batch[k] for k in KEYS)))
            state.step += 1
            if state.step % cfg.train.steps_per_epoch == 0:
                ref = run_reference(cfg, run)
                row = {"step": state.step, **evaluation_row(lambda o: agent.act(o, deterministic=True),
                                                            spec_for(cfg.data), cfg.eval.episodes, cfg.run.seed,
                                                            state.step, ref), **tr.losses(f"step {state.step}")}
                tr.log(state.step, row, checkpoint=True)
    save_policy(run, agent.actor, data.obs_dim, data.act_dim, cfg.agent.hidden, cfg.data.task, "toy-greedy")
    return write_summary(run, cfg, "toy-greedy", cfg.model.kind, read_rows(run.file("metrics.csv")),
                         run_reference(cfg, run), {"gradient_steps": state.step})


ALGORITHM = AlgorithmSpec(
    name="toy-greedy", label="Greedy (toy)", setting="offline", command="train-off", train=train_greedy,
    model="toy-linear", uncertainty="none",
    published=lambda task, setting: {"rollout": {"beta": 0.0, "uncertainty": "none"}} if setting == "offline" else {},
    description="SAC on unpenalised model roll-outs (test plugin)",
)
