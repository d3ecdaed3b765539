"""A linear layer, as PyTorch's ``nn.Linear`` stores it: ``y = x @ W.T + b``.

Checkpoints store every projection weight as ``[out_features, in_features]``. ``W.T`` is a free view (no copy):
NumPy hands the transposed layout straight to BLAS.
"""

from __future__ import annotations

import numpy as np


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """y = x W^T + b.   x [..., in], weight [out, in], bias [out] or None -> y [..., out]."""
    # One [N, in] @ [in, out] product over all N = B*T positions: NumPy would run a [B, T, in] @ [in, out]
    # product as B separate small ones (4x slower for a training batch of 8 x 256, worse on a busy machine).
    y = (x.reshape(-1, x.shape[-1]) @ weight.T).reshape(*x.shape[:-1], weight.shape[0])  # [..., in] -> [..., out]
    if bias is not None:
        y += bias  # [..., out] + [out]
    return y
