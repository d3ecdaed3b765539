"""The prefill engine (model/prefill.py) computes what the readable path computes, for every path it takes."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from minillm.model import prefill
from minillm.model.activations import silu
from minillm.model.attention import (AttentionWeights, attention_probs, merge_heads, project_qkv,
                                     scaled_dot_product_attention)
from minillm.model.lora import LoraWeight
from minillm.model.masks import causal_mask
from minillm.model.mlp import MLPWeights, swiglu_mlp
from minillm.model.rope import apply_rope, default_inv_freq, rope_cos_sin
from conftest import TINY_MODELS, rel_error, tiny_model

rng = np.random.default_rng(0)


def randn(*shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def unfused(model):
    """A copy of the model whose projections are separate arrays again: the readable path runs."""
    other = copy.copy(model)
    other.weights = copy.deepcopy(model.weights)  # deepcopy gives every view its own array
    assert prefill.fused_weight(other.weights.layers[0].mlp.gate_proj, other.weights.layers[0].mlp.up_proj) is None
    return other


def test_loading_fuses_qkv_and_gate_up_into_views_of_one_array_each():
    layer = tiny_model("tiny-qwen2").weights.layers[0]
    a, m = layer.self_attn, layer.mlp
    qkv = prefill.fused_weight(a.q_proj, a.k_proj, a.v_proj)  # [(H + 2K) Dh, D]
    assert qkv is not None and qkv.shape == (len(a.q_proj) + len(a.k_proj) + len(a.v_proj), a.q_proj.shape[1])
    np.testing.assert_array_equal(qkv[len(a.q_proj):len(a.q_proj) + len(a.k_proj)], a.k_proj)
    assert prefill.stacked(a.q_proj_bias, a.k_proj_bias, a.v_proj_bias) is not None  # Qwen2's biases too
    assert prefill.fused_weight(m.gate_proj, m.up_proj) is not None
    assert np.shares_memory(m.up_proj, prefill.fused_weight(m.gate_proj, m.up_proj))  # no second copy


def test_a_replaced_field_is_no_longer_taken_as_fused():
    w = MLPWeights(gate_proj=randn(6, 4), up_proj=randn(6, 4), down_proj=randn(4, 6))
    prefill.fuse_projections([type("Layer", (), {"mlp": w})()])
    assert prefill.fused_weight(w.gate_proj, w.up_proj) is not None
    assert prefill.fused_weight(w.up_proj, w.gate_proj) is None  # the rows in another order: not that array
    w.up_proj = w.up_proj.copy()  # e.g. an optimiser's new array: the fused one would be stale
    assert prefill.fused_weight(w.gate_proj, w.up_proj) is None
    assert prefill.fused_weight(w.up_proj, w.gate_proj) is None


@pytest.mark.parametrize("weight_first, down_rows_as_x_first", [(True, 1 << 30), (True, 1), (False, 1 << 30)])
@pytest.mark.parametrize("name", TINY_MODELS)
def test_a_prompt_through_the_engine_equals_the_readable_path(name, weight_first, down_rows_as_x_first, monkeypatch):
    """Fused products (as W @ x^T or x @ W^T; down_proj as x @ W^T from some rows on), RoPE and silu * up in place,
    attention in blocks (of 16 here, so a 45-token prompt takes three), the element-wise halves on two threads:
    Qwen2 (biases), Qwen3 (q/k-norm), YaRN with sliding windows."""
    model = tiny_model(name)
    monkeypatch.setattr(prefill, "WEIGHT_FIRST", weight_first)
    monkeypatch.setattr(prefill, "DOWN_ROWS_AS_X_FIRST", down_rows_as_x_first)
    monkeypatch.setattr(prefill, "ATTENTION_BLOCK", 16)
    monkeypatch.setattr(prefill, "PARALLEL_MIN", 1)
    monkeypatch.setattr(prefill, "ROW_CHUNK", 4)
    ids = rng.integers(0, model.config.vocab_size, 45)
    engine = model.forward(ids)
    monkeypatch.setattr(prefill, "ATTENTION_BLOCK", 1 << 30)
    readable = unfused(model).forward(ids)
    assert rel_error(engine, readable) < 1e-5
    # a cache holding 20 tokens, then 25 more: the blocks see the cached keys too
    cache = model.new_cache(1, 64)
    model.forward(ids[:20], cache=cache)
    monkeypatch.setattr(prefill, "ATTENTION_BLOCK", 16)
    assert rel_error(model.forward(ids[20:], cache=cache), readable[20:]) < 1e-5


def test_a_padded_batch_through_the_engine_equals_the_readable_path():
    model = tiny_model("tiny-qwen2")
    ids = rng.integers(0, model.config.vocab_size, (2, 30))
    mask = np.ones((2, 30), np.int64)
    mask[1, :7] = 0  # row 1: seven padding tokens first
    engine, readable = model.forward(ids, attention_mask=mask), unfused(model).forward(ids, attention_mask=mask)
    assert rel_error(engine[mask.astype(bool)], readable[mask.astype(bool)]) < 1e-5


def test_rope_in_place_gives_apply_ropes_numbers_exactly(monkeypatch):
    monkeypatch.setattr(prefill, "PARALLEL_MIN", 1)  # also the two-thread split
    N, heads, Dh = 40, 3, 8
    x = randn(N, heads, Dh)
    cos, sin = rope_cos_sin(np.arange(N)[None], default_inv_freq(Dh, 1e4))  # [1, N, Dh]
    expected = apply_rope(x.transpose(1, 0, 2)[None], cos, sin)[0].transpose(1, 0, 2)  # [N, heads, Dh]
    prefill.rope_in_place(x, cos.reshape(N, 1, Dh), sin.reshape(N, 1, Dh))
    np.testing.assert_array_equal(x, expected)


def test_rope_in_place_on_the_transposed_layout_gives_apply_ropes_numbers_exactly():
    N, heads, Dh = 40, 5, 8
    x = randn(N, heads, Dh)
    cos, sin = rope_cos_sin(np.arange(N)[None], default_inv_freq(Dh, 1e4))  # [1, N, Dh]
    expected = apply_rope(x.transpose(1, 0, 2)[None], cos, sin)[0]  # [heads, N, Dh]
    xT = np.ascontiguousarray(x.transpose(1, 2, 0))  # [heads, Dh, N]
    prefill.rope_in_place_t(xT, np.ascontiguousarray(cos[0].T), np.ascontiguousarray(sin[0].T))
    np.testing.assert_array_equal(xT.transpose(0, 2, 1), expected)


@pytest.mark.parametrize("rows", [1, 5, 37])
def test_silu_times_up_in_place_gives_the_plain_numbers_exactly(rows, monkeypatch):
    monkeypatch.setattr(prefill, "PARALLEL_MIN", 1)
    monkeypatch.setattr(prefill, "ROW_CHUNK", 4)
    F = 6
    gate_up = randn(rows, 2 * F, scale=30.0)  # some below -88: exp(-u) overflows to inf, silu -> -0.0
    expected = silu(gate_up[:, :F]) * gate_up[:, F:]
    np.testing.assert_array_equal(prefill.silu_times_up_in_place(gate_up.copy(), F), expected)


@pytest.mark.parametrize("N", [1, 5, 37])
def test_silu_times_up_in_place_on_the_transposed_product_gives_the_plain_numbers_exactly(N, monkeypatch):
    """The MLP's W @ x^T layout: gate^T and up^T are the two halves of the rows [2F, N]."""
    monkeypatch.setattr(prefill, "PARALLEL_MIN", 1)
    monkeypatch.setattr(prefill, "ROW_CHUNK", 4)
    F = 10
    gate_up = randn(N, 2 * F, scale=30.0)  # [N, 2F], some below -88 as above
    expected = silu(gate_up[:, :F]) * gate_up[:, F:]  # [N, F]
    got = prefill.silu_times_up_in_place_t(np.ascontiguousarray(gate_up.T), F)  # [F, N]
    np.testing.assert_array_equal(got, expected.T)


@pytest.mark.parametrize("past, window", [(0, None), (7, None), (7, 5)])
def test_causal_attention_in_blocks_equals_the_whole_square(past, window, monkeypatch):
    monkeypatch.setattr(prefill, "ATTENTION_BLOCK", 4)
    B, H, K, T, Dh = 1, 6, 2, 11, 8
    q, k, v = randn(B, H, T, Dh), randn(B, K, past + T, Dh), randn(B, K, past + T, Dh)
    mask = causal_mask(T, past, None, window)  # [1, 1, T, S]
    probs = attention_probs(q, k, mask).reshape(B, K, H // K * T, past + T)
    expected = (probs @ v).reshape(B, H, T, Dh)
    got = prefill.causal_attention_in_blocks(q, k, v, mask)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scaled_dot_product_attention(q, k, v, mask), expected, rtol=1e-6, atol=1e-6)


def test_blocked_attention_output_merges_into_heads_without_a_copy(monkeypatch):
    """The blocks write [B, T, H, Dh] order, so merge_heads (before o_proj) is a view of it, not a copy."""
    monkeypatch.setattr(prefill, "ATTENTION_BLOCK", 4)
    B, H, K, T, Dh = 1, 6, 2, 11, 8
    q, k, v = randn(B, H, T, Dh), randn(B, K, T, Dh), randn(B, K, T, Dh)
    out = prefill.causal_attention_in_blocks(q, k, v, causal_mask(T, 0, None))  # [B, H, T, Dh]
    assert np.shares_memory(merge_heads(out), out)


def test_lora_wrapped_projections_keep_the_fused_product_and_add_their_term():
    D, H, K, Dh, F, T = 8, 4, 2, 4, 12, 20
    attn = AttentionWeights(q_proj=randn(H * Dh, D), k_proj=randn(K * Dh, D), v_proj=randn(K * Dh, D),
                            o_proj=randn(D, H * Dh), q_proj_bias=randn(H * Dh), k_proj_bias=randn(K * Dh),
                            v_proj_bias=randn(K * Dh))
    mlp = MLPWeights(gate_proj=randn(F, D), up_proj=randn(F, D), down_proj=randn(D, F))
    readable_attn, readable_mlp = copy.deepcopy(attn), copy.deepcopy(mlp)
    prefill.fuse_projections([type("Layer", (), {"self_attn": attn, "mlp": mlp})()])
    v_A, v_B, up_A, up_B = randn(2, D), randn(K * Dh, 2), randn(2, D), randn(F, 2)  # one adapter, on both copies
    down_A, down_B = randn(2, F), randn(D, 2)
    for w in (attn, readable_attn):
        w.v_proj = LoraWeight(w.v_proj, v_A, v_B, scaling=0.5)
    for w in (mlp, readable_mlp):
        w.up_proj = LoraWeight(w.up_proj, up_A, up_B, scaling=0.5)
        w.down_proj = LoraWeight(w.down_proj, down_A, down_B, scaling=0.5)
    assert prefill.fused_weight(attn.q_proj, attn.k_proj, attn.v_proj) is not None
    x = randn(1, T, D)
    cos, sin = rope_cos_sin(np.arange(T)[None], default_inv_freq(Dh, 1e4))
    for got, expected in zip(project_qkv(x, attn, H, K, 1e-6, cos, sin), project_qkv(x, readable_attn, H, K, 1e-6,
                                                                                         cos, sin)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(swiglu_mlp(x, mlp), swiglu_mlp(x, readable_mlp), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-qwen3"])  # with q/k/v biases; with q/k-norm
def test_decoding_through_the_fused_products_equals_the_separate_ones(name):
    """A few rows (decode, a short speculative pass) take q/k/v and gate/up as one product each when the weights
    were fused at load (fused_linear.fused_projections); a copy whose fields are separate arrays takes the readable
    path's separate products. Same logits, step after step through the cache, biases included."""
    from minillm.model.fused_linear import fused_projections
    model = tiny_model(name)
    layer, x = model.weights.layers[0], randn(1, 1, model.config.hidden_size)
    assert fused_projections(x, layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj) is not None
    assert fused_projections(x, layer.mlp.gate_proj, layer.mlp.up_proj) is not None

    def decode(m, ids, steps=4):
        cache = m.new_cache(1, ids.shape[1] + steps)
        logits = [m.forward(ids, cache=cache, logits_to_keep=1)[0, -1]]  # [V]
        for _ in range(steps):
            logits.append(m.forward(np.array([[logits[-1].argmax()]]), cache=cache, logits_to_keep=1)[0, -1])
        return np.stack(logits)  # [steps + 1, V]

    ids = np.array([[3, 17, 99, 5, 42]])
    np.testing.assert_allclose(decode(model, ids), decode(unfused(model), ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e3])  # 1e-4: eps (1e-6) outweighs the mean of x^2
def test_rms_norm_of_a_prompts_rows_equals_the_readable_norm(scale):
    from minillm.model.norm import rms_norm
    x, weight = randn(2, 30, 64, scale=scale), randn(64)
    got = prefill.rms_norm_rows(x, weight, 1e-6)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, rms_norm(x, weight, 1e-6), rtol=1e-6, atol=0)  # only the sum's order differs


@pytest.mark.parametrize("name", TINY_MODELS)
def test_the_last_layer_computes_only_the_kept_rows_and_still_caches_every_key(name, monkeypatch):
    """logits_to_keep: the last layer attends and runs its MLP for the last FEW_ROWS + 1 positions only (the
    many-rows products, as a whole pass takes them), yet every position's keys and values reach the cache:
    the same logits as a whole pass, the same cache, the same next step. Qwen2, Qwen3, YaRN with sliding windows."""
    import minillm.model.transformer as transformer
    from minillm.model.fast_linear import FEW_ROWS
    model = tiny_model(name)
    rows = []
    layer = transformer.decoder_layer
    monkeypatch.setattr(transformer, "decoder_layer", lambda *a: rows.append(layer(*a).shape[1]) or layer(*a))
    ids = rng.integers(0, model.config.vocab_size, (1, 45))
    whole_cache, last_cache = model.new_cache(1, 46), model.new_cache(1, 46)
    whole = model.forward(ids, cache=whole_cache)  # [1, 45, V]
    assert rows == [45] * model.config.num_hidden_layers
    rows.clear()
    last = model.forward(ids, cache=last_cache, logits_to_keep=3)  # [1, 3, V]
    assert rows == [45] * (model.config.num_hidden_layers - 1) + [FEW_ROWS + 1]
    assert rel_error(last, whole[:, -3:]) < 1e-5
    for i in range(model.config.num_hidden_layers):
        np.testing.assert_array_equal(last_cache.layer(i).keys[:, :, :45], whole_cache.layer(i).keys[:, :, :45])
        np.testing.assert_array_equal(last_cache.layer(i).values[:, :, :45], whole_cache.layer(i).values[:, :, :45])
    step = np.array([[int(last[0, -1].argmax())]])
    assert rel_error(model.forward(step, cache=last_cache), model.forward(step, cache=whole_cache)) < 1e-5
    # a padded batch: row 1 has five padding tokens first
    mask = np.ones((2, 30), np.int64)
    mask[1, :5] = 0
    ids = rng.integers(0, model.config.vocab_size, (2, 30))
    whole = model.forward(ids, attention_mask=mask)
    assert rel_error(model.forward(ids, attention_mask=mask, logits_to_keep=2), whole[:, -2:]) < 1e-5
