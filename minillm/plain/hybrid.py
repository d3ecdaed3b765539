"""A whole hybrid model (Qwen3.5, Qwen3.5-MoE, Qwen3-Next) on one screen: Gated DeltaNet and gated attention.

``plain_hybrid_forward`` equals ``Model.forward(ids)`` on tiny-qwen3.5, its Hub layout, tiny-qwen3.5-moe and
tiny-qwen3-next (tests/test_plain.py). The engine (minillm/model/hybrid.py, gated_attention.py,
gated_deltanet.py, moe.py) adds batches, left padding, the cache and the chunked delta rule. Legend: T
tokens, D hidden, H / K query / key-value heads, Dh head dim, R rotary dims, V vocab (minillm/__init__.py).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .deltanet import plain_gated_deltanet
from .moe import plain_moe_block
from .ops import rms_norm, rope_cos_sin, rotate_half, sigmoid, silu, softmax


def plain_hybrid_forward(weights, config, ids) -> np.ndarray:
    """Next-token logits of one sequence through a hybrid model.   ids [T] -> logits [T, V] float32

    Why: three of every four layers are Gated DeltaNet (plain/deltanet.py: a fixed-size memory, constant
    cost per token); every fourth is full softmax attention, which can still recall any earlier token
    exactly. That layer is Qwen3's (q/k-norm, GQA, 1/sqrt(Dh)) plus a sigmoid gate per channel on its
    output (a head can switch itself off) and partial RoPE (only R = Dh/4 dims rotate; the rest compare
    content at any distance). All norms but the DeltaNet's store their gain as an offset: (1 + w).
    """
    c, w = config, weights
    if not c.is_hybrid:
        raise InputError(f"plain_hybrid_forward runs the hybrid Qwen3.5 / Qwen3-Next models; this {c.model_type} "
                         f"model has no linear-attention layer: use plain_forward (plain/forward.py)")
    H, K, Dh, R, eps = c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.rotary_dim, c.rms_norm_eps
    ids = np.asarray(ids)  # [T]
    T = len(ids)
    cos, sin = rope_cos_sin(np.arange(T), R, c.rope.theta)  # [T, R]: frequencies over R, not Dh
    causal = np.tril(np.ones((T, T), bool))  # [T, T]: key j visible from query i iff j <= i
    norm = lambda x, gain: rms_norm(x, 1 + gain, eps)  # noqa: E731  zero-centred: the gain is 1 + w
    rope = lambda x: np.concatenate([x[..., :R] * cos + rotate_half(x[..., :R]) * sin, x[..., R:]], -1)  # noqa: E731

    x = w.embed_tokens[ids]  # [T, D]
    for layer in w.layers:
        h = norm(x, layer.input_layernorm)  # [T, D]
        if layer.linear_attn is not None:  # layer_types[i] == "linear_attention"
            x = x + plain_gated_deltanet(layer.linear_attn, c, h)  # [T, D]
        else:  # "full_attention": gated attention
            a = layer.self_attn
            q_gate = (h @ a.q_proj.T).reshape(T, H, 2 * Dh)  # [T, H, 2*Dh]: per head [query | gate], interleaved
            q, gate = q_gate[..., :Dh].transpose(1, 0, 2), q_gate[..., Dh:].reshape(T, H * Dh)  # [H, T, Dh], [T, H*Dh]
            k = (h @ a.k_proj.T).reshape(T, K, Dh).transpose(1, 0, 2)  # [K, T, Dh]
            v = (h @ a.v_proj.T).reshape(T, K, Dh).transpose(1, 0, 2)  # [K, T, Dh]
            q, k = rope(norm(q, a.q_norm)), rope(norm(k, a.k_norm))  # norm per head, then rotate the first R dims
            k, v = np.repeat(k, H // K, axis=0), np.repeat(v, H // K, axis=0)  # [H, T, Dh] (GQA)
            probs = softmax(np.where(causal, q @ k.transpose(0, 2, 1) * Dh ** -0.5, -np.inf))  # [H, T, T]
            out = (probs @ v).transpose(1, 0, 2).reshape(T, H * Dh)  # [T, H*Dh]
            x = x + (out * sigmoid(gate)) @ a.o_proj.T  # [T, D]: each channel gated, then o_proj
        h = norm(x, layer.post_attention_layernorm)  # [T, D]
        m = layer.mlp
        if hasattr(m, "experts"):  # a mixture of experts (Qwen3.5-MoE, Qwen3-Next)
            x = x + plain_moe_block(m, c, h)  # [T, D]
        else:
            x = x + (silu(h @ m.gate_proj.T) * (h @ m.up_proj.T)) @ m.down_proj.T  # [T, D]: SwiGLU
    return norm(x, w.norm) @ w.lm_head.T  # [T, D] @ [D, V] -> [T, V]
