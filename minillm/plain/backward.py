"""The backward pass of one dense decoder layer on one screen, and of RMSNorm (the one backward used twice).

``plain_layer_backward`` is the layer of plain/forward.py read in reverse; with plain/train_step.py it equals
``minillm.loss_and_grads`` (minillm/backward/) on the bundled model (tests/test_plain.py). The engine keeps
the forward's arrays instead of recomputing them, runs batches, and handles the sliding windows and the
scaled RoPE variants. Legend: T tokens, D hidden, H / K query / key-value heads, Dh head dim, F MLP width.
"""

from __future__ import annotations

import numpy as np

from .ops import rms_norm, rotate_half, sigmoid, silu, softmax


def rms_norm_backward(dy, x, weight, eps):
    """y = weight * x * r, r = 1/sqrt(mean(x^2) + eps).   dy, x [..., N] -> dx [..., N], dweight [N]"""
    r = 1 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)  # [..., 1]
    dxr = dy * weight  # [..., N]: the gradient of x * r; r depends on every x of the row, hence the mean term
    dweight = (dy * x * r).reshape(-1, x.shape[-1]).sum(axis=0)  # [N]: summed over every row
    return r * (dxr - x * r * r * np.mean(dxr * x, axis=-1, keepdims=True)), dweight  # [..., N], [N]


def plain_layer_backward(layer, config, x, dy, cos, sin):
    """One decoder layer backwards.   x [T, D] its input, dy [T, D] = dloss/d its output, cos/sin [T, Dh]
    -> dx [T, D] = dloss/dx, {tensor name inside the layer: gradient}

    Why it recomputes its forward first: keeping only each layer's input (the residual stream) and redoing
    the rest is "activation checkpointing", one more forward for far less memory. Then every line is
    undone in reverse by the chain rule: y = x W^T gives dx = dy W and dW = dy^T x; a residual x + f(x)
    passes dy straight through (the clean path pre-norm keeps); GQA sums the gradient of the H/K query
    heads that shared a key head; a rotation backwards is a rotation by the opposite angle.
    """
    c, a, m, g = config, layer.self_attn, layer.mlp, {}
    H, K, Dh, eps, T = c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.rms_norm_eps, len(x)
    b = lambda bias: 0 if bias is None else bias  # noqa: E731
    rope = lambda t: t * cos + rotate_half(t) * sin  # noqa: E731
    qk_norm = lambda t, gain: t if gain is None else rms_norm(t, gain, eps)  # noqa: E731
    # --- the forward again, keeping what the backward needs ---
    h1 = rms_norm(x, layer.input_layernorm, eps)  # [T, D]
    q = (h1 @ a.q_proj.T + b(a.q_proj_bias)).reshape(T, H, Dh).transpose(1, 0, 2)  # [H, T, Dh]
    k = (h1 @ a.k_proj.T + b(a.k_proj_bias)).reshape(T, K, Dh).transpose(1, 0, 2)  # [K, T, Dh]
    v = (h1 @ a.v_proj.T + b(a.v_proj_bias)).reshape(T, K, Dh).transpose(1, 0, 2)  # [K, T, Dh]
    qn, kn = qk_norm(q, a.q_norm), qk_norm(k, a.k_norm)  # [H, T, Dh], [K, T, Dh]: Qwen3's q/k-norm (Qwen2: none)
    qr, kr = rope(qn), np.repeat(rope(kn), H // K, axis=0)  # [H, T, Dh] each
    probs = softmax(np.where(np.tri(T, dtype=bool), qr @ kr.transpose(0, 2, 1) * Dh ** -0.5, -np.inf))  # [H, T, T]
    att = (probs @ np.repeat(v, H // K, axis=0)).transpose(1, 0, 2).reshape(T, H * Dh)  # [T, H*Dh]
    x2 = x + att @ a.o_proj.T + b(a.o_proj_bias)  # [T, D]
    h2 = rms_norm(x2, layer.post_attention_layernorm, eps)  # [T, D]
    gate, up = h2 @ m.gate_proj.T, h2 @ m.up_proj.T  # [T, F] each
    # --- backwards: the MLP ---
    g["mlp.down_proj.weight"] = dy.T @ (silu(gate) * up)  # [D, T] @ [T, F]
    dact = dy @ m.down_proj  # [T, F]
    dgate = dact * up * sigmoid(gate) * (1 + gate * (1 - sigmoid(gate)))  # [T, F]: silu'(u) = s (1 + u (1 - s))
    dup = dact * silu(gate)  # [T, F]
    g["mlp.gate_proj.weight"], g["mlp.up_proj.weight"] = dgate.T @ h2, dup.T @ h2  # [F, D] each
    dx2, g["post_attention_layernorm.weight"] = rms_norm_backward(dgate @ m.gate_proj + dup @ m.up_proj, x2,
                                                                  layer.post_attention_layernorm, eps)  # [T, D]
    dx2 = dx2 + dy  # [T, D]: the residual passes dy through
    # --- backwards: attention ---
    g["self_attn.o_proj.weight"] = dx2.T @ att  # [D, H*Dh]
    if a.o_proj_bias is not None:
        g["self_attn.o_proj.bias"] = dx2.sum(axis=0)  # [D]
    datt = (dx2 @ a.o_proj).reshape(T, H, Dh).transpose(1, 0, 2)  # [H, T, Dh]
    dprobs = datt @ np.repeat(v, H // K, axis=0).transpose(0, 2, 1)  # [H, T, T]
    dv = (probs.transpose(0, 2, 1) @ datt).reshape(K, H // K, T, Dh).sum(axis=1)  # [K, T, Dh]: summed per group
    dscores = probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True)) * Dh ** -0.5  # [H, T, T]: softmax'
    dq = dscores @ kr  # [H, T, Dh]
    dk = (dscores.transpose(0, 2, 1) @ qr).reshape(K, H // K, T, Dh).sum(axis=1)  # [K, T, Dh]
    dq, dk = dq * cos - rotate_half(dq * sin), dk * cos - rotate_half(dk * sin)  # RoPE backwards: angle -> -angle
    if a.q_norm is not None:
        dq, g["self_attn.q_norm.weight"] = rms_norm_backward(dq, q, a.q_norm, eps)  # [H, T, Dh], [Dh]
        dk, g["self_attn.k_norm.weight"] = rms_norm_backward(dk, k, a.k_norm, eps)  # [K, T, Dh], [Dh]
    dh1 = 0
    for name, d in (("q_proj", dq), ("k_proj", dk), ("v_proj", dv)):
        d = d.transpose(1, 0, 2).reshape(T, -1)  # [T, H*Dh] or [T, K*Dh]: heads side by side again
        g[f"self_attn.{name}.weight"] = d.T @ h1  # [out, D]
        if getattr(a, name + "_bias") is not None:
            g[f"self_attn.{name}.bias"] = d.sum(axis=0)  # [out]
        dh1 = dh1 + d @ getattr(a, name)  # [T, D]
    dx, g["input_layernorm.weight"] = rms_norm_backward(dh1, x, layer.input_layernorm, eps)  # [T, D], [D]
    return dx + dx2, g  # [T, D]: through the norm, plus the residual
