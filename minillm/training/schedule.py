"""The learning rate at each step: a linear warmup, then either a cosine decay to a floor or warmup-stable-decay.

    step < warmup:   lr(step) = peak * (step + 1) / warmup                        (both schedules)

    cosine:          lr(step) = floor + (peak - floor) * (1 + cos(pi * progress)) / 2,
                     progress = (step - warmup) / (total - warmup)   from 0 to 1

    wsd:             lr(step) = peak                                  until total - decay
                     lr(step) = peak + (floor - peak) * progress      the last ``decay`` steps,
                     progress = (step - (total - decay)) / decay      from 0 to 1

Warmup keeps the first updates small while AdamW's second-moment estimates are still noisy. The cosine spends
most steps at a high rate and anneals at the end, where the loss drops as the noise shrinks; but every step's
rate depends on the total, so the length of a run is fixed when it starts. Warmup-stable-decay (WSD) holds the
peak and anneals only in the last ``decay`` steps (a fifth of the run matches the cosine's final loss), so a run
can be lengthened or shortened on resume, as long as it has not started decaying: the total is chosen late.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "wsd")


def learning_rate(step: int, total_steps: int, peak: float, warmup: int, floor: float = 0.0) -> float:
    """The cosine schedule's learning rate at optimizer step ``step`` (0-based) of ``total_steps``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def wsd_learning_rate(step: int, total_steps: int, peak: float, warmup: int, floor: float, decay_steps: int) -> float:
    """Warmup-stable-decay: the learning rate at optimizer step ``step`` (0-based) of ``total_steps``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    decay_start = total_steps - decay_steps  # the first step below the peak
    if step < decay_start:
        return peak
    progress = min(1.0, (step - decay_start) / decay_steps)
    return peak + (floor - peak) * progress
