"""Notebook 01's exercises: the pieces of one decoder layer."""

from __future__ import annotations

import numpy as np

from minillm.model.norm import rms_norm


def check_rms_norm(fn) -> None:
    """fn(x [T, D], weight [D], eps) -> [T, D], equal to minillm's rms_norm."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 16)).astype(np.float32) * 3  # [T, D]
    weight = rng.standard_normal(16).astype(np.float32)  # [D]
    got, want = np.asarray(fn(x, weight, 1e-6)), rms_norm(x, weight, 1e-6)  # [T, D] each
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    err = float(np.max(np.abs(got - want)))
    assert err < 1e-5, f"max |yours - minillm| = {err:.3g} (the mean of squares is over the last axis, eps inside the root)"


CHECKS = {"rms_norm": check_rms_norm}
