"""Backward of a linear layer y = x W^T + b (W stored [out, in], as in the checkpoint).

    dx = dy W                 [..., out] @ [out, in]  -> [..., in]
    dW = dy^T x               summed over every position: [out, N] @ [N, in] -> [out, in]
    db = sum of dy            over every position -> [out]

Every position (every token of every row) uses the same W, so its gradient is a sum over positions, and
flattening the leading axes into one N = B*T turns that sum into a single matrix product.

``frozen=True`` (LoRA fine-tuning: the base weights do not train) skips dW and db; a LoraWeight in place of W
goes to lora.py, which returns the adapter's gradients (LoraGrads) in dW's place.
"""

from __future__ import annotations

import numpy as np

from ..model.lora import LoraWeight
from .lora import lora_linear_backward


def linear_backward(dy: np.ndarray, x: np.ndarray, weight: np.ndarray,
                    bias: np.ndarray | None = None,
                    frozen: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dx, dweight, dbias (None when the layer has no bias) of y = x W^T + b.

    dy [..., out], x [..., in] (the forward's input), weight [out, in], bias [out] or None
    -> dx [..., in], dweight [out, in], dbias [out] or None   (frozen: dx, None, None; LoRA: dx, LoraGrads, None)
    """
    if isinstance(weight, LoraWeight):
        dx, d_adapter = lora_linear_backward(dy, x, weight)  # [..., in], A and B's gradients
        return dx, d_adapter, None  # the base weight and bias are frozen
    dy_flat = dy.reshape(-1, dy.shape[-1])  # [N, out], N = every leading position (one BLAS call, see linear)
    dx = (dy_flat @ weight).reshape(*dy.shape[:-1], weight.shape[1])  # [N, out] @ [out, in] -> [..., in]
    if frozen:
        return dx, None, None
    dweight = dy_flat.T @ x.reshape(-1, x.shape[-1])  # [out, N] @ [N, in] -> [out, in]
    dbias = dy_flat.sum(axis=0) if bias is not None else None  # [out]
    return dx, dweight, dbias
