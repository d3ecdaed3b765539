"""RMSNorm (Zhang & Sennrich 2019) and the two variants Qwen3.5 adds.

    y = w * x / sqrt(mean(x^2) + eps)

* eps goes *inside* the square root (not ``x / (rms + eps)``); Qwen's eps is 1e-6 (Llama's is 1e-5).
* The weight multiplies ``x`` directly (T5 style), not ``(1 + w)`` as in Gemma.
* There is no mean subtraction and no bias: that is what makes it "RMS" and not LayerNorm.
* The same function normalises each query / key head over Dh in Qwen3 (``q_norm``, ``k_norm``).

Qwen3.5 uses three norms, and mixing them up is the most common way to get garbage out of it:

    norm                      formula                      where (Qwen3.5)
    rms_norm                  w * x_hat                    nowhere (Qwen2 / Qwen3: everywhere)
    zero_centred_rms_norm     (1 + w) * x_hat              input / post-attention / final norms, q_norm, k_norm
    gated_rms_norm            w * x_hat * silu(z)          linear attention's output (``linear_attn.norm``), per head

+--------------------------------------------------------------------------------------------------------+
| ZERO-CENTRED WEIGHTS. Qwen3.5 stores its norm gains as offsets from 1 (initialised to 0; a trained     |
| model's values scatter around 0). Reading them as plain gains multiplies every normalised vector by     |
| about 0. But the gated norm of the linear-attention layers stores plain gains (initialised to 1):      |
| adding 1 there doubles its output. Both mistakes move tiny-model logits by 4 to 6 (tests/test_qwen35). |
+--------------------------------------------------------------------------------------------------------+
"""

from __future__ import annotations

import numpy as np

from .activations import silu


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """y = weight * x / sqrt(mean(x^2, last axis) + eps).   x [..., N], weight [N] -> y [..., N] float32."""
    mean_square = np.square(x).sum(axis=-1, keepdims=True) / np.float32(x.shape[-1])  # [..., 1] mean of x^2
    inv_rms = np.float32(1.0) / np.sqrt(mean_square + np.float32(eps))  # [..., 1]: one division per row
    return weight * (x * inv_rms)  # [..., N]  (x * rsqrt(...), as transformers writes it)


def zero_centred_rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """y = (1 + weight) * x / sqrt(mean(x^2) + eps): the stored weight is an offset from a gain of 1.

    x [..., N], weight [N] -> y [..., N] float32. (1 + w) is formed in float32 before the product, as
    transformers' Qwen3_5RMSNorm does.
    """
    return rms_norm(x, np.float32(1.0) + weight, eps)  # [..., N]


def gated_rms_norm(x: np.ndarray, gate: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """y = weight * x / sqrt(mean(x^2) + eps) * silu(gate): normalise first, then gate.

    x, gate [..., N], weight [N] (a plain gain, NOT 1 + w) -> y [..., N] float32. eps is rms_norm_eps and
    it matters here: the linear-attention output it normalises can be as small as 1e-4 per head.
    """
    return rms_norm(x, weight, eps) * silu(gate)  # [..., N]
