"""Causal self-attention with rotary positions and grouped-query attention (GQA), as in Qwen2 and Qwen3.

    q, k, v = x Wq^T (+bq), x Wk^T (+bk), x Wv^T (+bv)          projections (Qwen2 always has q/k/v biases)
    split into heads:   q [H, T, Dh]    k, v [K, T, Dh]           H query heads share K key/value heads
    Qwen3 only:         q, k = RMSNorm(q; q_norm), RMSNorm(k; k_norm) per head, BEFORE RoPE
    q, k = RoPE(q), RoPE(k)
    scores  = q k^T * Dh^-0.5                                     [H, T, S]; Dh from the config, not D / H
    weights = softmax(scores + causal mask)                       in float32, max subtracted
    out     = (weights v) merged back to [T, H*Dh], then o_proj   (o_proj bias only in Qwen3 with attention_bias)

Why these pieces exist
* q/k/v biases: Qwen2 has them on q, k and v (never on o_proj), kept from the first Qwen models, whose report
  added them to help length extrapolation. Qwen3 dropped them (unless attention_bias) and added q/k-norm.
* q/k-norm (Qwen3): each head's query and key is RMS-normalised, so its size is set by a learned [Dh]
  weight instead of growing with the activations; the attention logits q . k then cannot blow up, which
  keeps training stable.
* GQA: K < H key/value heads, each shared by H/K query heads. The KV cache is H/K times smaller, and
  decoding, which reads the whole cache for every new token, reads H/K times fewer cached bytes, for
  little loss of quality (Ainslie et al. 2023). Qwen2.5-0.5B: H = 14, K = 2; Qwen3-0.6B: H = 16, K = 8.

GQA: query head h reads key/value head h // (H / K) ("repeat_interleave": heads 0,1 -> kv 0, heads 2,3 -> kv 1),
*not* h % K ("tile"). The obvious way to write it copies each key/value head once per query head:

    k_rep = np.repeat(k, H // K, axis=1)     # [B, K, S, Dh] -> [B, H, S, Dh]: kv 0, kv 0, kv 1, kv 1, ...
    v_rep = np.repeat(v, H // K, axis=1)
    out   = softmax(q @ k_rep^T * Dh^-0.5 + mask) @ v_rep      # plain per-head attention, [B, H, T, Dh]

That is ``naive_gqa_attention`` below (the tests check the fast path equals it). The fast path never makes
those copies: since the H/K query heads of group g are the consecutive heads g*(H/K) .. (g+1)*(H/K) - 1,
q [B, H, T, Dh] reshapes for free to [B, K, H/K * T, Dh]: for each key head, its group's queries stacked as
rows of one matrix, multiplied by that one key head [S, Dh]^T. The scores come out as [B, K, H/K, T, S]
(group, member of the group, query, key). Example, H = 4, K = 2: [B, 2, 2, T, S] holds query heads
(0, 1) in group 0, reading kv 0, and (2, 3) in group 1, reading kv 1; ``.reshape(B, H, T, S)`` gives back one
map per query head, in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import softmax
from .fast_linear import fast_linear as linear  # y = x W^T + b (linear.py), at full speed
from .norm import rms_norm
from . import prefill  # a prompt's pass: fused q/k/v product, RoPE in place, causal attention in blocks
from .fused_linear import projections  # the same for a few rows (decode): one product, cut in three
from .rope import apply_rope

# transformers' eager attention adds finfo(float32).min to masked scores rather than -inf, so a row with no
# allowed key (a padding query) becomes uniform instead of NaN. Every allowed score wins exactly over it.
MASKED = np.finfo(np.float32).min


@dataclass
class AttentionWeights:
    """``model.layers.{i}.self_attn.*``, stored as in the checkpoint (projections [out, in])."""

    q_proj: np.ndarray  # [H*Dh, D]
    k_proj: np.ndarray  # [K*Dh, D]
    v_proj: np.ndarray  # [K*Dh, D]
    o_proj: np.ndarray  # [D, H*Dh]
    q_proj_bias: np.ndarray | None = None  # [H*Dh]  Qwen2 always; Qwen3 if attention_bias
    k_proj_bias: np.ndarray | None = None  # [K*Dh]
    v_proj_bias: np.ndarray | None = None  # [K*Dh]
    o_proj_bias: np.ndarray | None = None  # [D]     Qwen3 with attention_bias only
    q_norm: np.ndarray | None = None  # [Dh]    Qwen3 only
    k_norm: np.ndarray | None = None  # [Dh]    Qwen3 only


def attention_probs(q: np.ndarray, k: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """softmax(q k^T / sqrt(Dh) + mask): how much each query attends to each key, per query head.

    q [B, H, T, Dh], k [B, K, S, Dh], mask [B or 1, 1, T, S] bool -> probs [B, K, H/K, T, S]
    (query head h = group h // (H/K), member h % (H/K); ``.reshape(B, H, T, S)`` gives one map per head)
    mask None means every query may see every key (one new token after an unpadded cache: decoding).
    """
    B, H, T, Dh = q.shape
    K, S = k.shape[1], k.shape[2]
    # The H/K query heads of a group all read the same key head, so stack them as rows of one matrix:
    # one [H/K*T, Dh] @ [Dh, S] product per key head, and K/V are never copied per query head.
    q = q.reshape(B, K, H // K * T, Dh)  # [B, K, H/K*T, Dh]: query head h is in group h // (H/K)
    scores = q @ k.swapaxes(-1, -2)  # [B, K, H/K*T, S]
    scores *= Dh ** -0.5  # scale after the matmul, as HF does (in place: these are the largest arrays)
    scores = scores.reshape(B, K, H // K, T, S)  # [B, K, H/K, T, S]
    if mask is not None:
        np.copyto(scores, MASKED, where=~mask[:, :, None])  # [B, K, H/K, T, S]: masked keys get MASKED
    return softmax(scores)  # [B, K, H/K, T, S], float32, each row sums to 1


def scaled_dot_product_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """softmax(q k^T / sqrt(Dh) + mask) v, with H query heads grouped over K shared key/value heads.

    q [B, H, T, Dh], k/v [B, K, S, Dh], mask [B or 1, 1, T, S] bool or None -> out [B, H, T, Dh]
    """
    B, H, T, Dh = q.shape
    K, S = k.shape[1], k.shape[2]
    if T > prefill.ATTENTION_BLOCK and mask is not None and mask.shape[0] == 1:  # a long prompt, no padding
        return prefill.causal_attention_in_blocks(q, k, v, mask)  # the same, skipping keys after each block
    probs = attention_probs(q, k, mask).reshape(B, K, H // K * T, S)  # [B, K, H/K*T, S]
    out = probs @ v  # [B, K, H/K*T, S] @ [B, K, S, Dh] -> [B, K, H/K*T, Dh]
    return out.reshape(B, H, T, Dh)  # [B, H, T, Dh]: back to one row block per query head


def naive_gqa_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The same result as scaled_dot_product_attention, the obvious way: copy K/V per query head, then attend.

    q [B, H, T, Dh], k/v [B, K, S, Dh], mask [B or 1, 1, T, S] bool or None -> out [B, H, T, Dh]
    For reading and for the tests only: the copies cost H/K times the memory of k and v.
    """
    H, K, Dh = q.shape[1], k.shape[1], q.shape[-1]
    k = np.repeat(k, H // K, axis=1)  # [B, H, S, Dh]: key head g copied to query heads g*(H/K) .. (g+1)*(H/K)-1
    v = np.repeat(v, H // K, axis=1)  # [B, H, S, Dh]
    scores = (q @ k.swapaxes(-1, -2)) * (Dh ** -0.5)  # [B, H, T, Dh] @ [B, H, Dh, S] -> [B, H, T, S]
    if mask is not None:
        scores = np.where(mask, scores, MASKED)  # [B, H, T, S]; the mask is the same for every head
    return softmax(scores) @ v  # [B, H, T, S] @ [B, H, S, Dh] -> [B, H, T, Dh]


def split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """[B, T, heads*Dh] -> [B, heads, T, Dh]; head n is columns n*Dh .. (n+1)*Dh - 1 (head-major)."""
    B, T, width = x.shape
    return x.reshape(B, T, num_heads, width // num_heads).transpose(0, 2, 1, 3)  # [B, heads, T, Dh]


def merge_heads(x: np.ndarray) -> np.ndarray:
    """[B, heads, T, Dh] -> [B, T, heads*Dh], the inverse of split_heads."""
    B, heads, T, Dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B, T, heads * Dh)  # [B, T, heads*Dh]


def project_qkv(x: np.ndarray, w: AttentionWeights, num_heads: int, num_kv_heads: int, eps: float,
                cos: np.ndarray, sin: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries, keys and values of the new tokens, ready for attention (and for the KV cache).

    x [B, T, D] -> q [B, H, T, Dh], k [B, K, T, Dh] (normed and rotated), v [B, K, T, Dh]
    """
    qkv_proj = prefill.fused_weight(w.q_proj, w.k_proj, w.v_proj) if prefill.many_rows(x) else None
    if qkv_proj is not None:  # a prompt: q, k, v as one product (the weights fused at load), RoPE in place
        qkv_bias = prefill.stacked(w.q_proj_bias, w.k_proj_bias, w.v_proj_bias) if w.q_proj_bias is not None else None
        if w.q_proj_bias is None or qkv_bias is not None:
            return prefill.project_qkv_fused(x, qkv_proj, qkv_bias, w, num_heads, num_kv_heads, eps, cos, sin)
    q, k, v = projections(x, w.q_proj, w.k_proj, w.v_proj,  # a few rows (decode): one product if fused at load
                          biases=(w.q_proj_bias, w.k_proj_bias, w.v_proj_bias))  # [B, T, H*Dh], [B, T, K*Dh] x2
    q = split_heads(q, num_heads)  # [B, T, H*Dh] -> [B, H, T, Dh]
    k = split_heads(k, num_kv_heads)  # [B, T, K*Dh] -> [B, K, T, Dh]
    v = split_heads(v, num_kv_heads)  # [B, T, K*Dh] -> [B, K, T, Dh]
    if w.q_norm is not None:
        # Qwen3: RMSNorm over Dh of every head, after the head split and BEFORE RoPE. The learned [Dh]
        # weight does not commute with the rotation, so doing it after RoPE gives different numbers.
        q = rms_norm(q, w.q_norm, eps)  # [B, H, T, Dh]
        k = rms_norm(k, w.k_norm, eps)  # [B, K, T, Dh]
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v  # values are never rotated


def self_attention(x: np.ndarray, w: AttentionWeights, num_heads: int, num_kv_heads: int, eps: float,
                   cos: np.ndarray, sin: np.ndarray, mask: np.ndarray, kv_cache=None, last: int = 0) -> np.ndarray:
    """The whole attention sub-layer: project, rotate, (cache), attend, merge, o_proj.

    x [B, T, D], cos/sin [B, T, Dh], mask [B or 1, 1, T, S] -> [B, T, D]
    ``kv_cache``: a ``LayerCache`` (see cache.py) that stores the new k, v and returns all S cached ones.
    ``last``: if 0 < last < T, only the last ``last`` positions attend (-> [B, last, D]); every position's
    k and v are still computed and cached (the model's last layer when only the last logits are asked for).
    """
    q, k, v = project_qkv(x, w, num_heads, num_kv_heads, eps, cos, sin)  # [B, H, T, Dh], [B, K, T, Dh] x2
    if kv_cache is not None:
        k, v = kv_cache.append(k, v)  # [B, K, S, Dh] each: the past keys/values followed by the new ones
    if 0 < last < q.shape[2]:  # the other queries' outputs would not be used: not computed
        q = q[:, :, -last:]  # [B, H, last, Dh]
        mask = None if mask is None else mask[:, :, -last:]  # [B or 1, 1, last, S]
    out = scaled_dot_product_attention(q, k, v, mask)  # [B, H, T or last, Dh]
    return linear(merge_heads(out), w.o_proj, w.o_proj_bias)  # [B, T or last, H*Dh] -> [B, T or last, D]
