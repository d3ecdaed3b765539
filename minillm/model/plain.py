"""The whole forward pass on one screen: one sequence, no batch, no padding, no cache. Start reading here.

``plain_forward`` computes exactly what ``Model.forward(ids)`` computes (tests/test_plain_forward.py checks
it on every bundled dense checkpoint), written top to bottom as one function. The rest of minillm/model/
splits these same lines into small functions and adds what real use needs: batches with left padding, a KV
cache, the hidden states. It covers the dense models (Qwen2 / Qwen2.5 / Qwen3); a Qwen3.5 (hybrid) model is
refused (notebook 06 opens that forward pass layer by layer). Shapes use the legend of minillm/__init__.py (T tokens, D hidden, H query heads,
K key/value heads, Dh head dim, F MLP width, V vocab).
"""

from __future__ import annotations

import numpy as np

from ..checkpoint.config import QwenConfig
from ..checkpoint.weights import ModelWeights
from ..errors import InputError
from .activations import silu, softmax
from .linear import linear
from .norm import rms_norm
from .rope import rope_cos_sin, rope_frequencies, rotate_half


def plain_forward(weights: ModelWeights, config: QwenConfig, ids) -> np.ndarray:
    """Next-token logits at every position of one sequence.   ids [T] -> logits [T, V] float32"""
    c, w = config, weights
    if c.is_hybrid or c.is_moe:
        raise InputError(f"plain_forward covers the dense Qwen2/Qwen3 models; use Model.forward for {c.model_type} "
                         f"({'a mixture of experts' if c.is_moe else 'hybrid linear attention'})")
    H, K, Dh, eps = c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.rms_norm_eps
    ids = np.asarray(ids)  # [T] token ids; token t sits at position t
    T = len(ids)

    # RoPE: the angles depend only on the positions 0..T-1, the same in every layer: compute them once.
    inv_freq, scaling = rope_frequencies(Dh, c.rope, c.max_position_embeddings, seq_len=T)  # [Dh/2], YaRN factor
    cos, sin = rope_cos_sin(np.arange(T), inv_freq, scaling)  # [T, Dh] each, [angle, angle] for rotate-half

    # Masks: query i sees key j iff j <= i (causal); sliding-window layers also need j > i - sliding_window.
    i, j = np.arange(T)[:, None], np.arange(T)[None, :]  # [T, 1] query positions, [1, T] key positions
    causal = j <= i  # [T, T] bool, True = may attend
    window = causal & (j > i - c.sliding_window) if c.sliding_window else causal  # [T, T]

    x = w.embed_tokens[ids]  # [T, D]: one row of the embedding per token (no position embedding)
    for n, layer in enumerate(w.layers):
        # --- attention sub-layer: x + Attention(RMSNorm(x)) ---
        a = layer.self_attn
        h = rms_norm(x, layer.input_layernorm, eps)  # [T, D]
        q = linear(h, a.q_proj, a.q_proj_bias).reshape(T, H, Dh).transpose(1, 0, 2)  # [T, H*Dh] -> [H, T, Dh]
        k = linear(h, a.k_proj, a.k_proj_bias).reshape(T, K, Dh).transpose(1, 0, 2)  # [T, K*Dh] -> [K, T, Dh]
        v = linear(h, a.v_proj, a.v_proj_bias).reshape(T, K, Dh).transpose(1, 0, 2)  # [T, K*Dh] -> [K, T, Dh]
        if a.q_norm is not None:  # Qwen3: RMSNorm over Dh of every head, before RoPE
            q, k = rms_norm(q, a.q_norm, eps), rms_norm(k, a.k_norm, eps)  # [H, T, Dh], [K, T, Dh]
        q = q * cos + rotate_half(q) * sin  # [H, T, Dh]: pair (j, j + Dh/2) turned by position * inv_freq[j]
        k = k * cos + rotate_half(k) * sin  # [K, T, Dh]; values are not rotated
        k = np.repeat(k, H // K, axis=0)  # [H, T, Dh]: query head h reads key head h // (H/K) (GQA)
        v = np.repeat(v, H // K, axis=0)  # [H, T, Dh]
        scores = q @ k.transpose(0, 2, 1) * Dh ** -0.5  # [H, T, Dh] @ [H, Dh, T] -> [H, T, T]
        mask = window if c.uses_sliding_window(n) else causal  # [T, T]
        probs = softmax(np.where(mask, scores, -np.inf))  # [H, T, T]: each row sums to 1 over allowed keys
        out = (probs @ v).transpose(1, 0, 2).reshape(T, H * Dh)  # [H, T, Dh] -> [T, H*Dh]: heads side by side
        x = x + linear(out, a.o_proj, a.o_proj_bias)  # [T, D]: added to the residual stream
        # --- MLP sub-layer (SwiGLU): x + MLP(RMSNorm(x)) ---
        m = layer.mlp
        h = rms_norm(x, layer.post_attention_layernorm, eps)  # [T, D]
        gated = silu(linear(h, m.gate_proj)) * linear(h, m.up_proj)  # [T, F]
        x = x + linear(gated, m.down_proj)  # [T, F] -> [T, D]

    x = rms_norm(x, w.norm, eps)  # [T, D]: the final norm
    return x @ w.lm_head.T  # [T, D] @ [D, V] -> [T, V] (lm_head is embed_tokens itself when tied)
