"""Solutions to notebook 09's exercises. Try them yourself first."""

import numpy as np


def lora_forward(x, W, A, B, scaling):
    """x [N, in] -> [N, out]: the frozen projection plus the scaled low-rank path (B A is never formed)."""
    return x @ W.T + scaling * ((x @ A.T) @ B.T)  # [N, out]


def merge(W, A, B, scaling):
    """-> [out, in]: W + s B A, one matrix that does both (no extra cost at inference)."""
    return W + scaling * (B @ A)  # [out, r] @ [r, in] -> [out, in]
