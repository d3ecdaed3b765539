"""LoRA (Hu et al. 2021), exactly as PEFT defines it: a frozen projection plus a trainable low-rank path.

    y = x W^T + b  +  s * dropout(x) A^T B^T          W [out, in] frozen, A [r, in], B [out, r] trained
    s = lora_alpha / r          (use_rslora: lora_alpha / sqrt(r), Kalajdzievski 2023)

Only A and B are trained: r * (in + out) numbers instead of out * in (Qwen2.5-0.5B's q_proj at r = 16:
30,720 instead of 802,816). At the start B = 0, so the model is exactly the base model; A is random
(PEFT's default: ``kaiming_uniform_(a=sqrt(5))``, i.e. uniform in +-1/sqrt(in)), else B's gradient, which is
dy^T (x A^T), would be 0 too and nothing would ever move. Dropout acts on the adapter's input only and only
while training; the base path always sees x.

+--------------------------------------------------------------------------------------------------------+
| ORDER: PEFT computes lora_B(lora_A(dropout(x))) * scaling, i.e. x A^T first ([N, r], small) and then   |
| B. Never form B A ([out, in]) to apply it: that costs as much as W itself. Merging (checkpoint/adapter.py) |
| does form W + s B A once, to fold the adapter into the weights for good.                              |
+--------------------------------------------------------------------------------------------------------+

A ``LoraWeight`` stands where the projection's weight array stood in the weight dataclasses, so attention,
MLP, the KV cache and generation run unchanged: ``linear`` (linear.py) sees it and adds the low-rank path.
Dropout draws its mask from ``dropout_seed`` (None: no dropout, e.g. at inference), so the backward (and a
recomputation under gradient checkpointing) draws the very same mask again instead of storing it.
"""

from __future__ import annotations

import math

import numpy as np


class LoraWeight:
    """One adapted projection: the frozen base weight and the adapter's A and B (not a dataclass on purpose:
    it is one weight, and named_tensors must not walk into it)."""

    def __init__(self, weight: np.ndarray, lora_A: np.ndarray, lora_B: np.ndarray, scaling: float,
                 dropout: float = 0.0):
        self.weight = weight  # [out, in]  the base projection, frozen
        self.lora_A = lora_A  # [r, in]
        self.lora_B = lora_B  # [out, r]
        self.scaling = scaling  # alpha / r, or alpha / sqrt(r) with rsLoRA
        self.dropout = dropout  # probability of zeroing an input of the adapter path (training only)
        self.dropout_seed: tuple | None = None  # set for a training step; None = no dropout

    @property
    def shape(self) -> tuple[int, int]:  # the projection's shape, [out, in], as the bare array had
        return self.weight.shape

    @property
    def dtype(self):
        return self.weight.dtype

    def merged(self) -> np.ndarray:
        """W + s B A: the weight with the adapter folded in.   -> [out, in]"""
        return self.weight + (self.scaling * (self.lora_B @ self.lora_A)).astype(self.weight.dtype)  # [out, in]


def lora_scaling(lora_alpha: float, r: int, use_rslora: bool = False) -> float:
    """s = alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT's LoraLayer.update_layer)."""
    return lora_alpha / math.sqrt(r) if use_rslora else lora_alpha / r


def dropout_mask(shape: tuple[int, ...], p: float, seed, dtype) -> np.ndarray | None:
    """Inverted dropout's multiplier: 0 with probability p, else 1/(1-p) (so the mean is kept); None when off.

    The same (shape, p, seed) always gives the same mask: the backward draws it again instead of keeping it.
    """
    if seed is None or p == 0.0:
        return None
    keep = np.random.default_rng(seed).random(shape, dtype=np.float32) >= p  # [...] bool
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))  # [...] 0 or 1/(1-p)


def lora_delta(x: np.ndarray, w: LoraWeight) -> np.ndarray:
    """The adapter's part of the output: s * dropout(x) A^T B^T.   x [..., in] -> [..., out]"""
    x2 = x.reshape(-1, x.shape[-1])  # [N, in]
    mask = dropout_mask(x2.shape, w.dropout, w.dropout_seed, x2.dtype)  # [N, in] or None
    if mask is not None:
        x2 = x2 * mask  # [N, in]
    u = x2 @ w.lora_A.T  # [N, in] @ [in, r] -> [N, r]
    delta = (u @ w.lora_B.T) * x.dtype.type(w.scaling)  # [N, r] @ [r, out] -> [N, out]
    return delta.reshape(*x.shape[:-1], w.lora_B.shape[0])  # [..., out]
