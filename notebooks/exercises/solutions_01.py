"""Solutions to notebook 01's exercises. Try them yourself first."""

import numpy as np


def rms_norm(x, weight, eps):
    """x [T, D] -> [T, D]: divide each row by its root mean square, then scale each feature."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight  # [T, D]


def causal_mask(T):
    """[T, T] bool: query t (row) may see keys s <= t (columns)."""
    return np.arange(T)[None, :] <= np.arange(T)[:, None]  # [1, T] <= [T, 1] -> [T, T]


def swiglu(x, gate_proj, up_proj, down_proj):
    """x [T, D] -> [T, D]: widen twice, gate one copy with silu, multiply, project back."""
    gate, up = x @ gate_proj.T, x @ up_proj.T  # [T, F] each
    silu = gate / (1 + np.exp(-gate))  # [T, F]: u * sigmoid(u)
    return (silu * up) @ down_proj.T  # [T, D]
