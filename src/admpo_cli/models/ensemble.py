"""Probabilistic ensemble (MOPO/MBPO): members are one batched network (E, in, out) weights."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels import use_for
from ..optim import LeanAdam
from ..registry import ModelSpec
from .base import DynamicsModel, Stepper, check_positive
from .nll import BOUND_PENALTY, bound_penalty, clamped_gaussian_nll, clamped_nll_grads, soft_clamp

_silu_backward = torch.ops.aten.silu_backward


def _trunk_forward(x: torch.Tensor, ws, bs, ops) -> tuple[torch.Tensor, list, list]:
    """The members' SiLU MLP, (E, B, in) -> (E, B, out), keeping each layer's input (xs) and
    pre-activation (us; without its bias when the CPU kernels add it) for the backward."""
    xs, us = [x], []
    for i in range(len(ws) - 1):
        if ops is not None:
            u = torch.bmm(xs[-1], ws[i])
            xs.append(ops.bias_silu_forward(u, bs[i]))
        else:
            u = torch.baddbmm(bs[i], xs[-1], ws[i])
            xs.append(F.silu(u))
        us.append(u)
    return torch.baddbmm(bs[-1], xs[-1], ws[-1]), xs, us


def _trunk_backward(d: torch.Tensor, ws, bs, xs, us, ops) -> tuple[list, list]:
    """Output gradient d (E, B, out) -> weight and bias gradients (no input gradient)."""
    L = len(ws)
    gws, gbs = [None] * L, [None] * L
    d = d.contiguous()
    gws[-1], gbs[-1] = torch.bmm(xs[-1].transpose(1, 2), d), d.sum(1, keepdim=True)
    for i in range(L - 2, -1, -1):
        d = torch.bmm(d, ws[i + 1].transpose(1, 2))
        if ops is not None:
            gbs[i] = ops.silu_backward_bias(d, us[i], bs[i])
        else:
            d = _silu_backward(d, us[i])
            gbs[i] = d.sum(1, keepdim=True)
        gws[i] = torch.bmm(xs[i].transpose(1, 2), d)
    return gws, gbs


class _EnsembleTrunkFunction(torch.autograd.Function):
    """The trunk under autograd, with the hand-written backward above: per layer one batched product each
    way and one pass for the activation (fused with its bias and, backwards, with the bias gradient by
    the CPU kernels), where autograd's baddbmm/silu also copy the bias into every row and sum the bias
    gradient in a pass of its own."""

    @staticmethod
    def forward(ctx, x, *params):
        L = len(params) // 2
        ws, bs = params[:L], params[L:]
        ctx.ops = use_for(x, ws[0])
        out, xs, us = _trunk_forward(x, ws, bs, ctx.ops)
        ctx.save_for_backward(*ws, *bs[:-1], *xs, *us)
        return out

    @staticmethod
    def backward(ctx, d):
        saved = ctx.saved_tensors
        L = (len(saved) + 2) // 4
        ws, bs, xs, us = saved[:L], saved[L : 2 * L - 1], saved[2 * L - 1 : 3 * L - 1], saved[3 * L - 1 :]
        gws, gbs = _trunk_backward(d, ws, bs, xs, us, ctx.ops)
        return (None, *gws, *gbs)


class EnsembleLinear(nn.Module):
    def __init__(self, n: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(n, 1, d_out))
        # Truncated-normal init as in MBPO: std = 1 / (2 sqrt(d_in)).
        nn.init.trunc_normal_(self.weight, std=1.0 / (2.0 * math.sqrt(d_in)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (E, B, in) -> (E, B, out)
        return torch.baddbmm(self.bias, x, self.weight)


@dataclass(frozen=True)
class EnsembleSettings:
    """The ensemble's own keys of the config's `model` section (MOPO/MBPO: 7 members, 5 elites, 4 x 200)."""

    ensemble_size: int = 7
    elites: int = 5
    ensemble_hidden: int = 200
    ensemble_layers: int = 4
    # Per-layer weight decay (MBPO: 2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4).
    ensemble_weight_decay: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)

    def __post_init__(self):
        check_positive(self, "ensemble_size", "elites", "ensemble_hidden", "ensemble_layers")
        if self.elites > self.ensemble_size:
            raise ValueError("model.elites: must not exceed model.ensemble_size")


class Ensemble(DynamicsModel):
    kind = "ensemble"
    draws_per_row = True  # MOPO: a member drawn per row

    def __init__(self, obs_dim: int, act_dim: int, members: int = 7, elites: int = 5, hidden: int = 200,
                 layers: int = 4, weight_decay: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)):
        super().__init__(obs_dim, act_dim)
        self.members = members
        self.n_elites = elites
        dims = [obs_dim + act_dim] + [hidden] * layers + [2 * self.out_dim]
        self.layers_ = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        wd = list(weight_decay) or [0.0]
        self.decays = [wd[min(i, len(wd) - 1)] for i in range(len(self.layers_))]
        self.max_logvar = nn.Parameter(torch.full((self.out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((self.out_dim,), -10.0))
        self.register_buffer("elites", torch.arange(elites))

    def _params(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return [layer.weight for layer in self.layers_], [layer.bias for layer in self.layers_]

    def _inputs(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.norm.obs(obs), self.norm.act(act)], -1).to(self.layers_[0].weight.dtype)

    def raw(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """obs (E, B, obs) or (B, obs) (broadcast to all members) -> the last layer's output (E, B, 2 (obs+1)):
        mean and unclamped log-variance."""
        x = self._inputs(obs, act)
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, -1, -1)
        if torch.is_grad_enabled():
            ws, bs = self._params()
            return _EnsembleTrunkFunction.apply(x.contiguous(), *ws, *bs)
        for i, layer in enumerate(self.layers_):
            x = layer(x)
            if i < len(self.layers_) - 1:
                x = F.silu(x)
        return x

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs (E, B, obs) or (B, obs) (broadcast to all members) -> mean, logvar (E, B, obs+1)."""
        mean, logvar = self.raw(obs, act).chunk(2, -1)
        return mean, soft_clamp(logvar, self.min_logvar, self.max_logvar)

    def _batch(self, sampler, batch_size: int):
        # Each member draws its own minibatch (the bootstrap of MBPO).
        b = sampler.sample_one_step(self.members * batch_size)
        return (b[key].reshape(self.members, batch_size, -1) for key in ("s0", "action", "target"))

    def train_step(self, sampler, batch_size, k_sampling, gen, opt):
        """The whole step by hand where the CPU kernels run (no autograd graph: ~7 % of a step here):
        the same loss and gradients as train_loss + backward, handed straight to the optimiser."""
        ops = use_for(self.layers_[0].weight)
        if ops is None or not isinstance(opt, LeanAdam):
            return super().train_step(sampler, batch_size, k_sampling, gen, opt)
        with torch.no_grad():
            obs, act, target = self._batch(sampler, batch_size)
            ws, bs = self._params()
            out, xs, us = _trunk_forward(self._inputs(obs, act), ws, bs, ops)
            loss, g_out, g_lo, g_hi = clamped_nll_grads(out, self.min_logvar, self.max_logvar, target,
                                                        scale=float(self.members))
            gws, gbs = _trunk_backward(g_out, ws, bs, xs, us, ops)
            grads = {id(p): g for p, g in zip(ws + bs, gws + gbs, strict=True)}
            grads[id(self.min_logvar)] = g_lo - BOUND_PENALTY  # + the bound penalty's gradient
            grads[id(self.max_logvar)] = g_hi + BOUND_PENALTY
            opt.step([grads[id(p)] for p in opt.params])
            return loss + bound_penalty(self.min_logvar, self.max_logvar)

    def train_loss(self, sampler, batch_size, k_sampling, gen):
        E = self.members
        obs, act, target = self._batch(sampler, batch_size)
        # sum over members, mean within
        loss = clamped_gaussian_nll(self.raw(obs, act), self.min_logvar, self.max_logvar, target, scale=E)
        # MBPO's per-layer L2 term lives in the optimiser (param_groups): Adam's weight_decay adds
        # decay * w to the gradient, the gradient of 0.5 * decay * |w|^2, without extra ops here.
        return loss + bound_penalty(self.min_logvar, self.max_logvar)

    def param_groups(self) -> list[dict]:
        groups = [{"params": [layer.weight], "weight_decay": d} for d, layer in zip(self.decays, self.layers_,
                                                                                      strict=True)]
        decayed = {id(layer.weight) for layer in self.layers_}
        groups.append({"params": [p for p in self.parameters() if id(p) not in decayed], "weight_decay": 0.0})
        return groups

    @torch.no_grad()
    def member_mse(self, batch) -> torch.Tensor:
        valid = batch["mask"][:, 0]
        mean, _ = self(batch["s0"][valid], batch["actions"][valid, 0])
        return (mean - batch["target"][valid, 0]).pow(2).mean((1, 2))  # (E,)

    @torch.no_grad()
    def holdout_mse(self, batch):
        mse = self.member_mse(batch)
        return mse.sort().values[: self.n_elites].mean().reshape(1)

    def member_params(self) -> set[str]:
        """state_dict keys whose first dimension is the member."""
        return {f"layers_.{i}.{n}" for i in range(len(self.layers_)) for n in ("weight", "bias")}

    def copy_members(self, state: dict, members: torch.Tensor) -> None:
        """Write these members' current weights into `state` (a state_dict kept as the best so far)."""
        own = self.state_dict()
        for k in self.member_params():
            state[k][members] = own[k][members].detach().clone()

    def after_fit(self, holdout):
        self.elites.copy_(self.member_mse(holdout).argsort()[: self.n_elites])

    def stepper(self, dropout_at_inference: bool = False) -> EnsembleStepper:
        return EnsembleStepper(self)


class EnsembleStepper(Stepper):
    """Stateless: K = every member's prediction of the next step (MOPO's penalty takes the max over all
    members); a roll-out draws its next state from an elite (`candidates`)."""

    def __init__(self, model: Ensemble):
        self.model = model
        self.K = model.members
        model.eval()

    @property
    def candidates(self) -> torch.Tensor:
        return self.model.elites

    def start(self, hist_obs, hist_act):
        pass

    def step(self, obs, act):
        mdl = self.model
        mean, logvar = mdl(obs, act)
        mean, logvar = mean.float(), logvar.float()
        mean = torch.cat([mean[..., : mdl.obs_dim] + obs, mean[..., mdl.obs_dim :]], -1)
        return mean.transpose(0, 1), logvar.exp().transpose(0, 1)

    def keep(self, idx):
        pass


MODEL = ModelSpec(
    kind="ensemble",
    build=lambda obs_dim, act_dim, m, s: Ensemble(obs_dim, act_dim, s.ensemble_size, s.elites, s.ensemble_hidden,
                                                  s.ensemble_layers, s.ensemble_weight_decay),
    settings=EnsembleSettings,
    uncertainties=("max_aleatoric", "ensemble_std"),
    description="probabilistic ensemble (MOPO/MBPO): 7 members, 5 elites, one step at a time",
)
