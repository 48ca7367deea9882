"""The any-step dynamics model (paper section 3.1): a GRU reads (s_t, a_{t+j}) for j < k and predicts
a Gaussian over (s_{t+k} - s_t, r_{t+k}).

Causality is the lever: every GRU input is (start state, one action), so the k-step window from s_t is
a prefix of the m-step window. One pass over m steps gives all k = 1..m (training), and during roll-outs
the m open windows' hidden states are carried forward one GRU step at a time (the cached-window step).
"""

from __future__ import annotations

import torch

from ..kernels import use_for
from ..registry import ModelSpec
from .base import AnyStepModel, RecurrentModel, RecurrentSettings, Stepper

# ADM's own keys: the GRU backbone's (hidden, layers, head_blocks, dropout)
ADMSettings = RecurrentSettings


class ADM(AnyStepModel, RecurrentModel):
    kind = "adm"

    def forward(self, s0: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s0 (B, obs), actions (B, L, act) -> mean, logvar (B, L, obs+1); position j is the (j+1)-step
        prediction."""
        mean, logvar = self.head(self.features_by_k(s0, actions))
        return mean.transpose(0, 1), logvar.transpose(0, 1)

    def features_by_k(self, s0: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The GRU's outputs (L, B, hidden), time-major: the head runs on them as they are and the (B, L)
        views are taken at the end, at no cost."""
        L = actions.shape[1]
        x = torch.cat([self.norm.obs(s0)[None].expand(L, -1, -1), self.norm.act(actions.transpose(0, 1))], -1)
        return self.run_gru(x.to(self.dtype))

    def stepper(self, dropout_at_inference: bool = False) -> ADMStepper:
        return ADMStepper(self, dropout_at_inference)

    def planned_stepper(self, plan: list[int], dropout_at_inference: bool = False) -> PlannedADMStepper:
        return PlannedADMStepper(self, plan, dropout_at_inference)


class ADMStepper(Stepper):
    """Cached-window roll-out step: m open windows (one per recent start state) live in a ring.

    Each step opens a window at the current state and advances all m windows by one GRU step with the
    new action, so the window opened i steps ago now predicts with k = i + 1. Cost per step: m GRU steps
    and m heads, and it yields every k's mean and variance (the sample and the uncertainty) at once.

    The GRU step is written out with the nn.GRU's own weights (gate order r, z, n) because two things
    are cheaper by hand: a window's start state is fixed, so its share of the first layer's input
    projection is computed once when the window opens; and the action's share once per row, not per
    window. nn.GRU would redo both for every window at every step.
    """

    def __init__(self, model: ADM, dropout_at_inference: bool = False):
        self.model = model
        self.K = model.m
        model.train(dropout_at_inference)
        g = model.gru
        self.dtype = g.weight_ih_l0.dtype
        d = model.obs_dim
        self.w_ih0_s = g.weight_ih_l0[:, :d].t()
        self.w_ih0_a = g.weight_ih_l0[:, d:].t()
        self.w_ih = [getattr(g, f"weight_ih_l{i}").t() for i in range(model.layers)]
        self.w_hh = [getattr(g, f"weight_hh_l{i}").t() for i in range(model.layers)]
        self.b_ih = [getattr(g, f"bias_ih_l{i}") for i in range(model.layers)]
        self.b_hh = [getattr(g, f"bias_hh_l{i}") for i in range(model.layers)]
        hd = model.hidden
        # r and z take the sum of both biases; the n gate needs b_hh apart (it is scaled by r).
        self.b_rz = [(bi[: 2 * hd] + bh[: 2 * hd]) for bi, bh in zip(self.b_ih, self.b_hh, strict=True)]
        self.b_ih_n = [bi[2 * hd :] for bi in self.b_ih]
        self.b_hh_n = [bh[2 * hd :] for bh in self.b_hh]
        self.g = 0
        self.S_raw = None

    def _alloc(self, B: int, like: torch.Tensor) -> None:
        # slot-major (m, B, ...): the open slots and the slot opened this step are contiguous row blocks
        m, mdl = self.model.m, self.model
        self.S_raw = like.new_zeros(m, B, mdl.obs_dim, dtype=torch.float32)
        self.S_proj = like.new_zeros(m, B, 3 * mdl.hidden, dtype=self.dtype)
        self.H = [like.new_zeros(m, B, mdl.hidden, dtype=self.dtype) for _ in range(mdl.layers)]
        # by_k[j]: the slots in k order when slot j was opened last (the window opened k-1 steps ago is
        # slot (j - k + 1) mod m); on the device, so a step indexes without a host-to-device copy
        j, k = torch.arange(m, device=like.device)[:, None], torch.arange(m, device=like.device)[None, :]
        self.by_k = (j - k) % m
        self.g = 0

    @torch.no_grad()
    def start(self, hist_obs, hist_act):
        """Feed the real history: the windows' hidden states only; no heads, and only the windows
        already open (the first history step has one, the second two, ...)."""
        self._alloc(hist_obs.shape[0], hist_obs)
        for i in range(hist_obs.shape[1]):
            self._advance(hist_obs[:, i], hist_act[:, i])

    def _cell(self, gi: torch.Tensor, h: torch.Tensor, layer: int, new: tuple[int, int]) -> torch.Tensor:
        """gi: input projection without bias (N, 3H), modified in place -> new hidden state. Rows
        new[0]:new[1] belong to the window opened this step, whose h is 0: no recurrent product there."""
        ops = use_for(gi, h)
        if ops is not None:
            return self._fused_cell(ops, gi, h, layer, new)
        hd = self.model.hidden
        w_hh = self.w_hh[layer]
        h_n = torch.empty_like(h)
        for lo, hi in ((0, new[0]), (new[1], h.shape[0])):
            if hi > lo:
                # h's share of r and z accumulates into gi in place: no separate (N, 2H) buffer
                gi[lo:hi, : 2 * hd].addmm_(h[lo:hi], w_hh[:, : 2 * hd])
                torch.addmm(self.b_hh_n[layer], h[lo:hi], w_hh[:, 2 * hd :], out=h_n[lo:hi])
        h_n[new[0] : new[1]] = self.b_hh_n[layer]
        rz = gi[:, : 2 * hd].add_(self.b_rz[layer]).sigmoid_()
        n = gi[:, 2 * hd :].add_(self.b_ih_n[layer]).addcmul_(rz[:, :hd], h_n).tanh_()
        return torch.lerp(n, h, rz[:, hd:])  # (1 - z) * n + z * h

    def _fused_cell(self, ops, gi: torch.Tensor, h: torch.Tensor, layer: int, new: tuple[int, int]) -> torch.Tensor:
        """_cell with the CPU kernels: one pass per row for the gates (the same values)."""
        w_hh, b_ih, b_hh = self.w_hh[layer], self.b_ih[layer], self.b_hh[layer]
        parts = []
        for lo, hi in ((0, new[0]), new, (new[1], gi.shape[0])):
            if hi <= lo:
                continue
            if (lo, hi) == new:  # the window opened now: a one-step sequence from h = 0
                parts.append(ops.gru_layer_forward(gi[lo:hi][None], b_ih, w_hh.t(), b_hh)[0][0])
            else:
                parts.append(ops.gru_cell_forward(gi[lo:hi], h[lo:hi] @ w_hh, h[lo:hi], b_ih, b_hh))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _advance(self, obs, act) -> torch.Tensor:
        """Open a window at obs, advance every open window by one GRU step with act -> the last layer's
        hidden states (open windows, B, H)."""
        mdl, m, hd = self.model, self.model.m, self.model.hidden
        if self.S_raw is None or self.S_raw.shape[1] != obs.shape[0]:
            self._alloc(obs.shape[0], obs)
        B = obs.shape[0]
        j = self.g % m
        n_open = min(self.g + 1, m)  # slots 0..n_open-1; before the ring is full the newest is the last
        self.S_raw[j] = obs
        self.S_proj[j] = mdl.norm.obs(obs).to(self.dtype) @ self.w_ih0_s
        for h in self.H:
            h[j] = 0.0
        a_proj = mdl.norm.act(act).to(self.dtype) @ self.w_ih0_a  # (B, 3H), shared by the windows
        gi = (self.S_proj[:n_open] + a_proj).reshape(n_open * B, 3 * hd)
        x = None
        for layer in range(mdl.layers):
            if layer > 0:
                gi = x @ self.w_ih[layer]
            x = self._cell(gi, self.H[layer][:n_open].reshape(n_open * B, hd), layer, (j * B, (j + 1) * B))
            self.H[layer][:n_open] = x.view(n_open, B, hd)
        self.g += 1
        return x.view(n_open, B, hd)

    @torch.no_grad()
    def step(self, obs, act):
        mdl, m = self.model, self.model.m
        j = self.g % m
        x = self._advance(obs, act)
        mean, logvar = mdl.head(x)  # (m, B, D) once the ring is full (start() fed m-1 steps)
        order = self.by_k[j, : x.shape[0]]
        mean = mean[order].float()
        var = logvar[order].float().exp_()
        mean[..., : mdl.obs_dim] += self.S_raw[order]
        return mean.transpose(0, 1), var.transpose(0, 1)

    def keep(self, idx):
        self.S_raw = self.S_raw[:, idx]
        self.S_proj = self.S_proj[:, idx]
        self.H = [h[:, idx] for h in self.H]


class PlannedADMStepper(ADMStepper):
    """The roll-out step when only the drawn k's prediction is needed (no uncertainty), with the k of
    every imagined step known in advance (`plan[t]` = k - 1, one k per step for the whole batch).

    A window is opened only if some later step draws its k, advanced only until its last use, and the head
    runs on one window per step instead of m. Same predictions as ADMStepper's candidate plan[t]; with m = 5
    a step advances ~2.3 windows on average instead of 5 (the window opened d steps before is still
    needed with probability 1 - (1 - 1/m)^(m - d)).
    """

    K = 1

    def __init__(self, model: ADM, plan: list[int], dropout_at_inference: bool = False):
        super().__init__(model, dropout_at_inference)
        h = model.m - 1  # global step g: the real history's steps 0..m-2, then imagined step t at g = h + t
        self.use = {h + t: h + t - int(c) for t, c in enumerate(plan)}  # g -> the window it predicts from
        self.last: dict[int, int] = {}  # window (its opening step) -> its last use
        for g, o in self.use.items():
            self.last[o] = max(self.last.get(o, -1), g)
        self.windows: dict[int, dict] = {}

    @torch.no_grad()
    def start(self, hist_obs, hist_act):
        self.g, self.windows = 0, {}
        for i in range(hist_obs.shape[1]):
            self._advance(hist_obs[:, i], hist_act[:, i])

    def _advance(self, obs, act):
        """Open a window at obs if a later step uses it; advance the windows still needed by one GRU step."""
        mdl, g = self.model, self.g
        if g in self.last:
            self.windows[g] = {"s": obs, "proj": mdl.norm.obs(obs).to(self.dtype) @ self.w_ih0_s, "h": None}
        a_proj = mdl.norm.act(act).to(self.dtype) @ self.w_ih0_a
        for w in self.windows.values():
            hs, x = w["h"] or [None] * mdl.layers, None
            for layer, h in enumerate(hs):
                gi = w["proj"] + a_proj if layer == 0 else x @ self.w_ih[layer]
                if h is None:  # the window opens now: h = 0, no recurrent product
                    x = self._cell(gi, gi.new_zeros(gi.shape[0], mdl.hidden), layer, (0, gi.shape[0]))
                else:
                    x = self._cell(gi, h, layer, (0, 0))
                hs[layer] = x
            w["h"] = hs
        self.g += 1

    @torch.no_grad()
    def step(self, obs, act):
        g = self.g
        self._advance(obs, act)
        w = self.windows[self.use[g]]
        mean, logvar = self.model.head(w["h"][-1])
        mean, var = mean.float(), logvar.float().exp_()
        mean[:, : self.model.obs_dim] += w["s"]
        for o in [o for o in self.windows if self.last[o] <= g]:
            del self.windows[o]  # no later step predicts from it
        return mean[:, None], var[:, None]

    def keep(self, idx):
        for w in self.windows.values():
            w["s"], w["proj"] = w["s"][idx], w["proj"][idx]
            w["h"] = [h[idx] for h in w["h"]]


MODEL = ModelSpec(
    kind="adm",
    build=lambda obs_dim, act_dim, m, s: ADM(obs_dim, act_dim, m, s.hidden, s.layers, s.head_blocks, s.dropout),
    settings=ADMSettings,
    # authors: their code's formula (Table 5's beta were tuned with it); paper: Eq. (4)
    uncertainties=("authors", "paper"),
    description="any-step dynamics model: a GRU over (s_t, a_t+j), every k in [1, m] in one pass (paper 3.1)",
    # their code never switches ADM to eval mode: with their formula and without a penalty, dropout stays on
    dropout_auto=lambda uncertainty: uncertainty in ("authors", "none"),
)
