"""Qwen3.5's linear attention (Gated DeltaNet) on one screen, in its recurrent form: one token at a time.

``plain_gated_deltanet`` equals the engine's ``gated_deltanet`` (minillm/model/gated_deltanet.py, with conv.py,
delta_rule.py and norm.py) on tiny-qwen3.5, its Hub layout and Qwen3-Next (tests/test_plain.py). The engine
adds batches, left padding, the state kept between calls (cache.py) and the chunked form of the delta rule,
which gives the same numbers for a long prompt in matrix products. Legend: Hk / Hv key / value heads, Dk / Dv
their head dims, C = 2 Hk Dk + Hv Dv conv channels, W conv width (minillm/__init__.py).
"""

from __future__ import annotations

import numpy as np

from .ops import l2_normalize, rms_norm, sigmoid, silu, softplus


def plain_gated_deltanet(layer, config, x) -> np.ndarray:
    """The linear-attention token mixer.   layer: model.layers.{i}.linear_attn, x [T, D] (normed) -> [T, D]

    Why: softmax attention keeps every past key and value, so its cache grows with the text. This layer
    keeps one matrix S [Dk, Dv] per head, a fast-weight memory that maps keys to values. The delta rule
    writes beta * (v - k^T S), the ERROR of what the memory recalls for k: it overwrites the value stored
    for that key instead of only adding another (plain linear attention, S += k v^T, only piles up).
    exp(g) < 1 forgets a little every token. Memory and work per token stay constant at any length.
    """
    c, w = config, layer
    Hk, Hv, Dk, Dv = c.linear_num_key_heads, c.linear_num_value_heads, c.linear_key_head_dim, c.linear_value_head_dim
    T, r, W = len(x), Hv // Hk, w.conv1d.shape[-1]  # r value heads read each key head
    if w.in_proj_qkvz is not None:  # Qwen3-Next: two projections, in Hk groups [q | k | v (r Dv) | z (r Dv)]
        groups = (x @ w.in_proj_qkvz.T).reshape(T, Hk, 2 * Dk + 2 * r * Dv)  # [T, Hk, 2 Dk + 2 r Dv]
        q, k, v, z = np.split(groups, [Dk, 2 * Dk, 2 * Dk + r * Dv], axis=-1)  # [T, Hk, Dk] x2, [T, Hk, r Dv] x2
        mixed = np.concatenate([q.reshape(T, -1), k.reshape(T, -1), v.reshape(T, -1)], -1)  # [T, C]
        b, a = [t.reshape(T, Hv) for t in np.split((x @ w.in_proj_ba.T).reshape(T, Hk, 2 * r), 2, -1)]  # [T, Hv]
        z = z.reshape(T, Hv, Dv)  # [T, Hv, Dv]
    else:  # Qwen3.5: four projections
        mixed = x @ w.in_proj_qkv.T  # [T, C]: columns [q (Hk Dk) | k (Hk Dk) | v (Hv Dv)]
        z = (x @ w.in_proj_z.T).reshape(T, Hv, Dv)  # [T, Hv, Dv]: the output gate
        b, a = x @ w.in_proj_b.T, x @ w.in_proj_a.T  # [T, Hv] each: write strength and decay, per value head

    # Causal depthwise conv: channel c at token t mixes its own inputs t-W+1 .. t; tap W-1 is the current token.
    padded = np.concatenate([np.zeros((W - 1, mixed.shape[1]), np.float32), mixed])  # [W-1+T, C]
    mixed = silu(sum(padded[j:j + T] * w.conv1d[:, 0, j] for j in range(W)))  # [T, C]
    q = mixed[:, :Hk * Dk].reshape(T, Hk, Dk).repeat(r, axis=1)  # [T, Hv, Dk]: value head h reads key head h // r
    k = mixed[:, Hk * Dk:2 * Hk * Dk].reshape(T, Hk, Dk).repeat(r, axis=1)  # [T, Hv, Dk] (repeat, not tile)
    v = mixed[:, 2 * Hk * Dk:].reshape(T, Hv, Dv)  # [T, Hv, Dv]
    q = l2_normalize(q) * np.float32(Dk ** -0.5)  # [T, Hv, Dk]: unit length, then 1/sqrt(Dk)
    k = l2_normalize(k)  # [T, Hv, Dk]: unit keys keep the update stable (|k.k| = 1)
    beta = sigmoid(b)  # [T, Hv] in (0, 1): how strongly token t overwrites
    g = -np.exp(w.A_log) * softplus(a + w.dt_bias)  # [T, Hv] <= 0: the memory keeps exp(g) of itself

    S = np.zeros((Hv, Dk, Dv), np.float32)  # the memory, one [Dk, Dv] matrix per value head
    o = np.zeros((T, Hv, Dv), np.float32)  # [T, Hv, Dv]
    for t in range(T):
        S = S * np.exp(g[t])[:, None, None]  # [Hv, Dk, Dv]      1. forget a little
        recalled = (k[t][:, :, None] * S).sum(axis=1)  # [Hv, Dv]   2. what S returns for k_t: k^T S
        delta = beta[t][:, None] * (v[t] - recalled)  # [Hv, Dv]    3. the error, times the write strength
        S = S + k[t][:, :, None] * delta[:, None, :]  # [Hv, Dk, Dv] 4. write it: S + k delta^T
        o[t] = (q[t][:, :, None] * S).sum(axis=1)  # [Hv, Dv]       5. read with q, from the UPDATED memory
    o = rms_norm(o, w.norm, c.rms_norm_eps) * silu(z)  # [T, Hv, Dv]: per head over Dv, a plain gain (not 1 + w)
    return o.reshape(T, Hv * Dv) @ w.out_proj.T  # [T, Hv*Dv] -> [T, D]
