"""Solutions to notebook 02's exercises. Try them yourself first."""

import numpy as np


def apply_rope(x, positions, theta):
    """x [T, Dh], positions [T] -> [T, Dh]: rotate pair (x[j], x[j + Dh/2]) by positions * theta^(-2j/Dh)."""
    half = x.shape[-1] // 2
    inv_freq = theta ** (-np.arange(half) * 2 / x.shape[-1])  # [Dh/2]
    angle = positions[:, None] * inv_freq[None, :]  # [T, Dh/2]
    cos, sin = np.cos(angle), np.sin(angle)  # [T, Dh/2] each
    x1, x2 = x[:, :half], x[:, half:]  # [T, Dh/2] each
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)  # [T, Dh]


def repeat_kv(k, n_rep):
    """k [K, S, Dh] -> [K*n_rep, S, Dh]: each key/value head copied to n_rep consecutive query heads."""
    return np.repeat(k, n_rep, axis=0)  # [K*n_rep, S, Dh]
