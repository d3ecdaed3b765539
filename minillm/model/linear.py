"""A linear layer, as PyTorch's ``nn.Linear`` stores it: ``y = x @ W.T + b``.

Checkpoints store every projection weight as ``[out_features, in_features]`` (one row per output), so the
product takes ``W.T``: a free view (no copy), which NumPy hands straight to BLAS in the transposed layout.

This is the math. The engine calls ``fast_linear.fast_linear``, the same product computed faster for the
shapes it meets (all positions flattened into one matrix, a few rows split across threads), tested equal
to this one up to float32 rounding.
"""

from __future__ import annotations

import numpy as np


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """y = x W^T + b.   x [..., in], weight [out, in], bias [out] or None -> y [..., out]"""
    return x @ weight.T if bias is None else x @ weight.T + bias  # [..., in] @ [in, out] -> [..., out]
