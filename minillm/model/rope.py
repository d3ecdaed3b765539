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

Scaled variants (for running past the context length a model was trained on) change only ``inv_freq``,
and YaRN also multiplies cos and sin by an attention factor. ``rope_frequencies`` computes each one exactly
as transformers' ``modeling_rope_utils`` does, in float32.

YaRN (Peng et al. 2023), the one Qwen's model cards recommend for long contexts
---------------------------------------------------------------------------------
Its settings: ``factor`` s (how much longer the new context is), ``original_max_position_embeddings``
(the context length the model was trained on, 32768 for Qwen), ``beta_fast`` = 32 and ``beta_slow`` = 1.

* NTK-by-parts: pairs are treated by how many full turns they make over the original context,
  turns[j] = original / (2 pi / inv_freq[j]).
  - A fast pair (more than beta_fast turns) has seen every angle many times in training: it is kept as is
    ("extrapolation": the original frequency, also past the original length).
  - A slow pair (fewer than beta_slow turns, i.e. less than one turn) would reach angles it never saw: it
    is slowed by the factor ("interpolation": inv_freq / s, so the new context spans the trained angles).
  - Between the two "correction dims" low (where turns = beta_fast) and high (where turns = beta_slow), a
    linear ramp over j blends the two: inv_freq = inter * ramp + extra * (1 - ramp).
  Example, Dh = 128, theta = 1e6, original 32768, s = 4: low = floor(23.6) = 23, high = ceil(39.7) = 40;
  pairs 0..23 are kept, pairs 40..63 are divided by 4, pairs 24..39 are divided by 1.05 .. 3.4.
* attention_factor (the paper's "mscale"; by default 0.1 ln(s) + 1, 1.139 for s = 4): a softmax
  temperature. The YaRN paper found that sharpening the attention softmax by a constant recovers much of
  the quality interpolation costs, and fitted this formula. It multiplies cos and sin, hence both q and k,
  so the attention logits q . k are multiplied by its square (1.296 for s = 4).
"""

from __future__ import annotations

import math

import numpy as np

from ..checkpoint.config import RopeConfig


def default_inv_freq(head_dim: int, theta: float) -> np.ndarray:
    """inv_freq[j] = 1 / theta^(2j/Dh).   -> [Dh/2] float32"""
    exponent = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)  # [Dh/2]
    return np.float32(1.0) / (np.float32(theta) ** exponent)  # [Dh/2]


def rope_frequencies(head_dim: int, rope: RopeConfig, max_position_embeddings: int,
                     seq_len: int | None = None) -> tuple[np.ndarray, float]:
    """inv_freq [Dh/2] float32 and the attention scaling that multiplies cos and sin, for any RoPE type.

    ``seq_len`` (the largest position in use, plus one) matters only to ``dynamic``, which raises the base
    once the sequence outgrows ``max_position_embeddings``.
    """
    kind = rope.rope_type
    if kind == "default":
        return default_inv_freq(head_dim, rope.theta), 1.0
    if kind == "linear":
        # Positional interpolation: every angle slowed down by `factor`.
        return default_inv_freq(head_dim, rope.theta) / np.float32(rope.factor), 1.0
    if kind == "dynamic":
        return _dynamic_ntk_inv_freq(head_dim, rope, max_position_embeddings, seq_len), 1.0
    if kind == "yarn":
        return _yarn_inv_freq(head_dim, rope), _yarn_attention_factor(rope)
    if kind == "llama3":
        return _llama3_inv_freq(head_dim, rope), 1.0
    raise ValueError(f"unknown rope_type {kind!r}")  # config.py refuses these first


def _dynamic_ntk_inv_freq(head_dim: int, rope: RopeConfig, max_pos: int, seq_len: int | None) -> np.ndarray:
    """Dynamic NTK: past max_pos, raise the base so the slowest rotation still fits the longer sequence.

    base' = theta * (factor * seq_len / max_pos - (factor - 1)) ** (Dh / (Dh - 2)); below max_pos it is theta.
    """
    seq_len = max(seq_len or max_pos, max_pos)
    growth = np.float32(rope.factor) * np.float32(seq_len) / np.float32(max_pos) - np.float32(rope.factor - 1)
    base = np.float32(rope.theta) * growth ** np.float32(head_dim / (head_dim - 2))
    exponent = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)  # [Dh/2]
    return np.float32(1.0) / (base ** exponent)  # [Dh/2]


def _yarn_attention_factor(rope: RopeConfig) -> float:
    """YaRN's temperature fix: 0.1 ln(factor) + 1 (or the ratio of two mscales, or as given).

    It multiplies cos and sin, so q and k each: the attention logits grow by its square.
    """
    if rope.attention_factor is not None:
        return rope.attention_factor

    def get_mscale(scale: float, mscale: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0

    if rope.mscale and rope.mscale_all_dim:
        return get_mscale(rope.factor, rope.mscale) / get_mscale(rope.factor, rope.mscale_all_dim)
    return get_mscale(rope.factor)


def _yarn_inv_freq(head_dim: int, rope: RopeConfig) -> np.ndarray:
    """YaRN (Peng et al. 2023): interpolate slow rotations by `factor`, keep fast ones, ramp in between.

    A pair j that turns fewer than beta_slow times over the original context is interpolated (divided by
    factor); one that turns more than beta_fast times is kept as is; the ones between are blended linearly.
    """
    theta, original = rope.theta, rope.original_max_position_embeddings

    def correction_dim(num_rotations: float) -> float:
        """The pair index j that completes `num_rotations` turns over the original context length."""
        return head_dim * math.log(original / (num_rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = correction_dim(rope.beta_fast), correction_dim(rope.beta_slow)
    if rope.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # avoid dividing by zero in the ramp

    pos_freqs = np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim))  # [Dh/2]
    extrapolation = np.float32(1.0) / pos_freqs  # [Dh/2] the original frequencies
    interpolation = np.float32(1.0) / (np.float32(rope.factor) * pos_freqs)  # [Dh/2] slowed by factor
    ramp = np.clip((np.arange(head_dim // 2, dtype=np.float32) - np.float32(low)) / np.float32(high - low),
                   0, 1)  # [Dh/2] 0 = keep (fast pairs) .. 1 = interpolate (slow pairs)
    keep = np.float32(1.0) - ramp  # [Dh/2] written as transformers writes it, for identical rounding
    return interpolation * (np.float32(1.0) - keep) + extrapolation * keep  # [Dh/2]


def _llama3_inv_freq(head_dim: int, rope: RopeConfig) -> np.ndarray:
    """Llama 3.1 scaling: long wavelengths divided by factor, short ones kept, a smooth blend between."""
    inv_freq = default_inv_freq(head_dim, rope.theta)  # [Dh/2]
    original = rope.original_max_position_embeddings
    low_wavelen = original / rope.low_freq_factor  # longer than this: interpolate
    high_wavelen = original / rope.high_freq_factor  # shorter than this: keep
    wavelen = np.float32(2 * math.pi) / inv_freq  # [Dh/2]
    factor = np.float32(rope.factor)
    scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)  # [Dh/2]
    smooth = (np.float32(original) / wavelen - np.float32(rope.low_freq_factor)) / np.float32(
        rope.high_freq_factor - rope.low_freq_factor)  # [Dh/2]
    smoothed = (np.float32(1.0) - smooth) * scaled / factor + smooth * scaled  # [Dh/2]
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)  # [Dh/2]
    return np.where(medium, smoothed, scaled).astype(np.float32)  # [Dh/2]


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
