"""ADM with a causal Transformer instead of the GRU ("also a feasible choice", paper section 3.1).

The inputs are ADM's: token j of a window is (s_t, a_{t+j}), the start state with each action. Attention is
causal, so position j sees tokens 0..j only and predicts the (j+1)-step target (s_{t+j+1} - s_t, r_{t+j+1});
the k-step window is a prefix of the m-step one and one pass over m tokens gives every k in [1, m], as the
GRU does. The same Gaussian head, the same Eq. (2) objective, the same uncertainty over k and the same
roll-outs with random backtracking (Algorithm 1).

Roll-outs: `TransformerStepper` keeps, for each of the m open windows, every layer's keys and values of the
tokens it has seen (a KV cache), so a step computes ONE new token per window and attends over at most m
cached ones; `ReferenceTransformerStepper` beside it re-runs every window from scratch through the model's
forward (its oracle in tests/test_adm_transformer.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import ModelSpec
from .base import AnyStepModel, Stepper, check_positive
from .head import FixedOrderLayerNorm, GaussianHead


@dataclass(frozen=True)
class TransformerSettings:
    """The Transformer ADM's own keys of the config's `model` section."""

    # model width (d_model), Transformer blocks and attention heads (hidden must divide by heads)
    hidden: int = 200
    layers: int = 3
    heads: int = 4
    # residual Swish blocks in the Gaussian head and their dropout (ADM's head)
    head_blocks: int = 4
    dropout: float = 0.1

    def __post_init__(self):
        check_positive(self, "hidden", "layers", "heads")
        if self.hidden % self.heads:
            raise ValueError(f"model.heads: must divide model.hidden ({self.hidden}), got {self.heads}")


class ADMTransformer(AnyStepModel):
    kind = "adm-transformer"

    def __init__(self, obs_dim: int, act_dim: int, m: int = 5, hidden: int = 200, layers: int = 3, heads: int = 4,
                 head_blocks: int = 4, dropout: float = 0.1):
        super().__init__(obs_dim, act_dim)
        self.m, self.hidden, self.n_layers, self.heads = m, hidden, layers, heads
        self.embed = nn.Linear(obs_dim + act_dim, hidden)
        self.pos = nn.Parameter(torch.randn(m, hidden) * 0.02)
        block = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        # LayerNorms whose backward sums in a fixed order (the same parameters: ones and zeros, no draw)
        block.norm1, block.norm2 = FixedOrderLayerNorm(hidden), FixedOrderLayerNorm(hidden)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.final_norm = FixedOrderLayerNorm(hidden)
        self.head = GaussianHead(hidden, self.out_dim, head_blocks, dropout)
        self.register_buffer("causal", torch.ones(m, m, dtype=torch.bool).triu(1), persistent=False)

    @property
    def context(self) -> int:
        return self.m

    def tokens(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(B, obs), (B, L, act) -> the embedded tokens (B, L, hidden): (s_t, a_{t+j}) at position j."""
        L = actions.shape[1]
        x = torch.cat([self.norm.obs(s0)[:, None].expand(-1, L, -1), self.norm.act(actions)], -1)
        return self.embed(x) + self.pos[:L]

    def features(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        L = actions.shape[1]
        h = self.blocks(self.tokens(s0, actions), mask=self.causal[:L, :L], is_causal=True)
        return self.final_norm(h)

    def forward(self, s0: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s0 (B, obs), actions (B, L, act) -> mean, logvar (B, L, obs+1); position j the (j+1)-step prediction."""
        return self.head(self.features(s0, actions))

    def features_by_k(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.features(s0, actions).transpose(0, 1)

    def stepper(self, dropout_at_inference: bool = False) -> Stepper:
        return TransformerStepper(self, dropout_at_inference)


class ReferenceTransformerStepper(Stepper):
    """The readable roll-out step: keep the last m start states and actions; at each step run every window
    (k = 1..m: start state s_{t+1-k} with the last k actions) through the model's forward from scratch."""

    def __init__(self, model: ADMTransformer, dropout_at_inference: bool = False):
        self.model, self.K = model, model.m
        model.train(dropout_at_inference)
        self.states: list[torch.Tensor] = []
        self.actions: list[torch.Tensor] = []

    def start(self, hist_obs, hist_act):
        self.states = [hist_obs[:, i] for i in range(hist_obs.shape[1])]
        self.actions = [hist_act[:, i] for i in range(hist_act.shape[1])]

    @torch.no_grad()
    def step(self, obs, act):
        m, d = self.model.m, self.model.obs_dim
        self.states = (self.states + [obs])[-m:]
        self.actions = (self.actions + [act])[-m:]
        means, variances = [], []
        for k in range(1, len(self.states) + 1):
            s0 = self.states[-k]
            mean, logvar = self.model(s0, torch.stack(self.actions[-k:], 1))
            means.append(torch.cat([s0 + mean[:, -1, :d], mean[:, -1, d:]], -1))
            variances.append(logvar[:, -1].exp())
        return torch.stack(means, 1).float(), torch.stack(variances, 1).float()

    def keep(self, idx):
        self.states = [s[idx] for s in self.states]
        self.actions = [a[idx] for a in self.actions]


class TransformerStepper(Stepper):
    """The cached roll-out step. Window w (opened at a start state) has seen n_w tokens; its keys and values
    per layer are kept, so advancing it by one action is one token through each layer, attending over its
    cached keys: per step m new tokens and at most m^2 attention scores per row, instead of re-running m
    windows of up to m tokens. The computation is nn.TransformerEncoderLayer's (pre-norm, GELU) written out
    with its own weights."""

    def __init__(self, model: ADMTransformer, dropout_at_inference: bool = False):
        self.model, self.K = model, model.m
        model.train(dropout_at_inference)
        self.g = 0  # tokens fed so far (history and imagined steps)

    def _alloc(self, B: int, like: torch.Tensor) -> None:
        mdl, m = self.model, self.model.m
        H, L = mdl.hidden, mdl.n_layers
        self.S = like.new_zeros(m, B, mdl.obs_dim)  # each window's start state, ring slot = opening step % m
        self.Kc = like.new_zeros(L, m, B, m, H)  # keys per layer, slot, row, position in the window
        self.Vc = like.new_zeros(L, m, B, m, H)
        # by_k[j]: the slots in k order when slot j was opened last (the window opened k-1 steps ago is slot
        # (j - k + 1) mod m, and its new token sits at position k-1); on the device, so a step indexes without
        # a host-to-device copy
        j, k = torch.arange(m, device=like.device)[:, None], torch.arange(m, device=like.device)[None, :]
        self.by_k, self.positions = (j - k) % m, torch.arange(m, device=like.device)
        self.g = 0

    def start(self, hist_obs, hist_act):
        self._alloc(hist_obs.shape[0], hist_obs)
        for i in range(hist_obs.shape[1]):
            self._advance(hist_obs[:, i], hist_act[:, i])

    def _advance(self, obs, act) -> tuple[torch.Tensor, torch.Tensor]:
        """Open a window at obs; feed act to every open window -> the last layer's new token per open window
        (n_open, B, H) and those windows' start states (n_open, B, obs), in k order (the window opened now first)."""
        mdl, m = self.model, self.model.m
        if self.g == 0 or self.S.shape[1] != obs.shape[0]:
            self._alloc(obs.shape[0], obs)
        j, n = self.g % m, min(self.g + 1, m)
        self.S[j] = obs
        slots, pos = self.by_k[j, :n], self.positions[:n]  # k = 1..n; the new token's position in each window
        s0 = self.S[slots]  # (n, B, obs)
        x = torch.cat([mdl.norm.obs(s0), mdl.norm.act(act)[None].expand(n, -1, -1)], -1)
        x = mdl.embed(x) + mdl.pos[pos][:, None]
        for layer, blk in enumerate(mdl.blocks.layers):
            x = x + self._attend(blk, blk.norm1(x), layer, slots, pos)
            x = x + blk.linear2(F.gelu(blk.linear1(blk.norm2(x))))
        self.g += 1
        return mdl.final_norm(x), s0

    def _attend(self, blk, h: torch.Tensor, layer: int, s_t: torch.Tensor, p_t: torch.Tensor) -> torch.Tensor:
        """Self-attention of each window's new token over its cached tokens and itself, for all windows in one
        batched product (a window's positions after its newest token hold stale keys and are masked)."""
        attn, H, nh, m = blk.self_attn, self.model.hidden, self.model.heads, self.model.m
        q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).split(H, -1)  # (n, B, H) each
        n, B, dh = h.shape[0], h.shape[1], H // nh
        self.Kc[layer][s_t, :, p_t] = k
        self.Vc[layer][s_t, :, p_t] = v
        keys = self.Kc[layer][s_t].view(n, B, m, nh, dh).permute(0, 1, 3, 4, 2)  # (n, B, nh, dh, m)
        vals = self.Vc[layer][s_t].view(n, B, m, nh, dh).transpose(2, 3)  # (n, B, nh, m, dh)
        scores = (q.view(n, B, nh, 1, dh) @ keys) / math.sqrt(dh)  # (n, B, nh, 1, m)
        later = self.positions > p_t[:, None]  # (n, m): not yet seen by that window
        scores = scores.masked_fill(later[:, None, None, None, :], float("-inf"))
        return attn.out_proj((scores.softmax(-1) @ vals).reshape(n, B, H))

    @torch.no_grad()
    def step(self, obs, act):
        mdl, d = self.model, self.model.obs_dim
        x, s0 = self._advance(obs, act)
        mean, logvar = mdl.head(x)  # (n, B, D), k = 1..n
        mean = mean.float()
        mean[..., :d] += s0
        return mean.transpose(0, 1), logvar.float().exp().transpose(0, 1)

    def keep(self, idx):
        self.S = self.S[:, idx]
        self.Kc = self.Kc[:, :, idx]
        self.Vc = self.Vc[:, :, idx]


MODEL = ModelSpec(
    kind="adm-transformer",
    build=lambda obs_dim, act_dim, m, s: ADMTransformer(obs_dim, act_dim, m, s.hidden, s.layers, s.heads,
                                                        s.head_blocks, s.dropout),
    settings=TransformerSettings,
    uncertainties=("authors", "paper"),
    description="any-step model with a causal Transformer over (s_t, a_t+j): every k in [1, m] in one pass",
    dropout_auto=lambda uncertainty: uncertainty in ("authors", "none"),
)
