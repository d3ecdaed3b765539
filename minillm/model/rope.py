"""Rotary position embedding (RoPE, Su et al. 2021), in the "rotate-half" convention of Qwen and transformers.

RoPE encodes a token's position p by rotating pairs of coordinates of its query and key vectors by angles
``p * inv_freq[j]``. Because a rotation by a and a rotation by b combine into one by (b - a), the score
q_p . k_s depends on the positions only through p - s: attention sees *relative* positions.

    inv_freq[j] = 1 / theta ** (2j / Dh)          j = 0 .. Dh/2 - 1   (fast rotations first)
    angle[p, j] = p * inv_freq[j]
    x'          = x * cos(angle) + rotate_half(x) * sin(angle)

The same, one coordinate at a time (j < Dh/2, the angle a = p * inv_freq[j]):

    x'[j]        = x[j] cos(a) - x[j + Dh/2] sin(a)
    x'[j + Dh/2] = x[j + Dh/2] cos(a) + x[j] sin(a)

Worked example, Dh = 4, theta = 1e4: inv_freq = [1, 0.01]. x = [1, 2, 3, 4] at position p = 1:
    pair 0 = (x[0], x[2]) = (1, 3), by 1 rad:     (1 cos 1 - 3 sin 1, 3 cos 1 + 1 sin 1)         = (-1.984, 2.462)
    pair 1 = (x[1], x[3]) = (2, 4), by 0.01 rad:  (2 cos .01 - 4 sin .01, 4 cos .01 + 2 sin .01) = (1.960, 4.020)
    x' = [-1.984, 1.960, 2.462, 4.020]          (at p = 0 every angle is 0 and x' = x)

+--------------------------------------------------------------------------------------------------------+
| WHICH COORDINATES FORM A PAIR? This is the convention that trips most re-implementations.              |
|                                                                                                        |
|   rotate-half (GPT-NeoX, transformers, Qwen):  pair j is (x[j], x[j + Dh/2])     <- what we do          |
|   interleaved (GPT-J, Meta's original Llama):  pair j is (x[2j], x[2j + 1])                            |
|                                                                                                        |
| The two are the same rotation up to a fixed reordering of each head's Dh coordinates (interleaved      |
| coordinate 2j goes to j, 2j + 1 goes to j + Dh/2). Those coordinates are rows of q_proj and k_proj      |
| (their biases, and Qwen3's q_norm / k_norm weights, too), so which convention is right depends on how   |
| the checkpoint's rows are ordered. Qwen's rows are ordered for rotate-half: running them with           |
| interleaved RoPE gives wrong numbers, and a checkpoint converted from an interleaved model must have    |
| those rows permuted (transformers' Llama conversion script does exactly that). cos and sin are laid out |
| as [angle, angle] (the Dh/2 angles written twice) and rotate_half(x) = concat(-x[Dh/2:], x[:Dh/2]).     |
+--------------------------------------------------------------------------------------------------------+

Why cos and sin are computed once per forward pass: they depend only on the positions, and every layer
rotates its queries and keys at the same positions with the same inv_freq. Model.forward computes them once
and hands the same [B, T, Dh] arrays to all L layers; computing them inside each layer would repeat
identical work L times.

Scaled variants (for running past the context length a model was trained on: linear, dynamic NTK, YaRN,
llama3) change only ``inv_freq``, and YaRN also multiplies cos and sin by an attention factor. They live in
rope_scaling.py; ``rope_frequencies`` below hands every type but the default to it.
"""

from __future__ import annotations

import numpy as np

from ..checkpoint.rope_config import RopeConfig
from .rope_scaling import scaled_rope_frequencies


def default_inv_freq(head_dim: int, theta: float) -> np.ndarray:
    """inv_freq[j] = 1 / theta^(2j/Dh).   -> [Dh/2] float32"""
    exponent = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)  # [Dh/2]
    return np.float32(1.0) / (np.float32(theta) ** exponent)  # [Dh/2]


def rope_frequencies(head_dim: int, rope: RopeConfig, max_position_embeddings: int,
                     seq_len: int | None = None) -> tuple[np.ndarray, float]:
    """inv_freq [Dh/2] float32 and the attention scaling that multiplies cos and sin, for any RoPE type.

    The default type is ``default_inv_freq`` with scaling 1.0; every other type is computed by
    rope_scaling.py from these default frequencies. ``seq_len`` (the largest position in use, plus one)
    matters only to ``dynamic``, which raises the base once the sequence outgrows max_position_embeddings.
    """
    inv_freq = default_inv_freq(head_dim, rope.theta)  # [Dh/2]
    if rope.rope_type == "default":
        return inv_freq, 1.0
    return scaled_rope_frequencies(inv_freq, head_dim, rope, max_position_embeddings, seq_len)


def rope_cos_sin(positions: np.ndarray, inv_freq: np.ndarray,
                 attention_scaling: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of every angle, laid out [angle, angle] for rotate-half, times the attention scaling.

    positions [B, T] (or [T]) int, inv_freq [Dh/2] -> cos, sin [B, T, Dh] (or [T, Dh]) float32
    ``attention_scaling`` is rope_frequencies' second result (YaRN's factor, else 1.0): drop it and the
    rotated q and k, and so the attention maps, are not the model's on a YaRN checkpoint.
    """
    angle = positions.astype(np.float32)[..., None] * inv_freq  # [B, T, 1] * [Dh/2] -> [B, T, Dh/2]
    angle = np.concatenate([angle, angle], axis=-1)  # [B, T, Dh]  (both halves of a pair share an angle)
    scale = np.float32(attention_scaling)
    return np.cos(angle) * scale, np.sin(angle) * scale  # [B, T, Dh] each


def rotate_half(x: np.ndarray) -> np.ndarray:
    """(x1, x2) -> (-x2, x1), where x1 and x2 are the two halves of the last axis.   [..., Dh] -> [..., Dh]"""
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)  # [..., Dh]


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate pair (x[j], x[j + Dh/2]) by angle[j]:  x * cos + rotate_half(x) * sin.

    x [B, heads, T, Dh], cos/sin [B, T, Dh] -> [B, heads, T, Dh]
    """
    cos, sin = cos[:, None], sin[:, None]  # [B, 1, T, Dh]: the same angles for every head
    return x * cos + rotate_half(x) * sin  # [B, heads, T, Dh]


def apply_partial_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Partial RoPE (Qwen3.5): rotate the first R dims of each head; dims R .. Dh-1 pass through unchanged.

    x [B, heads, T, Dh], cos/sin [B, T, R] -> [B, heads, T, Dh]

    The rotary slice is a small RoPE head of its own: its pairs are (j, j + R/2) *inside* the slice (not
    (j, j + Dh/2)), and its frequencies are ``default_inv_freq(R, theta)``, i.e. 1 / theta^(2j / R), with
    the exponent over R, not Dh. Qwen3.5 rotates R = Dh / 4 = 64 of 256 dims; the other 192 carry content
    that attention compares regardless of distance.
    """
    R = cos.shape[-1]
    if R == x.shape[-1]:
        return apply_rope(x, cos, sin)
    rotated = apply_rope(x[..., :R], cos, sin)  # [B, heads, T, R]
    return np.concatenate([rotated, x[..., R:]], axis=-1)  # [B, heads, T, Dh]
