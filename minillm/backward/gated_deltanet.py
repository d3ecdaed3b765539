"""Backward of the Gated DeltaNet layer (model/gated_deltanet.py), each forward line undone in reverse order.

    forward                                              backward (dY = dL/dy)
    mixed0 = x Wqkv^T; z, b, a = x Wz^T, x Wb^T, x Wa^T   dx = sum of the four projections' dx  (linear.py)
    conv   = causal_conv1d(mixed0)                       conv.causal_conv1d_backward
    mixed  = silu(conv)                                  activations.silu_backward
    q, k, v = split(mixed)                               dmixed = [dq | dk | dv]   (a concatenation)
    q, k   = repeat(q), repeat(k)   Hk -> Hv heads       dq = sum of the Hv/Hk copies of each key head
    q, k   = l2(q) / sqrt(Dk), l2(k)                     norm.l2_normalize_backward (times 1/sqrt(Dk) for q)
    beta   = sigmoid(b)                                  db = dbeta * beta (1 - beta)
    g      = -exp(A_log) * softplus(a + dt_bias)         dA_log = sum dg * g  (d/dA_log of -e^A_log = itself)
                                                         da = d dt_bias = dg * -exp(A_log) * sigmoid(a + dt_bias)
    o      = delta rule(q, k, v, g, beta)                delta_rule.chunked_gated_delta_rule_backward
    o      = RMSNorm(o; norm) * silu(z)                  norm.gated_rms_norm_backward
    y      = o Wout^T                                    linear_backward

+--------------------------------------------------------------------------------------------------------+
| REPEAT, THEN SUM. Value heads h*r .. h*r + r-1 read key head h (np.repeat), so key head h's gradient is |
| the sum of those r heads' gradients: reshape [.., Hv, Dk] to [.., Hk, r, Dk] and sum the r axis. (The  |
| same rule as GQA's key/value heads in attention.py; summing with the tile layout pairs heads wrongly.)   |
+--------------------------------------------------------------------------------------------------------+

Qwen3-Next's grouped in_proj_qkvz / in_proj_ba only reorder columns (``grouped_projections``): a permutation,
whose backward puts each gradient column back where it came from (``grouped_projections_backward``).

Training runs from zero states, with no padding. Kept per token: x (D), the conv's input and output (2C), z
(Hv Dv), a, b (2 Hv), the delta rule's output (Hv Dv), and one memory per chunk (Hv Dk Dv / 64 per token);
q, k, v, beta, g and the normed output are recomputed from these (element-wise, cheap).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.activations import sigmoid, silu, softplus
from ..model.conv import causal_conv1d
from ..model.delta_rule import CHUNK_SIZE
from ..model.gated_deltanet import GatedDeltaNetWeights, grouped_projections, l2_normalize
from ..model.fast_linear import fast_linear as linear  # y = x W^T + b (model/linear.py), at full speed
from ..model.norm import gated_rms_norm
from .activations import silu_backward
from .conv import causal_conv1d_backward
from .delta_rule import chunked_gated_delta_rule_backward, chunked_gated_delta_rule_forward
from .linear import linear_backward
from .norm import gated_rms_norm_backward, l2_normalize_backward


@dataclass
class GatedDeltaNetActivations:
    """What ``gated_deltanet_forward`` keeps for ``gated_deltanet_backward``."""

    x: np.ndarray  # [B, T, D]        the input (already normed): every projection's weight gradient needs it
    mixed0: np.ndarray  # [B, T, C]   the conv's input: its weight gradient needs it
    conv: np.ndarray  # [B, T, C]     the conv's output, before SiLU
    z: np.ndarray  # [B, T, Hv, Dv]   the output gate
    a: np.ndarray  # [B, T, Hv]       the decay's input
    b: np.ndarray  # [B, T, Hv]       the write strength's input
    o: np.ndarray  # [B, T, Hv, Dv]   the delta rule's output, before the gated norm
    starts: np.ndarray  # [B, Hv, N, Dk, Dv]  the delta rule's memory at the start of each chunk


def _heads(cfg_heads: tuple[int, int], w: GatedDeltaNetWeights) -> tuple[int, int, int, int]:
    """Hk, Hv, Dk, Dv from the head counts and the weights (C = 2 Hk Dk + Hv Dv)."""
    Hk, Hv = cfg_heads
    Dv = w.norm.shape[0]
    return Hk, Hv, (w.conv1d.shape[0] - Hv * Dv) // (2 * Hk), Dv


def _gates(conv: np.ndarray, a: np.ndarray, b: np.ndarray, w: GatedDeltaNetWeights, Hk: int, Hv: int, Dk: int):
    """From the conv's output and a, b: q, k (repeated to Hv heads, before their L2 norm), v, beta, g.
    conv [B, T, C], a, b [B, T, Hv] -> q, k [B, T, Hv, Dk], v [B, T, Hv, Dv], beta, g [B, T, Hv]"""
    B, T, _ = conv.shape
    mixed = silu(conv)  # [B, T, C]
    q = np.repeat(mixed[..., :Hk * Dk].reshape(B, T, Hk, Dk), Hv // Hk, axis=2)  # [B, T, Hv, Dk]
    k = np.repeat(mixed[..., Hk * Dk:2 * Hk * Dk].reshape(B, T, Hk, Dk), Hv // Hk, axis=2)  # [B, T, Hv, Dk]
    v = mixed[..., 2 * Hk * Dk:].reshape(B, T, Hv, -1)  # [B, T, Hv, Dv]
    beta = sigmoid(b)  # [B, T, Hv]
    g = -np.exp(w.A_log) * softplus(a + w.dt_bias)  # [B, T, Hv]
    return q, k, v, beta, g


def gated_deltanet_forward(x: np.ndarray, w: GatedDeltaNetWeights, num_key_heads: int, num_value_heads: int,
                           eps: float, chunk_size: int = CHUNK_SIZE) -> tuple[np.ndarray, GatedDeltaNetActivations]:
    """model/gated_deltanet.py's layer from zero states (training), chunked, keeping what the backward needs.
    x [B, T, D] -> y [B, T, D], GatedDeltaNetActivations"""
    B, T, _ = x.shape
    Hk, Hv, Dk, Dv = _heads((num_key_heads, num_value_heads), w)
    if w.in_proj_qkvz is not None:  # Qwen3-Next
        mixed0, z, b, a = grouped_projections(linear(x, w.in_proj_qkvz), linear(x, w.in_proj_ba), Hk, Hv, Dk, Dv)
    else:
        mixed0 = linear(x, w.in_proj_qkv)  # [B, T, C]
        z = linear(x, w.in_proj_z).reshape(B, T, Hv, Dv)  # [B, T, Hv, Dv]
        b, a = linear(x, w.in_proj_b), linear(x, w.in_proj_a)  # [B, T, Hv] each
    C, W = w.conv1d.shape[0], w.conv1d.shape[-1]
    conv, _ = causal_conv1d(mixed0, w.conv1d[:, 0, :], np.zeros((B, W - 1, C), x.dtype))  # [B, T, C]
    q, k, v, beta, g = _gates(conv, a, b, w, Hk, Hv, Dk)
    q = l2_normalize(q) * np.float32(Dk ** -0.5)  # [B, T, Hv, Dk]: the scale in float32, as the forward
    k = l2_normalize(k)  # [B, T, Hv, Dk]
    heads_first = lambda t: t.swapaxes(1, 2)  # [B, T, Hv, ...] -> [B, Hv, T, ...]
    o, _, starts = chunked_gated_delta_rule_forward(heads_first(q), heads_first(k), heads_first(v), heads_first(g),
                                                    heads_first(beta), np.zeros((B, Hv, Dk, Dv), x.dtype),
                                                    chunk_size)  # [B, Hv, T, Dv], _, [B, Hv, N, Dk, Dv]
    o = o.swapaxes(1, 2)  # [B, T, Hv, Dv]
    y = linear(gated_rms_norm(o, z, w.norm, eps).reshape(B, T, Hv * Dv), w.out_proj)  # [B, T, D]
    return y, GatedDeltaNetActivations(x=x, mixed0=mixed0, conv=conv, z=z, a=a, b=b, o=o, starts=starts)


def grouped_projections_backward(d_mixed: np.ndarray, dz: np.ndarray, db: np.ndarray, da: np.ndarray, Hk: int,
                                 Hv: int, Dk: int, Dv: int) -> tuple[np.ndarray, np.ndarray]:
    """The gradients of Qwen3-Next's two projection outputs: grouped_projections' permutation, inverted.
    d_mixed [B, T, C], dz [B, T, Hv, Dv], db, da [B, T, Hv] -> d_qkvz [B, T, 2 Hk Dk + 2 Hv Dv], d_ba [B, T, 2 Hv]"""
    B, T = d_mixed.shape[:2]
    r = Hv // Hk
    group = lambda t: t.reshape(B, T, Hk, -1)  # [B, T, Hk n] -> [B, T, Hk, n]: value heads jr .. jr+r-1 in group j
    dq, dk, dv = np.split(d_mixed, [Hk * Dk, 2 * Hk * Dk], axis=-1)  # [B, T, Hk Dk] x2, [B, T, Hv Dv]
    d_qkvz = np.concatenate([group(dq), group(dk), group(dv), group(dz)], axis=-1)  # [B, T, Hk, 2 Dk + 2 r Dv]
    d_ba = np.concatenate([group(db), group(da)], axis=-1)  # [B, T, Hk, 2 r]
    return d_qkvz.reshape(B, T, -1), d_ba.reshape(B, T, -1)


def gated_deltanet_backward(dy: np.ndarray, saved: GatedDeltaNetActivations, w: GatedDeltaNetWeights,
                            num_key_heads: int, num_value_heads: int, eps: float,
                            chunk_size: int = CHUNK_SIZE) -> tuple[np.ndarray, GatedDeltaNetWeights]:
    """dx and a GatedDeltaNetWeights of gradients.   dy [B, T, D] -> dx [B, T, D], GatedDeltaNetWeights"""
    B, T, _ = dy.shape
    Hk, Hv, Dk, Dv = _heads((num_key_heads, num_value_heads), w)
    r = Hv // Hk
    normed = gated_rms_norm(saved.o, saved.z, w.norm, eps)  # [B, T, Hv, Dv] recomputed
    d_normed, d_out_proj, _ = linear_backward(dy, normed.reshape(B, T, Hv * Dv), w.out_proj)  # [B, T, Hv Dv]
    do, dz, d_norm = gated_rms_norm_backward(d_normed.reshape(B, T, Hv, Dv), saved.o, saved.z, w.norm, eps)

    q, k, v, beta, g = _gates(saved.conv, saved.a, saved.b, w, Hk, Hv, Dk)  # recomputed
    scale = np.float32(Dk ** -0.5)  # as in the forward
    qn, kn = l2_normalize(q) * scale, l2_normalize(k)  # [B, T, Hv, Dk] each
    heads_first = lambda t: t.swapaxes(1, 2)  # [B, T, Hv, ...] <-> [B, Hv, T, ...]
    dqn, dkn, dv, dg, dbeta, _ = chunked_gated_delta_rule_backward(
        heads_first(do), heads_first(qn), heads_first(kn), heads_first(v), heads_first(g), heads_first(beta),
        saved.starts, None, chunk_size)  # [B, Hv, T, ...]
    dqn, dkn, dv, dg, dbeta = map(heads_first, (dqn, dkn, dv, dg, dbeta))  # [B, T, Hv, ...]

    dq = l2_normalize_backward(dqn * scale, q)  # [B, T, Hv, Dk]
    dk = l2_normalize_backward(dkn, k)  # [B, T, Hv, Dk]
    dq = dq.reshape(B, T, Hk, r, Dk).sum(axis=3)  # [B, T, Hk, Dk]: the r value heads that read key head h
    dk = dk.reshape(B, T, Hk, r, Dk).sum(axis=3)  # [B, T, Hk, Dk]
    d_mixed = np.concatenate([dq.reshape(B, T, -1), dk.reshape(B, T, -1), dv.reshape(B, T, -1)], axis=-1)  # [B, T, C]
    d_conv = silu_backward(d_mixed, saved.conv)  # [B, T, C]
    d_mixed0, d_conv1d = causal_conv1d_backward(d_conv, saved.mixed0, w.conv1d[:, 0, :])  # [B, T, C], [C, W]

    db = dbeta * beta * (1 - beta)  # [B, T, Hv]
    u = saved.a + w.dt_bias  # [B, T, Hv]
    da = dg * -np.exp(w.A_log) * sigmoid(u)  # [B, T, Hv]   softplus' = sigmoid
    d_A_log = (dg * g).reshape(-1, Hv).sum(axis=0)  # [Hv]
    d_dt_bias = da.reshape(-1, Hv).sum(axis=0)  # [Hv]

    grads = dict(conv1d=d_conv1d[:, None, :], A_log=d_A_log, dt_bias=d_dt_bias, norm=d_norm, out_proj=d_out_proj)
    if w.in_proj_qkvz is not None:  # Qwen3-Next: back through the permutation, then two projections
        d_qkvz, d_ba = grouped_projections_backward(d_mixed0, dz, db, da, Hk, Hv, Dk, Dv)
        dx, grads["in_proj_qkvz"], _ = linear_backward(d_qkvz, saved.x, w.in_proj_qkvz)  # [B, T, D]
        dx_ba, grads["in_proj_ba"], _ = linear_backward(d_ba, saved.x, w.in_proj_ba)
        dx += dx_ba
    else:
        dx, grads["in_proj_qkv"], _ = linear_backward(d_mixed0, saved.x, w.in_proj_qkv)  # [B, T, D]
        for name, d in (("in_proj_z", dz.reshape(B, T, Hv * Dv)), ("in_proj_b", db), ("in_proj_a", da)):
            dx_part, grads[name], _ = linear_backward(d, saved.x, getattr(w, name))  # [B, T, D]
            dx += dx_part  # x feeds all four projections
    return dx, GatedDeltaNetWeights(**grads)
