"""Solutions to notebook 01's exercises. Try them yourself first."""

import numpy as np


def rms_norm(x, weight, eps):
    """x [T, D] -> [T, D]: divide each row by its root mean square, then scale each feature."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight  # [T, D]
