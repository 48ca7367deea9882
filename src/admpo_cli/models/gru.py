"""A multi-layer GRU over short sequences with a hand-written backward pass, for training on the CPU.

nn.GRU's CPU path records every gate operation of every cell on the autograd tape, and its backward
replays them one small op at a time. Here each cell's forward is five in-place ops into buffers that are
kept for the backward; the backward uses the fused `sigmoid_backward` / `tanh_backward` kernels, and
each layer's weight gradients are one matrix product over all time steps. The first step of a sequence
starts from h = 0, so its recurrent product is skipped in both directions.

It takes nn.GRU's own parameters (gate order r, z, n; same biases), so checkpoints are unchanged and the
result equals nn.GRU's to float tolerance (tested, values and gradients). Sequences are time-major.
"""

from __future__ import annotations

import torch

from ..kernels import use_for

_sigmoid_backward_out = torch.ops.aten.sigmoid_backward.grad_input
_tanh_backward_out = torch.ops.aten.tanh_backward.grad_input


def _layer_forward(gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor):
    """gi (T, B, 3H): input projection incl. b_ih, overwritten with the gate activations (r, z, n).
    Returns the outputs (T, B, H) and h_prev @ W_hn + b_hn (T, B, H), which the backward needs."""
    T, B, H3 = gi.shape
    H = H3 // 3
    out = gi.new_empty(T, B, H)
    ghn = gi.new_empty(T, B, H)
    w_t = w_hh.t()
    for t in range(T):
        g = gi[t]
        rz, n = g[:, : 2 * H], g[:, 2 * H :]
        if t == 0:
            rz.add_(b_hh[: 2 * H]).sigmoid_()
            ghn[0].copy_(b_hh[2 * H :].expand(B, H))
            n.addcmul_(rz[:, :H], ghn[0]).tanh_()
            torch.sub(n, n * rz[:, H:], out=out[0])  # h_prev = 0: (1 - z) * n
        else:
            h = out[t - 1]
            rz.addmm_(h, w_t[:, : 2 * H]).add_(b_hh[: 2 * H]).sigmoid_()
            torch.addmm(b_hh[2 * H :], h, w_t[:, 2 * H :], out=ghn[t])
            n.addcmul_(rz[:, :H], ghn[t]).tanh_()
            torch.lerp(n, h, rz[:, H:], out=out[t])
    return out, ghn


def _layer_backward(d_out: torch.Tensor, gates: torch.Tensor, ghn: torch.Tensor, out: torch.Tensor,
                    w_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """d_out (T, B, H): gradient reaching each output from above. Returns the gradients of the input
    projection (T, B, 3H), of the recurrent product's pre-activation (T, B, 3H), and of b_ih and b_hh."""
    T, B, H = d_out.shape
    d_gi = gates.new_empty(T, B, 3 * H)
    d_gh = gates.new_empty(T, B, 3 * H)
    dh = None
    for t in range(T - 1, -1, -1):
        g = gates[t]
        r, z, n = g[:, :H], g[:, H : 2 * H], g[:, 2 * H :]
        dh = d_out[t] if dh is None else dh.add_(d_out[t])
        dhz = dh * z
        dn_pre = _tanh_backward_out(dh - dhz, n, grad_input=d_gi[t, :, 2 * H :])
        buf = d_gh[t]
        # (dr, dz) before the sigmoid, written where both gradients need them
        torch.mul(dn_pre, ghn[t], out=buf[:, :H])
        if t > 0:
            torch.mul(out[t - 1] - n, dh, out=buf[:, H : 2 * H])
        else:
            torch.mul(n, dh, out=buf[:, H : 2 * H]).neg_()
        _sigmoid_backward_out(buf[:, : 2 * H], g[:, : 2 * H], grad_input=buf[:, : 2 * H])
        d_gi[t, :, : 2 * H] = buf[:, : 2 * H]
        torch.mul(dn_pre, r, out=buf[:, 2 * H :])
        if t > 0:
            dh = dhz.addmm_(buf, w_hh)
    d_b_ih = d_gi.sum((0, 1))
    # r and z see the same gradient through both biases; only the n gate's differ
    return d_gi, d_gh, d_b_ih, torch.cat([d_b_ih[: 2 * H], d_gh[..., 2 * H :].sum((0, 1))])


def _layers_forward(x: torch.Tensor, hidden: int, layers: int, weights,
                    keep: bool = True) -> list[tuple[torch.Tensor, ...]]:
    """Every layer over the whole sequence -> per layer (input, gate activations, ghn, outputs); with
    keep=False only the last layer's (inference: earlier layers' buffers are freed as it goes)."""
    T, B, _ = x.shape
    ops = use_for(x, weights[0])
    saved, inp = [], x
    for layer in range(layers):
        w_ih, w_hh, b_ih, b_hh = weights[4 * layer : 4 * layer + 4]
        if ops is not None:  # fused cells; the kernel adds the biases
            gi = torch.mm(inp.reshape(T * B, -1), w_ih.t()).view(T, B, 3 * hidden)
            out, ghn = ops.gru_layer_forward(gi, b_ih, w_hh, b_hh)
        else:
            gi = torch.addmm(b_ih, inp.reshape(T * B, -1), w_ih.t()).view(T, B, 3 * hidden)
            out, ghn = _layer_forward(gi, w_hh, b_hh)
        if not keep:
            saved.clear()
        saved.append((inp, gi, ghn, out))
        inp = out
    return saved


class _GRUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, hidden: int, layers: int, *weights):
        # weights: w_ih, w_hh, b_ih, b_hh per layer, nn.GRU's order
        saved = _layers_forward(x, hidden, layers, weights)
        ctx.layers, ctx.hidden = layers, hidden
        ctx.save_for_backward(*weights, *(t for per_layer in saved for t in per_layer))
        return saved[-1][3]

    @staticmethod
    def backward(ctx, d_out):
        L, H = ctx.layers, ctx.hidden
        tensors = ctx.saved_tensors
        weights, saved = tensors[: 4 * L], tensors[4 * L :]
        grads = [None] * (4 * L)
        d = d_out.contiguous()
        d_x = None
        for layer in range(L - 1, -1, -1):
            w_ih, w_hh = weights[4 * layer], weights[4 * layer + 1]
            inp, gates, ghn, out = saved[4 * layer : 4 * layer + 4]
            T, B, _ = inp.shape
            ops = use_for(d, gates)
            if ops is not None:
                d_gi, d_gh, d_bias = ops.gru_layer_backward(d, gates, ghn, out, w_hh)
                grads[4 * layer + 2], grads[4 * layer + 3] = d_bias.unbind(0)
            else:
                d_gi, d_gh, grads[4 * layer + 2], grads[4 * layer + 3] = _layer_backward(d, gates, ghn, out, w_hh)
            d_gi2, inp2 = d_gi.view(T * B, 3 * H), inp.reshape(T * B, -1)
            grads[4 * layer] = d_gi2.t() @ inp2
            # step 0 has no recurrent product
            grads[4 * layer + 1] = d_gh[1:].reshape(-1, 3 * H).t() @ out[:-1].reshape(-1, H)
            if layer > 0 or ctx.needs_input_grad[0]:
                d = (d_gi2 @ w_ih).view(T, B, -1)
                if layer == 0:
                    d_x = d
        return (d_x, None, None, *grads)


def gru_forward(gru: torch.nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """x (T, B, in), time-major, starting from h = 0 -> outputs of the last layer (T, B, H)."""
    weights = gru._flat_weights
    if torch.is_grad_enabled() and (x.requires_grad or any(w.requires_grad for w in weights)):
        return _GRUFunction.apply(x, gru.hidden_size, gru.num_layers, *weights)
    return _layers_forward(x, gru.hidden_size, gru.num_layers, weights, keep=False)[-1][3]
