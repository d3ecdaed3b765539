"""Backward of the two nonlinearities: softmax (attention) and silu (the MLP's gate).

softmax, p = softmax(s) over the last axis, g = dL/dp:
    dp_i/ds_j = p_i (delta_ij - p_j)   =>   ds_j = sum_i g_i p_i (delta_ij - p_j) = p_j (g_j - sum_i g_i p_i)
    A masked score has p = 0 exactly, so it gets ds = 0: the mask needs no backward of its own.

silu, y = u * sigmoid(u), sigma = sigmoid(u):
    dy/du = sigma + u * sigma * (1 - sigma) = sigma * (1 + u * (1 - sigma))
"""

from __future__ import annotations

import numpy as np


def softmax_backward(dprobs: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """ds = p * (g - sum(g * p)).   dprobs, probs [..., S] -> dscores [..., S]"""
    return probs * (dprobs - (dprobs * probs).sum(axis=-1, keepdims=True))  # [..., S]


def sigmoid(u: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-u)); exp(-u) = inf for u < -88 (float32) gives the right limit 0.   [...] -> [...]"""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-u))  # [...]


def silu_backward(dy: np.ndarray, u: np.ndarray) -> np.ndarray:
    """du of y = u * sigmoid(u): dy * sigma * (1 + u * (1 - sigma)).   dy, u [...] -> du [...]"""
    sig = sigmoid(u)  # [...]
    return dy * sig * (1.0 + u * (1.0 - sig))  # [...]
