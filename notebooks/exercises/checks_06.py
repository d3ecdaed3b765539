"""Notebook 06's exercises: the delta rule's update for one token, and the decay g."""

from __future__ import annotations

import numpy as np

from minillm.model.activations import softplus
from minillm.model.delta_rule import delta_rule_step

from .compare import assert_close


def check_delta_rule_update(fn) -> None:
    """fn(S [Dk, Dv], k [Dk], v [Dv], g, beta) -> new S [Dk, Dv]: decay by exp(g), then move what S returns for k
    towards v by beta (minillm's delta_rule_step, one head)."""
    rng = np.random.default_rng(8)
    Dk, Dv = 4, 3
    S = rng.standard_normal((Dk, Dv))  # [Dk, Dv]
    k = rng.standard_normal(Dk); k /= np.linalg.norm(k)  # [Dk], unit length as the layer makes it
    for g, beta in ((0.0, 1.0), (-0.3, 0.5), (-2.0, 0.1)):
        v = rng.standard_normal(Dv)  # [Dv]
        one = lambda a: np.asarray(a, np.float64)[None, None]  # [1, 1, ...]: batch and head axes
        _, want = delta_rule_step(one(k), one(k), one(v), one(g), one(beta), one(S).copy())
        assert_close(fn(S.copy(), k, v, g, beta), want[0, 0], 1e-9, "decay first: S * exp(g); then the prediction "
                     "k^T S, and S + k (beta (v - k^T S))^T", what=f"g={g}, beta={beta}")


def check_decay(fn) -> None:
    """fn(a [T, Hv], A_log [Hv], dt_bias [Hv]) -> g [T, Hv] = -exp(A_log) * softplus(a + dt_bias), the log of what the
    memory keeps per token (as minillm's gated_deltanet computes it)."""
    rng = np.random.default_rng(9)
    a = (rng.standard_normal((5, 4)) * 3).astype(np.float32)  # [T, Hv]
    A_log, dt_bias = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4).astype(np.float32)  # [Hv]
    want = -np.exp(A_log) * softplus(a + dt_bias)  # [T, Hv]
    got = np.asarray(fn(a, A_log, dt_bias))
    assert np.all(got <= 0), "g must be <= 0: the memory may only shrink (exp(g) <= 1)"
    assert_close(got, want, 1e-4, "softplus(u) = log(1 + exp(u))")


CHECKS = {"delta_rule_update": check_delta_rule_update, "decay": check_decay}
