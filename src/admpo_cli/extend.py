"""The contract for plugin authors: everything a dynamics model, an algorithm, an uncertainty penalty or a dataset
format needs from admpo, in one module. Its `__all__` is the contract (kept across minor versions); the rest of
admpo is internal. `admpo new-plugin DIR` writes a package with one of each; `admpo conformance` checks one.

Registration: a module ends with `MODEL = ModelSpec(...)`, `ALGORITHM = AlgorithmSpec(...)`,
`PENALTY = PenaltySpec(...)` or `FORMAT = FormatSpec(...)`, named in the package's entry points
(`admpo.models`, `admpo.algorithms`, `admpo.penalties`, `admpo.formats`). A kind's own config keys are the fields
of its `settings` frozen dataclass (raise ValueError in __post_init__ to refuse a value: the user sees one line);
they live in the section it extends (`model:`, `train:`, `rollout:`, `data:`) and `--set section.key=value`
reaches them.

Dynamics model (DynamicsModel, an nn.Module built by `ModelSpec.build(obs_dim, act_dim, m, settings)`):
- Training predicts the CHANGE: targets are (s' - s, r). `train_loss(sampler, batch_size, k_sampling, gen)`
  returns the loss of one minibatch; the sampler (WindowSampler) gives
  `sample_one_step(B)` -> {"s0": (B, obs), "action": (B, act), "target": (B, obs + 1) = (s' - s0, r)},
  `sample_k(k, B)` and `sample_all(B)` -> {"s0": (B, obs), "actions": (B, L, act), "target": (B, L, obs + 1)
  = (s_{t+k} - s0, r_{t+k}) for k = 1..L, "mask": (B, L) whether that k-step target exists, "next_states"}.
  `self.norm.obs(x)` / `self.norm.act(a)` normalise inputs with the fit's statistics.
- `holdout_mse(batch)` (a sample_all batch of the hold-out) -> per-k (or per-member) MSE, a 1-D tensor.
- `stepper(dropout_at_inference)` -> a Stepper for roll-outs, which return the ABSOLUTE next state:
  `start(hist_obs (B, m-1, obs), hist_act (B, m-1, act))` with the real steps before the start state,
  `step(obs (B, obs), act (B, act))` -> mean, var (B, K, obs + 1) of (s', r) for K candidate predictions of the
  same next step (ADM: k = 1..m; an ensemble: its members), `candidates` the indices a roll-out draws from,
  `keep(rows)` drops finished rows.
- `context` is the history length it needs (m for ADM; 1 for one-step models).

Algorithm (`AlgorithmSpec.train(cfg, run, device, data, model, hooks) -> summary dict`): a loop that uses
TrainingRun (checkpoints, resume, stop requests, metrics rows), and `evaluate`, `write_policy` and `finish`
for the rest; `published(task, setting)` -> {section: {key: value}} are its authors' settings.

Penalty (`PenaltySpec.compute(mean, var, obs_dim, settings) -> U (B,)`): mean and var (B, K, obs_dim + 1) are
the K candidate predictions of one next step (absolute next state, then reward), which the imagined-step engine
(ImaginedBatch) hands it; roll-outs reward r - beta * U.

Dataset format (`FormatSpec.load(source, data, settings, context) -> (Transitions, Reference | None, where)`):
`source` is data.path; `data` the config's data section; `context` a LoadContext. `suffixes` claim files;
`write` lets `admpo collect --format NAME` write one; `reference(env)` gives the reference returns for scores.
"""

from __future__ import annotations

from .algos.buffers import KEYS, RingBuffer, table_of
from .algos.model_buffer import RolloutSettings, mixed_batch, rollout_into_buffer
from .algos.plumbing import evaluate, finish, write_policy
from .algos.training_run import Hooks, StopTraining, TrainingRun
from .config import Config
from .data.dataset import Transitions, WindowSampler, rollout_starts, start_windows
from .data.formats import LoadContext
from .data.scores import D4RL_REF, Reference, normalized_score, run_reference
from .envs.specs import EnvSpec, spec_for
from .envs.termination import termination_fn
from .errors import UserError
from .models.base import DynamicsModel, Stepper
from .models.imagined import ImaginedBatch
from .models.rollout import Rollout, rollout
from .registry import AlgorithmSpec, FormatSpec, ModelSpec, NoSettings, PenaltySpec
from .rundir import RunDir

__all__ = [
    # registrations
    "ModelSpec", "AlgorithmSpec", "PenaltySpec", "FormatSpec", "NoSettings",
    # interfaces and data
    "DynamicsModel", "Stepper", "WindowSampler", "Transitions", "Reference", "D4RL_REF", "LoadContext", "EnvSpec",
    "Config", "RunDir", "UserError",
    # the imagined-step engine and roll-outs
    "ImaginedBatch", "rollout", "Rollout", "RolloutSettings", "rollout_into_buffer", "rollout_starts",
    "start_windows", "termination_fn", "spec_for",
    # a training loop's plumbing
    "TrainingRun", "Hooks", "StopTraining", "RingBuffer", "table_of", "mixed_batch", "KEYS", "make_agent",
    "evaluate", "write_policy", "finish", "run_reference", "normalized_score",
]


def make_agent(obs_dim: int, act_dim: int, cfg: Config, device, total_actor_updates: int):
    """The SAC agent of cfg.agent (the fast backend where it applies), as the built-in loops make it."""
    from .agents import make_agent as make

    return make(obs_dim, act_dim, cfg.agent, device, total_actor_updates=total_actor_updates)
