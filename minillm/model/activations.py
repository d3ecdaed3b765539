"""The two nonlinearities of the model, used by attention (softmax), the MLP (silu) and sampling (softmax)."""

from __future__ import annotations

import numpy as np


def softmax(scores: np.ndarray) -> np.ndarray:
    """softmax over the last axis, with the row max subtracted so exp never overflows.   [..., S] -> [..., S]"""
    shifted = scores - scores.max(axis=-1, keepdims=True)  # [..., S], max is 0
    e = np.exp(shifted)  # [..., S] in (0, 1]
    return e / e.sum(axis=-1, keepdims=True)  # [..., S], rows sum to 1


def silu(u: np.ndarray) -> np.ndarray:
    """silu(u) = u * sigmoid(u) = u / (1 + exp(-u)).   [...] -> [...]

    ~u for large u, ~0 for very negative u, minimum about -0.278 at u about -1.278 (not a 0..1 gate).
    """
    # exp(-u) overflows to inf for u < -88 in float32; u / inf = -0.0, which is the right limit.
    with np.errstate(over="ignore"):
        denominator = np.exp(-u)  # [...]
    denominator += np.float32(1.0)  # in place: no second temporary array
    return u / denominator  # [...]
