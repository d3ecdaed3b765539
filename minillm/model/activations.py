"""The nonlinearities of the model: softmax (attention, sampling), silu (the MLP), sigmoid and softplus (Qwen3.5's
gates and decays)."""

from __future__ import annotations

import numpy as np


def softmax(scores: np.ndarray) -> np.ndarray:
    """softmax over the last axis, with the row max subtracted so exp never overflows.   [..., S] -> [..., S]"""
    e = scores - scores.max(axis=-1, keepdims=True)  # [..., S], max is 0
    np.exp(e, out=e)  # [..., S] in (0, 1]; in place, as below: one new array, not three (attention's are large)
    e /= e.sum(axis=-1, keepdims=True)  # [..., S], rows sum to 1
    return e


def silu(u: np.ndarray) -> np.ndarray:
    """silu(u) = u * sigmoid(u) = u / (1 + exp(-u)).   [...] -> [...]

    ~u for large u, ~0 for very negative u, minimum about -0.278 at u about -1.278 (not a 0..1 gate).
    """
    # exp(-u) overflows to inf for u < -88 in float32; u / inf = -0.0, which is the right limit.
    with np.errstate(over="ignore"):
        denominator = np.exp(-u)  # [...]
    denominator += np.float32(1.0)  # in place: no second temporary array
    return u / denominator  # [...]


def sigmoid(u: np.ndarray) -> np.ndarray:
    """sigmoid(u) = 1 / (1 + exp(-u)), in (0, 1): how much of something passes a gate.   [...] -> [...]"""
    with np.errstate(over="ignore"):  # exp(-u) = inf for u < -88: 1 / inf = 0, the right limit
        denominator = np.exp(-u)  # [...]
    denominator += np.float32(1.0)
    return np.float32(1.0) / denominator  # [...]


def softplus(u: np.ndarray) -> np.ndarray:
    """softplus(u) = log(1 + exp(u)), a smooth max(u, 0) > 0.   [...] -> [...]

    Computed as max(u, 0) + log1p(exp(-|u|)) so exp never overflows: that is what np.logaddexp(0, u) =
    log(e^0 + e^u) does, in one NumPy call instead of five (it runs 18 times per generated token on arrays
    of 16 numbers, where each call's overhead is the whole cost). (PyTorch returns u itself for u > 20,
    where the two differ by less than exp(-20) = 2e-9.)
    """
    return np.logaddexp(np.float32(0.0), u)  # [...]: max(u, 0) + log1p(exp(-|u|))
