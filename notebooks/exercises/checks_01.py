"""Notebook 01's exercises: the pieces of one decoder layer."""

from __future__ import annotations

import numpy as np

from minillm.model.masks import causal_mask
from minillm.model.mlp import MLPWeights, swiglu_mlp
from minillm.model.norm import rms_norm

from .compare import assert_close


def check_rms_norm(fn) -> None:
    """fn(x [T, D], weight [D], eps) -> [T, D], equal to minillm's rms_norm."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 16)).astype(np.float32) * 3  # [T, D]
    weight = rng.standard_normal(16).astype(np.float32)  # [D]
    assert_close(fn(x, weight, 1e-6), rms_norm(x, weight, 1e-6), 1e-5,
                 "the mean of squares is over the last axis, eps inside the root")


def check_causal_mask(fn) -> None:
    """fn(T) -> [T, T] bool, True where query t may attend to key s: minillm's causal_mask(T, 0)[0, 0]."""
    for T in (1, 4, 7):
        got, want = np.asarray(fn(T)), causal_mask(T, 0)[0, 0]  # [T, T] each
        assert got.shape == want.shape, f"T={T}: shape {got.shape}, expected {want.shape}"
        assert np.array_equal(got, want), (f"T={T}: rows are queries, columns keys; query t sees keys 0..t "
                                           f"(itself included). Yours:\n{got.astype(int)}")


def check_swiglu(fn) -> None:
    """fn(x [T, D], gate_proj [F, D], up_proj [F, D], down_proj [D, F]) -> [T, D], equal to minillm's swiglu_mlp."""
    rng = np.random.default_rng(1)
    D, F = 8, 20
    x = rng.standard_normal((3, D)).astype(np.float32)  # [T, D]
    gate, up = rng.standard_normal((F, D)).astype(np.float32), rng.standard_normal((F, D)).astype(np.float32)
    down = rng.standard_normal((D, F)).astype(np.float32) / np.sqrt(F)  # [D, F]
    assert_close(fn(x, gate, up, down), swiglu_mlp(x, MLPWeights(gate, up, down)), 1e-4,
                 "weights are stored [out, in], so x @ W.T; silu goes on the gate only: down(silu(gate x) * up x)")


CHECKS = {"rms_norm": check_rms_norm, "causal_mask": check_causal_mask, "swiglu": check_swiglu}
