"""RMSNorm (Zhang & Sennrich 2019), as Qwen2 and Qwen3 use it for every norm in the model.

    y = w * x / sqrt(mean(x^2) + eps)

* eps goes *inside* the square root (not ``x / (rms + eps)``); Qwen's eps is 1e-6 (Llama's is 1e-5).
* The weight multiplies ``x`` directly (T5 style), not ``(1 + w)`` as in Gemma.
* There is no mean subtraction and no bias: that is what makes it "RMS" and not LayerNorm.
* The same function normalises each query / key head over Dh in Qwen3 (``q_norm``, ``k_norm``).
"""

from __future__ import annotations

import numpy as np


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """y = weight * x / sqrt(mean(x^2, last axis) + eps).   x [..., N], weight [N] -> y [..., N] float32."""
    mean_square = np.square(x).sum(axis=-1, keepdims=True) / np.float32(x.shape[-1])  # [..., 1] mean of x^2
    inv_rms = np.float32(1.0) / np.sqrt(mean_square + np.float32(eps))  # [..., 1]: one division per row
    return weight * (x * inv_rms)  # [..., N]  (x * rsqrt(...), as transformers writes it)
