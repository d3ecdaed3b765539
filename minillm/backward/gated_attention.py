"""Backward of gated full attention (model/gated_attention.py): Qwen3 attention's backward plus three changes.

    forward                                         backward
    q|gate = x Wq^T   (interleaved per head)         dWq from [dq | dgate] put back in the same per-head layout
    q, k   = (1 + w)-RMSNorm(q), (k)                 norm.zero_centred_rms_norm_backward (gain 1 + w: dw = dgain)
    q, k   = partial RoPE (first R dims)             rope.apply_rope_backward on dims 0 .. R-1; the rest pass
    o      = causal attention(q, k, v)               attention.causal_attention_backward (GQA sums included)
    out    = o * sigmoid(gate)                       do = dout * s,  dgate = dout * o * s (1 - s)
    y      = out Wo^T                                linear_backward
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.activations import sigmoid
from ..model.attention import merge_heads, split_heads
from ..model.gated_attention import GatedAttentionWeights
from ..model.fast_linear import fast_linear as linear  # y = x W^T + b (model/linear.py), at full speed
from ..model.norm import zero_centred_rms_norm
from ..model.rope import apply_partial_rope
from .attention import QUERY_BLOCK, causal_attention, causal_attention_backward
from .linear import linear_backward
from .norm import zero_centred_rms_norm_backward
from .rope import apply_rope_backward


@dataclass
class GatedAttentionActivations:
    """What ``gated_self_attention_forward`` keeps for ``gated_self_attention_backward``."""

    x: np.ndarray  # [B, T, D]       the input (already normed)
    q: np.ndarray  # [B, H, T, Dh]   q before its norm
    k: np.ndarray  # [B, K, T, Dh]   k before its norm
    gate: np.ndarray  # [B, T, H*Dh] the output gate, before sigmoid
    q_rot: np.ndarray  # [B, H, T, Dh]
    k_rot: np.ndarray  # [B, K, T, Dh]
    v: np.ndarray  # [B, K, T, Dh]
    probs: list[np.ndarray]  # per query block (attention.causal_attention)
    merged: np.ndarray  # [B, T, H*Dh]  the attention output before the gate


def partial_rope_backward(dy: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """dx of apply_partial_rope: the first R dims rotated back, the others unchanged.
    dy [B, heads, T, Dh], cos/sin [B or 1, T, R] -> [B, heads, T, Dh]"""
    R = cos.shape[-1]
    return np.concatenate([apply_rope_backward(dy[..., :R], cos, sin), dy[..., R:]], axis=-1)


def gated_self_attention_forward(x: np.ndarray, w: GatedAttentionWeights, num_heads: int, num_kv_heads: int,
                                 eps: float, cos: np.ndarray, sin: np.ndarray,
                                 mask: np.ndarray) -> tuple[np.ndarray, GatedAttentionActivations]:
    """The gated attention sub-layer (no cache), keeping what the backward needs.
    x [B, T, D], cos/sin [1, T, R], mask [1, 1, T, T] -> [B, T, D], GatedAttentionActivations"""
    B, T, _ = x.shape
    Dh = w.q_norm.shape[0]
    q_and_gate = linear(x, w.q_proj).reshape(B, T, num_heads, 2 * Dh)  # [B, T, H, 2*Dh]: interleaved per head
    q = q_and_gate[..., :Dh].transpose(0, 2, 1, 3)  # [B, H, T, Dh]
    gate = q_and_gate[..., Dh:].reshape(B, T, num_heads * Dh)  # [B, T, H*Dh]
    k = split_heads(linear(x, w.k_proj), num_kv_heads)  # [B, K, T, Dh]
    v = split_heads(linear(x, w.v_proj), num_kv_heads)  # [B, K, T, Dh]
    q_rot = apply_partial_rope(zero_centred_rms_norm(q, w.q_norm, eps), cos, sin)  # [B, H, T, Dh]
    k_rot = apply_partial_rope(zero_centred_rms_norm(k, w.k_norm, eps), cos, sin)  # [B, K, T, Dh]
    o, probs = causal_attention(q_rot, k_rot, v, mask, QUERY_BLOCK)  # [B, H, T, Dh]
    merged = merge_heads(o)  # [B, T, H*Dh]
    y = linear(merged * sigmoid(gate), w.o_proj)  # [B, T, D]
    return y, GatedAttentionActivations(x=x, q=q, k=k, gate=gate, q_rot=q_rot, k_rot=k_rot, v=v, probs=probs,
                                        merged=merged)


def gated_self_attention_backward(dy: np.ndarray, saved: GatedAttentionActivations, w: GatedAttentionWeights,
                                  num_heads: int, num_kv_heads: int, eps: float, cos: np.ndarray,
                                  sin: np.ndarray) -> tuple[np.ndarray, GatedAttentionWeights]:
    """dx and a GatedAttentionWeights of gradients.   dy [B, T, D] -> dx [B, T, D], GatedAttentionWeights"""
    B, T, _ = dy.shape
    H, Dh = num_heads, w.q_norm.shape[0]
    s = sigmoid(saved.gate)  # [B, T, H*Dh]
    d_gated, d_o_proj, _ = linear_backward(dy, saved.merged * s, w.o_proj)  # [B, T, H*Dh], [D, H*Dh]
    d_merged = d_gated * s  # [B, T, H*Dh]
    d_gate = d_gated * saved.merged * s * (1 - s)  # [B, T, H*Dh]
    dq, dk, dv = causal_attention_backward(split_heads(d_merged, H), saved.q_rot, saved.k_rot, saved.v,
                                           saved.probs)  # [B, H|K, T, Dh]
    dq, d_q_norm = zero_centred_rms_norm_backward(partial_rope_backward(dq, cos, sin), saved.q, w.q_norm, eps)
    dk, d_k_norm = zero_centred_rms_norm_backward(partial_rope_backward(dk, cos, sin), saved.k, w.k_norm, eps)
    d_q_and_gate = np.concatenate([dq.transpose(0, 2, 1, 3), d_gate.reshape(B, T, H, Dh)], axis=-1)  # [B, T, H, 2Dh]
    dx, d_q_proj, _ = linear_backward(d_q_and_gate.reshape(B, T, H * 2 * Dh), saved.x, w.q_proj)  # [B, T, D]
    dx_k, d_k_proj, _ = linear_backward(merge_heads(dk), saved.x, w.k_proj)  # [B, T, D]
    dx_v, d_v_proj, _ = linear_backward(merge_heads(dv), saved.x, w.v_proj)  # [B, T, D]
    return dx + dx_k + dx_v, GatedAttentionWeights(q_proj=d_q_proj, k_proj=d_k_proj, v_proj=d_v_proj,
                                                   o_proj=d_o_proj, q_norm=d_q_norm, k_norm=d_k_norm)
