"""Notebook 09's exercises: a LoRA projection, and the adapter folded into the weight (merge)."""

from __future__ import annotations

import numpy as np

from minillm.model.fast_linear import fast_linear
from minillm.model.lora import LoraWeight

from .compare import assert_close


def _adapted(seed: int):
    rng = np.random.default_rng(seed)
    N, d_in, d_out, r = 5, 12, 7, 3
    x = rng.standard_normal((N, d_in)).astype(np.float32)  # [N, in]
    W = rng.standard_normal((d_out, d_in)).astype(np.float32)  # [out, in]
    A = rng.standard_normal((r, d_in)).astype(np.float32)  # [r, in]
    B = rng.standard_normal((d_out, r)).astype(np.float32)  # [out, r]: not zero, so the adapter shows
    return x, W, A, B, 16.0 / r  # alpha / r, alpha = 16


def check_lora_forward(fn) -> None:
    """fn(x [N, in], W [out, in], A [r, in], B [out, r], scaling) -> y [N, out] = x W^T + scaling x A^T B^T, as
    minillm's engine computes a projection that carries an adapter (model/lora.py)."""
    x, W, A, B, s = _adapted(20)
    assert_close(fn(x, W, A, B, s), fast_linear(x, LoraWeight(W, A, B, s)), 1e-4,
                 "the adapter's path is scaled by alpha / r and added to the frozen projection")


def check_merge(fn) -> None:
    """fn(W [out, in], A [r, in], B [out, r], scaling) -> [out, in]: one weight that gives, alone, what the frozen
    projection plus its adapter give (what `minillm merge` writes)."""
    x, W, A, B, s = _adapted(21)
    merged = np.asarray(fn(W, A, B, s))
    assert merged.shape == W.shape, f"shape {merged.shape}, expected {W.shape} like W"
    assert_close(fast_linear(x, merged), fast_linear(x, LoraWeight(W, A, B, s)), 1e-4,
                 "x W'^T must equal x W^T + s x A^T B^T for every x: W' = W + s B A")


CHECKS = {"lora_forward": check_lora_forward, "merge": check_merge}
