"""Notebook 08's exercises: the router's top-k with renormalisation, and one expert."""

from __future__ import annotations

import numpy as np

from minillm.model.moe import expert_mlp
from minillm.model.router import top_k_routing

from .compare import assert_close


def check_route(fn) -> None:
    """fn(logits [N, E], k) -> (weights [N, k], experts [N, k]): softmax over all E experts, the k most probable
    (most probable first), their probabilities rescaled to sum to 1 (minillm's top_k_routing, norm_topk_prob)."""
    rng = np.random.default_rng(10)
    logits = (rng.standard_normal((6, 8)) * 2).astype(np.float32)  # [N, E], no ties
    for k in (1, 2, 3):
        weights, experts = fn(logits, k)
        want_w, want_e = top_k_routing(logits, k, True)  # [N, k] each
        assert np.array_equal(np.asarray(experts), want_e), (f"k={k}: experts {np.asarray(experts).tolist()}, "
                                                             f"expected {want_e.tolist()} (most probable first)")
        err = float(np.max(np.abs(np.asarray(weights) - want_w)))
        assert err < 1e-5, f"k={k}: weights differ by {err:.3g} (softmax over all E first, then keep k, then / sum)"


def check_expert(fn) -> None:
    """fn(x [n, D], gate_up_proj [2*Fe, D], down_proj [D, Fe]) -> [n, D]: one expert, a SwiGLU MLP whose gate and up
    projections are stacked in one matrix (gate first), as minillm's expert_mlp."""
    rng = np.random.default_rng(11)
    n, D, Fe = 3, 8, 5
    x = rng.standard_normal((n, D)).astype(np.float32)
    gate_up = rng.standard_normal((2 * Fe, D)).astype(np.float32)
    down = rng.standard_normal((D, Fe)).astype(np.float32)
    assert_close(fn(x, gate_up, down), expert_mlp(x, gate_up, down), 1e-4,
                 "rows 0..Fe-1 of gate_up_proj are the gate, Fe..2Fe-1 the up")


CHECKS = {"route": check_route, "expert": check_expert}
