"""The Gated DeltaNet layer: Qwen3.5's linear attention (three of every four layers).

    mixed  = x Wqkv^T                                   [T, C]   C = 2 Hk Dk + Hv Dv, columns [q | k | v]
    z      = x Wz^T                                     [T, Hv, Dv]  the output gate
    b, a   = x Wb^T, x Wa^T                             [T, Hv]      write strength and decay, per value head
    mixed  = silu(causal_conv1d(mixed))                 conv.py: each channel sees its last W inputs
    q, k   = split(mixed) -> [T, Hk, Dk];  v -> [T, Hv, Dv]
    q, k   = repeat each key head for Hv / Hk value heads    (value head h reads key head h // (Hv/Hk))
    q, k   = q / |q| / sqrt(Dk),  k / |k|               L2 norms (eps 1e-6 on the sum of squares)
    beta   = sigmoid(b)                                 in (0, 1): how strongly token t overwrites the memory
    g      = -exp(A_log) * softplus(a + dt_bias)        <= 0: log of how much the memory keeps per token
    o      = gated delta rule(q, k, v, g, beta)         delta_rule.py, from the memory left by earlier tokens
    o      = RMSNorm(o; norm) * silu(z)                 per head over Dv, plain gain (norm.py: gated_rms_norm)
    y      = o Wout^T

Qwen3-Next is the same layer with the four input projections stored as two, grouped per key head
(``grouped_projections`` below: the one place where the two families differ).

Everything a token needs from the past is in two small arrays, the *state*: the conv's last W-1 inputs
and the delta rule's memory S [Hv, Dk, Dv]. Their size does not depend on the context length: a
Qwen3.5-0.8B layer keeps 1.1 MB per sequence whether it has read ten tokens or a million.

+--------------------------------------------------------------------------------------------------------+
| VALUE HEADS SHARE KEY HEADS BY REPEAT, NOT TILE. With Hv = r * Hk, value heads h*r .. h*r + r-1 all    |
| read key head h (np.repeat: k0 k0 k1 k1), as GQA does. np.tile (k0 k1 k0 k1) pairs heads wrongly and   |
| moves tiny-model logits by 5. Qwen3.5-0.8B has Hv = Hk and cannot show the bug; the 27B (16 / 48) can. |
+--------------------------------------------------------------------------------------------------------+
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import sigmoid, silu, softplus
from .conv import causal_conv1d, causal_conv1d_step
from .delta_memory import DeltaMemory  # the memory of a generation step, its writes kept aside
from .delta_rule import chunked_gated_delta_rule, recurrent_gated_delta_rule
from .fast_linear import fast_linear as linear  # y = x W^T + b (linear.py), at full speed
from .fused_linear import projections  # the four input projections as one product, when fused at load
from .norm import gated_rms_norm


@dataclass
class GatedDeltaNetWeights:
    """``model.layers.{i}.linear_attn.*``, stored as in the checkpoint: Qwen3.5's four input projections or
    Qwen3-Next's two (the others are None)."""

    conv1d: np.ndarray  # [C, 1, W]   depthwise: one W-tap filter per channel ("conv1d.weight")
    A_log: np.ndarray  # [Hv]        log of the decay rate (no ".weight" in the checkpoint name)
    dt_bias: np.ndarray  # [Hv]
    norm: np.ndarray  # [Dv]        gated RMSNorm gain: plain, NOT zero-centred
    out_proj: np.ndarray  # [D, Hv*Dv]
    in_proj_qkv: np.ndarray | None = None  # [C, D]      rows [q (Hk*Dk) | k (Hk*Dk) | v (Hv*Dv)]   Qwen3.5
    in_proj_z: np.ndarray | None = None  # [Hv*Dv, D]
    in_proj_b: np.ndarray | None = None  # [Hv, D]
    in_proj_a: np.ndarray | None = None  # [Hv, D]
    in_proj_qkvz: np.ndarray | None = None  # [2*Hk*Dk + 2*Hv*Dv, D]  grouped per key head     Qwen3-Next
    in_proj_ba: np.ndarray | None = None  # [2*Hv, D]                grouped per key head


class LinearAttentionState:
    """What a linear-attention layer remembers between calls, for B sequences (zeros before the first token).

    conv [B, W-1, C]: the last W-1 inputs of the conv (before the conv and its SiLU).
    recurrent [B, Hv, Dk, Dv]: the delta rule's memory S, one matrix per value head. Generation steps keep their
    writes to it aside for a few tokens (``memory``, delta_memory.py); reading ``recurrent`` puts them in first,
    so it is always the exact memory. Assigning it replaces the memory.
    """

    def __init__(self, conv: np.ndarray, recurrent: np.ndarray):
        self.conv = conv  # [B, W-1, C]
        self.memory = DeltaMemory(recurrent)  # S [B, Hv, Dk, Dv] and the writes kept aside

    @property
    def recurrent(self) -> np.ndarray:
        return self.memory.applied()  # [B, Hv, Dk, Dv]

    @recurrent.setter
    def recurrent(self, value: np.ndarray) -> None:
        self.memory.replace(value)

    @property
    def nbytes(self) -> int:
        return self.conv.nbytes + self.memory.nbytes


def l2_normalize(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """x / sqrt(sum(x^2) + eps) over the last axis.   [..., N] -> [..., N]

    eps is fixed at 1e-6 and added to the SUM of squares (not rms_norm_eps, not the mean): a zero vector
    (a padding token) stays zero instead of becoming NaN.
    """
    return x * (np.float32(1.0) / np.sqrt(np.square(x).sum(axis=-1, keepdims=True) + np.float32(eps)))


def grouped_projections(qkvz: np.ndarray, ba: np.ndarray, num_key_heads: int, num_value_heads: int, Dk: int,
                        Dv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Qwen3-Next's two projection outputs, reordered into Qwen3.5's four.

    qkvz [B, T, 2 Hk Dk + 2 Hv Dv], ba [B, T, 2 Hv] -> mixed [B, T, C] (columns [q | k | v]), z [B, T, Hv, Dv],
    b, a [B, T, Hv] each.

    +----------------------------------------------------------------------------------------------------+
    | GROUPED PER KEY HEAD, NOT FOUR BLOCKS. With r = Hv / Hk value heads per key head, in_proj_qkvz's   |
    | rows come in Hk groups, group j = [q_j (Dk) | k_j (Dk) | v of value heads jr..jr+r-1 (r Dv) |      |
    | z of the same heads (r Dv)], and in_proj_ba's in Hk groups [b (r) | a (r)]. Cutting the output in  |
    | four contiguous blocks is right only when Hk = 1. (transformers: fix_query_key_value_ordering.)    |
    +----------------------------------------------------------------------------------------------------+
    """
    B, T = qkvz.shape[:2]
    Hk, r = num_key_heads, num_value_heads // num_key_heads
    groups = qkvz.reshape(B, T, Hk, 2 * Dk + 2 * r * Dv)  # [B, T, Hk, 2 Dk + 2 r Dv]: one group per key head
    q, k, v, z = np.split(groups, [Dk, 2 * Dk, 2 * Dk + r * Dv], axis=-1)  # [B, T, Hk, Dk] x2, [B, T, Hk, r Dv] x2
    b, a = np.split(ba.reshape(B, T, Hk, 2 * r), 2, axis=-1)  # [B, T, Hk, r] each
    flat = lambda t: t.reshape(B, T, -1)  # [B, T, Hk, n] -> [B, T, Hk n]: value heads in order jr + i
    mixed = np.concatenate([flat(q), flat(k), flat(v)], axis=-1)  # [B, T, C], the conv's channel order
    return mixed, z.reshape(B, T, num_value_heads, Dv), flat(b), flat(a)


def input_projections(x: np.ndarray, w: GatedDeltaNetWeights, num_key_heads: int, num_value_heads: int, Dk: int,
                      Dv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x [B, T, D] -> mixed [B, T, C] (columns [q | k | v]), z [B, T, Hv, Dv], b, a [B, T, Hv] each."""
    B, T, _ = x.shape
    if w.in_proj_qkvz is not None:  # Qwen3-Next: two projections, grouped per key head
        return grouped_projections(linear(x, w.in_proj_qkvz), linear(x, w.in_proj_ba), num_key_heads,
                                   num_value_heads, Dk, Dv)
    mixed, z, b, a = projections(x, w.in_proj_qkv, w.in_proj_z, w.in_proj_b, w.in_proj_a)  # one product if
    #   fused at load (fused_linear.py): [B, T, D] -> [B, T, C], [B, T, Hv*Dv], [B, T, Hv] x2
    return mixed, z.reshape(B, T, num_value_heads, Dv), b, a  # z [B, T, Hv, Dv]


def write_strength_and_log_decay(b: np.ndarray, a: np.ndarray, w: GatedDeltaNetWeights) -> tuple[np.ndarray, np.ndarray]:
    """beta = sigmoid(b), g = -exp(A_log) * softplus(a + dt_bias).   b, a [..., Hv] -> beta, g [..., Hv]

    beta in (0, 1): how strongly the token overwrites the memory. g <= 0: the memory keeps exp(g) of itself
    at this token (exp(A_log) is the head's rate, the token modulates it through a).
    """
    beta = sigmoid(b)  # [..., Hv] in (0, 1)
    g = -np.exp(w.A_log) * softplus(a + w.dt_bias)  # [..., Hv] <= 0; the memory keeps exp(g) of itself
    return beta, g


def gated_deltanet(x: np.ndarray, w: GatedDeltaNetWeights, num_key_heads: int, num_value_heads: int, eps: float,
                   state: LinearAttentionState | None = None, valid: np.ndarray | None = None,
                   chunked: bool = True) -> np.ndarray:
    """The whole linear-attention sub-layer.   x [B, T, D] -> [B, T, D]

    ``state``: the layer's memory from earlier calls (cache.py); read, then replaced by the memory after
    these T tokens. None: start from zeros and keep nothing.
    ``valid`` [B, T] bool: False for left padding, whose input is zeroed (see below).
    ``chunked``: the chunked form of the delta rule (prefill); False runs the token-by-token recurrence.
    """
    B, T, _ = x.shape
    Hk, Hv, Dv = num_key_heads, num_value_heads, w.norm.shape[0]
    Dk = (w.conv1d.shape[0] - Hv * Dv) // (2 * Hk)  # C = 2 Hk Dk + Hv Dv
    if valid is not None and not valid.all():
        # Padding must leave no trace: with no biases, a zero input gives q = k = v = 0, a zero conv output and
        # a zero write, so a memory that starts at 0 stays 0 through the pads (its decay g is not 0, but 0
        # decays to 0). That is exact for LEFT padding only: a pad after real tokens would still decay them.
        x = x * valid[..., None]  # [B, T, D]

    if T == 1 and state is not None:  # a generation step: the same math in fewer NumPy calls (below)
        return gated_deltanet_decode_step(x, w, Hk, Hv, Dk, Dv, eps, state)

    mixed, z, b, a = input_projections(x, w, Hk, Hv, Dk, Dv)  # [B, T, C], [B, T, Hv, Dv], [B, T, Hv] x2

    C, W = w.conv1d.shape[0], w.conv1d.shape[-1]
    conv_state = state.conv if state is not None else np.zeros((B, W - 1, C), np.float32)  # [B, W-1, C]
    mixed, conv_state = causal_conv1d(mixed, w.conv1d[:, 0, :], conv_state)  # [B, T, C], [B, W-1, C]
    mixed = silu(mixed)  # [B, T, C]

    q = mixed[..., :Hk * Dk].reshape(B, T, Hk, Dk)  # [B, T, Hk, Dk]
    k = mixed[..., Hk * Dk:2 * Hk * Dk].reshape(B, T, Hk, Dk)  # [B, T, Hk, Dk]
    v = mixed[..., 2 * Hk * Dk:].reshape(B, T, Hv, Dv)  # [B, T, Hv, Dv]
    if Hv != Hk:  # value head h reads key head h // (Hv / Hk): repeat (k0 k0 k1 k1), never tile (k0 k1 k0 k1)
        q, k = np.repeat(q, Hv // Hk, axis=2), np.repeat(k, Hv // Hk, axis=2)  # [B, T, Hv, Dk] each
    q = l2_normalize(q) * np.float32(Dk ** -0.5)  # [B, T, Hv, Dk]: unit length, then 1/sqrt(Dk)
    k = l2_normalize(k)  # [B, T, Hv, Dk]: unit keys keep the delta rule stable (|k.k| <= 1)

    beta, g = write_strength_and_log_decay(b, a, w)  # [B, T, Hv] each

    heads_first = lambda t: t.swapaxes(1, 2)  # [B, T, Hv, ...] -> [B, Hv, T, ...] (a view)
    memory = state.recurrent if state is not None else np.zeros((B, Hv, Dk, Dv), np.float32)  # [B, Hv, Dk, Dv]
    delta_rule = chunked_gated_delta_rule if chunked else recurrent_gated_delta_rule
    o, memory = delta_rule(heads_first(q), heads_first(k), heads_first(v), heads_first(g), heads_first(beta),
                           memory)  # [B, Hv, T, Dv], [B, Hv, Dk, Dv]
    if state is not None:
        state.conv[...] = conv_state  # [B, W-1, C], copied: conv_state is a view into this call's inputs
        state.recurrent = memory  # [B, Hv, Dk, Dv], a new array: the cache now holds it (no copy)

    o = gated_rms_norm(o.transpose(0, 2, 1, 3), z, w.norm, eps)  # [B, T, Hv, Dv]: per head, gated by z
    return linear(o.reshape(B, T, Hv * Dv), w.out_proj)  # [B, T, Hv*Dv] -> [B, T, D]


def gated_deltanet_decode_step(x: np.ndarray, w: GatedDeltaNetWeights, num_key_heads: int, num_value_heads: int,
                               Dk: int, Dv: int, eps: float, state: LinearAttentionState) -> np.ndarray:
    """``gated_deltanet`` for ONE new token per row, continuing ``state`` (updated in place).   x [B, 1, D] -> [B, 1, D]

    The engine's decode path: the same math as gated_deltanet with T = 1 and the recurrent delta rule (the same
    numbers up to float32 rounding, tests/test_plain.py), in fewer NumPy calls and memory passes, as a
    generation step runs it for every linear-attention layer (18 in Qwen3.5-0.8B) on arrays of a few KB,
    plus the 1 MB memory S per layer and row. What it fuses:
    * the four input projections are one matrix-vector product when the loader laid them out as one array
      (input_projections, fused_linear.py);
    * the conv multiplies each tap where its input lies and shifts the state in place (conv.causal_conv1d_step);
    * q and k are L2-normalised in one call (they are the first 2 Hk Dk channels of the conv's output);
    * the delta rule reads the memory once and keeps its write aside for a few tokens (delta_memory.py).
    """
    B, _, _ = x.shape
    Hk, Hv = num_key_heads, num_value_heads
    mixed, z, b, a = input_projections(x, w, Hk, Hv, Dk, Dv)  # [B, 1, C], [B, 1, Hv, Dv], [B, 1, Hv] x2
    mixed = silu(causal_conv1d_step(mixed[:, 0], w.conv1d[:, 0, :], state.conv))  # [B, C]

    qk = l2_normalize(mixed[:, :2 * Hk * Dk].reshape(B, 2, Hk, Dk))  # [B, 2, Hk, Dk]: q and k, unit length
    q, k = qk[:, 0] * np.float32(Dk ** -0.5), qk[:, 1]  # [B, Hk, Dk] each: q also scaled by 1/sqrt(Dk)
    v = mixed[:, 2 * Hk * Dk:].reshape(B, Hv, Dv)  # [B, Hv, Dv]
    if Hv != Hk:  # value head h reads key head h // (Hv / Hk): repeat, never tile (see the box above)
        q, k = np.repeat(q, Hv // Hk, axis=1), np.repeat(k, Hv // Hk, axis=1)  # [B, Hv, Dk] each
    beta, g = write_strength_and_log_decay(b[:, 0], a[:, 0], w)  # [B, Hv] each

    o = state.memory.step(q, k, v, g, beta)  # [B, Hv, Dv]; the memory updated (delta_memory.py)
    o = gated_rms_norm(o, z[:, 0], w.norm, eps)  # [B, Hv, Dv]: per head, gated by z
    return linear(o.reshape(B, 1, Hv * Dv), w.out_proj)  # [B, 1, Hv*Dv] -> [B, 1, D]
