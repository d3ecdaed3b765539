"""Backward of causal grouped-query self-attention, in the same grouped layout as the forward.

Forward (model/attention.py), for one layer; G = H/K query heads share each key/value head:
    q, k, v  = x Wq^T + bq,  x Wk^T + bk,  x Wv^T + bv          split into heads
    q, k     = RMSNorm(q; q_norm), RMSNorm(k; k_norm)            Qwen3 only, per head, before RoPE
    q, k     = RoPE(q), RoPE(k)
    P        = softmax(q k^T * Dh^-0.5 + mask)                   q grouped as [B, K, G*T, Dh]: one matmul per KV head
    o        = P v,  merged to [B, T, H*Dh],  out = o Wo^T (+ bo)

Backward, from the end (dO = dL/do, each line the transpose of one forward line):
    dv = P^T dO          dP = dO v^T          dS = softmax_backward(dP, P) * Dh^-0.5
    dq = dS k            dk = dS^T q
then RoPE backward (rotate back), q/k-norm backward, and the three projections' backward; x feeds all three
projections, so dx is the sum of their three input gradients.

+--------------------------------------------------------------------------------------------------------+
| GQA: a key/value head is read by all G query heads of its group, so its gradient is the SUM over those |
| G heads. In the grouped layout the group's queries are the G*T rows of one matrix, so ``P^T dO`` and    |
| ``dS^T q`` (each [S, G*T] @ [G*T, Dh]) contract over all G*T rows: the group sum IS the matmul, no      |
| loop and no repeated K/V. (With K/V repeated per query head, you would have to add the copies back.)   |
+--------------------------------------------------------------------------------------------------------+

Training attention is causal, so it runs in blocks of query rows (``causal_attention``): rows t0..t1-1 can only
see keys 0..t1-1, and each block scores those keys only. For T = 512 in blocks of 128 that is 10/16 of the
full T x T scores, in the forward and in the backward; every block is the whole-matrix function on a slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.attention import AttentionWeights, attention_probs, merge_heads, split_heads
from ..model.fast_linear import fast_linear as linear  # y = x W^T + b (model/linear.py), at full speed
from ..model.norm import rms_norm
from ..model.rope import apply_rope
from .activations import softmax_backward
from .linear import linear_backward
from .norm import rms_norm_backward
from .rope import apply_rope_backward

QUERY_BLOCK = 128  # query rows per block of causal_attention


@dataclass
class AttentionActivations:
    """What ``self_attention_forward`` keeps for ``self_attention_backward`` (S = T: no cache in training)."""

    x: np.ndarray  # [B, T, D]      the input (already normed): the q/k/v weight gradients need it
    q: np.ndarray | None  # [B, H, T, Dh]  q before q-norm (Qwen3: its backward needs it); None without q/k-norm
    k: np.ndarray | None  # [B, K, T, Dh]  k before k-norm; None without q/k-norm
    q_rot: np.ndarray  # [B, H, T, Dh]  normed, rotated queries
    k_rot: np.ndarray  # [B, K, S, Dh]  normed, rotated keys
    v: np.ndarray  # [B, K, S, Dh]  values
    probs: list[np.ndarray]  # per query block t0..t1-1: [B, K, G*(t1-t0), t1] attention weights (causal_attention)
    merged: np.ndarray  # [B, T, H*Dh]   the attention output before o_proj: its weight gradient needs it


def scaled_dot_product_attention_backward(dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                                          probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dq, dk, dv of softmax(q k^T / sqrt(Dh) + mask) v, with H query heads grouped over K key/value heads.

    dout [B, H, T, Dh], q [B, H, T, Dh], k/v [B, K, S, Dh], probs [B, K, G*T, S] (the forward's weights)
    -> dq [B, H, T, Dh], dk [B, K, S, Dh], dv [B, K, S, Dh]
    """
    B, H, T, Dh = q.shape
    K, S = k.shape[1], k.shape[2]
    q = q.reshape(B, K, H // K * T, Dh)  # [B, K, G*T, Dh]: query head h is in group h // G, as in the forward
    dout = dout.reshape(B, K, H // K * T, Dh)  # [B, K, G*T, Dh]
    probs = probs.reshape(B, K, H // K * T, S)  # [B, K, G*T, S]
    dv = probs.swapaxes(-1, -2) @ dout  # [B, K, S, G*T] @ [B, K, G*T, Dh] -> [B, K, S, Dh]: summed over the group
    dprobs = dout @ v.swapaxes(-1, -2)  # [B, K, G*T, Dh] @ [B, K, Dh, S] -> [B, K, G*T, S]
    dscores = softmax_backward(dprobs, probs)  # [B, K, G*T, S]; masked keys get exactly 0
    dscores *= Dh ** -0.5  # the forward scaled the scores after the matmul, so the gradient is scaled here
    dq = dscores @ k  # [B, K, G*T, S] @ [B, K, S, Dh] -> [B, K, G*T, Dh]
    dk = dscores.swapaxes(-1, -2) @ q  # [B, K, S, G*T] @ [B, K, G*T, Dh] -> [B, K, S, Dh]: summed over the group
    return dq.reshape(B, H, T, Dh), dk, dv  # [B, H, T, Dh], [B, K, S, Dh] x2


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray,
                     block: int = QUERY_BLOCK) -> tuple[np.ndarray, list[np.ndarray]]:
    """softmax(q k^T / sqrt(Dh) + mask) v for a causal mask, ``block`` query rows at a time.

    q [B, H, T, Dh], k/v [B, K, T, Dh], mask [1, 1, T, T] bool, False above the diagonal
    -> out [B, H, T, Dh], probs: per block t0..t1-1 [B, K, G*(t1-t0), t1] (grouped as in the forward)
    """
    B, H, T, Dh = q.shape
    K = k.shape[1]
    out = np.empty_like(q)  # [B, H, T, Dh]
    probs = []
    for t0 in range(0, T, block):
        t1 = min(t0 + block, T)  # rows t0..t1-1 see keys 0..t1-1 only: the keys after t1 are all masked
        p = attention_probs(q[:, :, t0:t1], k[:, :, :t1], mask[:, :, t0:t1, :t1])  # [B, K, G, t1-t0, t1]
        p = p.reshape(B, K, -1, t1)  # [B, K, G*(t1-t0), t1]: a free view, the layout of the matmul
        o = p @ v[:, :, :t1]  # [B, K, G*(t1-t0), t1] @ [B, K, t1, Dh] -> [B, K, G*(t1-t0), Dh]
        out[:, :, t0:t1] = o.reshape(B, H, t1 - t0, Dh)  # [B, H, t1-t0, Dh]
        probs.append(p)
    return out, probs


def causal_attention_backward(dout: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                              probs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dq, dk, dv of causal_attention: each query block is scaled_dot_product_attention_backward on its slice.

    dout/q [B, H, T, Dh], k/v [B, K, T, Dh], probs from causal_attention -> dq [B, H, T, Dh], dk/dv [B, K, T, Dh]
    """
    dq = np.empty_like(q)  # [B, H, T, Dh]: each query row is in one block
    dk, dv = np.zeros_like(k), np.zeros_like(v)  # [B, K, T, Dh]: a key is seen by its own block and every later one
    t0 = 0
    for p in probs:
        t1 = p.shape[-1]  # the block's last row + 1: it sees keys 0..t1-1
        dq[:, :, t0:t1], dk_block, dv_block = scaled_dot_product_attention_backward(
            dout[:, :, t0:t1], q[:, :, t0:t1], k[:, :, :t1], v[:, :, :t1], p)  # [B, H, t1-t0, Dh], [B, K, t1, Dh] x2
        dk[:, :, :t1] += dk_block  # [B, K, t1, Dh]: summed over the blocks that see these keys
        dv[:, :, :t1] += dv_block
        t0 = t1
    return dq, dk, dv


def self_attention_forward(x: np.ndarray, w: AttentionWeights, num_heads: int, num_kv_heads: int, eps: float,
                           cos: np.ndarray, sin: np.ndarray,
                           mask: np.ndarray | None) -> tuple[np.ndarray, AttentionActivations]:
    """The attention sub-layer of model/attention.py (no cache), keeping what the backward needs.

    x [B, T, D], cos/sin [B or 1, T, Dh], mask [1, 1, T, T] -> out [B, T, D], AttentionActivations
    """
    q = split_heads(linear(x, w.q_proj, w.q_proj_bias), num_heads)  # [B, T, D] -> [B, H, T, Dh]
    k = split_heads(linear(x, w.k_proj, w.k_proj_bias), num_kv_heads)  # [B, T, D] -> [B, K, T, Dh]
    v = split_heads(linear(x, w.v_proj, w.v_proj_bias), num_kv_heads)  # [B, T, D] -> [B, K, T, Dh]
    q_normed, k_normed = q, k  # [B, H, T, Dh], [B, K, T, Dh]: Qwen2 has no q/k-norm
    if w.q_norm is not None:  # Qwen3: per-head RMSNorm over Dh, BEFORE RoPE (see model/attention.py)
        q_normed = rms_norm(q, w.q_norm, eps)  # [B, H, T, Dh]
        k_normed = rms_norm(k, w.k_norm, eps)  # [B, K, T, Dh]
    q_rot = apply_rope(q_normed, cos, sin)  # [B, H, T, Dh]
    k_rot = apply_rope(k_normed, cos, sin)  # [B, K, T, Dh]
    o, probs = causal_attention(q_rot, k_rot, v, mask, QUERY_BLOCK)  # [B, H, T, Dh], the weights per query block
    merged = merge_heads(o)  # [B, H, T, Dh] -> [B, T, H*Dh]
    out = linear(merged, w.o_proj, w.o_proj_bias)  # [B, T, H*Dh] -> [B, T, D]
    qk_normed = w.q_norm is not None
    return out, AttentionActivations(x=x, q=q if qk_normed else None, k=k if qk_normed else None,
                                     q_rot=q_rot, k_rot=k_rot, v=v, probs=probs, merged=merged)


def self_attention_backward(dout: np.ndarray, saved: AttentionActivations, w: AttentionWeights, num_heads: int,
                            num_kv_heads: int, eps: float, cos: np.ndarray,
                            sin: np.ndarray, frozen: bool = False) -> tuple[np.ndarray, AttentionWeights]:
    """dx and the gradient of every attention weight (an AttentionWeights of gradients, None where w has None;
    frozen: None for every plain projection, see linear_backward).

    dout [B, T, D], cos/sin [B or 1, T, Dh] as in the forward -> dx [B, T, D], AttentionWeights
    """
    d_merged, d_o_proj, d_o_bias = linear_backward(dout, saved.merged, w.o_proj, w.o_proj_bias,
                                                   frozen)  # [B, T, H*Dh]
    dq, dk, dv = causal_attention_backward(split_heads(d_merged, num_heads), saved.q_rot,
                                           saved.k_rot, saved.v, saved.probs)  # [B, H|K, T, Dh]
    dq = apply_rope_backward(dq, cos, sin)  # [B, H, T, Dh]: rotated back
    dk = apply_rope_backward(dk, cos, sin)  # [B, K, T, Dh]
    d_q_norm = d_k_norm = None
    if w.q_norm is not None:
        dq, d_q_norm = rms_norm_backward(dq, saved.q, w.q_norm, eps)  # [B, H, T, Dh], [Dh] summed over heads
        dk, d_k_norm = rms_norm_backward(dk, saved.k, w.k_norm, eps)  # [B, K, T, Dh], [Dh]
    dx_q, d_q_proj, d_q_bias = linear_backward(merge_heads(dq), saved.x, w.q_proj, w.q_proj_bias,
                                               frozen)  # [B, T, D]
    dx_k, d_k_proj, d_k_bias = linear_backward(merge_heads(dk), saved.x, w.k_proj, w.k_proj_bias,
                                               frozen)  # [B, T, D]
    dx_v, d_v_proj, d_v_bias = linear_backward(merge_heads(dv), saved.x, w.v_proj, w.v_proj_bias,
                                               frozen)  # [B, T, D]
    dx = dx_q + dx_k + dx_v  # [B, T, D]: x feeds all three projections
    return dx, AttentionWeights(q_proj=d_q_proj, k_proj=d_k_proj, v_proj=d_v_proj, o_proj=d_o_proj,
                                q_proj_bias=d_q_bias, k_proj_bias=d_k_bias, v_proj_bias=d_v_bias,
                                o_proj_bias=d_o_bias, q_norm=d_q_norm, k_norm=d_k_norm)
