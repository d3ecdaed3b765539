"""The formulas the plain functions share, one or two lines each. NumPy only; every one keeps float32 float32.

Shapes: [..., N] -> [..., N] over the last axis (the legend is in minillm/__init__.py).
"""

from __future__ import annotations

import numpy as np


def rms_norm(x, weight, eps):
    """weight * x / sqrt(mean(x^2) + eps): eps INSIDE the root, no mean subtracted, no bias. [..., N] -> [..., N]"""
    return weight * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def softmax(x):
    """exp(x) / sum(exp(x)) over the last axis, the row max subtracted first so exp never overflows (-inf -> 0)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(x):
    """1 / (1 + exp(-x)) in (0, 1), written as exp(-log(1 + exp(-x))) so that no exp overflows."""
    return np.exp(-np.logaddexp(0, -x))


def silu(x):
    """x * sigmoid(x): ~x for large x, ~0 for very negative x (SwiGLU's gate)."""
    return x * sigmoid(x)


def softplus(x):
    """log(1 + exp(x)) > 0, a smooth max(x, 0)."""
    return np.logaddexp(0, x)


def rotate_half(x):
    """(x1, x2) -> (-x2, x1), the two halves of the last axis: RoPE pairs coordinate j with j + N/2."""
    return np.concatenate([-x[..., x.shape[-1] // 2:], x[..., :x.shape[-1] // 2]], axis=-1)


def rope_cos_sin(positions, dims, theta):
    """cos, sin [T, dims] of angle = position * inv_freq, inv_freq = 1 / theta^(2j/dims), each angle written twice."""
    angle = positions.astype(np.float32)[:, None] * (1 / theta ** (np.arange(0, dims, 2, dtype=np.float32) / dims))
    return np.cos(np.concatenate([angle, angle], -1)), np.sin(np.concatenate([angle, angle], -1))


def l2_normalize(x):
    """x / sqrt(sum(x^2) + 1e-6): unit length (eps on the SUM, so a zero vector stays zero)."""
    return x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + 1e-6)
