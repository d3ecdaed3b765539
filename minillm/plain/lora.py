"""LoRA on one projection, forward and backward, on one screen (the engine: model/lora.py, backward/lora.py).

    y = x W^T + s * (m * x) A^T B^T       W [out, in] frozen; A [r, in], B [out, r] trained; s = alpha / r
                                          m: the dropout multiplier (0 or 1/(1-p) per input; 1 when off)
"""

from __future__ import annotations



def lora_linear(x, W, A, B, scaling, dy=None, mask=None):
    """The LoRA projection of x, and (given dy = dL/dy) the gradients of x, A and B.

    x [N, in], W [out, in], A [r, in], B [out, r], dy [N, out] or None, mask [N, in] or None
    -> y [N, out]   (dy None)   or   y [N, out], dx [N, in], dA [r, in], dB [out, r]

    Forward:   xd = m * x,   u = xd A^T,   y = x W^T + s u B^T
    Backward (each line the transpose of a forward line; the sum over the N positions is the matmul):
        dB = s dy^T u          the gradient of u B^T with respect to B
        du = s dy B            ... and with respect to u
        dA = du^T xd           u = xd A^T
        dx = dy W + m * (du A)   x feeds the frozen base path and, through the mask, the adapter
    """
    xd = x if mask is None else x * mask  # [N, in]: dropout on the adapter's input only
    u = xd @ A.T  # [N, in] @ [in, r] -> [N, r]: small, r << in
    y = x @ W.T + scaling * (u @ B.T)  # [N, out]: base + scaled low-rank path (B A is never formed)
    if dy is None:
        return y  # [N, out]
    dB = scaling * (dy.T @ u)  # [out, N] @ [N, r] -> [out, r]
    du = scaling * (dy @ B)  # [N, out] @ [out, r] -> [N, r]
    dA = du.T @ xd  # [r, N] @ [N, in] -> [r, in]
    dxd = du @ A  # [N, r] @ [r, in] -> [N, in]
    dx = dy @ W + (dxd if mask is None else dxd * mask)  # [N, in]: no dW, the base is frozen
    return y, dx, dA, dB
