"""A run that diverges stops at the step it went bad, and never saves what it cannot load back.

The loss is computed *before* an update, so a finite loss says nothing about the weights the update just wrote:
a learning rate of 1e10 (or a weight decay of 1e30) gives a finite loss at step N and NaN weights after it.
So after every update the step's gradient norm and the weights themselves are checked; a NaN or an infinity
stops the run naming the step, before the next save could write it over the last good checkpoint.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..errors import TrainingError


def check_update(params: dict[str, np.ndarray], grad_norm: float, step: int, last_good: Callable[[], str]) -> None:
    """After step ``step``'s update: the gradient norm and every weight must be finite. ``last_good()`` names the
    last good checkpoint; it reads the run's files, so it is called only when the check fails (not every step)."""
    if not math.isfinite(grad_norm):
        raise TrainingError(f"step {step}: the gradient norm is {grad_norm}; stopped (the run diverged: lower lr). "
                            f"The last good checkpoint is {last_good()}")
    bad = next((name for name, p in params.items() if not np.isfinite(p).all()), None)
    if bad is not None:
        raise TrainingError(f"step {step}: the update made weight {bad!r} non-finite (NaN or infinite); stopped "
                            f"(the run diverged: lower lr or weight_decay). The last good checkpoint is {last_good()}")


def check_outputs(model, ids: np.ndarray, step: int, last_good: Callable[[], str]) -> None:
    """Before a save: finite weights can still compute garbage. A weight decay of 1e10 leaves every weight finite
    but some near 1e20, so RMSNorm's x**2 overflows to inf and the norm silently outputs zeros. One forward over a
    window of the run's own data, ``ids`` [1, T], must neither overflow float32 (the engine silences the overflows
    it expects, e.g. SiLU's exp(-x) for very negative x, so any other one is raised here) nor give non-finite
    logits, or nothing is written and the run stops naming the step."""
    try:
        with np.errstate(over="raise", invalid="raise"):
            logits = model.forward(ids)  # [1, T, V]
        finite = bool(np.isfinite(logits).all())
    except FloatingPointError:
        finite = False
    if not finite:
        raise TrainingError(f"step {step}: the weights are finite but the model's forward overflows float32 (or its "
                            f"logits are not finite) on a window of the training data; not saved, stopped (the run "
                            f"diverged: lower lr or weight_decay). The last good checkpoint is {last_good()}")
