"""The interface every dynamics model offers to fitting, roll-outs and evaluation."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from .gru import gru_forward
from .head import GaussianHead
from .normalizer import Normalizer


class DynamicsModel(nn.Module):
    """A Gaussian model of (delta state, reward).

    Fitting calls `train_step` (by default train_loss, backward, optimiser step) and `holdout_mse`;
    roll-outs and evaluation use a `Stepper`, which yields K candidate predictions of the same next step
    (ADM: one per k; ensemble: one per elite).
    """

    kind: str = ""
    # Whether a roll-out draws a candidate per row whatever k_mode says (MOPO's ensemble draws a member per row).
    draws_per_row: bool = False
    # How a fit scores an epoch when model.validation is auto (models/fit.py): "all" held-out windows with
    # dropout off, or "batch": a fresh batch per k with dropout on (the ADM authors' learn_dynamics_from).
    validation: str = "all"

    def __init__(self, obs_dim: int, act_dim: int):
        super().__init__()
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.out_dim = obs_dim + 1
        self.norm = Normalizer(obs_dim, act_dim)

    def train_loss(self, sampler, batch_size: int, k_sampling: str, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def train_step(self, sampler, batch_size: int, k_sampling: str, gen: torch.Generator, opt) -> torch.Tensor:
        """One gradient step of `opt` on train_loss; returns the loss (detached). A model may do it by hand."""
        loss = self.train_loss(sampler, batch_size, k_sampling, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.detach()

    def steps_per_epoch(self, windows: int, batch_size: int, k_sampling: str) -> int:
        """Minibatches in one epoch of fitting on `windows` training windows."""
        return max(1, windows // batch_size)

    def compounding_variants(self) -> list[tuple[str, int | None]]:
        """(name suffix, fixed candidate index or None for the roll-out's own draw) for Figure 2's curves."""
        return [("", None)]

    @torch.no_grad()
    def holdout_mse(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def sampled_holdout_mse(self, sampler, batch_size: int, gen: torch.Generator) -> torch.Tensor:
        """model.validation=batch: the MSE of the mean per k on a fresh batch of held-out windows, in the mode
        the caller set (dropout on in train mode). Only the any-step models define it."""
        raise NotImplementedError(f"model.validation=batch: the {self.kind} model scores all held-out windows")

    def stepper(self, dropout_at_inference: bool = False) -> Stepper:
        raise NotImplementedError

    def planned_stepper(self, plan: list[int], dropout_at_inference: bool = False) -> Stepper | None:
        """A stepper that yields only candidate plan[t] at imagined step t (K = 1), for roll-outs that need
        no uncertainty; None where the model has no cheaper way than `stepper`."""
        return None

    @property
    def context(self) -> int:
        """States in a roll-out's start window: the m-1 real steps a stepper is started with, plus the
        start state. 1 for one-step models."""
        return 1

    def param_groups(self) -> list[dict]:
        """Optimiser parameter groups (the ensemble sets a weight decay per layer)."""
        return [{"params": list(self.parameters())}]

    def after_fit(self, holdout: dict[str, torch.Tensor]) -> None:
        """Hook run on the best weights (the ensemble picks its elites here)."""

    # ---- members (an ensemble's; early_stopping=members selects each member's best weights)
    members: int = 0

    def member_mse(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Hold-out MSE of each member, (members,)."""
        raise NotImplementedError(f"the {self.kind} model has no members")

    def member_params(self) -> set[str]:
        """state_dict keys whose first dimension is the member."""
        raise NotImplementedError(f"the {self.kind} model has no members")

    def copy_members(self, state: dict, members: torch.Tensor) -> None:
        """Write these members' current weights into `state` (a state_dict kept as the best so far)."""
        raise NotImplementedError(f"the {self.kind} model has no members")

    def dropout_generator(self, gen: torch.Generator | None) -> AbstractContextManager:
        """While open, the model's dropout masks (if it has any) are drawn from `gen`, the caller's seeded
        generator, rather than torch's global one."""
        head = getattr(self, "head", None)
        return head.dropout_generator(gen) if isinstance(head, GaussianHead) else nullcontext()


@dataclass(frozen=True)
class RecurrentSettings:
    """The GRU backbone's keys of the config's `model` section, shared by ADM and the bootstrapping RNN
    (authors' code: GRU 200 x 3, 4 residual head blocks, dropout 0.1)."""

    # GRU hidden size and layers.
    hidden: int = 200
    layers: int = 3
    # Residual Swish blocks in the head and their dropout.
    head_blocks: int = 4
    dropout: float = 0.1

    def __post_init__(self):
        check_positive(self, "hidden", "layers")


class RecurrentModel(DynamicsModel):
    """The GRU backbone shared by ADM and the bootstrapping RNN: a GRU over (state, action) inputs and
    the residual Gaussian head on its outputs (authors' architecture)."""

    def __init__(self, obs_dim: int, act_dim: int, m: int = 5, hidden: int = 200, layers: int = 3,
                 head_blocks: int = 4, dropout: float = 0.1):
        super().__init__(obs_dim, act_dim)
        self.m = m
        self.hidden = hidden
        self.layers = layers
        self.gru = nn.GRU(obs_dim + act_dim, hidden, layers, batch_first=True)
        self.head = GaussianHead(hidden, self.out_dim, head_blocks, dropout)

    @property
    def context(self) -> int:
        return self.m

    @property
    def dtype(self) -> torch.dtype:
        return self.gru.weight_ih_l0.dtype

    def run_gru(self, x: torch.Tensor) -> torch.Tensor:
        """x (T, B, in), time-major, from h = 0 -> last layer's outputs (T, B, H). cuDNN on CUDA; on the
        CPU the hand-written GRU, whose backward is ~15 % faster than nn.GRU's there."""
        if x.is_cuda:
            return self.gru(x.transpose(0, 1))[0].transpose(0, 1)
        return gru_forward(self.gru, x)


class AnyStepModel(DynamicsModel):
    """What the any-step models (ADM over a GRU, over a Transformer) share: the k-step window is a prefix of
    the m-step one, so one pass over m steps gives every k in [1, m] (`features_by_k`); fitting is Eq. (2) over
    all k at once, or the authors' one k per minibatch; Figure 2 compares random backtracking with a fixed k."""

    m: int
    head: GaussianHead
    validation = "batch"

    def features_by_k(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """s0 (B, obs), actions (B, L, act) -> (L, B, width), time-major: position k-1 is the k-step feature."""
        raise NotImplementedError

    def steps_per_epoch(self, windows: int, batch_size: int, k_sampling: str) -> int:
        """The authors' code draws one k per minibatch and takes m times as many minibatches an epoch."""
        return super().steps_per_epoch(windows, batch_size, k_sampling) * (self.m if k_sampling == "one" else 1)

    def compounding_variants(self) -> list[tuple[str, int | None]]:
        """Figure 2: random backtracking, and always the longest or the shortest k."""
        return [(" (random k)", None), (f" (k={self.m})", self.m - 1), (" (k=1)", 0)]

    def train_loss(self, sampler, batch_size, k_sampling, gen):
        if k_sampling == "all":
            b = sampler.sample_all(batch_size)  # Eq. (2), every k from one pass
            loss = eq2_all_k_nll(self.head, self.features_by_k(b["s0"], b["actions"]), b)
        else:
            # Authors' code: one k per minibatch.
            k = int(torch.randint(1, self.m + 1, (1,), generator=gen))
            b = sampler.sample_k(k, batch_size)
            loss = self.head.nll(self.features_by_k(b["s0"], b["actions"])[-1], b["target"][:, -1])
        return loss + self.head.bound_penalty()

    @torch.no_grad()
    def holdout_mse(self, batch):
        mean, _ = self(batch["s0"], batch["actions"])
        return masked_mse_per_position(mean, batch["target"], batch["mask"])

    @torch.no_grad()
    def sampled_holdout_mse(self, sampler, batch_size, gen):
        """The authors' validate_dynamics_from, each epoch: for every k a fresh batch of `batch_size` k-step
        held-out windows, the MSE of the k-step mean over all (delta state, reward) dims; the model stays in the
        caller's mode (their ADM is never put in eval mode, so dropout is on). A k without held-out windows is
        NaN (left out of the score). Dropout seeds come from `gen`."""
        out = torch.full((self.m,), float("nan"))
        with self.head.dropout_generator(gen):
            for k in range(1, self.m + 1):
                if sampler.count(k) == 0:
                    continue
                b = sampler.sample_k(k, batch_size)
                mean = self.head(self.features_by_k(b["s0"], b["actions"])[-1])[0]
                out[k - 1] = float((mean - b["target"][:, -1]).pow(2).mean())
        return out


class Stepper:
    """Advances B imagined rows one step at a time; `keep` drops finished rows.

    `step` returns K predictions of the same next step (ADM: one per k; ensemble: one per member), all of
    which the uncertainty sees; `candidates` are the indices among them a roll-out draws its next state
    from (ADM: every k; ensemble: the elites).
    """

    K: int = 1

    @property
    def candidates(self) -> torch.Tensor:
        return torch.arange(self.K)

    def start(self, hist_obs: torch.Tensor, hist_act: torch.Tensor) -> None:
        """Feed the real history (B, h, obs) and (B, h, act) that precedes the first imagined state."""
        raise NotImplementedError

    def step(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Given the current state and action: mean and variance (B, K, obs+1) of (next state, reward)."""
        raise NotImplementedError

    def keep(self, idx: torch.Tensor) -> None:
        raise NotImplementedError


def eq2_all_k_nll(head, features: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Eq. (2) from one pass over the longest window: 1/m sum_k E[-log T(s_{t+k}, r_{t+k} | s_t, a_{t:t+k-1})].
    Each k is averaged over its own valid windows (weight 1/count_k), then the k plainly: a k with fewer
    windows (short episodes) still weighs 1/m. features: (m, B, width), time-major; batch: sample_all's."""
    valid = batch["mask"].transpose(0, 1).float()  # (m, B)
    per_k = valid / valid.sum(1, keepdim=True).clamp_min(1.0)
    return head.nll(features, batch["target"].transpose(0, 1), per_k)


def check_positive(settings, *names: str) -> None:
    """A settings dataclass's check: each named field a positive number (the config error names the key)."""
    for name in names:
        if getattr(settings, name) <= 0:
            raise ValueError(f"model.{name}: expected a positive number, got {getattr(settings, name)!r}")


def masked_mse_per_position(mean: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, D) -> (L,): MSE over valid rows and all dims for each position."""
    err = (mean - target).pow(2).mean(-1)
    w = mask.to(err.dtype)
    return (err * w).sum(0) / w.sum(0).clamp_min(1.0)
