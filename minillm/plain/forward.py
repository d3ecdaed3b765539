"""The whole forward pass on one screen: one sequence, no batch, no padding. Start reading here.

``plain_forward`` computes what ``Model.forward(ids)`` computes (tests/test_plain.py checks it on tiny-qwen2,
tiny-qwen3 and the bundled model), top to bottom as one function. The engine (minillm/model/) splits these same lines
into small functions and adds what real use needs: batches with left padding, long inputs in pieces, the
scaled RoPE variants (model/rope_scaling.py), sliding windows, the hybrid and MoE models. Shapes use the
legend of minillm/__init__.py (T tokens, S cached + new positions, D hidden, H query heads, K key/value
heads, Dh head dim, F MLP width, V vocab).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .ops import rms_norm, rotate_half, silu, softmax


def plain_forward(weights, config, ids, cache=None, hidden=None) -> np.ndarray:
    """Next-token logits at every position of one sequence.   ids [T] -> logits [T, V] float32

    Why it is built this way: pre-norm (each sub-layer reads RMSNorm(x) and ADDS to x) keeps the residual
    stream a clean path, so gradients reach the bottom of a deep stack. RoPE rotates q and k by their
    position, so q.k depends only on the distance, with no table of positions to outgrow. q/k-norm (Qwen3)
    keeps the attention logits from growing in training. 1/sqrt(Dh) brings q.k (variance ~Dh) back to
    variance ~1, so softmax does not saturate to one-hot. GQA: K < H key/value heads, the cache is K/H the
    size. SwiGLU: silu(gate) * up, a learned input-dependent scale per unit. Tied embeddings: one [V, D]
    matrix reads tokens in and scores them out.
    ``cache``: a list of per-layer [k, v] ([K, S, Dh] each) that this call extends (plain_generate).
    ``hidden``: a list that receives each layer's input, then the last layer's output (plain_loss_and_grads).
    """
    c, w = config, weights
    if c.is_hybrid or c.is_moe or c.rope.rope_type != "default" or c.sliding_window is not None:
        what = ("a mixture of experts" if c.is_moe else "hybrid linear attention" if c.is_hybrid else
                f"{c.rope.rope_type} RoPE scaling" if c.rope.rope_type != "default" else "sliding-window layers")
        raise InputError(f"plain_forward covers the dense Qwen2/Qwen3 models with default RoPE and full attention; "
                         f"this {c.model_type} model has {what}: use Model.forward (minillm/model/transformer.py)")
    H, K, Dh, eps = c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.rms_norm_eps
    b = lambda bias: 0 if bias is None else bias  # noqa: E731  Qwen2 has q/k/v biases, Qwen3 none
    ids = np.asarray(ids)  # [T] token ids
    T, past = len(ids), (cache[0][0].shape[1] if cache else 0)  # new tokens; positions already cached

    # RoPE: angle[p, j] = p * inv_freq[j]; the same in every layer, so computed once.
    inv_freq = 1 / c.rope.theta ** (np.arange(0, Dh, 2, dtype=np.float32) / Dh)  # [Dh/2]: 1/theta^(2j/Dh)
    angle = (past + np.arange(T, dtype=np.float32))[:, None] * inv_freq  # [T, Dh/2]: token t at past + t
    cos, sin = np.cos(np.concatenate([angle, angle], -1)), np.sin(np.concatenate([angle, angle], -1))  # [T, Dh]
    causal = np.arange(past + T)[None, :] <= past + np.arange(T)[:, None]  # [T, S]: key j visible iff j <= i

    x = w.embed_tokens[ids]  # [T, D]: one row of the embedding per token (no position embedding)
    for n, layer in enumerate(w.layers):
        if hidden is not None:
            hidden.append(x)  # [T, D] this layer's input
        a, m = layer.self_attn, layer.mlp
        h = rms_norm(x, layer.input_layernorm, eps)  # [T, D]
        q = (h @ a.q_proj.T + b(a.q_proj_bias)).reshape(T, H, Dh).transpose(1, 0, 2)  # [T, H*Dh] -> [H, T, Dh]
        k = (h @ a.k_proj.T + b(a.k_proj_bias)).reshape(T, K, Dh).transpose(1, 0, 2)  # [T, K*Dh] -> [K, T, Dh]
        v = (h @ a.v_proj.T + b(a.v_proj_bias)).reshape(T, K, Dh).transpose(1, 0, 2)  # [K, T, Dh]
        if a.q_norm is not None:  # Qwen3: RMSNorm over Dh of every head, BEFORE RoPE
            q, k = rms_norm(q, a.q_norm, eps), rms_norm(k, a.k_norm, eps)  # [H, T, Dh], [K, T, Dh]
        q = q * cos + rotate_half(q) * sin  # [H, T, Dh]: pair (j, j + Dh/2) turned by its angle (rotate-half)
        k = k * cos + rotate_half(k) * sin  # [K, T, Dh]; values are not rotated
        if cache is not None:  # the earlier tokens' keys and values, then these ones
            k = cache[n][0] = np.concatenate([cache[n][0], k], axis=1)  # [K, S, Dh]
            v = cache[n][1] = np.concatenate([cache[n][1], v], axis=1)  # [K, S, Dh]
        k, v = np.repeat(k, H // K, axis=0), np.repeat(v, H // K, axis=0)  # [H, S, Dh]: head h reads h // (H/K)
        scores = q @ k.transpose(0, 2, 1) * Dh ** -0.5  # [H, T, Dh] @ [H, Dh, S] -> [H, T, S]
        probs = softmax(np.where(causal, scores, -np.inf))  # [H, T, S]: each row sums to 1 over visible keys
        out = (probs @ v).transpose(1, 0, 2).reshape(T, H * Dh)  # [H, T, Dh] -> [T, H*Dh]: heads side by side
        x = x + out @ a.o_proj.T + b(a.o_proj_bias)  # [T, D]: added to the residual stream
        h = rms_norm(x, layer.post_attention_layernorm, eps)  # [T, D]
        x = x + (silu(h @ m.gate_proj.T) * (h @ m.up_proj.T)) @ m.down_proj.T  # [T, F] -> [T, D]: SwiGLU

    if hidden is not None:
        hidden.append(x)  # [T, D] the last layer's output
    return rms_norm(x, w.norm, eps) @ w.lm_head.T  # [T, D] @ [D, V] -> [T, V] (lm_head IS embed_tokens if tied)
