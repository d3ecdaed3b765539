"""The comparison every check ends with: the learner's array against minillm's, with a hint when it differs."""

from __future__ import annotations

import numpy as np


def assert_close(got, want: np.ndarray, tolerance: float, hint: str, what: str = "") -> None:
    """Raise AssertionError unless got has want's shape and max |got - want| < tolerance; say what to look at."""
    got = np.asarray(got)
    where = f"{what}: " if what else ""
    assert got.shape == want.shape, f"{where}shape {got.shape}, expected {want.shape}"
    err = float(np.max(np.abs(got - want)))
    assert err < tolerance, f"{where}max |yours - minillm| = {err:.3g} ({hint})"
