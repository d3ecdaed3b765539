"""Properties of the router and the sparse MoE block, on inputs drawn by hypothesis, and the tie order of
torch.topk, from transformers' own outputs (weights/moe_topk_reference.npz).

Each was checked to fail when the code is broken the way it guards against (no renormalisation, ties broken
lowest index first, one expert too many per token, a token's output added twice, the shared expert ungated).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minillm.model.activations import sigmoid, softmax
from minillm.model.mlp import MLPWeights, swiglu_mlp
from minillm.model.moe import ExpertWeights, MoEWeights, dense_moe_block, sparse_moe_block
from minillm.model.router import route, top_k_routing
from minillm.model.topk import top_k
from conftest import WEIGHTS

FAST = settings(max_examples=40, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)


@pytest.fixture(scope="module")
def topk_reference() -> dict[str, np.ndarray]:
    with np.load(WEIGHTS / "moe_topk_reference.npz") as f:
        return {k: f[k] for k in f.files}


def router_logits(seed: int, N: int, E: int, ties: bool) -> np.ndarray:
    """[N, E] float32; with ``ties``, few distinct values per row (so experts tie), else all different."""
    rng = np.random.default_rng(seed)
    if ties:
        return (rng.integers(0, 3, (N, E)) * rng.integers(1, 3, (N, 1))).astype(np.float32)
    return (3 * rng.standard_normal((N, E))).astype(np.float32)


def moe_weights(seed: int, E: int, D: int, Fe: int, shared: bool) -> MoEWeights:
    rng = np.random.default_rng(seed)
    w = lambda *shape: (0.3 * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    gate = w(E, D)
    gate[E // 2] = gate[0]  # two experts with the same router row: they always tie
    return MoEWeights(gate=gate, experts=ExpertWeights(gate_up_proj=w(E, 2 * Fe, D), down_proj=w(E, D, Fe)),
                      shared_expert=MLPWeights(w(8, D), w(8, D), w(D, 8)) if shared else None,
                      shared_expert_gate=w(1, D) if shared else None)


# ---------------------------------------------------------------------------------------------- routing invariants

@FAST
@given(seed=seeds, N=st.integers(1, 12), E=st.integers(1, 70), data=st.data(), ties=st.booleans(),
       normalize=st.booleans())
def test_every_token_gets_exactly_k_different_experts_the_most_probable_ones(seed, N, E, data, ties, normalize):
    k = data.draw(st.integers(1, E))
    logits = router_logits(seed, N, E, ties)
    weights, experts = top_k_routing(logits, k, normalize)
    assert weights.shape == experts.shape == (N, k) and weights.dtype == np.float32
    assert all(len(set(row)) == k for row in experts.tolist()) and experts.min() >= 0 and experts.max() < E
    probs = softmax(logits)
    chosen = np.take_along_axis(probs, experts, -1)  # [N, k]
    is_chosen = (np.arange(E)[None, None, :] == experts[:, :, None]).any(1)  # [N, E]
    unchosen = np.where(is_chosen, -np.inf, probs)  # [N, E]
    assert (chosen.min(-1) >= unchosen.max(-1)).all()  # no expert left out is more probable than one chosen
    assert (np.diff(chosen, axis=-1) <= 0).all()  # most probable first
    if normalize:
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
        # renormalised top-k probabilities = a softmax over the k chosen logits alone
        np.testing.assert_allclose(weights, softmax(np.take_along_axis(logits, experts, -1)), rtol=1e-5, atol=1e-7)
    else:
        np.testing.assert_array_equal(weights, chosen)  # the plain probabilities, summing to at most 1
        assert (weights.sum(-1) <= 1 + 1e-6).all()


@FAST
@given(seed=seeds, B=st.integers(1, 3), T=st.integers(1, 9), E=st.integers(2, 9), data=st.data(),
       normalize=st.booleans(), shared=st.booleans())
def test_the_sparse_block_equals_the_dense_reference_that_runs_every_expert(seed, B, T, E, data, normalize, shared):
    k = data.draw(st.integers(1, E))
    D, Fe = 12, 5
    w = moe_weights(seed, E, D, Fe, shared)
    x = np.random.default_rng(seed + 1).standard_normal((B, T, D)).astype(np.float32)
    x[0, 0] = 0.0  # every router logit 0: all experts tie, decided by torch's tie order
    sparse = sparse_moe_block(x, w, k, normalize)
    assert sparse.shape == x.shape and sparse.dtype == np.float32
    np.testing.assert_allclose(sparse, dense_moe_block(x, w, k, normalize), rtol=1e-5, atol=1e-6)


@FAST
@given(seed=seeds, T=st.integers(2, 12), split=st.integers(1, 11), normalize=st.booleans())
def test_each_token_is_routed_on_its_own(seed, T, split, normalize):
    """Batching changes nothing: the block on a sequence equals the block on two parts of it."""
    w = moe_weights(seed, 6, 12, 5, shared=True)
    x = np.random.default_rng(seed).standard_normal((T, 12)).astype(np.float32)
    split = min(split, T - 1)
    whole = sparse_moe_block(x, w, 2, normalize)
    parts = np.concatenate([sparse_moe_block(x[:split], w, 2, normalize), sparse_moe_block(x[split:], w, 2, normalize)])
    np.testing.assert_allclose(whole, parts, rtol=1e-6, atol=1e-6)


def test_the_shared_expert_is_scaled_by_its_own_sigmoid_gate_per_token():
    w = moe_weights(0, 4, 12, 5, shared=True)
    x = np.random.default_rng(1).standard_normal((5, 12)).astype(np.float32)
    without = MoEWeights(gate=w.gate, experts=w.experts)
    gate = sigmoid(x @ w.shared_expert_gate.T)  # [5, 1], a definition written out
    np.testing.assert_allclose(sparse_moe_block(x, w, 2, True) - sparse_moe_block(x, without, 2, True),
                               gate * swiglu_mlp(x, w.shared_expert), rtol=1e-5, atol=1e-6)


def test_router_logits_are_recorded_when_asked_for():
    w = moe_weights(0, 4, 12, 5, shared=False)
    x = np.random.default_rng(1).standard_normal((2, 3, 12)).astype(np.float32)
    record: list = []
    sparse_moe_block(x, w, 2, True, router_logits=record)
    assert len(record) == 1 and record[0].shape == (2, 3, 4)
    np.testing.assert_array_equal(record[0].reshape(6, 4), route(x.reshape(6, 12), w.gate, 2, True)[2])


# ---------------------------------------------------------------------------------- ties, as torch breaks them

def test_top_k_returns_what_torch_topk_returns_on_rows_full_of_ties(topk_reference):
    cases = [key[len("probs_"):] for key in topk_reference if key.startswith("probs_")]
    assert len(cases) >= 10
    for case in cases:
        probs = topk_reference[f"probs_{case}"]
        k = int(case.split("_")[1])
        values, indices = top_k(probs, k)
        np.testing.assert_array_equal(indices, topk_reference[f"indices_{case}"], err_msg=case)
        np.testing.assert_array_equal(values, topk_reference[f"values_{case}"], err_msg=case)
    lowest_first = np.argsort(-topk_reference["probs_8_2"], axis=-1, kind="stable")[:, :2]
    assert (lowest_first != topk_reference["indices_8_2"]).any()  # the tie order is not "lowest index first"


@pytest.mark.parametrize("normalize", [True, False])
def test_the_router_matches_transformers_router_when_experts_tie(topk_reference, normalize):
    """Qwen3MoeTopKRouter on an all-zero row (all experts tie) and router rows copied (experts 3, 5, 11 tie)."""
    ref, suffix = topk_reference, "norm" if normalize else "plain"
    weights, experts, _ = route(ref["router_x"], ref["router_weight"], int(ref["router_k"]), normalize)
    np.testing.assert_array_equal(experts, ref[f"router_experts_{suffix}"])
    np.testing.assert_allclose(weights, ref[f"router_weights_{suffix}"], rtol=1e-6, atol=1e-7)
