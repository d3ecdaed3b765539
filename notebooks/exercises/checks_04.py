"""Notebook 04's exercises: the logit lens for one layer, and the error measure of the reference table."""

from __future__ import annotations

import numpy as np

from minillm.model.activations import softmax
from minillm.model.norm import rms_norm
from minillm.model.transformer import lm_head
from minillm.tools.verify import _row as error_row

from .compare import assert_close


def check_logit_lens(fn) -> None:
    """fn(h [T, D], norm_weight [D], eps, lm_head_weight [V, D]) -> probs [T, V]: the next-token distribution
    the model would give if it stopped at the residual stream h (final RMSNorm, LM head, softmax)."""
    rng = np.random.default_rng(6)
    T, D, V = 4, 16, 30
    h = (rng.standard_normal((T, D)) * 5).astype(np.float32)  # [T, D]
    norm_weight = (1 + 0.1 * rng.standard_normal(D)).astype(np.float32)  # [D]
    head = rng.standard_normal((V, D)).astype(np.float32)  # [V, D]
    want = softmax(lm_head(rms_norm(h, norm_weight, 1e-6), head))  # [T, V]
    assert_close(fn(h, norm_weight, 1e-6, head), want, 1e-5, "the final norm comes first: the residual stream is "
                 "not normalised until the end; then h @ lm_head.T and a softmax over V")


def check_relative_error(fn) -> None:
    """fn(ours, theirs) -> float: max |ours - theirs| / max |theirs|, the 'relative' column of minillm verify."""
    rng = np.random.default_rng(7)
    theirs = (rng.standard_normal((3, 5)) * 40).astype(np.float32)
    ours = theirs + (rng.standard_normal((3, 5)) * 1e-3).astype(np.float32)
    got, want = float(np.asarray(fn(ours, theirs))), error_row("x", ours, theirs).rel_error
    assert abs(got - want) <= 1e-6 * want, (f"yours {got:.4g}, minillm verify {want:.4g} (the largest absolute "
                                             f"difference over the largest magnitude of the reference)")


CHECKS = {"logit_lens": check_logit_lens, "relative_error": check_relative_error}
