"""Backward of the two nonlinearities: softmax (attention) and silu (the MLP's gate).

softmax, p = softmax(s) over the last axis, g = dL/dp:
    dp_i/ds_j = p_i (delta_ij - p_j)   =>   ds_j = sum_i g_i p_i (delta_ij - p_j) = p_j (g_j - sum_i g_i p_i)
    A masked score has p = 0 exactly, so it gets ds = 0: the mask needs no backward of its own.

silu, y = u * sigmoid(u), sigma = sigmoid(u):
    dy/du = sigma + u * sigma * (1 - sigma) = sigma * (1 + u * (1 - sigma))
"""

from __future__ import annotations

import numpy as np

from ..model.activations import sigmoid


def softmax_backward(dprobs: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """ds = p * (g - sum(g * p)).   dprobs, probs [..., S] -> dscores [..., S]"""
    ds = dprobs * probs  # [..., S] g * p
    np.subtract(dprobs, ds.sum(axis=-1, keepdims=True), out=ds)  # [..., S] g - sum(g * p), in place
    ds *= probs  # [..., S] p * (g - sum(g * p))
    return ds


def silu_backward(dy: np.ndarray, u: np.ndarray) -> np.ndarray:
    """du of y = u * sigmoid(u): dy * sigma * (1 + u * (1 - sigma)).   dy, u [...] -> du [...]"""
    sig = sigmoid(u)  # [...]
    du = 1.0 - sig  # [...] 1 - sigma; the rest in place, since these are the MLP's widest arrays [B, T, F]
    du *= u  # u * (1 - sigma)
    du += 1.0  # 1 + u * (1 - sigma)
    du *= sig  # dy/du
    du *= dy  # [...] du
    return du
