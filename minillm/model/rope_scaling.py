"""Scaled RoPE: the variants that change the default frequencies of rope.py, to run a model past its context.

Read rope.py first: the default RoPE is all a Qwen model uses up to its trained context length. The
scaled variants change only ``inv_freq``, and YaRN also multiplies cos and sin by an attention factor.
``scaled_rope_frequencies`` computes each one exactly as transformers' ``modeling_rope_utils`` does, in
float32 (linear: every angle slowed by the factor; dynamic NTK: a larger base past the context; llama3:
slow pairs slowed, fast ones kept; YaRN below).

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

from ..checkpoint.rope_config import RopeConfig


def scaled_rope_frequencies(inv_freq: np.ndarray, head_dim: int, rope: RopeConfig, max_position_embeddings: int,
                            seq_len: int | None = None) -> tuple[np.ndarray, float]:
    """The scaled inv_freq [Dh/2] float32 and the attention scaling that multiplies cos and sin.

    inv_freq [Dh/2]: the default frequencies (rope.default_inv_freq). ``seq_len`` (the largest position in
    use, plus one) matters only to ``dynamic``.
    """
    kind = rope.rope_type
    if kind == "linear":
        # Positional interpolation: every angle slowed down by `factor`.
        return inv_freq / np.float32(rope.factor), 1.0
    if kind == "dynamic":
        return _dynamic_ntk_inv_freq(head_dim, rope, max_position_embeddings, seq_len), 1.0
    if kind == "yarn":
        return _yarn_inv_freq(head_dim, rope), _yarn_attention_factor(rope)
    if kind == "llama3":
        return _llama3_inv_freq(inv_freq, rope), 1.0
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


def _llama3_inv_freq(inv_freq: np.ndarray, rope: RopeConfig) -> np.ndarray:
    """Llama 3.1 scaling: long wavelengths divided by factor, short ones kept, a smooth blend between.

    inv_freq [Dh/2]: the default frequencies -> [Dh/2]
    """
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
