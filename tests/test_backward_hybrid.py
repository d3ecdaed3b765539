"""The backward pass of Qwen3.5 (Gated DeltaNet, gated attention) and of the mixtures of experts.

1. Every new backward against float64 finite differences of its forward, on shapes drawn by hypothesis (Hk != Hv,
   Dk != Dv, sequences shorter than a chunk, chunk boundaries inside and at the end). Each check compares the
   derivative along a random direction per input (finite differences) with <grad, d>: a few evaluations per
   input, and a wrong gradient of any element shows (a random d weighs them all).
2. The recurrent backward (through the state, token by token) equals the chunked one.
3. The whole model's loss and every gradient against transformers' ``loss.backward()`` on each tiny hybrid and MoE
   checkpoint (weights/*/grad_reference.npz, scripts/make_hybrid_grad_fixtures.py), with -100 labels and with the
   router's load-balancing loss on, within 1e-4 of each tensor's largest gradient.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import minillm
from minillm.backward.conv import causal_conv1d_backward
from minillm.backward.delta_rule import (chunked_gated_delta_rule_backward, chunked_gated_delta_rule_forward,
                                         recurrent_gated_delta_rule_backward, recurrent_gated_delta_rule_forward)
from minillm.backward.gated_attention import gated_self_attention_backward, gated_self_attention_forward
from minillm.backward.gated_deltanet import gated_deltanet_backward, gated_deltanet_forward
from minillm.backward.moe import load_balancing_loss, sparse_moe_block_backward, sparse_moe_block_forward
from minillm.backward.norm import gated_rms_norm_backward, l2_normalize_backward, zero_centred_rms_norm_backward
from minillm.model.conv import causal_conv1d
from minillm.model.delta_rule import chunked_gated_delta_rule, recurrent_gated_delta_rule
from minillm.model.gated_attention import GatedAttentionWeights, gated_self_attention
from minillm.model.gated_deltanet import GatedDeltaNetWeights, l2_normalize
from minillm.model.masks import causal_mask
from minillm.model.mlp import MLPWeights
from minillm.model.moe import ExpertWeights, MoEWeights, sparse_moe_block
from minillm.model.norm import gated_rms_norm, zero_centred_rms_norm
from minillm.model.rope import default_inv_freq, rope_cos_sin
from conftest import WEIGHTS

RTOL = 1e-4
FD = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HYBRID_AND_MOE = ["tiny-qwen3.5", "tiny-qwen3.5-hub", "tiny-qwen3-next", "tiny-qwen3-moe", "tiny-qwen3.5-moe"]


def directional_check(f, inputs: dict, grads: dict, seed: int = 0, eps: float = 1e-6, rtol: float = 1e-6) -> None:
    """For each input: the derivative of f along a random direction d (float64 finite differences, the 4th-order
    central stencil) == <grads[name], d>."""
    rng = np.random.default_rng(seed)
    for name, x in inputs.items():
        d = rng.standard_normal(x.shape)  # a random direction
        at = lambda step: f(**{**inputs, name: x + step * eps * d})
        numeric = (8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * eps)
        analytic = float((grads[name] * d).sum())
        scale = max(1.0, abs(numeric))
        assert abs(numeric - analytic) <= rtol * scale, f"d/d{name}: finite differences {numeric}, backward {analytic}"


def delta_rule_inputs(rng, B, H, T, Dk, Dv) -> dict:
    k = rng.standard_normal((B, H, T, Dk))
    return dict(q=rng.standard_normal((B, H, T, Dk)) * Dk ** -0.5, k=k / np.linalg.norm(k, axis=-1, keepdims=True),
                v=rng.standard_normal((B, H, T, Dv)), g=-rng.uniform(0.01, 2.0, (B, H, T)),
                beta=rng.uniform(0.02, 0.98, (B, H, T)), state=rng.standard_normal((B, H, Dk, Dv)) * 0.5)


def delta_rule_case(shape) -> tuple[dict, np.ndarray, np.ndarray, int]:
    """Inputs, the loss weights dout [B, H, T, Dv] and dS [B, H, Dk, Dv], and the chunk size, from a drawn shape."""
    B, H, T, Dk, Dv, n, seed = shape
    rng = np.random.default_rng(seed)
    inputs = delta_rule_inputs(rng, B, H, T, Dk, Dv)
    return inputs, rng.standard_normal((B, H, T, Dv)), rng.standard_normal((B, H, Dk, Dv)), n


GRAD_NAMES = ["q", "k", "v", "g", "beta", "state"]

delta_shapes = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 13), st.integers(1, 5),
                         st.integers(1, 5), st.sampled_from([1, 3, 4, 8, 64]), st.integers(0, 2 ** 16))


# ----------------------------------------------------------------------------------------------------------
# 1. the gated delta rule: recurrent and chunked, against finite differences and against each other
# ----------------------------------------------------------------------------------------------------------

@FD
@given(delta_shapes)
def test_recurrent_delta_rule_backward_matches_finite_differences(shape):
    inputs, dout, dS, _ = delta_rule_case(shape)  # the loss is sum(out * dout) + sum(final state * dS)

    def f(**a):
        out, state = recurrent_gated_delta_rule(**a)
        return float((out * dout).sum() + (state * dS).sum())

    _, _, states = recurrent_gated_delta_rule_forward(**inputs)
    grads = recurrent_gated_delta_rule_backward(dout, *list(inputs.values())[:5], states, dS)
    directional_check(f, inputs, dict(zip(GRAD_NAMES, grads)), shape[-1])


@FD
@given(delta_shapes)
def test_chunked_delta_rule_backward_matches_finite_differences(shape):
    """Chunk sizes 1 .. 64 against T 1 .. 13: sequences shorter than one chunk, boundaries inside and at the end."""
    inputs, dout, dS, n = delta_rule_case(shape)

    def f(**a):
        out, state = chunked_gated_delta_rule(**a, chunk_size=n)
        return float((out * dout).sum() + (state * dS).sum())

    out, _, starts = chunked_gated_delta_rule_forward(**inputs, chunk_size=n)
    np.testing.assert_allclose(out, chunked_gated_delta_rule(**inputs, chunk_size=n)[0], rtol=1e-12, atol=1e-12)
    grads = chunked_gated_delta_rule_backward(dout, *list(inputs.values())[:5], starts, dS, chunk_size=n)
    directional_check(f, inputs, dict(zip(GRAD_NAMES, grads)), shape[-1])


@settings(max_examples=20, deadline=None)
@given(delta_shapes)
def test_chunked_backward_equals_recurrent_backward(shape):
    inputs, dout, dS, n = delta_rule_case(shape)
    _, _, states = recurrent_gated_delta_rule_forward(**inputs)
    _, _, starts = chunked_gated_delta_rule_forward(**inputs, chunk_size=n)
    args = list(inputs.values())[:5]
    recurrent = recurrent_gated_delta_rule_backward(dout, *args, states, dS)
    chunked = chunked_gated_delta_rule_backward(dout, *args, starts, dS, chunk_size=n)
    for name, r, c in zip(["dq", "dk", "dv", "dg", "dbeta", "dstate"], recurrent, chunked):
        np.testing.assert_allclose(c, r, rtol=1e-9, atol=1e-9 * np.abs(r).max(), err_msg=name)


def test_chunked_backward_equals_recurrent_in_float32_over_several_chunks():
    """What training runs: float32, 3 chunks of 64 and a partial one, strong and weak decays."""
    rng = np.random.default_rng(3)
    inputs = {k: v.astype(np.float32) for k, v in delta_rule_inputs(rng, 1, 2, 200, 16, 24).items()}
    dout = rng.standard_normal((1, 2, 200, 24)).astype(np.float32)
    args = list(inputs.values())[:5]
    _, _, states = recurrent_gated_delta_rule_forward(**inputs)
    _, _, starts = chunked_gated_delta_rule_forward(**inputs)
    recurrent = recurrent_gated_delta_rule_backward(dout, *args, states)
    chunked = chunked_gated_delta_rule_backward(dout, *args, starts)
    for name, r, c in zip(["dq", "dk", "dv", "dg", "dbeta", "dstate"], recurrent, chunked):
        assert c.dtype == np.float32, name
        assert np.abs(c - r).max() <= 1e-4 * np.abs(r).max(), name


# ----------------------------------------------------------------------------------------------------------
# the small pieces
# ----------------------------------------------------------------------------------------------------------

@FD
@given(st.integers(1, 2), st.integers(1, 9), st.integers(1, 6), st.integers(2, 5), st.integers(0, 2 ** 16))
def test_causal_conv_backward_matches_finite_differences(B, T, C, W, seed):
    rng = np.random.default_rng(seed)
    inputs = dict(x=rng.standard_normal((B, T, C)), weight=rng.standard_normal((C, W)))
    dout = rng.standard_normal((B, T, C))
    f = lambda x, weight: float((causal_conv1d(x, weight, np.zeros((B, W - 1, C)))[0] * dout).sum())
    dx, dweight = causal_conv1d_backward(dout, **inputs)
    directional_check(f, inputs, dict(x=dx, weight=dweight), seed)


@FD
@given(st.integers(1, 8), st.integers(1, 7), st.integers(0, 2 ** 16))
def test_norm_backwards_match_finite_differences(rows, N, seed):
    """The L2 norm of q and k, the zero-centred (1 + w) RMSNorm and the gated RMSNorm of the output."""
    rng = np.random.default_rng(seed)
    x, gate, weight = rng.standard_normal((rows, N)), rng.standard_normal((rows, N)), rng.standard_normal(N) * 0.3
    dy = rng.standard_normal((rows, N))
    directional_check(lambda x: float((l2_normalize(x) * dy).sum()), dict(x=x),
                      dict(x=l2_normalize_backward(dy, x)), seed)
    dx, dw = zero_centred_rms_norm_backward(dy, x, weight, 1e-6)
    directional_check(lambda x, weight: float((zero_centred_rms_norm(x, weight, 1e-6) * dy).sum()),
                      dict(x=x, weight=weight), dict(x=dx, weight=dw), seed)
    dx, dgate, dw = gated_rms_norm_backward(dy, x, gate, weight, 1e-6)
    directional_check(lambda x, gate, weight: float((gated_rms_norm(x, gate, weight, 1e-6) * dy).sum()),
                      dict(x=x, gate=gate, weight=weight), dict(x=dx, gate=dgate, weight=dw), seed)


# ----------------------------------------------------------------------------------------------------------
# the layers: Gated DeltaNet (both projection layouts), gated attention, the mixture of experts
# ----------------------------------------------------------------------------------------------------------

def deltanet_weights(rng, D, Hk, Hv, Dk, Dv, W, grouped: bool) -> GatedDeltaNetWeights:
    C = 2 * Hk * Dk + Hv * Dv
    m = lambda *s: rng.standard_normal(s) * 0.4
    common = dict(conv1d=m(C, 1, W) * 1.5, A_log=rng.uniform(-2, 1, Hv), dt_bias=m(Hv), norm=1 + m(Dv),
                  out_proj=m(D, Hv * Dv))
    if grouped:
        return GatedDeltaNetWeights(**common, in_proj_qkvz=m(C + Hv * Dv, D), in_proj_ba=m(2 * Hv, D))
    return GatedDeltaNetWeights(**common, in_proj_qkv=m(C, D), in_proj_z=m(Hv * Dv, D), in_proj_b=m(Hv, D),
                                in_proj_a=m(Hv, D))


def weight_fields(w) -> dict:
    return {k: v for k, v in vars(w).items() if isinstance(v, np.ndarray)}


@FD
@given(st.integers(1, 2), st.integers(1, 11), st.integers(1, 2), st.integers(1, 3), st.integers(2, 4),
       st.integers(1, 5), st.booleans(), st.sampled_from([2, 4, 64]), st.integers(0, 2 ** 16))
def test_gated_deltanet_layer_backward_matches_finite_differences(B, T, Hk, r, Dk, Dv, grouped, n, seed):
    """Qwen3.5's four projections and Qwen3-Next's two grouped ones; Hv = r Hk value heads (the repeat's sum).
    Dk >= 2: the L2 norm of a 1-element key is about sign(k), whose curvature near 0 defeats finite differences."""
    from minillm.model.gated_deltanet import gated_deltanet
    from minillm.model import delta_rule as model_delta_rule
    rng = np.random.default_rng(seed)
    D, Hv = 6, Hk * r
    w = deltanet_weights(rng, D, Hk, Hv, Dk, Dv, 3, grouped)
    x = rng.standard_normal((B, T, D))
    dy = rng.standard_normal((B, T, D))
    names = list(weight_fields(w))

    def f(x, **weights):
        return float((gated_deltanet(x, GatedDeltaNetWeights(**weights), Hk, Hv, 1e-6, chunked=False) * dy).sum())

    y, saved = gated_deltanet_forward(x, w, Hk, Hv, 1e-6, chunk_size=n)
    np.testing.assert_allclose(y, gated_deltanet(x, w, Hk, Hv, 1e-6, chunked=False), rtol=1e-9, atol=1e-12)
    dx, dw = gated_deltanet_backward(dy, saved, w, Hk, Hv, 1e-6, chunk_size=n)
    directional_check(f, dict(x=x, **weight_fields(w)), dict(x=dx, **{k: getattr(dw, k) for k in names}), seed)


@FD
@given(st.integers(1, 2), st.integers(1, 9), st.sampled_from([(2, 1), (2, 2), (4, 2)]), st.sampled_from([4, 8]),
       st.sampled_from([0.25, 0.5, 1.0]), st.integers(0, 2 ** 16))
def test_gated_attention_backward_matches_finite_differences(B, T, heads, Dh, factor, seed):
    """Partial RoPE (R = Dh * factor), the sigmoid output gate, the (1 + w) q/k norms, GQA."""
    H, K = heads
    rng = np.random.default_rng(seed)
    D, R = 8, int(Dh * factor)
    m = lambda *s: rng.standard_normal(s) * 0.4
    w = GatedAttentionWeights(q_proj=m(H * 2 * Dh, D), k_proj=m(K * Dh, D), v_proj=m(K * Dh, D), o_proj=m(D, H * Dh),
                              q_norm=m(Dh) * 0.5, k_norm=m(Dh) * 0.5)
    cos, sin = rope_cos_sin(np.arange(T)[None], default_inv_freq(R, 100.0), 1.0)  # [1, T, R]
    mask = causal_mask(T, 0)
    x, dy = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, D))
    f = lambda x, **weights: float((gated_self_attention(x, GatedAttentionWeights(**weights), H, K, 1e-6, cos, sin,
                                                         mask) * dy).sum())
    y, saved = gated_self_attention_forward(x, w, H, K, 1e-6, cos, sin, mask)
    dx, dw = gated_self_attention_backward(dy, saved, w, H, K, 1e-6, cos, sin)
    directional_check(f, dict(x=x, **weight_fields(w)), dict(x=dx, **weight_fields(dw)), seed)


def moe_weights(rng, D, E, Fe, Fs) -> MoEWeights:
    m = lambda *s: rng.standard_normal(s) * 0.5
    shared = MLPWeights(gate_proj=m(Fs, D), up_proj=m(Fs, D), down_proj=m(D, Fs)) if Fs else None
    return MoEWeights(gate=m(E, D), experts=ExpertWeights(gate_up_proj=m(E, 2 * Fe, D), down_proj=m(E, D, Fe)),
                      shared_expert=shared, shared_expert_gate=m(1, D) if Fs else None)


def moe_flat(w: MoEWeights) -> dict:
    flat = {"gate": w.gate, "gate_up_proj": w.experts.gate_up_proj, "down_proj": w.experts.down_proj}
    if w.shared_expert is not None:
        flat.update({"shared_" + k: v for k, v in vars(w.shared_expert).items()})
        flat["shared_expert_gate"] = w.shared_expert_gate
    return flat


def moe_unflat(flat: dict) -> MoEWeights:
    shared = MLPWeights(**{k[7:]: flat[k] for k in ("shared_gate_proj", "shared_up_proj", "shared_down_proj")}) \
        if "shared_gate_proj" in flat else None
    return MoEWeights(gate=flat["gate"], experts=ExpertWeights(flat["gate_up_proj"], flat["down_proj"]),
                      shared_expert=shared, shared_expert_gate=flat.get("shared_expert_gate"))


@FD
@given(st.integers(1, 12), st.sampled_from([(4, 1), (4, 2), (6, 3), (3, 3)]), st.booleans(), st.booleans(),
       st.floats(0.0, 0.1), st.integers(0, 2 ** 16))
def test_moe_block_and_load_balancing_backward_match_finite_differences(N, experts, normalize, shared, coef, seed):
    """Router softmax, top-k (renormalised or not), the chosen experts' SwiGLUs, the gated shared expert, and
    coef times the load-balancing loss. The routing is held fixed (float64 steps of 1e-6 do not flip a choice
    unless two router logits are that close: such draws are skipped by the margin check)."""
    E, k = experts
    rng = np.random.default_rng(seed)
    D = 5
    w = moe_weights(rng, D, E, 3, 4 if shared else 0)
    x, dy = rng.standard_normal((N, D)), rng.standard_normal((N, D))
    logits = np.sort(x @ w.gate.T, axis=-1)  # [N, E]
    if k < E and (logits[:, E - k] - logits[:, E - k - 1]).min() < 1e-3:
        return  # a near tie at the k-th place: the choice itself could flip under the finite difference

    def f(x, **flat):  # the float64 forward (model/router.py takes its softmax in float32, too coarse here)
        y, saved = sparse_moe_block_forward(x, moe_unflat(flat), k, normalize)
        aux, _ = load_balancing_loss([saved], E)
        return float((y * dy).sum() + coef * aux)

    y, saved = sparse_moe_block_forward(x, w, k, normalize)
    np.testing.assert_allclose(y, sparse_moe_block(x, w, k, normalize), rtol=1e-5, atol=1e-5)  # = model/moe.py
    _, d_probs = load_balancing_loss([saved], E)
    dx, dw = sparse_moe_block_backward(dy, saved, w, normalize, coef * d_probs)
    directional_check(f, dict(x=x, **moe_flat(w)), dict(x=dx, **moe_flat(dw)), seed, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------
# 3. the whole model against transformers' autograd
# ----------------------------------------------------------------------------------------------------------

def gradient_error_table(grads: dict, ref: dict, prefix: str = "") -> tuple[float, str]:
    """The worst relative error and a table: per tensor, max |ours - torch| / max |torch|."""
    lines, worst = [f"{'tensor':<64}{'max |diff|':>12}{'max |ref|':>12}{'relative':>12}"], 0.0
    for name in grads:
        r = ref[prefix + name]
        err = float(np.abs(grads[name].astype(np.float64) - r).max())
        scale = float(np.abs(r).max()) or 1.0
        worst = max(worst, err / scale)
        flag = "  <-- over tolerance" if err / scale > RTOL else ""
        lines.append(f"{name:<64}{err:>12.3e}{scale:>12.3g}{err / scale:>12.3e}{flag}")
    return worst, "\n".join(lines)


@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def get(name):
        if name not in cache:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the Hub layouts' vision and MTP tensors are reported unused
                model = minillm.load_model(WEIGHTS / name)
            with np.load(WEIGHTS / name / "grad_reference.npz") as f:
                cache[name] = model, {k: f[k] for k in f.files}
        return cache[name]
    return get


def reference_names(ref: dict, prefix: str) -> set:
    return {k[len(prefix):] for k in ref if k.startswith(prefix) and k[len(prefix):] not in ("loss",)
            and not (prefix == "" and k.split(".")[0] in ("f64", "aux", "f32_vs_f64"))} - {"ids", "labels", "router_gap"}


@pytest.mark.parametrize("name", HYBRID_AND_MOE)
def test_every_hybrid_and_moe_gradient_matches_transformers_autograd(name, loaded):
    model, ref = loaded(name)
    loss, grads = minillm.loss_and_grads(model, ref["ids"], ref["labels"])
    assert set(grads) == reference_names(ref, "")  # the checkpoint's own names; no vision, no mtp
    assert abs(loss - float(ref["loss"])) <= RTOL * float(ref["loss"]), (loss, float(ref["loss"]))
    worst, table = gradient_error_table(grads, ref)
    assert worst <= RTOL, f"{name}: gradients drift from transformers:\n{table}"


@pytest.mark.parametrize("name", [n for n in HYBRID_AND_MOE if "moe" in n or "next" in n])
def test_the_load_balancing_loss_and_its_gradient_match_transformers(name, loaded):
    """output_router_logits=True: loss = cross-entropy + router_aux_loss_coef * aux, as transformers adds it."""
    model, ref = loaded(name)
    coef = json.loads((WEIGHTS / "grad_reference_hybrid_meta.json").read_text())["models"][name]["router_aux_loss_coef"]
    loss, grads = minillm.loss_and_grads(model, ref["ids"], ref["labels"], output_router_logits=True,
                                         router_aux_loss_coef=coef)
    assert abs(loss - float(ref["aux.loss"])) <= RTOL * float(ref["aux.loss"]), (loss, float(ref["aux.loss"]))
    plain, _ = minillm.loss_and_grads(model, ref["ids"], ref["labels"])
    assert loss - plain > 1e-3 * coef  # the aux loss is really there (aux >= 1 for any routing)
    worst, table = gradient_error_table(grads, ref, "aux.")
    assert worst <= RTOL, f"{name}: gradients with the aux loss drift from transformers:\n{table}"


def test_a_gated_deltanet_layer_keeps_a_constant_memory_per_token_whatever_the_length():
    """The stated memory of the backward (docs/TRAINING_HYBRID.md): D + 2C + 2 Hv Dv + 2 Hv floats per token and
    one Hv Dk Dv memory per chunk; no T x T array, so the bytes per token do not grow with T."""
    from minillm.backward.transformer import activation_bytes
    rng = np.random.default_rng(0)
    D, Hk, Hv, Dk, Dv, n = 8, 2, 4, 6, 5, 16
    w = deltanet_weights(rng, D, Hk, Hv, Dk, Dv, 4, False)
    C = 2 * Hk * Dk + Hv * Dv
    for T in (16, 64, 256):
        _, saved = gated_deltanet_forward(rng.standard_normal((1, T, D)).astype(np.float32),
                                          GatedDeltaNetWeights(**{k: v.astype(np.float32) for k, v in
                                                                  weight_fields(w).items()}), Hk, Hv, 1e-6, n)
        floats = T * (D + 2 * C + 2 * Hv * Dv + 2 * Hv) + T // n * Hv * Dk * Dv
        assert activation_bytes(saved) == 4 * floats, T
