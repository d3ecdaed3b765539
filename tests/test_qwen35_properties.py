"""Properties of Qwen3.5's pieces, on inputs drawn by hypothesis: what the delta rule, the conv, partial RoPE,
the norms and the gate *are*, and that the hybrid model is causal, cacheable and batchable.

Each was checked to fail when the code is broken the way it guards against (decay after the write, reading
before the write, a conv state one token off, pads not zeroed, RoPE over the whole head).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minillm
from minillm.model.attention import AttentionWeights, self_attention
from minillm.model.conv import causal_conv1d, causal_conv1d_step
from minillm.model.delta_memory import WRITES_KEPT, DeltaMemory
from minillm.model.delta_rule import chunked_gated_delta_rule, delta_rule_step, recurrent_gated_delta_rule
from minillm.model.gated_attention import GatedAttentionWeights, gated_self_attention
from minillm.model.gated_deltanet import l2_normalize
from minillm.model.norm import gated_rms_norm, rms_norm, zero_centred_rms_norm
from minillm.model.rope import apply_partial_rope, apply_rope, default_inv_freq, rope_cos_sin
from conftest import reference, tiny_model

FAST = settings(max_examples=30, deadline=None)
SLOW = settings(max_examples=10, deadline=None)  # whole-model properties
seeds = st.integers(0, 2 ** 32 - 1)
QWEN35 = st.sampled_from(["tiny-qwen3.5", "tiny-qwen3.5-hub"])


def delta_rule_inputs(seed, B, Hv, T, Dk, Dv, dtype=np.float32, with_state=True):
    """Inputs as a Gated DeltaNet layer makes them: unit keys, q / sqrt(Dk), g <= 0, beta in (0, 1)."""
    rng = np.random.default_rng(seed)
    unit = lambda x: x / np.sqrt((x * x).sum(-1, keepdims=True))
    q = unit(rng.standard_normal((B, Hv, T, Dk))) / np.sqrt(Dk)
    k = unit(rng.standard_normal((B, Hv, T, Dk)))
    v = rng.standard_normal((B, Hv, T, Dv))
    g = -rng.uniform(0.0, 2.0, (B, Hv, T)) * rng.uniform(0, 1, (B, Hv, 1))  # decays from ~0.1 to 1
    beta = rng.uniform(0.01, 0.99, (B, Hv, T))
    state = rng.standard_normal((B, Hv, Dk, Dv)) if with_state else np.zeros((B, Hv, Dk, Dv))
    return [a.astype(dtype) for a in (q, k, v, g, beta, state)]


# ---------------------------------------------------------------------------------------------- delta rule

@FAST
@given(seed=seeds, B=st.integers(1, 2), Hv=st.integers(1, 3), T=st.integers(1, 150), Dk=st.sampled_from([1, 4, 16]),
       Dv=st.sampled_from([1, 5, 16]), chunk=st.sampled_from([1, 7, 64]), with_state=st.booleans())
def test_recurrent_and_chunked_delta_rule_are_the_same_function(seed, B, Hv, T, Dk, Dv, chunk, with_state):
    """In float64 the two forms agree to rounding (1e-10); in float32 to float32 noise."""
    x64 = delta_rule_inputs(seed, B, Hv, T, Dk, Dv, np.float64, with_state)
    out_r, state_r = recurrent_gated_delta_rule(*x64)
    out_c, state_c = chunked_gated_delta_rule(*x64, chunk_size=chunk)
    np.testing.assert_allclose(out_c, out_r, rtol=0, atol=1e-10 * max(1.0, np.abs(out_r).max()))
    np.testing.assert_allclose(state_c, state_r, rtol=0, atol=1e-10 * max(1.0, np.abs(state_r).max()))
    x32 = delta_rule_inputs(seed, B, Hv, T, Dk, Dv, np.float32, with_state)
    out32, state32 = chunked_gated_delta_rule(*x32, chunk_size=chunk)
    assert out32.dtype == state32.dtype == np.float32
    np.testing.assert_allclose(out32, out_r, rtol=0, atol=1e-4 * max(1.0, np.abs(out_r).max()))


@FAST
@given(seed=seeds, B=st.integers(1, 3), Hv=st.integers(1, 4), T=st.integers(1, 2 * WRITES_KEPT + 3),
       Dk=st.sampled_from([1, 4, 16]), Dv=st.sampled_from([1, 5, 16]), flush=st.booleans(),
       reads=st.sets(st.integers(1, 2 * WRITES_KEPT + 3)))
def test_the_generation_steps_memory_equals_the_recurrence_token_by_token(seed, B, Hv, T, Dk, Dv, flush, reads):
    """The engine's generation step (delta_memory.py: one read of the memory, its writes kept aside and put in
    every WRITES_KEPT tokens) gives the recurrence's outputs, and its memory read at any token (``reads``, as
    a snapshot or a prompt's pass reads it) is the recurrence's, in float64 to rounding. ``flush``: a head
    decays below e^-60 (its memory flushed to 0 exactly). T runs past two applications of the kept writes."""
    q, k, v, g, beta, state = delta_rule_inputs(seed, B, Hv, T, Dk, Dv, np.float64)
    if flush:
        g[:, 0, T // 2] = -70.0
    memory, outs = DeltaMemory(state.copy()), []
    for t in range(T):
        outs.append(memory.step(q[:, :, t], k[:, :, t], v[:, :, t], g[:, :, t], beta[:, :, t]))  # [B, Hv, Dv]
        if t + 1 in reads or t + 1 == T:
            _, want = recurrent_gated_delta_rule(q[:, :, :t + 1], k[:, :, :t + 1], v[:, :, :t + 1], g[:, :, :t + 1],
                                                 beta[:, :, :t + 1], state)  # [B, Hv, Dk, Dv]
            np.testing.assert_allclose(memory.applied(), want, rtol=0, atol=1e-10 * max(1.0, np.abs(want).max()))
    out_r, _ = recurrent_gated_delta_rule(q, k, v, g, beta, state)
    np.testing.assert_allclose(np.stack(outs, axis=2), out_r, rtol=0, atol=1e-10 * max(1.0, np.abs(out_r).max()))


@FAST
@given(seed=seeds, T=st.integers(2, 100), cut=st.integers(1, 99))
def test_the_delta_rule_over_two_calls_with_the_carried_state_equals_one_call(seed, T, cut):
    cut = min(cut, T - 1)
    q, k, v, g, beta, state = delta_rule_inputs(seed, 1, 2, T, 8, 6, np.float64)
    whole, final = chunked_gated_delta_rule(q, k, v, g, beta, state)
    first, middle = chunked_gated_delta_rule(q[:, :, :cut], k[:, :, :cut], v[:, :, :cut], g[:, :, :cut],
                                             beta[:, :, :cut], state)
    second, end = chunked_gated_delta_rule(q[:, :, cut:], k[:, :, cut:], v[:, :, cut:], g[:, :, cut:],
                                           beta[:, :, cut:], middle)
    np.testing.assert_allclose(np.concatenate([first, second], axis=2), whole, atol=1e-10)
    np.testing.assert_allclose(end, final, atol=1e-10)


@FAST
@given(seed=seeds, Dk=st.integers(1, 16), Dv=st.integers(1, 8))
def test_a_full_strength_write_makes_the_memory_return_exactly_the_new_value(seed, Dk, Dv):
    """The delta rule replaces what the memory held for a key: with beta = 1 and no decay, reading the key
    back gives the value just written, whatever was stored before (plain linear attention would add)."""
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((1, 1, Dk))
    k /= np.linalg.norm(k)
    old, new = rng.standard_normal((1, 1, Dv)), rng.standard_normal((1, 1, Dv))
    state = rng.standard_normal((1, 1, Dk, Dv))
    one, zero = np.ones((1, 1)), np.zeros((1, 1))
    _, state = delta_rule_step(k, k, old, zero, one, state)
    read, state = delta_rule_step(k, k, new, zero, one, state)  # o_t is read AFTER the write
    np.testing.assert_allclose(read, new, atol=1e-10)


@FAST
@given(seed=seeds, T=st.integers(1, 80))
def test_with_no_writes_the_memory_only_decays(seed, T):
    """beta = 0: nothing is written; the memory is S0 times exp(sum of g), and each output reads it."""
    q, k, v, g, beta, state = delta_rule_inputs(seed, 1, 2, T, 4, 3, np.float64)
    out, final = chunked_gated_delta_rule(q, k, v, g, np.zeros_like(beta), state)
    kept = np.exp(np.cumsum(g, axis=-1))  # [B, Hv, T]
    np.testing.assert_allclose(final, state * kept[..., -1, None, None], atol=1e-12)
    np.testing.assert_allclose(out, kept[..., None] * (q @ state), atol=1e-12)


def test_padding_zeros_stay_zero_through_the_l2_norm():
    np.testing.assert_array_equal(l2_normalize(np.zeros((2, 3, 8), np.float32)), 0.0)


# ---------------------------------------------------------------------------------------------- conv

@FAST
@given(seed=seeds, T=st.integers(1, 12), C=st.integers(1, 6), W=st.integers(1, 5))
def test_causal_conv_is_a_per_channel_convolution_whose_last_tap_is_the_current_token(seed, T, C, W):
    rng = np.random.default_rng(seed)
    x, weight = rng.standard_normal((1, T, C)), rng.standard_normal((C, W))
    out, _ = causal_conv1d(x, weight, np.zeros((1, W - 1, C)))
    for c in range(C):  # np.convolve flips the kernel; PyTorch's conv1d (a cross-correlation) does not
        np.testing.assert_allclose(out[0, :, c], np.convolve(x[0, :, c], weight[c, ::-1])[:T], atol=1e-12)


@FAST
@given(seed=seeds, T=st.integers(2, 12), cut=st.integers(1, 11), W=st.integers(1, 5))
def test_causal_conv_over_two_calls_with_the_carried_state_equals_one_call(seed, T, cut, W):
    cut = min(cut, T - 1)
    rng = np.random.default_rng(seed)
    x, weight = rng.standard_normal((2, T, 3)), rng.standard_normal((3, W))
    zeros = np.zeros((2, W - 1, 3))
    whole, end = causal_conv1d(x, weight, zeros)
    first, state = causal_conv1d(x[:, :cut], weight, zeros)
    second, state = causal_conv1d(x[:, cut:], weight, state)
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-12)
    np.testing.assert_array_equal(state, end)


@FAST
@given(seed=seeds, B=st.integers(1, 2), T=st.integers(1, 8), C=st.integers(1, 6), W=st.integers(1, 5))
def test_the_conv_one_token_at_a_time_with_its_state_shifted_in_place_equals_one_call(seed, B, T, C, W):
    rng = np.random.default_rng(seed)
    x, weight, state = rng.standard_normal((B, T, C)), rng.standard_normal((C, W)), rng.standard_normal((B, W - 1, C))
    whole, end = causal_conv1d(x, weight, state)
    steps = np.stack([causal_conv1d_step(x[:, t], weight, state) for t in range(T)], axis=1)  # state shifted in place
    np.testing.assert_allclose(steps, whole, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(state, end)


# ---------------------------------------------------------------------------------------------- norms, RoPE, gate

@FAST
@given(seed=seeds)
def test_the_three_norms(seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((3, 16)).astype(np.float32), rng.standard_normal(16).astype(np.float32)
    np.testing.assert_array_equal(zero_centred_rms_norm(x, np.zeros(16, np.float32), 1e-6),
                                  rms_norm(x, np.ones(16, np.float32), 1e-6))  # stored 0 means a gain of 1
    np.testing.assert_allclose(zero_centred_rms_norm(x, w, 1e-6), rms_norm(x, 1 + w, 1e-6), rtol=1e-6)
    np.testing.assert_array_equal(gated_rms_norm(x, np.zeros_like(x), w, 1e-6), 0.0)  # silu(0) = 0: shut
    z = np.full_like(x, 30.0)  # silu(30) = 30 (to float32 precision): fully open, times 30
    np.testing.assert_allclose(gated_rms_norm(x, z, w, 1e-6), 30 * rms_norm(x, w, 1e-6), rtol=1e-5)


@FAST
@given(seed=seeds, p=st.integers(0, 3000), s=st.integers(0, 3000), shift=st.integers(0, 2000),
       R=st.sampled_from([2, 8, 16]))
def test_partial_rope_rotates_the_first_R_dims_and_keeps_relative_positions(seed, p, s, shift, R):
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((2, 1, 1, 1, 32)).astype(np.float32)
    inv = default_inv_freq(R, 1e7)  # frequencies of a head of size R: 1 / theta^(2j / R)

    def rotate(x, position):
        cos, sin = rope_cos_sin(np.array([[position]]), inv)  # [1, 1, R]
        y = apply_partial_rope(x, cos, sin)
        np.testing.assert_array_equal(y[..., R:], x[..., R:])  # the other dims pass through
        np.testing.assert_array_equal(y[..., :R], apply_rope(x[..., :R], cos, sin))  # pairs (j, j + R/2)
        return y

    score = lambda a, b: float((rotate(q, a) * rotate(k, b)).sum())
    assert score(p, s) == pytest.approx(score(p + shift, s + shift), rel=2e-3, abs=2e-3)


@FAST
@given(seed=seeds, T=st.integers(1, 6), K=st.sampled_from([1, 2]))
def test_a_shut_output_gate_is_a_half_open_one_dense_attention_halved(seed, T, K):
    """With the gate rows of q_proj zeroed, sigmoid(0) = 1/2 scales every channel: the layer is exactly half
    of Qwen3-style dense attention with the same queries (the query rows of each head's 2*Dh block)."""
    rng = np.random.default_rng(seed)
    H, Dh, D = 4, 8, 16
    w = lambda *shape: (0.5 * rng.standard_normal(shape)).astype(np.float32)
    q_rows, k_proj, v_proj, o_proj, q_norm, k_norm = w(H, Dh, D), w(K * Dh, D), w(K * Dh, D), w(D, H * Dh), w(Dh), w(Dh)
    q_proj = np.concatenate([q_rows, np.zeros_like(q_rows)], axis=1).reshape(H * 2 * Dh, D)  # [q_h | gate_h] per head
    gated = GatedAttentionWeights(q_proj, k_proj, v_proj, o_proj, q_norm, k_norm)
    dense = AttentionWeights(q_rows.reshape(H * Dh, D), k_proj, v_proj, o_proj, q_norm=1 + q_norm, k_norm=1 + k_norm)
    x = w(1, T, D)
    cos, sin = rope_cos_sin(np.arange(T)[None], default_inv_freq(Dh, 1e4))  # R = Dh: RoPE on the whole head
    mask = np.tril(np.ones((T, T), bool))[None, None]
    np.testing.assert_allclose(gated_self_attention(x, gated, H, K, 1e-6, cos, sin, mask),
                               0.5 * self_attention(x, dense, H, K, 1e-6, cos, sin, mask), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------- whole model

@SLOW
@given(name=QWEN35, t=st.integers(0, 40), seed=seeds)
def test_whole_hybrid_model_is_causal(name, t, seed):
    model, ids = tiny_model(name), reference(name)["input_ids"][:48].copy()
    before = model.forward(ids)
    ids[t + 1:] = np.random.default_rng(seed).integers(0, model.config.vocab_size, len(ids) - t - 1)
    np.testing.assert_array_equal(model.forward(ids)[:t + 1], before[:t + 1])


@SLOW
@given(name=QWEN35, cuts=st.lists(st.integers(1, 71), max_size=5, unique=True))
def test_any_split_into_chunks_through_the_cache_equals_one_full_pass(name, cuts):
    model, ids = tiny_model(name), reference(name)["input_ids"]
    full = model.forward(ids)
    cache = model.new_cache(1, len(ids))
    bounds = [0, *sorted(cuts), len(ids)]
    pieces = [model.forward(ids[a:b], cache=cache) for a, b in zip(bounds, bounds[1:])]
    np.testing.assert_allclose(np.concatenate(pieces), full, rtol=1e-4, atol=1e-4 * np.abs(full).max())


@SLOW
@given(name=QWEN35, lengths=st.lists(st.integers(1, 70), min_size=1, max_size=3), seed=seeds,
       pad_id=st.integers(0, 383))
def test_left_padded_batch_equals_each_row_alone_whatever_the_padding(name, lengths, seed, pad_id):
    """Pads are zeroed before the linear-attention layers, so the memory a row starts from is still zero."""
    model = tiny_model(name)
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, model.config.vocab_size, n) for n in lengths]
    width = max(lengths)
    batch, mask = np.full((len(rows), width), pad_id), np.zeros((len(rows), width), np.int64)
    for r, row in enumerate(rows):
        batch[r, width - len(row):], mask[r, width - len(row):] = row, 1
    logits = model.forward(batch, attention_mask=mask)
    for r, row in enumerate(rows):
        alone = model.forward(row)
        np.testing.assert_allclose(logits[r, width - len(row):], alone, rtol=1e-4, atol=1e-4 * np.abs(alone).max())


@SLOW
@given(name=QWEN35, n=st.integers(1, 6), seed=seeds)
def test_batched_generation_equals_each_row_alone(name, n, seed):
    model = tiny_model(name)
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, 370, k) for k in (3, 9)]
    batch, mask = np.zeros((2, 9), np.int64), np.zeros((2, 9), np.int64)
    for r, row in enumerate(rows):
        batch[r, 9 - len(row):], mask[r, 9 - len(row):] = row, 1
    together = minillm.generate(model, batch, attention_mask=mask, max_new_tokens=n, temperature=0.0,
                                stop_token_ids=[], prefill_chunk_size=4)
    for r, row in enumerate(rows):
        np.testing.assert_array_equal(together[r], minillm.generate(model, row, n, temperature=0.0,
                                                                    stop_token_ids=[]))
