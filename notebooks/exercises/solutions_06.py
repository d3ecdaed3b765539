"""Solutions to notebook 06's exercises. Try them yourself first."""

import numpy as np


def delta_rule_update(S, k, v, g, beta):
    """S [Dk, Dv] -> [Dk, Dv]: decay, predict what S returns for k, move it towards v by beta."""
    S = S * np.exp(g)  # [Dk, Dv]
    predicted = k @ S  # [Dv]
    return S + np.outer(k, beta * (v - predicted))  # [Dk, Dv]


def decay(a, A_log, dt_bias):
    """a [T, Hv] -> g [T, Hv] <= 0."""
    return -np.exp(A_log) * np.logaddexp(0, a + dt_bias)  # softplus(u) = log(1 + e^u), computed stably
