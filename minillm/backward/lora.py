"""Backward of a LoRA projection (model/lora.py), base frozen: the gradients of A, B and of the input.

Forward, on the N = B*T positions flattened (m: the dropout multiplier, 1 without dropout):
    xd = m * x                [N, in]
    u  = xd A^T               [N, r]
    y  = x W^T + b + s u B^T  [N, out]

Backward, dy = dL/dy [N, out]. Each line is the transpose of one forward line:
    dB  = s dy^T u            [out, N] @ [N, r]   -> [out, r]     (y depends on B through s u B^T)
    du  = s dy B              [N, out] @ [out, r] -> [N, r]
    dA  = du^T xd             [r, N] @ [N, in]    -> [r, in]      (u depends on A through xd A^T)
    dx  = dy W  +  m * (du A) [N, in]                             (x feeds the base path and, masked, the adapter)
Summing over positions is the matrix product over N, as in linear.py. W and b are frozen: no dW
(the [out, in] product dy^T x, the most expensive line of a full fine-tune's linear_backward, is skipped).

Nothing is kept beyond x, which the layer's backward keeps anyway: u = xd A^T is one [N, in] @ [in, r] product
(r in / (out in) of the base forward, cheap), and the dropout mask is drawn again from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.lora import LoraWeight, dropout_mask


@dataclass
class LoraGrads:
    """The gradient of one adapted projection: its adapter's two matrices (the base weight is frozen)."""

    lora_A: np.ndarray  # [r, in]
    lora_B: np.ndarray  # [out, r]


def lora_linear_backward(dy: np.ndarray, x: np.ndarray, w: LoraWeight) -> tuple[np.ndarray, LoraGrads]:
    """dx and the adapter's gradients of y = x W^T + b + s dropout(x) A^T B^T.

    dy [..., out], x [..., in] (the forward's input) -> dx [..., in], LoraGrads (A [r, in], B [out, r])
    """
    s = dy.dtype.type(w.scaling)
    dy2 = dy.reshape(-1, dy.shape[-1])  # [N, out]
    x2 = x.reshape(-1, x.shape[-1])  # [N, in]
    mask = dropout_mask(x2.shape, w.dropout, w.dropout_seed, x2.dtype)  # [N, in]: the forward's mask, drawn again
    xd = x2 if mask is None else x2 * mask  # [N, in]
    u = xd @ w.lora_A.T  # [N, in] @ [in, r] -> [N, r], recomputed
    d_B = s * (dy2.T @ u)  # [out, N] @ [N, r] -> [out, r]
    du = s * (dy2 @ w.lora_B)  # [N, out] @ [out, r] -> [N, r]
    d_A = du.T @ xd  # [r, N] @ [N, in] -> [r, in]
    dxd = du @ w.lora_A  # [N, r] @ [r, in] -> [N, in]
    dx = dy2 @ w.weight + (dxd if mask is None else dxd * mask)  # [N, in]: base path + adapter path
    return dx.reshape(x.shape), LoraGrads(lora_A=d_A, lora_B=d_B)  # [..., in]
