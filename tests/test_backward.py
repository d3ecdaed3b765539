"""The backward pass: every gradient is checked twice, against finite differences and against PyTorch.

1. Each backward function against central finite differences of its forward, in float64, on random small
   shapes drawn by hypothesis (GQA groups, q/k-norm, biases, sliding windows included). The functions keep the
   dtype of their inputs, so this runs the very code that trains in float32.
2. The whole model's loss and every gradient against transformers' ``loss.backward()`` on the tiny reference
   checkpoints (weights/*/grad_reference.npz, written by scripts/make_grad_fixtures.py), within 1e-4 of each
   tensor's largest gradient; a per-tensor error table is printed on failure.

Each check was seen to fail by breaking the code the way it guards against (a dropped GQA group sum, a
forgotten tied-head gradient, RoPE rotated forward instead of back, the loss not shifted, -100 scored).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import minillm
from minillm.backward.activations import silu_backward, softmax_backward
from minillm.backward import attention as attention_module
from minillm.backward.attention import (causal_attention, causal_attention_backward,
                                        scaled_dot_product_attention_backward, self_attention_backward,
                                        self_attention_forward)
from minillm.backward.block import decoder_layer_backward, decoder_layer_forward
from minillm.backward.embedding import embed_backward
from minillm.backward.linear import linear_backward
from minillm.backward.mlp import swiglu_mlp_backward, swiglu_mlp_forward
from minillm.backward.norm import rms_norm_backward
from minillm.backward.rope import apply_rope_backward
from minillm.backward.transformer import activation_bytes, minimum_activation_bytes, model_forward
from minillm.checkpoint.weights import build_weights, expected_shapes, named_tensors
from minillm.model.activations import silu, softmax
from minillm.model.attention import (MASKED, AttentionWeights, attention_probs, scaled_dot_product_attention,
                                     self_attention)
from minillm.model.block import LayerWeights, decoder_layer
from minillm.model.linear import linear
from minillm.model.masks import causal_mask
from minillm.model.mlp import MLPWeights, swiglu_mlp
from minillm.model.norm import rms_norm
from minillm.model.rope import apply_rope, default_inv_freq, rope_cos_sin
from minillm.training.loss import cross_entropy, cross_entropy_backward
from conftest import WEIGHTS, tiny_model

RTOL = 1e-4


def grad_reference(name: str) -> dict[str, np.ndarray]:
    with np.load(WEIGHTS / name / "grad_reference.npz") as f:
        return {k: f[k] for k in f.files}


def gradient_error_table(grads: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> tuple[float, str]:
    """The worst relative error and a table: per tensor, max |ours - torch| / max |torch|."""
    lines, worst = [f"{'tensor':<46}{'max |diff|':>12}{'max |ref|':>12}{'relative':>12}"], 0.0
    for name in [k for k in ref if k in grads]:  # checkpoint order: embedding, layer 0, ..., head
        err = float(np.abs(grads[name].astype(np.float64) - ref[name]).max())
        scale = float(np.abs(ref[name]).max()) or 1.0
        worst = max(worst, err / scale)
        flag = "  <-- over tolerance" if err / scale > RTOL else ""
        lines.append(f"{name:<46}{err:>12.3e}{scale:>12.3g}{err / scale:>12.3e}{flag}")
    return worst, "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# the whole model against transformers' autograd
# ----------------------------------------------------------------------------------------------------------

def test_every_gradient_matches_transformers_autograd(model_name):
    model, ref = tiny_model(model_name), grad_reference(model_name)
    loss, grads = minillm.loss_and_grads(model, ref["ids"], ref["labels"])
    assert set(grads) == set(ref) - {"ids", "labels", "loss"}
    assert abs(loss - float(ref["loss"])) <= RTOL * abs(float(ref["loss"])), (loss, float(ref["loss"]))
    worst, table = gradient_error_table(grads, ref)
    assert worst <= RTOL, f"{model_name}: gradients drift from transformers:\n{table}"


# ----------------------------------------------------------------------------------------------------------
# every backward function against central finite differences, in float64
# ----------------------------------------------------------------------------------------------------------

EPS = 1e-5  # float64 central differences, step EPS * rms(p): truncation ~EPS^2, rounding ~1e-16 / EPS
FD = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(0, 2 ** 32 - 1)


def assert_matches_finite_differences(loss_fn, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                                      seed: int) -> None:
    """For each array in ``params`` (which ``loss_fn()`` reads), along a random direction u:
    <grad, u> == (loss(p + h u) - loss(p - h u)) / 2h, to 1e-5 of |grad| |u|, with the step h = EPS * rms(p)
    (relative, so that tiny inputs, where RMSNorm's eps makes the function sharply curved, get a tiny step)."""
    rng = np.random.default_rng(seed)
    assert set(grads) == set(params), set(grads) ^ set(params)
    for name, p in params.items():
        assert grads[name].shape == p.shape and grads[name].dtype == np.float64, name
        u = rng.standard_normal(p.shape)
        step = EPS * (float(np.sqrt(np.mean(np.square(p)))) or 1.0)
        original = p.copy()
        p += step * u
        plus = loss_fn()
        p[...] = original - step * u
        minus = loss_fn()
        p[...] = original
        numeric = (plus - minus) / (2 * step)
        analytic = float((grads[name] * u).sum())
        tol = 1e-5 * float(np.linalg.norm(grads[name]) * np.linalg.norm(u)) + 1e-10
        assert abs(analytic - numeric) <= tol, f"{name}: backward gives {analytic!r}, finite differences {numeric!r}"


# In the layer-level checks: over a row of 2 numbers (Dh = 2, D = 2) RMSNorm is nearly x / |x|, and an
# entry near 0 makes it too sharply curved for any finite-difference step. A larger eps keeps it smooth (and
# makes the eps term of the derivative matter more).
NORM_EPS = 1e-2


def randn(rng, *shape, scale=1.0) -> np.ndarray:
    return scale * rng.standard_normal(shape)  # float64


def rope64(T: int, Dh: int, scaling: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    cos, sin = rope_cos_sin(np.arange(T)[None], default_inv_freq(Dh, 10000.0), scaling)  # [1, T, Dh]
    return cos.astype(np.float64), sin.astype(np.float64)


def attention_weights(rng, D: int, H: int, K: int, Dh: int, bias: bool, qk_norm: bool) -> AttentionWeights:
    return AttentionWeights(
        q_proj=randn(rng, H * Dh, D, scale=0.5), k_proj=randn(rng, K * Dh, D, scale=0.5),
        v_proj=randn(rng, K * Dh, D, scale=0.5), o_proj=randn(rng, D, H * Dh, scale=0.5),
        q_proj_bias=randn(rng, H * Dh) if bias else None, k_proj_bias=randn(rng, K * Dh) if bias else None,
        v_proj_bias=randn(rng, K * Dh) if bias else None, o_proj_bias=randn(rng, D) if bias else None,
        q_norm=1 + randn(rng, Dh, scale=0.3) if qk_norm else None,
        k_norm=1 + randn(rng, Dh, scale=0.3) if qk_norm else None)


def fields(w) -> dict[str, np.ndarray]:
    """The arrays of a weights dataclass by field name, the None ones left out."""
    return {k: v for k, v in vars(w).items() if v is not None}


@FD
@given(seed=seeds, lead=st.lists(st.integers(1, 3), min_size=1, max_size=3), n_in=st.integers(1, 6),
       n_out=st.integers(1, 6), bias=st.booleans())
def test_linear_backward_matches_finite_differences(seed, lead, n_in, n_out, bias):
    rng = np.random.default_rng(seed)
    x, w, b = randn(rng, *lead, n_in), randn(rng, n_out, n_in), randn(rng, n_out) if bias else None
    g = randn(rng, *lead, n_out)  # loss = sum(g * y), so dL/dy = g
    dx, dw, db = linear_backward(g, x, w, b)
    assert (db is None) == (b is None)
    params = {"x": x, "weight": w, **({"bias": b} if bias else {})}
    grads = {"x": dx, "weight": dw, **({"bias": db} if bias else {})}
    assert_matches_finite_differences(lambda: float((linear(x, w, b) * g).sum()), params, grads, seed)


@FD
@given(seed=seeds, lead=st.lists(st.integers(1, 3), min_size=1, max_size=3), n=st.integers(1, 8),
       scale=st.sampled_from([1e-2, 1.0, 30.0]))
def test_rms_norm_backward_matches_finite_differences_over_any_last_axis(seed, lead, n, scale):
    """The same function serves the norms over D ([B, T, D]) and Qwen3's q/k-norm over Dh ([B, H, T, Dh])."""
    rng = np.random.default_rng(seed)
    x, w, g, eps = randn(rng, *lead, n, scale=scale), 1 + randn(rng, n, scale=0.3), randn(rng, *lead, n), 1e-6
    dx, dw = rms_norm_backward(g, x, w, eps)
    assert_matches_finite_differences(lambda: float((rms_norm(x, w, eps) * g).sum()), {"x": x, "weight": w},
                                      {"x": dx, "weight": dw}, seed)


@FD
@given(seed=seeds, B=st.integers(1, 2), heads=st.integers(1, 3), T=st.integers(1, 6),
       half=st.integers(1, 4), scaling=st.sampled_from([1.0, 1.1386]))
def test_rope_backward_matches_finite_differences(seed, B, heads, T, half, scaling):
    rng = np.random.default_rng(seed)
    cos, sin = rope64(T, 2 * half, scaling)  # scaling 1.1386: YaRN's attention factor at factor 4
    x, g = randn(rng, B, heads, T, 2 * half), randn(rng, B, heads, T, 2 * half)
    dx = apply_rope_backward(g, cos, sin)
    assert_matches_finite_differences(lambda: float((apply_rope(x, cos, sin) * g).sum()), {"x": x}, {"x": dx}, seed)


def test_rope_backward_rotates_back_by_the_same_angle():
    """Without scaling, RoPE's backward is its inverse: rotating forward then back gives x again."""
    rng = np.random.default_rng(0)
    x = randn(rng, 2, 3, 7, 8)
    cos, sin = rope64(7, 8)
    np.testing.assert_allclose(apply_rope_backward(apply_rope(x, cos, sin), cos, sin), x, atol=1e-12)


@FD
@given(seed=seeds, shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), masked=st.booleans())
def test_softmax_backward_matches_finite_differences(seed, shape, masked):
    rng = np.random.default_rng(seed)
    scores, g = randn(rng, *shape, scale=3.0), randn(rng, *shape)
    allowed = np.ones(shape, bool)
    if masked:  # as attention masks a key: its score becomes MASKED, its probability exactly 0
        allowed[..., -1] = shape[-1] == 1

    def probs():
        return softmax(np.where(allowed, scores, MASKED))

    ds = softmax_backward(g, probs())
    assert not ds[~allowed].any()  # a masked score gets exactly 0: the mask needs no backward of its own
    assert_matches_finite_differences(lambda: float((probs() * g).sum()), {"scores": scores}, {"scores": ds}, seed)


@FD
@given(seed=seeds, n=st.integers(1, 20), scale=st.sampled_from([1.0, 10.0]))
def test_silu_backward_matches_finite_differences(seed, n, scale):
    rng = np.random.default_rng(seed)
    u, g = randn(rng, n, scale=scale), randn(rng, n)
    assert_matches_finite_differences(lambda: float((silu(u) * g).sum()), {"u": u}, {"u": silu_backward(g, u)}, seed)


def test_silu_backward_is_finite_where_exp_overflows():
    u = np.array([-1000.0, -100.0, 0.0, 100.0], np.float32)
    du = silu_backward(np.ones_like(u), u)
    assert du.dtype == np.float32 and np.isfinite(du).all()
    np.testing.assert_allclose(du, [0.0, 0.0, 0.5, 1.0], atol=1e-6)


def test_embedding_backward_adds_every_occurrence_of_a_token():
    """dE[v] sums dx over every position holding v (the plain loop), and rows never used stay 0."""
    rng = np.random.default_rng(0)
    ids = np.array([[3, 1, 3], [3, 0, 1]])
    dx, table = randn(rng, 2, 3, 4).astype(np.float32), np.zeros((6, 4), np.float32)
    expected = np.zeros((6, 4), np.float32)
    for b in range(2):
        for t in range(3):
            expected[ids[b, t]] += dx[b, t]
    d_embed = embed_backward(dx, ids, table)
    assert d_embed.dtype == np.float32
    np.testing.assert_array_equal(d_embed, expected)
    assert not d_embed[[2, 4, 5]].any()


@st.composite
def attention_shapes(draw):
    """B, T, H, K (H a multiple of K), Dh (even), D, a sliding window or None."""
    K, group = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return dict(B=draw(st.integers(1, 2)), T=draw(st.integers(1, 6)), H=K * group, K=K,
                Dh=2 * draw(st.integers(1, 3)), D=draw(st.integers(2, 6)),
                window=draw(st.one_of(st.none(), st.integers(1, 4))))


@FD
@given(seed=seeds, s=attention_shapes())
def test_attention_core_backward_matches_finite_differences_with_gqa_and_windows(seed, s):
    """dk and dv of a shared key/value head sum over its group of query heads."""
    rng = np.random.default_rng(seed)
    B, T, H, K, Dh = s["B"], s["T"], s["H"], s["K"], s["Dh"]
    q, k, v = randn(rng, B, H, T, Dh), randn(rng, B, K, T, Dh), randn(rng, B, K, T, Dh)
    mask, g = causal_mask(T, 0, None, s["window"]), randn(rng, B, H, T, Dh)
    probs = attention_probs(q, k, mask)  # [B, K, G, T, S]
    dq, dk, dv = scaled_dot_product_attention_backward(g, q, k, v, probs)
    assert_matches_finite_differences(
        lambda: float((scaled_dot_product_attention(q, k, v, mask) * g).sum()), {"q": q, "k": k, "v": v},
        {"q": dq, "k": dk, "v": dv}, seed)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, s=attention_shapes(), T=st.integers(1, 12), block=st.integers(1, 13))
def test_causal_attention_in_query_blocks_is_the_whole_matrix_computation(seed, s, T, block):
    """Each block of query rows scores only the keys up to its last row; forward and backward are unchanged."""
    rng = np.random.default_rng(seed)
    B, H, K, Dh = s["B"], s["H"], s["K"], s["Dh"]
    q, k, v, g = randn(rng, B, H, T, Dh), randn(rng, B, K, T, Dh), randn(rng, B, K, T, Dh), randn(rng, B, H, T, Dh)
    mask = causal_mask(T, 0, None, s["window"])
    out, probs = causal_attention(q, k, v, mask, block)
    assert len(probs) == -(-T // block) and probs[0].shape[-1] == min(block, T)
    np.testing.assert_allclose(out, scaled_dot_product_attention(q, k, v, mask), rtol=1e-12, atol=1e-12)
    whole = scaled_dot_product_attention_backward(g, q, k, v, attention_probs(q, k, mask))
    for name, blocked, expected in zip("dq dk dv".split(), causal_attention_backward(g, q, k, v, probs), whole):
        np.testing.assert_allclose(blocked, expected, rtol=1e-12, atol=1e-12, err_msg=name)


@FD
@given(seed=seeds, s=attention_shapes(), bias=st.booleans(), qk_norm=st.booleans())
def test_self_attention_backward_matches_finite_differences(seed, s, bias, qk_norm):
    """Projections with and without biases, q/k-norm on and off, RoPE, GQA, causal or sliding window."""
    rng = np.random.default_rng(seed)
    B, T, H, K, Dh, D = s["B"], s["T"], s["H"], s["K"], s["Dh"], s["D"]
    w = attention_weights(rng, D, H, K, Dh, bias, qk_norm)
    x, g, (cos, sin), mask = randn(rng, B, T, D), randn(rng, B, T, D), rope64(T, Dh), causal_mask(T, 0, None, s["window"])
    out, saved = self_attention_forward(x, w, H, K, NORM_EPS, cos, sin, mask)
    np.testing.assert_allclose(out, self_attention(x, w, H, K, NORM_EPS, cos, sin, mask), rtol=1e-12, atol=1e-12)
    dx, dw = self_attention_backward(g, saved, w, H, K, NORM_EPS, cos, sin)
    assert_matches_finite_differences(lambda: float((self_attention(x, w, H, K, NORM_EPS, cos, sin, mask) * g).sum()),
                                      {"x": x, **fields(w)}, {"x": dx, **fields(dw)}, seed)


@FD
@given(seed=seeds, lead=st.lists(st.integers(1, 3), min_size=1, max_size=2), D=st.integers(1, 6),
       F=st.integers(1, 8))
def test_swiglu_mlp_backward_matches_finite_differences(seed, lead, D, F):
    rng = np.random.default_rng(seed)
    w = MLPWeights(gate_proj=randn(rng, F, D), up_proj=randn(rng, F, D), down_proj=randn(rng, D, F))
    x, g = randn(rng, *lead, D), randn(rng, *lead, D)
    out, saved = swiglu_mlp_forward(x, w)
    np.testing.assert_array_equal(out, swiglu_mlp(x, w))
    dx, dw = swiglu_mlp_backward(g, saved, w)
    assert_matches_finite_differences(lambda: float((swiglu_mlp(x, w) * g).sum()), {"x": x, **fields(w)},
                                      {"x": dx, **fields(dw)}, seed)


@FD
@given(seed=seeds, s=attention_shapes(), F=st.integers(1, 6), bias=st.booleans(), qk_norm=st.booleans())
def test_decoder_layer_backward_matches_finite_differences(seed, s, F, bias, qk_norm):
    rng = np.random.default_rng(seed)
    B, T, H, K, Dh, D = s["B"], s["T"], s["H"], s["K"], s["Dh"], s["D"]
    w = LayerWeights(input_layernorm=1 + randn(rng, D, scale=0.3),
                     self_attn=attention_weights(rng, D, H, K, Dh, bias, qk_norm),
                     post_attention_layernorm=1 + randn(rng, D, scale=0.3),
                     mlp=MLPWeights(gate_proj=randn(rng, F, D), up_proj=randn(rng, F, D), down_proj=randn(rng, D, F)))
    x, g, (cos, sin), mask = randn(rng, B, T, D), randn(rng, B, T, D), rope64(T, Dh), causal_mask(T, 0, None, s["window"])
    out, saved = decoder_layer_forward(x, w, H, K, NORM_EPS, cos, sin, mask)
    np.testing.assert_allclose(out, decoder_layer(x, w, H, K, NORM_EPS, cos, sin, mask), rtol=1e-12, atol=1e-12)
    dx, dw = decoder_layer_backward(g, saved, w, H, K, NORM_EPS, cos, sin)
    params = {"x": x, "input_layernorm": w.input_layernorm, "post_attention_layernorm": w.post_attention_layernorm,
              **{"self_attn." + k: v for k, v in fields(w.self_attn).items()},
              **{"mlp." + k: v for k, v in fields(w.mlp).items()}}
    grads = {"x": dx, "input_layernorm": dw.input_layernorm, "post_attention_layernorm": dw.post_attention_layernorm,
             **{"self_attn." + k: v for k, v in fields(dw.self_attn).items()},
             **{"mlp." + k: v for k, v in fields(dw.mlp).items()}}
    assert_matches_finite_differences(lambda: float((decoder_layer(x, w, H, K, NORM_EPS, cos, sin, mask) * g).sum()),
                                      params, grads, seed)


# ----------------------------------------------------------------------------------------------------------
# the next-token cross-entropy
# ----------------------------------------------------------------------------------------------------------

def cross_entropy_by_hand(logits: np.ndarray, labels: np.ndarray) -> float:
    """The plain loop: position t predicts label t+1; -100 is skipped; one mean over every scored target."""
    total, count = 0.0, 0
    for b in range(labels.shape[0]):
        for t in range(labels.shape[1] - 1):
            y = labels[b, t + 1]
            if y == -100:
                continue
            z = logits[b, t].astype(np.float64)
            total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[y]
            count += 1
    return total / count


@FD
@given(seed=seeds, B=st.integers(1, 3), T=st.integers(2, 6), V=st.integers(2, 7), p_ignore=st.floats(0, 0.7),
       scale=st.sampled_from([1.0, 100.0]))
def test_cross_entropy_is_the_shifted_mean_over_scored_targets(seed, B, T, V, p_ignore, scale):
    rng = np.random.default_rng(seed)
    logits = randn(rng, B, T, V, scale=scale)  # scale 100: exp would overflow without the max subtracted
    labels = rng.integers(0, V, (B, T))
    labels[rng.random((B, T)) < p_ignore] = -100
    assume((labels[:, 1:] != -100).any())
    assert cross_entropy(logits, labels) == pytest.approx(cross_entropy_by_hand(logits, labels), rel=1e-12)
    dlogits = cross_entropy_backward(logits, labels)
    assert not dlogits[:, -1].any()  # the last position predicts nothing
    assert not dlogits[:, :-1][labels[:, 1:] == -100].any()  # nor does a position whose next label is -100
    assert_matches_finite_differences(lambda: cross_entropy(logits, labels), {"logits": logits},
                                      {"logits": dlogits}, seed)


def test_cross_entropy_keeps_float32():
    logits = np.random.default_rng(0).standard_normal((2, 4, 5)).astype(np.float32)
    labels = np.array([[0, 1, 2, 3], [4, -100, 1, 1]])
    assert cross_entropy_backward(logits, labels).dtype == np.float32
    assert cross_entropy(logits, labels) == pytest.approx(cross_entropy_by_hand(logits, labels), rel=1e-6)


# ----------------------------------------------------------------------------------------------------------
# the whole model in float64, against finite differences
# ----------------------------------------------------------------------------------------------------------

def float64_copy(model: minillm.Model) -> minillm.Model:
    named = named_tensors(model.weights)
    tied = model.weights.lm_head is model.weights.embed_tokens
    weights = build_weights(model.config, lambda name: named[name].astype(np.float64), tied=tied)
    return minillm.Model(model.config, weights)


def test_whole_model_gradients_match_finite_differences_in_float64(model_name):
    """Every tensor, through the real loss_and_grads: tied heads, biases, q/k-norm, YaRN, sliding windows."""
    model = float64_copy(tiny_model(model_name))
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 12, (2, 9))  # few distinct ids: repeated tokens, whose embedding gradients must add up
    labels = ids.copy()
    labels[0, 2] = -100
    loss, grads = minillm.loss_and_grads(model, ids, labels)
    assert loss == pytest.approx(cross_entropy(model.forward(ids), labels), rel=1e-12)
    assert_matches_finite_differences(lambda: cross_entropy(model.forward(ids), labels),
                                      named_tensors(model.weights), grads, seed=0)


# ----------------------------------------------------------------------------------------------------------
# the public call: names, shapes, the tied head, the loss, memory
# ----------------------------------------------------------------------------------------------------------

def test_grads_have_exactly_the_checkpoint_names_shapes_and_float32(model_name):
    model = tiny_model(model_name)
    ids = np.arange(10) % model.config.vocab_size
    loss, grads = minillm.loss_and_grads(model, ids)
    assert isinstance(loss, float)
    shapes = expected_shapes(model.config)
    assert set(grads) == set(shapes) == set(named_tensors(model.weights))
    for name, g in grads.items():
        assert g.shape == shapes[name] and g.dtype == np.float32, name


def test_loss_is_the_cross_entropy_of_the_forward_logits(model_name):
    model, ref = tiny_model(model_name), grad_reference(model_name)
    loss, _ = minillm.loss_and_grads(model, ref["ids"], ref["labels"])
    assert loss == pytest.approx(cross_entropy(model.forward(ref["ids"]), ref["labels"]), rel=1e-6)
    one, _ = minillm.loss_and_grads(model, ref["ids"][1])  # a single row [T], default labels = the ids
    assert one == pytest.approx(cross_entropy(model.forward(ref["ids"][1:]), ref["ids"][1:]), rel=1e-6)


def test_a_single_sequence_gives_the_same_gradients_as_a_batch_of_one():
    model, ids = tiny_model("tiny-qwen3"), np.arange(3, 13)
    loss_1d, grads_1d = minillm.loss_and_grads(model, ids)
    loss_2d, grads_2d = minillm.loss_and_grads(model, ids[None], ids[None])
    assert loss_1d == loss_2d
    for name in grads_1d:
        np.testing.assert_array_equal(grads_1d[name], grads_2d[name])


def test_tied_head_has_no_lm_head_key_and_the_embedding_gets_both_gradients():
    """Untie a tied model (a copy of the embedding as head): the tied gradient is the sum of the two."""
    tied = tiny_model("tiny-qwen2")
    assert tied.weights.lm_head is tied.weights.embed_tokens
    named = named_tensors(tied.weights)
    untied = minillm.Model(tied.config, build_weights(
        tied.config, lambda n: named[n] if n != "lm_head.weight" else named["model.embed_tokens.weight"].copy(),
        tied=False))
    ref = grad_reference("tiny-qwen2")
    _, g_tied = minillm.loss_and_grads(tied, ref["ids"], ref["labels"])
    _, g_untied = minillm.loss_and_grads(untied, ref["ids"], ref["labels"])
    assert "lm_head.weight" not in g_tied and "lm_head.weight" in g_untied
    np.testing.assert_allclose(g_tied["model.embed_tokens.weight"],
                               g_untied["model.embed_tokens.weight"] + g_untied["lm_head.weight"], rtol=1e-6, atol=1e-9)
    assert np.abs(g_untied["lm_head.weight"]).max() > 0  # the head's share is not negligible: forgetting it fails


def test_loss_and_grads_leaves_the_weights_untouched():
    model = tiny_model("tiny-qwen3-yarn-swa")
    before = {k: v.copy() for k, v in named_tensors(model.weights).items()}
    minillm.loss_and_grads(model, np.arange(20) % 97)
    for name, array in named_tensors(model.weights).items():
        np.testing.assert_array_equal(array, before[name], err_msg=name)


def test_activation_memory_is_within_1_5x_of_what_the_backward_strictly_needs(model_name, monkeypatch):
    monkeypatch.setattr(attention_module, "QUERY_BLOCK", 16)  # 4 query blocks at T = 64, as 4 at T = 512
    model = tiny_model(model_name)
    ids = np.zeros((2, 64), np.int64)
    _, saved = model_forward(model, ids)
    kept, minimum = activation_bytes(saved), minimum_activation_bytes(model.config, 2, 64)
    assert minimum <= kept <= 1.5 * minimum, (kept, minimum)


# ----------------------------------------------------------------------------------------------------------
# bad input: a clear minillm error naming what is wrong
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("labels, message", [
    (np.zeros((2, 5), np.int64), "labels have shape [2, 5], expected [2, 6]"),
    (np.zeros((2, 6)), "labels must be integers"),
    (np.array([[0, 1, 2, 3, 4, 512], [0] * 6]), "label 512 at position [0, 5] is out of range"),
    (np.array([[0, 1, 2, 3, 4, 5], [0, -1, 0, 0, 0, 0]]), "label -1 at position [1, 1] is out of range"),
    (np.array([[0, -100, -100, -100, -100, -100], [7, -100, -100, -100, -100, -100]]), "no label is scored"),
])
def test_bad_labels_raise_an_input_error_naming_the_problem(labels, message):
    model = tiny_model("tiny-qwen2")
    with pytest.raises(minillm.InputError, match=re.escape(message)):
        minillm.loss_and_grads(model, np.ones((2, 6), np.int64), labels)


def test_a_single_token_has_nothing_to_predict():
    with pytest.raises(minillm.InputError, match="no label is scored.*single token"):
        minillm.loss_and_grads(tiny_model("tiny-qwen2"), [5])


def test_a_context_longer_than_max_position_embeddings_is_refused():
    model = tiny_model("tiny-qwen3-yarn-swa")  # max_position_embeddings = 64
    with pytest.raises(minillm.InputError, match="65 positions.*max_position_embeddings is 64"):
        minillm.loss_and_grads(model, np.zeros(65, np.int64))


def test_bad_ids_raise_the_same_errors_as_the_forward():
    with pytest.raises(minillm.InputError, match="token id 512 is out of range"):
        minillm.loss_and_grads(tiny_model("tiny-qwen2"), [1, 512])
