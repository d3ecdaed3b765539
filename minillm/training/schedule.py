"""The learning rate at each step: a linear warmup, then a cosine decay to a floor.

    step < warmup:   lr(step) = peak * (step + 1) / warmup
    afterwards:      lr(step) = floor + (peak - floor) * (1 + cos(pi * progress)) / 2,
                     progress = (step - warmup) / (total - warmup)   from 0 to 1

Warmup keeps the first updates small while AdamW's second-moment estimates are still noisy; the cosine
spends most steps at a high rate and anneals at the end, where the loss drops as the noise shrinks.
"""

from __future__ import annotations

import math


def learning_rate(step: int, total_steps: int, peak: float, warmup: int, floor: float = 0.0) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of ``total_steps``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
