"""AdamW (Loshchilov & Hutter), exactly as ``torch.optim.AdamW`` computes it, and global-norm gradient clipping.

For each weight p with gradient g, at step t = 1, 2, ...:

    p  <- p * (1 - lr * weight_decay)          decoupled weight decay: shrink the weight, outside the Adam ratio
    m  <- b1 * m + (1 - b1) * g                running mean of the gradient        (first moment)
    v  <- b2 * v + (1 - b2) * g^2              running mean of its square          (second moment)
    p  <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

m and v start at 0, so early on they are biased towards 0: dividing by (1 - b^t) corrects that (bias
correction). Each coordinate's step is about lr * (mean / RMS of its recent gradients): scale-free.
No decay on 1-D tensors (RMSNorm weights and biases): shrinking a norm weight towards 0 would only fight the
normalisation; this is the usual split into two parameter groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def decays(name: str, array: np.ndarray) -> bool:
    """Whether weight decay applies: matrices yes (projections, MLP, embedding), 1-D tensors no (norms, biases)."""
    return array.ndim >= 2


@dataclass
class AdamWState:
    """The optimizer's memory: step count and the two moments of every weight (float32, shaped like it)."""

    step: int = 0
    m: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [shape of the weight]
    v: dict[str, np.ndarray] = field(default_factory=dict)


def adamw_step(params: dict[str, np.ndarray], grads: dict[str, np.ndarray], state: AdamWState, lr: float,
               betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.01) -> None:
    """Update every weight in ``params`` in place (and ``state``), in torch.optim.AdamW's order of operations."""
    state.step += 1
    for name, p in params.items():
        if name not in state.m:
            state.m[name] = np.zeros_like(p)  # [shape]
            state.v[name] = np.zeros_like(p)
        adamw_update(p, grads[name], state.m[name], state.v[name], lr, state.step, betas, eps,
                     weight_decay if decays(name, p) else 0.0)


BLOCK = 65536  # elements: adamw_update's arrays in pieces of 256 KB, which stay in the core's cache


def adamw_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float, step: int,
                 betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    """One weight (or any slice of one: every operation is element-wise) at AdamW step ``step`` = 1, 2, ...

    p, g, m, v all [shape], p, m and v updated in place. ZeRO-1 (training/distributed.py) calls this on each
    rank's flat shard of a tensor; ``adamw_step`` on whole tensors.

    Speed, not math: a large weight is updated BLOCK elements at a time (``adamw_formula`` on each piece).
    Its dozen passes then run over a piece held in the cache instead of streaming the whole tensor from
    memory a dozen times: about twice as fast on a 50 MB model, and the same bits (element-wise).
    """
    arrays = (p, g, m, v)
    if p.size <= BLOCK or not all(a.flags.c_contiguous for a in arrays):
        return adamw_formula(p, g, m, v, lr, step, betas, eps, weight_decay)
    p, g, m, v = (a.reshape(-1) for a in arrays)  # [n] views of the same memory
    for first in range(0, p.size, BLOCK):
        piece = slice(first, first + BLOCK)
        adamw_formula(p[piece], g[piece], m[piece], v[piece], lr, step, betas, eps, weight_decay)


def adamw_formula(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, lr: float, step: int,
                  betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    """AdamW on p, g, m, v (all [shape]; p, m, v in place), in torch.optim.AdamW's order of operations."""
    b1, b2 = betas
    bias_correction1 = 1.0 - b1 ** step  # Python floats (double), as torch computes them
    bias_correction2_sqrt = (1.0 - b2 ** step) ** 0.5
    step_size = np.float32(lr / bias_correction1)
    if weight_decay:
        p *= np.float32(1.0 - lr * weight_decay)
    # The formulas, as written, make a new array for every operation; ``t`` is one scratch array for them all
    # (the same float32 operations in the same order, so the same bits; a third less memory traffic):
    #     m += (g - m) * (1 - b1)                   = b1 m + (1 - b1) g, written as torch's lerp
    #     v  = b2 v + (1 - b2) g g
    #     p -= step_size * (m / (sqrt(v) / bias_correction2_sqrt + eps))
    t = np.subtract(g, m)  # [shape]
    t *= np.float32(1.0 - b1)
    m += t
    v *= np.float32(b2)
    np.multiply(np.float32(1.0 - b2), g, out=t)
    t *= g
    v += t
    np.sqrt(v, out=t)
    t /= np.float32(bias_correction2_sqrt)
    t += np.float32(eps)  # the denominator
    np.divide(m, t, out=t)
    t *= step_size
    p -= t


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale every gradient by min(1, max_norm / (total_norm + 1e-6)) in place; return the total norm before.

    total_norm = sqrt(sum of every gradient's squared entries): one norm over the whole model, so clipping
    keeps the update's direction and only shortens it (torch.nn.utils.clip_grad_norm_).
    """
    total = float(np.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads.values())))
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads.values():
            g *= np.float32(scale)
    return total
