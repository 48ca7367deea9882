"""One training loop for every dynamics model: NLL, episode hold-out, per-k hold-out MSE, early stopping."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import ModelConfig
from ..data.dataset import Transitions, WindowSampler, cut_before_holdout, holdout_mask
from ..device import bf16_matmuls, bf16_matmuls_usable
from ..errors import DivergenceError, UserError
from ..files import append_csv
from ..optim import LeanAdam
from .base import DynamicsModel


@dataclass
class FitResult:
    epochs: int
    best_epoch: int
    holdout_mse: list[float]
    train_loss: float
    seconds: float
    steps: int
    holdout_transitions: int
    history: list[dict] = field(default_factory=list)
    opt_state: dict | None = None
    # how epochs were scored: "batch" (a fresh batch per k, dropout on) or "all" (every held-out window)
    validation: str = "all"


def validation_of(model: DynamicsModel, cfg: ModelConfig) -> str:
    """model.validation resolved: auto is the model's own (the any-step models: the authors' batch)."""
    return model.validation if cfg.validation == "auto" else cfg.validation


def fit(
    model: DynamicsModel,
    data: Transitions,
    cfg: ModelConfig,
    device: torch.device,
    seed: int = 0,
    csv_path: Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    fit_normalizer: bool = True,
    opt_state: dict | None = None,
    check: Callable[[], None] | None = None,
) -> FitResult:
    """Fit until `cfg.patience` epochs without improvement (or `cfg.max_epochs`, 0 = no cap), keeping the
    best weights. `opt_state`: the optimiser state of the last fit to continue from (MBPO's warm start keeps
    it across re-fits); the result carries the state this fit ends with. `check`: called before every minibatch
    (a training loop's stop_requested, which raises to end the fit at once when a stop was asked for)."""
    model.to(device)
    train, held, holdout_batch, n_held = _split(model, data, cfg, device, seed, fit_normalizer)
    gen = torch.Generator().manual_seed(seed)
    opt = LeanAdam.from_groups(model.param_groups(), cfg.lr)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    steps = cfg.steps_per_epoch or model.steps_per_epoch(train.count(1), cfg.batch_size, cfg.k_sampling)
    how = validation_of(model, cfg)
    select = EARLY_STOPPING[cfg.early_stopping](model, cfg, how, holdout_batch)  # the strategy the loop calls
    val_gen = torch.Generator(device=device).manual_seed(seed + 2)  # the batch scores' dropout seeds
    use_bf16 = bf16_matmuls_usable(cfg.matmul_precision, device)  # training steps only; hold-out in fp32
    epoch, t0, loss_mean = 0, time.perf_counter(), float("nan")
    history = []
    while (cfg.max_epochs == 0 or epoch < cfg.max_epochs) and select.stale < cfg.patience:
        epoch += 1
        loss_mean = _train_epoch(model, train, cfg, steps, gen, opt, use_bf16, check)
        if not np.isfinite(loss_mean):
            raise DivergenceError(f"model training diverged at epoch {epoch} (loss {loss_mean})")
        per_k, score = _score(model, how, held, holdout_batch, cfg.batch_size, val_gen)
        select.update(epoch, per_k, score)
        # Columns k1..k_m for every kind (blank where a model has no k) so kinds share model/fit.csv.
        per_col = {f"holdout_mse_k{i + 1}": (float(per_k[i]) if i < len(per_k) else "") for i in range(cfg.m)}
        row = {"kind": model.kind, "epoch": epoch, "train_loss": loss_mean, "holdout_mse": score, **per_col,
               "best": epoch == select.best_epoch, "seconds": round(time.perf_counter() - t0, 3)}
        history.append(row)
        if csv_path is not None:
            append_csv(csv_path, row)
        if on_epoch is not None:
            on_epoch(row)
    best = select.restore()
    model.eval()
    model.after_fit(holdout_batch)
    return FitResult(epoch, select.best_epoch, [float(v) for v in best], loss_mean,
                     time.perf_counter() - t0, steps * epoch, n_held, history, opt.state_dict(), how)


def _split(model: DynamicsModel, data: Transitions, cfg: ModelConfig, device: torch.device, seed: int,
           fit_normalizer: bool):
    """The hold-out split (model.holdout), the normaliser fitted on the training rows, the training and hold-out
    window samplers, every held-out window as one batch, and how many transitions are held out."""
    m = getattr(model, "m", cfg.m)
    hold = holdout_mask(data, cfg.holdout_ratio, cfg.holdout_max, seed, cfg.holdout)
    train_rows = ~hold
    train_data = cut_before_holdout(data, hold) if cfg.holdout == "last" else data
    if not hold.any():  # a single episode: validate on the training rows rather than on nothing
        hold = train_rows
    if fit_normalizer:
        model.norm.fit(torch.as_tensor(data.observations[train_rows], device=device),
                       torch.as_tensor(data.actions[train_rows], device=device))
    train = WindowSampler(train_data, m, train_rows, device, seed)
    held = WindowSampler(data, m, hold, device, seed + 1)
    return train, held, held.gather(held.starts[0], m), int(hold.sum())


def _train_epoch(model: DynamicsModel, train: WindowSampler, cfg: ModelConfig, steps: int, gen: torch.Generator,
                 opt, use_bf16: bool, check: Callable[[], None] | None) -> float:
    """One epoch of `steps` minibatches; the mean training loss."""
    model.train()
    total = torch.zeros((), device=next(model.parameters()).device)
    with bf16_matmuls(use_bf16):
        for _ in range(steps):
            if check is not None:
                check()
            total += model.train_step(train, cfg.batch_size, cfg.k_sampling, gen, opt)
    return float(total) / steps


def _score(model: DynamicsModel, how: str, held: WindowSampler, holdout_batch: dict, batch_size: int,
           val_gen: torch.Generator) -> tuple[np.ndarray, float]:
    """The epoch's hold-out MSE per k and its score (model.validation); leaves the model in eval mode."""
    if how == "batch":  # the authors' way: their ADM stays in train mode, so dropout is on
        per_k = model.sampled_holdout_mse(held, batch_size, val_gen).numpy()
        model.eval()
        return per_k, float(np.nanmean(per_k))
    model.eval()
    per_k = model.holdout_mse(holdout_batch).cpu().numpy()
    return per_k, float(per_k.mean())


class BestMean:
    """Early stopping on the mean score (model.early_stopping=mean, the ADM authors'): an epoch improves when its
    score beats the best so far; the weights of the best epoch are kept."""

    def __init__(self, model: DynamicsModel, cfg: ModelConfig, how: str, holdout_batch: dict):
        self.model, self.how, self.holdout_batch = model, how, holdout_batch
        model.eval()
        self.best = model.holdout_mse(holdout_batch).cpu().numpy()
        self.best_score, self.best_epoch, self.stale = float(self.best.mean()), 0, 0
        self.best_state = copy.deepcopy(model.state_dict())
        if how == "batch":  # the authors start from an unbeaten 1e10: the first epoch always counts as better
            self.best_score = float("inf")

    def update(self, epoch: int, per_k: np.ndarray, score: float) -> None:
        if score < self.best_score:
            self.best_score, self.best_epoch, self.best, self.stale = score, epoch, per_k, 0
            self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.stale += 1

    def restore(self) -> np.ndarray:
        """Load the kept weights; their hold-out MSE per k on every held-out window (what the fit reports)."""
        self.model.load_state_dict(self.best_state)
        if self.how == "batch":  # report the kept weights on every held-out window, dropout off (comparable)
            self.model.eval()
            return self.model.holdout_mse(self.holdout_batch).cpu().numpy()
        return self.best


class BestPerMember:
    """Early stopping by member (model.early_stopping=members, OfflineRL-Kit's ensemble): an epoch improves when
    any member beats its own best by more than min_improvement, relative; each member keeps its own best weights.
    The model declares its members (DynamicsModel.members, member_mse, member_params, copy_members)."""

    def __init__(self, model: DynamicsModel, cfg: ModelConfig, how: str, holdout_batch: dict):
        if how == "batch":
            raise UserError("model.validation=batch scores the mean over k; model.early_stopping=members needs all")
        if model.members == 0:
            raise UserError(f"model.early_stopping=members: the {model.kind} model has no members (use mean)")
        self.model, self.min_improvement, self.holdout_batch = model, cfg.min_improvement, holdout_batch
        model.eval()
        self.best_epoch, self.stale = 0, 0
        self.best_state = copy.deepcopy(model.state_dict())
        self.member_best = torch.full((model.members,), float("inf"))  # every member starts unbeaten

    def update(self, epoch: int, per_k: np.ndarray, score: float) -> None:
        cur = self.model.member_mse(self.holdout_batch).cpu()
        better = (self.member_best - cur) / self.member_best > self.min_improvement
        better |= torch.isinf(self.member_best)
        if bool(better.any()):
            self.member_best = torch.where(better, cur, self.member_best)
            self.model.copy_members(self.best_state, better.nonzero().squeeze(1))
            self.best_epoch, self.stale = epoch, 0
        else:
            self.stale += 1

    def restore(self) -> np.ndarray:
        """Each member's best weights (the shared log-variance bounds as the last epoch left them); their hold-out
        MSE per k on every held-out window."""
        model, final = self.model, self.model.state_dict()
        own = model.member_params()
        model.load_state_dict({k: self.best_state[k] if k in own else final[k] for k in final})
        model.eval()
        return model.holdout_mse(self.holdout_batch).cpu().numpy()


EARLY_STOPPING = {"mean": BestMean, "members": BestPerMember}
