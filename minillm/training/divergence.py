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
