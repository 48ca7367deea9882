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
    holdout_batch = held.gather(held.starts[0], m)
    gen = torch.Generator().manual_seed(seed)
    opt = LeanAdam.from_groups(model.param_groups(), cfg.lr)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    steps = cfg.steps_per_epoch or model.steps_per_epoch(train.count(1), cfg.batch_size, cfg.k_sampling)

    how = validation_of(model, cfg)
    if how == "batch" and cfg.early_stopping == "members":
        raise UserError("model.validation=batch scores the mean over k; model.early_stopping=members needs all")
    model.eval()
    best = model.holdout_mse(holdout_batch).cpu().numpy()
    best_score, best_epoch, best_state = float(best.mean()), 0, copy.deepcopy(model.state_dict())
    if how == "batch":  # the authors start from an unbeaten 1e10: the first epoch always counts as better
        best_score = float("inf")
    val_gen = torch.Generator(device=device).manual_seed(seed + 2)  # the batch scores' dropout seeds
    by_member = cfg.early_stopping == "members"
    if by_member:
        if not hasattr(model, "member_mse"):
            raise UserError(f"model.early_stopping=members: the {model.kind} model has no members (use mean)")
        # OfflineRL-Kit: every member starts unbeaten; it improves when it beats its own best by more than
        # min_improvement (relative), and then keeps those weights
        member_best = torch.full((model.members,), float("inf"))
    use_bf16 = bf16_matmuls_usable(cfg.matmul_precision, device)  # training steps only; hold-out in fp32
    stale, epoch, t0, loss_mean = 0, 0, time.perf_counter(), float("nan")
    history = []
    while (cfg.max_epochs == 0 or epoch < cfg.max_epochs) and stale < cfg.patience:
        epoch += 1
        model.train()
        total = torch.zeros((), device=device)
        with bf16_matmuls(use_bf16):
            for _ in range(steps):
                if check is not None:
                    check()
                total += model.train_step(train, cfg.batch_size, cfg.k_sampling, gen, opt)
        loss_mean = float(total) / steps
        if not np.isfinite(loss_mean):
            raise DivergenceError(f"model training diverged at epoch {epoch} (loss {loss_mean})")
        if how == "batch":  # the authors' way: their ADM stays in train mode, so dropout is on
            per_k = model.sampled_holdout_mse(held, cfg.batch_size, val_gen).numpy()
            model.eval()
            score = float(np.nanmean(per_k))
        else:
            model.eval()
            per_k = model.holdout_mse(holdout_batch).cpu().numpy()
            score = float(per_k.mean())
        if by_member:
            cur = model.member_mse(holdout_batch).cpu()
            better = (member_best - cur) / member_best > cfg.min_improvement
            better |= torch.isinf(member_best)
            if bool(better.any()):
                member_best = torch.where(better, cur, member_best)
                model.copy_members(best_state, better.nonzero().squeeze(1))
                best_epoch, stale = epoch, 0
            else:
                stale += 1
        elif score < best_score:
            best_score, best_epoch, best, stale = score, epoch, per_k, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        # Columns k1..k_m for every kind (blank where a model has no k) so kinds share model/fit.csv.
        per_col = {f"holdout_mse_k{i + 1}": (float(per_k[i]) if i < len(per_k) else "") for i in range(cfg.m)}
        row = {"kind": model.kind, "epoch": epoch, "train_loss": loss_mean, "holdout_mse": score, **per_col,
               "best": epoch == best_epoch, "seconds": round(time.perf_counter() - t0, 3)}
        history.append(row)
        if csv_path is not None:
            append_csv(csv_path, row)
        if on_epoch is not None:
            on_epoch(row)
    if by_member:
        # each member's best weights; the shared log-variance bounds as the last epoch left them
        final = model.state_dict()
        model.load_state_dict({k: best_state[k] if k in model.member_params() else final[k] for k in final})
        model.eval()
        best = model.holdout_mse(holdout_batch).cpu().numpy()
    else:
        model.load_state_dict(best_state)
        if how == "batch":  # report the kept weights on every held-out window, dropout off (comparable)
            model.eval()
            best = model.holdout_mse(holdout_batch).cpu().numpy()
    model.eval()
    model.after_fit(holdout_batch)
    return FitResult(epoch, best_epoch, [float(v) for v in best], loss_mean,
                     time.perf_counter() - t0, steps * epoch, int(hold.sum()), history, opt.state_dict(), how)
