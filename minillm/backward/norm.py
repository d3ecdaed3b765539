"""Backward of RMSNorm, for the decoder's norms over D and for Qwen3's per-head q/k-norm over Dh alike.

Forward, over the last axis of length N (r is one number per row):
    r = (mean(x^2) + eps)^(-1/2)          y = w * x * r

Backward, with g = dL/dy:
    dw   = sum over every row of  g * x * r
    dx_j = d/dx_j of sum_i g_i w_i x_i r
         = g_j w_j r  +  sum_i g_i w_i x_i * dr/dx_j,        dr/dx_j = -(1/2) r^3 * 2 x_j / N = -r^3 x_j / N
         = r * (g w)_j  -  x_j * r^3 * mean_i((g w)_i x_i)

The second term removes from g*w its component along x: scaling x up does not change y (apart from eps),
so the gradient has (almost) no component along x.

Qwen3.5's variants reuse it: the zero-centred norm is this one with the gain 1 + w (d(1 + w)/dw = 1), the gated
norm is a product (each factor gets dy times the other), and the L2 norm of q and k is the same algebra with
the sum of squares in place of their mean and no gain.
"""

from __future__ import annotations

import numpy as np

from ..model.activations import silu
from ..model.norm import rms_norm
from .activations import silu_backward


def rms_norm_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray,
                      eps: float) -> tuple[np.ndarray, np.ndarray]:
    """dx and dweight of y = weight * x * (mean(x^2) + eps)^-1/2.

    dy [..., N], x [..., N] (the forward's input), weight [N] -> dx [..., N], dweight [N]
    """
    n = x.shape[-1]
    inv_rms = 1.0 / np.sqrt(np.square(x).sum(axis=-1, keepdims=True) / n + eps)  # [..., 1] r, recomputed
    dy_w = dy * weight  # [..., N] g * w
    dweight = (dy * x * inv_rms).reshape(-1, n).sum(axis=0)  # [N]: summed over every row (and every head)
    along_x = (dy_w * x).sum(axis=-1, keepdims=True) / n  # [..., 1] mean(g w x)
    dx = inv_rms * dy_w - x * (inv_rms ** 3 * along_x)  # [..., N]
    return dx, dweight


def zero_centred_rms_norm_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray,
                                   eps: float) -> tuple[np.ndarray, np.ndarray]:
    """dx and dweight of y = (1 + weight) * x_hat (Qwen3.5's norms): rms_norm_backward with the gain 1 + w,
    and d(1 + w)/dw = 1, so dweight is the gain's gradient itself.   dy, x [..., N], weight [N] -> [..., N], [N]"""
    return rms_norm_backward(dy, x, np.float32(1.0) + weight, eps)


def gated_rms_norm_backward(dy: np.ndarray, x: np.ndarray, gate: np.ndarray, weight: np.ndarray,
                            eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx, dgate, dweight of y = rms_norm(x; weight) * silu(gate) (linear attention's output norm).

    A product of two factors: each gets dy times the other, then its own backward.
    dy, x, gate [..., N], weight [N] -> dx [..., N], dgate [..., N], dweight [N]
    """
    dgate = silu_backward(dy * rms_norm(x, weight, eps), gate)  # [..., N]
    dx, dweight = rms_norm_backward(dy * silu(gate), x, weight, eps)  # [..., N], [N]
    return dx, dgate, dweight


def l2_normalize_backward(dy: np.ndarray, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """dx of y = x * r, r = (sum(x^2) + eps)^-1/2 (gated_deltanet.l2_normalize): as RMSNorm with a sum for the
    mean and no gain, dx = r dy - x r^3 sum(dy x).   dy, x [..., N] -> dx [..., N]"""
    r = 1.0 / np.sqrt(np.square(x).sum(axis=-1, keepdims=True) + eps)  # [..., 1]
    return r * dy - x * (r ** 3 * (dy * x).sum(axis=-1, keepdims=True))  # [..., N]
