"""Qwen3.5's input projections fused at load (model/fused_linear.py): views of one array, the same numbers as the
separate products, in step with in-place weight updates, and never used once a field has been replaced."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from minillm.model import fused_linear, prefill
from minillm.model.gated_attention import project_gated_qkv
from minillm.model.gated_deltanet import input_projections
from minillm.model.lora import LoraWeight
from conftest import checkpoint_dir, load_quietly, tiny_model

QWEN35_MODELS = ["tiny-qwen3.5", "tiny-qwen3.5-hub"]
rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def unfused(model):
    """A copy of the model whose projections are separate arrays again: the separate products run."""
    other = copy.copy(model)
    other.weights = copy.deepcopy(model.weights)  # deepcopy gives every view its own array
    for layer in other.weights.layers:
        for attn, group in ((layer.linear_attn, fused_linear.LINEAR_ATTENTION_GROUP),
                            (layer.self_attn, fused_linear.FULL_ATTENTION_GROUP)):
            if attn is not None:
                assert prefill.fused_weight(*(getattr(attn, n) for n in group)) is None
    return other


def decode(model, ids, steps: int = 4) -> np.ndarray:
    """Logits of a prompt's pass, then of ``steps`` greedy one-token steps through the cache.   -> [steps + 1, V]"""
    cache = model.new_cache(1, ids.shape[1] + steps)
    logits = [model.forward(ids, cache=cache, logits_to_keep=1)[0, -1]]
    for _ in range(steps):
        logits.append(model.forward(np.array([[logits[-1].argmax()]]), cache=cache, logits_to_keep=1)[0, -1])
    return np.stack(logits)


@pytest.mark.parametrize("name", QWEN35_MODELS)
def test_loading_fuses_each_layers_input_projections_into_views_of_one_array(name):
    model = tiny_model(name)
    linear = full = 0
    for layer in model.weights.layers:
        attn, group = ((layer.linear_attn, fused_linear.LINEAR_ATTENTION_GROUP) if layer.linear_attn is not None
                       else (layer.self_attn, fused_linear.FULL_ATTENTION_GROUP))
        parts = [getattr(attn, n) for n in group]
        fused = prefill.fused_weight(*parts)
        assert fused is not None and fused.shape == (sum(len(p) for p in parts), parts[0].shape[1])
        start = 0
        for part in parts:  # each field is its rows of the fused array: the same memory, no second copy
            assert np.shares_memory(part, fused)
            np.testing.assert_array_equal(fused[start:start + len(part)], part)
            start += len(part)
        linear += layer.linear_attn is not None
        full += layer.self_attn is not None
    assert linear >= 2 and full >= 1


@pytest.mark.parametrize("name", QWEN35_MODELS)
def test_decoding_with_fused_projections_equals_the_separate_products(name):
    model = tiny_model(name)
    ids = np.array([[3, 17, 99, 5, 42, 7, 8]])
    np.testing.assert_allclose(decode(model, ids), decode(unfused(model), ids), rtol=1e-5, atol=1e-5)


def test_an_in_place_update_through_a_checkpoint_name_reaches_the_fused_product():
    """An optimiser updates the arrays named_tensors lists (the fields) in place: the fused array is that memory."""
    model = load_quietly(checkpoint_dir("tiny-qwen3.5"))  # its own copy: this test changes weights
    ids = np.array([[3, 17, 99, 5, 42]])
    before = decode(model, ids, 2)
    for layer in model.weights.layers:
        attn = layer.linear_attn if layer.linear_attn is not None else layer.self_attn
        for name in fused_linear.LINEAR_ATTENTION_GROUP[1:] + fused_linear.FULL_ATTENTION_GROUP[2:]:
            if hasattr(attn, name):
                getattr(attn, name)[...] *= np.float32(3.0)  # in_proj_z/b/a, v_proj: as `p -= step` does
    after = decode(model, ids, 2)
    assert np.abs(after - before).max() > 1e-2  # the update changed the logits ...
    np.testing.assert_allclose(after, decode(unfused(model), ids, 2), rtol=1e-5, atol=1e-5)  # ... as it must


def test_a_replaced_field_is_no_longer_taken_as_fused():
    """A new array in a field (a resumed run's, a test's) leaves the fused array stale: the separate products run."""
    model = load_quietly(checkpoint_dir("tiny-qwen3.5"))
    w = next(layer.linear_attn for layer in model.weights.layers if layer.linear_attn is not None)
    x = randn(1, 3, w.in_proj_qkv.shape[1])
    c = model.config
    heads = (c.linear_num_key_heads, c.linear_num_value_heads, c.linear_key_head_dim, c.linear_value_head_dim)
    assert fused_linear.fused_projections(x, w.in_proj_qkv, w.in_proj_z, w.in_proj_b, w.in_proj_a) is not None
    w.in_proj_b = w.in_proj_b * np.float32(2.0)  # a new array: the fused array still holds the old rows
    assert fused_linear.fused_projections(x, w.in_proj_qkv, w.in_proj_z, w.in_proj_b, w.in_proj_a) is None
    _, _, b, _ = input_projections(x, w, *heads)
    np.testing.assert_allclose(b, x @ w.in_proj_b.T, rtol=1e-5, atol=1e-6)


def test_lora_wrapped_projections_keep_the_fused_product_and_add_their_term():
    model = tiny_model("tiny-qwen3.5")
    c = model.config
    heads = (c.linear_num_key_heads, c.linear_num_value_heads, c.linear_key_head_dim, c.linear_value_head_dim)
    layers = model.weights.layers
    lin = copy.copy(next(layer.linear_attn for layer in layers if layer.linear_attn is not None))
    att = copy.copy(next(layer.self_attn for layer in layers if layer.self_attn is not None))
    D = lin.in_proj_qkv.shape[1]
    lin.in_proj_z = LoraWeight(lin.in_proj_z, randn(2, D), randn(len(lin.in_proj_z), 2), scaling=0.5)
    att.k_proj = LoraWeight(att.k_proj, randn(2, D), randn(len(att.k_proj), 2), scaling=0.5)
    assert prefill.fused_weight(lin.in_proj_qkv, lin.in_proj_z, lin.in_proj_b, lin.in_proj_a) is not None
    x = randn(1, 5, D)
    readable_lin, readable_att = copy.deepcopy(lin), copy.deepcopy(att)  # separate arrays, the same adapters
    for got, want in zip(input_projections(x, lin, *heads), input_projections(x, readable_lin, *heads)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    T = x.shape[1]
    cos = np.ones((1, T, c.rotary_dim), np.float32)
    sin = np.zeros((1, T, c.rotary_dim), np.float32)
    H, K, eps = c.num_attention_heads, c.num_key_value_heads, c.rms_norm_eps
    for got, want in zip(project_gated_qkv(x, att, H, K, eps, cos, sin),
                         project_gated_qkv(x, readable_att, H, K, eps, cos, sin)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
