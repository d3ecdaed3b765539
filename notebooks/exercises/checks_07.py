"""Notebook 07's exercises: the three formulas of a training step (the loss, one AdamW update, the learning rate)."""

from __future__ import annotations

import numpy as np

from minillm.training.adamw import AdamWState, adamw_step
from minillm.training.loss import cross_entropy
from minillm.training.schedule import learning_rate


def check_cross_entropy(fn) -> None:
    """fn(logits [B, T, V], ids [B, T]) -> the mean next-token loss, equal to minillm's cross_entropy."""
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((2, 5, 11)).astype(np.float32) * 3  # [B, T, V]
    ids = rng.integers(0, 11, (2, 5))  # [B, T]
    got, want = float(np.asarray(fn(logits, ids))), cross_entropy(logits, ids)
    assert abs(got - want) < 1e-5 * max(1.0, abs(want)), (
        f"yours {got:.6f}, minillm {want:.6f} (the logits at position t are scored against ids[:, t + 1]: "
        f"the last position predicts nothing; one mean over all B x (T - 1) targets)")


def check_adamw_step(fn) -> None:
    """fn(p, g, m, v, t, lr, b1, b2, eps, wd) -> (new p, new m, new v) for one 2-D weight, equal to minillm's."""
    rng = np.random.default_rng(8)
    p = rng.standard_normal((4, 3)).astype(np.float32)  # [out, in]: a matrix, so weight decay applies
    m = rng.standard_normal((4, 3)).astype(np.float32) * 0.1
    v = np.abs(rng.standard_normal((4, 3))).astype(np.float32) * 0.01
    g = rng.standard_normal((4, 3)).astype(np.float32)
    t, lr, b1, b2, eps, wd = 3, 0.01, 0.9, 0.95, 1e-8, 0.1
    want = {"w": p.copy()}
    state = AdamWState(step=t - 1, m={"w": m.copy()}, v={"w": v.copy()})
    adamw_step(want, {"w": g.copy()}, state, lr, (b1, b2), eps, wd)  # in place: step t
    got = fn(p.copy(), g.copy(), m.copy(), v.copy(), t, lr, b1, b2, eps, wd)
    for name, mine, theirs, hint in (
            ("p", got[0], want["w"], "shrink p by (1 - lr wd) first (decoupled), then subtract "
                                     "lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)"),
            ("m", got[1], state.m["w"], "m = b1 m + (1 - b1) g"),
            ("v", got[2], state.v["w"], "v = b2 v + (1 - b2) g^2")):
        err = float(np.max(np.abs(np.asarray(mine, np.float64) - theirs)))
        assert err < 1e-6, f"new {name}: max |yours - minillm| = {err:.3g} ({hint})"


def check_cosine_learning_rate(fn) -> None:
    """fn(step, total_steps, peak, warmup, floor) -> the warmup + cosine learning rate, equal to minillm's."""
    total, peak, warmup, floor = 50, 3e-3, 10, 3e-4
    for step in (0, 1, 5, 9, 10, 11, 25, 30, 49, 50, 60):
        got, want = float(np.asarray(fn(step, total, peak, warmup, floor))), learning_rate(step, total, peak, warmup, floor)
        assert abs(got - want) < 1e-9, (
            f"step {step}: yours {got:.6g}, minillm {want:.6g} (warmup: peak * (step + 1) / warmup; then "
            f"floor + (peak - floor) * (1 + cos(pi * progress)) / 2, progress = (step - warmup) / (total - warmup), "
            f"at most 1)")


CHECKS = {"cross_entropy": check_cross_entropy, "adamw_step": check_adamw_step,
          "cosine_learning_rate": check_cosine_learning_rate}
