"""Gated full attention (Qwen3.5's every fourth layer): Qwen3 attention plus an output gate and partial RoPE.

    q|gate = x Wq^T                           [T, H, 2*Dh]: per head, the query and a gate of the same size
    k, v   = x Wk^T, x Wv^T                    [T, K, Dh]
    q, k   = ZeroCentredRMSNorm(q), (k)        per head over Dh, BEFORE RoPE (as Qwen3, but with 1 + w)
    q, k   = partial RoPE                      only the first R = int(Dh * partial_rotary_factor) dims
    out    = softmax(q k^T / sqrt(Dh) + mask) v           as dense attention (attention.py): GQA, causal mask
    out    = out * sigmoid(gate)               elementwise, per channel, BEFORE o_proj
    y      = out Wo^T

+--------------------------------------------------------------------------------------------------------+
| q_proj IS INTERLEAVED PER HEAD. Its 2*H*Dh output rows are [q_0 | gate_0 | q_1 | gate_1 | ...], Dh    |
| each: reshape to [T, H, 2*Dh] and split the last axis. Splitting the flat output in two halves         |
| ([all queries | all gates]) mixes queries and gates of different heads (logits off by 1.5 to 3.5).      |
+--------------------------------------------------------------------------------------------------------+

The gate lets each head switch its own output off (sigmoid near 0) for tokens where attending is useless,
without the "attention sink" trick of parking probability on the first token. The scale is still
1/sqrt(Dh) with the whole head dim, although only R dims are rotated. transformers ignores the config key
``attn_output_gate``: the gate is always there, and so it is here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import sigmoid
from .attention import merge_heads, scaled_dot_product_attention, split_heads
from .fast_linear import fast_linear as linear  # y = x W^T + b (linear.py), at full speed
from .fused_linear import projections  # q/k/v as one product, when fused at load
from .norm import zero_centred_rms_norm
from .rope import apply_partial_rope


@dataclass
class GatedAttentionWeights:
    """``model.layers.{i}.self_attn.*`` of a full-attention layer of Qwen3.5 (projections [out, in])."""

    q_proj: np.ndarray  # [H*2*Dh, D]  per head: Dh query rows, then Dh gate rows
    k_proj: np.ndarray  # [K*Dh, D]
    v_proj: np.ndarray  # [K*Dh, D]
    o_proj: np.ndarray  # [D, H*Dh]
    q_norm: np.ndarray  # [Dh]  zero-centred
    k_norm: np.ndarray  # [Dh]  zero-centred


def project_gated_qkv(x: np.ndarray, w: GatedAttentionWeights, num_heads: int, num_kv_heads: int, eps: float,
                      cos: np.ndarray, sin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Queries, keys, values and the output gate of the new tokens, ready for attention (and the KV cache).

    x [B, T, D], cos/sin [B, T, R] -> q [B, H, T, Dh], k [B, K, T, Dh] (normed, partially rotated),
    v [B, K, T, Dh], gate [B, T, H*Dh] (before its sigmoid, in the layout of the merged heads)
    """
    B, T, _ = x.shape
    Dh = w.q_norm.shape[0]
    q_and_gate, k, v = projections(x, w.q_proj, w.k_proj, w.v_proj)  # [B, T, H*2*Dh], [B, T, K*Dh] x2
    q_and_gate = q_and_gate.reshape(B, T, num_heads, 2 * Dh)  # [B, T, H, 2*Dh]: interleaved per head
    q = q_and_gate[..., :Dh].transpose(0, 2, 1, 3)  # [B, H, T, Dh]
    gate = q_and_gate[..., Dh:].reshape(B, T, num_heads * Dh)  # [B, T, H*Dh], the layout of the merged output
    k = split_heads(k, num_kv_heads)  # [B, K, T, Dh]
    v = split_heads(v, num_kv_heads)  # [B, K, T, Dh]

    q = apply_partial_rope(zero_centred_rms_norm(q, w.q_norm, eps), cos, sin)  # [B, H, T, Dh]: norm, then RoPE
    k = apply_partial_rope(zero_centred_rms_norm(k, w.k_norm, eps), cos, sin)  # [B, K, T, Dh]
    return q, k, v, gate


def gated_self_attention(x: np.ndarray, w: GatedAttentionWeights, num_heads: int, num_kv_heads: int, eps: float,
                         cos: np.ndarray, sin: np.ndarray, mask: np.ndarray | None, kv_cache=None) -> np.ndarray:
    """The whole gated attention sub-layer.   x [B, T, D], cos/sin [B, T, R], mask [B or 1, 1, T, S] -> [B, T, D]

    ``kv_cache``: a ``LayerCache`` (cache.py) that stores the new k, v and returns all S cached ones.
    """
    q, k, v, gate = project_gated_qkv(x, w, num_heads, num_kv_heads, eps, cos, sin)  # [B, H|K, T, Dh], [B, T, H*Dh]
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)  # [B, K, S, Dh] each: the past keys/values followed by the new ones
    out = merge_heads(scaled_dot_product_attention(q, k, v, mask))  # [B, H, T, Dh] -> [B, T, H*Dh]
    return linear(out * sigmoid(gate), w.o_proj)  # gate each channel, then [B, T, H*Dh] -> [B, T, D]
