"""The typed configuration: one frozen dataclass per section (its choices on its fields), the Config of all
sections, and which keys are protocol keys."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .. import registry

# The environment families admpo knows (envs/specs.py has their specs); written here once.
Env = Literal["hopper", "halfcheetah", "walker2d", "ant", "humanoid"]
ENVS: tuple[str, ...] = typing.get_args(Env)


def env_of(task: str) -> str:
    """The environment family a task name contains (hopper-medium-v2 -> hopper); the task itself if none."""
    return next((e for e in sorted(ENVS, key=len, reverse=True) if e in task), task)


class Extended:
    """A section that a registered kind extends with keys of its own (registry.EXTENDED: a model kind's in
    `model`, an algorithm's in `train`, a penalty's in `rollout`, a dataset format's in `data`): the keys set
    are kept in `options`, as sorted (key, value) pairs, flat in YAML and config.yaml."""

    SECTION = ""

    @classmethod
    def of(cls, **keys: Any) -> Any:
        """A section from flat keys, as a preset writes them: the shared ones and any kind's own."""
        shared = {f.name for f in fields(cls)} - {"options"}
        own = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in keys.items() if k not in shared))
        return cls(**{k: v for k, v in keys.items() if k in shared}, options=own)

    def settings(self, name: str | None = None) -> Any:
        """The typed settings of `name` (default: the section's own kind): its defaults and the keys set here."""
        kind_field, reg = registry.EXTENDED[self.SECTION]
        name = name or getattr(self, kind_field)
        return reg.settings(name, dict(self.options), f"{self.SECTION}.{kind_field}")  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DataConfig(Extended):
    # Task name used for reference returns, termination and the evaluation env, e.g. "hopper-medium-v2",
    # "neorl-hopper-low" or "quickstart-hopper".
    task: str = "quickstart-hopper"
    # Environment family (ENVS): hopper | halfcheetah | walker2d | ant | humanoid.
    env: Env = "hopper"
    # The dataset format (a registered one; admpo's: d4rl (HDF5) | neorl (npz) | minari | collect (made locally
    # when absent); `admpo doctor` lists them with plugins').
    benchmark: str = "collect"
    # Dataset file or id (D4RL id like hopper-medium-v2, Minari id, or a path). Empty = the preset's default.
    path: str = ""
    # Extra folder searched for D4RL/NeoRL files before $D4RL_DATASET_DIR and ~/.d4rl/datasets.
    data_dir: str = ""
    # Rows with NaN/inf: "reject" (error) or "drop" (removed, reported).
    nonfinite: Literal["reject", "drop"] = "reject"
    # collect: transitions gathered with a random policy when no dataset file exists yet.
    collect_steps: int = 20000
    # Minari: allow downloading a dataset that is not on disk (needs network and huggingface_hub).
    download: bool = False
    # The format's own keys that were set (Extended).
    options: tuple[tuple[str, Any], ...] = ()

    SECTION = "data"


@dataclass(frozen=True)
class ModelConfig(Extended):
    """The settings every dynamics model shares (what is fitted and how). A model kind's own keys (ADM's
    hidden, layers, head_blocks, dropout; the ensemble's ensemble_size, elites, ...) sit in the same YAML
    section; they are declared by the model's module (its `settings` dataclass) and kept in `options`."""

    # Dynamics model: a registered kind (admpo models: adm, ensemble, bootrnn; `admpo doctor` lists them).
    kind: str = "adm"
    # Max backtracking length m (Table 5 / Table 4): the history a sequence model is fitted on.
    m: int = 5
    # Dropout when predicting (roll-outs, evaluation): auto = what the model's registration says (ADM: on
    # with the authors' uncertainty formula, as their code never switches the model to eval mode and
    # Table 5's beta were tuned so; off otherwise); on | off force it. Every run records the value it used.
    dropout_at_inference: Literal["auto", "on", "off"] = "auto"
    # Eq. (2) per minibatch: "all" k at once (one GRU pass; each k averaged over its own windows, then the
    # plain average over k) or "one" k drawn per minibatch (authors' code).
    k_sampling: Literal["all", "one"] = "all"
    lr: float = 3e-4
    batch_size: int = 256
    # Hold-out of min(ratio * N, max) transitions (authors' code: 20 %, 1000 offline, 500 online).
    holdout_ratio: float = 0.2
    holdout_max: int = 1000
    # Which transitions are held out: "last" (the newest ones, and no training window reaches into them: the
    # authors' learn_dynamics_from, offline and online), "episodes" (whole episodes drawn at random) or
    # "random" (single transitions drawn afresh at each fit: MBPO's and OfflineRL-Kit's split).
    holdout: Literal["last", "episodes", "random"] = "last"
    # Early stopping: epochs without hold-out improvement (authors' code: 25) and a hard cap (0 = none: the
    # authors' and MBPO's fits train until early stopping ends them).
    patience: int = 25
    max_epochs: int = 200
    # What counts as an improvement: "mean" hold-out MSE over k (authors' ADM code) or "members" (OfflineRL-Kit's
    # ensemble: an epoch improves when any member beats its own best by more than min_improvement, relative;
    # each member keeps its own best weights).
    early_stopping: Literal["mean", "members"] = "mean"
    min_improvement: float = 0.0
    # How an epoch is scored for early stopping and for the weights kept: "batch" (the ADM authors'
    # learn_dynamics_from: a fresh random batch of batch_size held-out windows per k, dropout on), "all" (every
    # held-out window, dropout off: deterministic), or auto (batch for the any-step models, all for the others,
    # whose authors score the whole hold-out). Every fit records the one it used.
    validation: Literal["auto", "batch", "all"] = "auto"
    # Minibatches per epoch; 0 = N_train // batch_size (times m with k_sampling=one, as the authors' code).
    steps_per_epoch: int = 0
    # Start from the run's existing model weights instead of a fresh init.
    warm_start: bool = False
    # Matrix products while fitting on the CPU: fp32, or bf16 (inputs rounded to bfloat16, float32
    # accumulation and outputs; oneDNN on AMX/AVX512-BF16 CPUs: ~1.3x ADM, ~1.5x ensemble here). Hold-out
    # evaluation always runs in float32.
    matmul_precision: Literal["fp32", "bf16"] = "fp32"
    # The model kinds' own keys that were set (Extended).
    options: tuple[tuple[str, Any], ...] = ()

    SECTION = "model"


@dataclass(frozen=True)
class RolloutConfig(Extended):
    # Imagined horizon H (Table 5).
    horizon: int = 5
    # Start windows per roll-out (authors' code: 50 000).
    batch_size: int = 50000
    # Reward penalty coefficient beta: r - beta * U (Table 5).
    beta: float = 1.0
    # Uncertainty: auto (the model's default: authors for adm, max_aleatoric for ensemble) | authors (the
    # formula of the authors' code, with which Table 5's beta were tuned: sqrt of the mean over state dims of
    # the variance of the m means; `code` is read as this) | paper (Eq. 4) |
    # max_aleatoric (MOPO: max over all members of the norm of the predicted std) | ensemble_std | none | a
    # plugin's penalty (registry.PENALTIES; `admpo doctor` lists them).
    uncertainty: str = "auto"
    # Backtracking k: one per imagined step for the whole batch (authors' code) or one per row (paper text).
    k_mode: Literal["batch", "row"] = "batch"
    # Rows processed at once inside a roll-out (bounds memory traffic of large elementwise ops).
    chunk_size: int = 1000
    # Matrix precision of roll-outs: fp32 | bf16.
    dtype: Literal["fp32", "bf16"] = "fp32"
    # The penalty's own keys that were set (Extended).
    options: tuple[tuple[str, Any], ...] = ()

    SECTION = "rollout"


@dataclass(frozen=True)
class AgentConfig:
    # SAC (Table 3): two critics, FC(256, 256) ReLU.
    hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    # Entropy temperature; fixed unless auto_alpha (offline configs of the authors fix it). With auto_alpha
    # it is the starting value (the authors', MBPO's and CleanRL's: log alpha = 0, alpha = 1).
    alpha: float = 0.2
    auto_alpha: bool = False
    alpha_lr: float = 3e-4
    # Target entropy for auto alpha; 0 = -act_dim.
    target_entropy: float = 0.0
    # The space log pi is measured in, for the target entropy and the entropy terms of the losses: "env" (the
    # env's action units: log pi includes -sum log(action scale), as the ADMPO authors' SAC and CleanRL) or
    # "normalized" (the [-1, 1] actions the policy outputs, as MBPO/softlearning). They differ only where the
    # action bound is not 1 (Humanoid: +-0.4, so -8 in env units is about +7.58 normalised).
    entropy_space: Literal["env", "normalized"] = "env"
    # The temperature's loss: "log_alpha" (-log alpha (log pi + target): the ADMPO authors, MBPO) or "alpha"
    # (-alpha (log pi + target): CleanRL).
    alpha_loss: Literal["log_alpha", "alpha"] = "log_alpha"
    # How the actor's raw log-std is bounded to [-5, 2]: "clamp" (the ADMPO authors' SAC, MBPO) or "tanh"
    # (CleanRL: -5 + 3.5 (tanh(raw) + 1), so a fresh actor starts near std 0.22 rather than 1).
    log_std_bound: Literal["clamp", "tanh"] = "clamp"
    # Actor (and temperature) steps each time the actor is updated (CleanRL's SAC: 2 every 2 env steps).
    actor_steps: int = 1
    batch_size: int = 256
    # Actor learning-rate schedule over the run: cosine (authors' offline code) | none.
    actor_lr_schedule: Literal["cosine", "none"] = "cosine"
    # Actor update every N critic updates (authors' online code: 1 Hopper, 20 others).
    actor_update_every: int = 1
    # SAC's update: fast (hand-written backward, fused critics; measured ~2x on the CPU), reference (nn.Linear
    # and autograd as agents/sac_reference.py: the readable version the tests hold the fast one equal to),
    # or auto: fast on the CPU, reference on CUDA until the fast path is measured correct and faster there.
    backend: Literal["auto", "fast", "reference"] = "auto"
    # Polyak-average the target critics every N updates (mbrl-lib's MBPO: 4).
    target_update_every: int = 1


@dataclass(frozen=True)
class TrainConfig(Extended):
    # A registered algorithm (registry.py; admpo's: admpo, mopo, bc offline (train-off); admpo, sac, mbpo
    # online (train-on); `admpo doctor` lists them with plugins').
    algo: str = "admpo"
    # offline (train-off: a fixed dataset) or online (train-on: the online presets, Table 4).
    setting: Literal["offline", "online"] = "offline"
    # Offline: epochs of steps_per_epoch updates (authors' code: 5000 x 1000).
    epochs: int = 5000
    steps_per_epoch: int = 1000
    # Roll out every rollout_freq updates; the model buffer keeps the last model_retain_epochs roll-outs.
    rollout_freq: int = 1000
    model_retain_epochs: int = 5
    # Fraction of each SAC batch drawn from the real data.
    real_ratio: float = 0.05
    checkpoint_every: int = 10
    # Save the model buffer in checkpoints (needed for a resume identical to an uninterrupted run;
    # without it a resumed run refills the buffer with a fresh roll-out).
    checkpoint_buffer: bool = True
    # Online (Table 4): learning env steps (after warm-up, as the authors' n_steps), random warm-up env
    # steps taken first and not counted in total_steps, updates per env step, model refit/roll-out interval.
    total_steps: int = 50000
    warmup_steps: int = 5000
    utd: int = 20
    model_update_interval: int = 250
    # Each model fit: from_scratch (a fresh model: the ADMPO authors' code) or warm_start (the last fit and
    # its optimiser state continued, the normaliser refitted: MBPO's code; also the `cpu` budgets, where at
    # equal time its hold-out MSE was half from_scratch's, benchmarks/bench_online.py).
    model_refit: Literal["warm_start", "from_scratch"] = "from_scratch"
    model_retain_rollouts: int = 4
    # Online fine-tuning (train-on --init-from RUN): a finished train-off or train-bc run whose policy (and
    # critics, temperature, dynamics model) the run starts from, and whether its dataset starts D_env.
    init_from: str = ""
    init_dataset: Literal["keep", "drop"] = "keep"
    # Roll-out length schedule [x, y, a, b]: x -> y over learning env steps a -> b (counted after warm-up).
    rollout_schedule: tuple[float, ...] = (1.0, 15.0, 0.0, 50000.0)
    # The algorithm's own keys that were set (Extended).
    options: tuple[tuple[str, Any], ...] = ()

    SECTION = "train"


@dataclass(frozen=True)
class EvalConfig:
    # Deterministic evaluation episodes and how often (in epochs offline, env steps online).
    episodes: int = 10
    every: int = 1
    # The final score is the mean of the last N evaluations.
    final_window: int = 10
    # Maximum episode length in evaluation.
    max_episode_steps: int = 1000


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    # auto | cpu | cuda | cuda:N
    device: str = "auto"
    # Parent folder for run directories when --run is not given.
    root: str = "runs"


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)
    # Name of the preset this config came from ("" = defaults).
    preset: str = ""
    # Named reduced budget of the preset applied on top of the protocol ("" = the preset's full protocol);
    # the run's label and the report say "(reduced budget: NAME)".
    budget: str = ""
    # The protocol keys this run changes (by --config, --set or a flag) from its preset at its budget, sorted;
    # derived by resolve() (never set by hand). The label says "(modified: KEYS)" and the report keeps such
    # runs apart from protocol runs.
    modified: tuple[str, ...] = ()


TOP_LEVEL = ("preset", "budget", "modified")
# Where and how a run executes, not what it runs: changing these never marks a run as modified.
NOT_PROTOCOL = frozenset({"run.seed", "run.device", "run.root", "data.path", "data.data_dir", "data.download",
                          "train.checkpoint_every", "train.checkpoint_buffer", "rollout.chunk_size",
                          "agent.backend"})
SECTIONS = {f.name: f.type for f in fields(Config) if f.name not in TOP_LEVEL}
