"""Backward of the token embedding: the gradient of a table row is the sum of the gradients of its tokens.

    forward    x[b, t] = E[ids[b, t]]
    backward   dE[v]   = sum over every (b, t) with ids[b, t] == v of dx[b, t]      (rows never used: 0)

A scatter-ADD, not a scatter: a token that occurs twice contributes twice, so ``dE[ids] = dx`` (which keeps
only the last write of a repeated id) would be wrong. ``np.add.at`` is the unbuffered add that does it.
"""

from __future__ import annotations

import numpy as np


def embed_backward(dx: np.ndarray, ids: np.ndarray, embed_tokens: np.ndarray) -> np.ndarray:
    """dE = scatter-add of dx into the rows named by ids.

    dx [B, T, D], ids [B, T] int, embed_tokens [V, D] (only its shape is used) -> dE [V, D], dtype of dx
    """
    d_embed = np.zeros(embed_tokens.shape, dx.dtype)  # [V, D]
    # np.add.at has a fast path for this case since NumPy 1.25: 2048 rows of 256 floats take ~2 ms, about
    # the time it takes to zero an [8192, 256] table, so the plain form is also the fast one.
    np.add.at(d_embed, ids.reshape(-1), dx.reshape(-1, dx.shape[-1]))  # [B*T] rows of [D] added into [V, D]
    return d_embed
