"""A linear layer, as PyTorch's ``nn.Linear`` stores it: ``y = x @ W.T + b``.

Checkpoints store every projection weight as ``[out_features, in_features]``. ``W.T`` is a free view (no copy):
NumPy hands the transposed layout straight to BLAS.
"""

from __future__ import annotations

import numpy as np


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """y = x W^T + b.   x [..., in], weight [out, in], bias [out] or None -> y [..., out]."""
    y = x @ weight.T  # [..., in] @ [in, out] -> [..., out]
    if bias is not None:
        y += bias  # [..., out] + [out]
    return y
