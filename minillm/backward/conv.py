"""Backward of the causal depthwise conv (model/conv.py), as training runs it: from a zero state.

Forward, xe = [W-1 zeros ; x] along time:     out[t, c] = sum_j weight[c, j] * xe[t + j, c]

Each input xe[s, c] reaches the outputs t = s - j (j = 0 .. W-1), so with dO = dL/dout

    dxe[s, c]      = sum_j weight[c, j] * dO[s - j, c]          (the same filter, run backwards in time)
    dweight[c, j]  = sum over every row and t of dO[t, c] * xe[t + j, c]

and dx is dxe without its W-1 leading (zero-state) rows. The SiLU after the conv is silu_backward (activations.py).
"""

from __future__ import annotations

import numpy as np


def causal_conv1d_backward(dout: np.ndarray, x: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dx, dweight of causal_conv1d(x, weight, zeros).   dout, x [B, T, C], weight [C, W] -> dx [B, T, C], dweight [C, W]"""
    T, W = x.shape[1], weight.shape[-1]
    extended = np.concatenate([np.zeros((x.shape[0], W - 1, x.shape[2]), x.dtype), x], axis=1)  # [B, W-1+T, C]: the forward's xe
    d_extended = np.zeros_like(extended)  # [B, W-1+T, C]
    dweight = np.empty(weight.shape, np.result_type(dout, x))  # [C, W]
    for j in range(W):
        d_extended[:, j:j + T] += dout * weight[:, j]  # [B, T, C]: tap j read xe[t + j]
        dweight[:, j] = (dout * extended[:, j:j + T]).sum(axis=(0, 1))  # [C]
    return d_extended[:, W - 1:], dweight  # [B, T, C], [C, W]
