"""Properties that state what each piece of the architecture *is*, checked on inputs drawn by hypothesis.

Each one was checked by hand to fail when the implementation is broken the way it guards against
(swapped RoPE halves, tile instead of repeat-interleave, no causal mask, off-by-one cache positions).
"""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minillm
from minillm.model.activations import softmax
from minillm.model.attention import AttentionWeights, attention_probs, scaled_dot_product_attention, self_attention
from minillm.model.masks import causal_mask
from minillm.model.block import LayerWeights, decoder_layer
from minillm.checkpoint.config import RopeConfig
from minillm.model.mlp import MLPWeights, swiglu_mlp
from minillm.model.norm import rms_norm
from minillm.model.rope import apply_rope, default_inv_freq, rope_cos_sin, rope_frequencies
from minillm.generation.sampling import SamplingParams, min_p_filter, process_logits, sample, top_k_filter, top_p_filter
from conftest import WEIGHTS, reference, tiny_model

FAST = settings(max_examples=30, deadline=None)
SLOW = settings(max_examples=12, deadline=None)  # whole-model properties


def arrays(shape, lo=-3.0, hi=3.0):
    return hnp.arrays(np.float32, shape, elements=st.floats(lo, hi, width=32))


seeds = st.integers(0, 2 ** 32 - 1)


def rand(seed, *shape, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


# ---------------------------------------------------------------------------------------------- RMSNorm

@FAST
@given(x=arrays((3, 16)), c=st.floats(0.01, 100.0), seed=seeds)
def test_rms_norm_is_invariant_to_scaling_its_input(x, c, seed):
    """Exactly: RMSNorm(c x; eps c^2) = RMSNorm(x; eps). So with eps negligible, scaling x changes nothing."""
    w = rand(seed, 16)
    a = rms_norm(x, w, 1e-6)
    np.testing.assert_allclose(rms_norm(np.float32(c) * x, w, 1e-6 * c * c), a, rtol=1e-4, atol=1e-5)
    if np.sqrt(np.minimum(1, c * c) * (x.astype(np.float64) ** 2).mean(-1)).min() > 0.1:  # eps << mean(x^2)
        np.testing.assert_allclose(rms_norm(np.float32(c) * x, w, 1e-6), a, rtol=1e-3, atol=1e-4)


@FAST
@given(x=arrays((4, 32)))
def test_rms_norm_with_unit_weight_gives_rms_one_in_float32(x):
    """RMS of the output is exactly sqrt(ms / (ms + eps)): 1 up to eps (ms = mean of x^2)."""
    y = rms_norm(x, np.ones(32, np.float32), 1e-6)
    assert y.dtype == np.float32
    ms = (x.astype(np.float64) ** 2).mean(-1)
    np.testing.assert_allclose(np.sqrt((y.astype(np.float64) ** 2).mean(-1)), np.sqrt(ms / (ms + 1e-6)), rtol=1e-5)


# ---------------------------------------------------------------------------------------------- RoPE

head_dims = st.sampled_from([4, 8, 16, 64])
positions = st.integers(0, 5000)


@FAST
@given(d=head_dims, p=positions, seed=seeds)
def test_rope_preserves_the_norm_of_every_rotated_pair(d, p, seed):
    x = rand(seed, 1, 1, 1, d)
    cos, sin = rope_cos_sin(np.array([[p]]), default_inv_freq(d, 1e6))
    y = apply_rope(x, cos, sin)
    h = d // 2
    pair = lambda v: np.hypot(v[..., :h].astype(np.float64), v[..., h:])  # pair j is (j, j + d/2)
    np.testing.assert_allclose(pair(y), pair(x), rtol=1e-5, atol=1e-6)


@FAST
@given(d=head_dims, p=positions, s=positions, shift=st.integers(0, 3000), seed=seeds)
def test_rope_score_depends_only_on_relative_position(d, p, s, shift, seed):
    q, k = rand(seed, 1, 1, 1, d), rand(seed + 1, 1, 1, 1, d)
    inv = default_inv_freq(d, 1e4)

    def score(pq, pk):
        cq, sq = rope_cos_sin(np.array([[pq]]), inv)
        ck, sk = rope_cos_sin(np.array([[pk]]), inv)
        return float((apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum())

    assert score(p, s) == pytest.approx(score(p + shift, s + shift), rel=2e-3, abs=2e-3)


@FAST
@given(d=head_dims, seed=seeds)
def test_rope_at_position_zero_is_the_identity(d, seed):
    x = rand(seed, 2, 3, 1, d)
    cos, sin = rope_cos_sin(np.zeros((2, 1), np.int64), default_inv_freq(d, 1e6))
    np.testing.assert_array_equal(apply_rope(x, cos, sin), x)


@FAST
@given(kind=st.sampled_from(["linear", "dynamic", "yarn", "llama3"]), d=head_dims,
       theta=st.sampled_from([1e4, 5e5, 1e6]), seq=st.integers(1, 4096))
def test_every_rope_scaling_type_reduces_to_default_at_factor_one(kind, d, theta, seq):
    rope = RopeConfig(rope_type=kind, theta=theta, factor=1.0, original_max_position_embeddings=4096)
    inv, scaling = rope_frequencies(d, rope, max_position_embeddings=4096, seq_len=seq)
    np.testing.assert_allclose(inv, default_inv_freq(d, theta), rtol=1e-6)
    assert scaling == 1.0


# ---------------------------------------------------------------------------------------------- attention

@FAST
@given(scores=arrays((2, 5, 7), -1e4, 1e4), c=st.floats(-1e3, 1e3, width=32))
def test_softmax_rows_sum_to_one_ignore_constants_and_never_overflow(scores, c):
    p = softmax(scores)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(softmax(scores + np.float32(c)), p, atol=1e-3)


@FAST
@given(B=st.integers(1, 2), K=st.integers(1, 3), rep=st.integers(1, 3), T=st.integers(1, 6),
       past=st.integers(0, 4), seed=seeds, window=st.one_of(st.none(), st.integers(1, 5)))
def test_masked_positions_get_exactly_zero_weight(B, K, rep, T, past, seed, window):
    H, Dh, S = K * rep, 4, past + T
    q, k = rand(seed, B, H, T, Dh, scale=30.0), rand(seed + 1, B, K, S, Dh, scale=30.0)
    valid = np.random.default_rng(seed).random((B, S)) < 0.7
    valid[:, -1] = True
    mask = causal_mask(T, past, valid, window)  # [B, 1, T, S]
    probs = attention_probs(q, k, mask).reshape(B, H, T, S)
    assert np.isfinite(probs).all()
    has_key = mask.any(-1)[:, 0]  # [B, T]
    blocked = np.broadcast_to(~mask, (B, H, T, S)) & has_key[:, None, :, None]
    assert (probs[blocked] == 0.0).all()


@FAST
@given(T=st.integers(2, 8), t_raw=st.integers(0, 6), seed=seeds)
def test_attention_is_causal_later_tokens_do_not_change_earlier_outputs(T, t_raw, seed):
    t = t_raw % (T - 1)  # a position with at least one token after it
    D, H, K, Dh = 8, 4, 2, 4
    w = AttentionWeights(q_proj=rand(seed, H * Dh, D), k_proj=rand(seed + 1, K * Dh, D),
                         v_proj=rand(seed + 2, K * Dh, D), o_proj=rand(seed + 3, D, H * Dh))
    x = rand(seed + 4, 1, T, D)
    x2 = x.copy()
    x2[:, t + 1:] = rand(seed + 5, 1, T - t - 1, D)
    cos, sin = rope_cos_sin(np.arange(T)[None], default_inv_freq(Dh, 1e4))
    a = self_attention(x, w, H, K, 1e-6, cos, sin, causal_mask(T, 0))
    b = self_attention(x2, w, H, K, 1e-6, cos, sin, causal_mask(T, 0))
    np.testing.assert_array_equal(a[:, :t + 1], b[:, :t + 1])


@SLOW
@given(name=st.sampled_from(["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa"]), t=st.integers(0, 20),
       seed=seeds)
def test_whole_model_is_causal(name, t, seed):
    model, ids = tiny_model(name), reference(name)["input_ids"][:24]
    changed = ids.copy()
    changed[t + 1:] = np.random.default_rng(seed).integers(0, model.config.vocab_size, len(ids) - t - 1)
    np.testing.assert_array_equal(model.forward(ids)[:t + 1], model.forward(changed)[:t + 1])


@FAST
@given(B=st.integers(1, 2), H=st.integers(1, 4), T=st.integers(1, 5), seed=seeds)
def test_gqa_with_as_many_kv_heads_as_query_heads_is_multi_head_attention(B, H, T, seed):
    Dh = 4
    q, k, v = rand(seed, B, H, T, Dh), rand(seed + 1, B, H, T, Dh), rand(seed + 2, B, H, T, Dh)
    mask = causal_mask(T, 0)
    out = scaled_dot_product_attention(q, k, v, mask)
    for h in range(H):  # each head on its own, one key/value head each
        alone = scaled_dot_product_attention(q[:, h:h + 1], k[:, h:h + 1], v[:, h:h + 1], mask)
        np.testing.assert_allclose(out[:, h:h + 1], alone, rtol=1e-6, atol=1e-6)


@FAST
@given(K=st.integers(1, 3), rep=st.integers(1, 4), T=st.integers(1, 5), seed=seeds, bias=st.booleans())
def test_gqa_equals_mha_with_kv_weights_repeated_per_query_head(K, rep, T, seed, bias):
    """Repeat-interleave: query head h uses KV head h // rep, so KV row-block j is copied rep times in a row."""
    D, Dh, H = 8, 4, K * rep
    w = AttentionWeights(q_proj=rand(seed, H * Dh, D), k_proj=rand(seed + 1, K * Dh, D),
                         v_proj=rand(seed + 2, K * Dh, D), o_proj=rand(seed + 3, D, H * Dh),
                         q_proj_bias=rand(seed + 4, H * Dh) if bias else None,
                         k_proj_bias=rand(seed + 5, K * Dh) if bias else None,
                         v_proj_bias=rand(seed + 6, K * Dh) if bias else None)

    def per_head(a):  # [K*Dh, ...] -> [H*Dh, ...], each KV head's block repeated rep times
        return None if a is None else np.repeat(a.reshape(K, Dh, *a.shape[1:]), rep, axis=0).reshape(H * Dh, *a.shape[1:])

    mha = AttentionWeights(q_proj=w.q_proj, k_proj=per_head(w.k_proj), v_proj=per_head(w.v_proj), o_proj=w.o_proj,
                           q_proj_bias=w.q_proj_bias, k_proj_bias=per_head(w.k_proj_bias),
                           v_proj_bias=per_head(w.v_proj_bias))
    x = rand(seed + 7, 1, T, D)
    cos, sin = rope_cos_sin(np.arange(T)[None], default_inv_freq(Dh, 1e4))
    a = self_attention(x, w, H, K, 1e-6, cos, sin, causal_mask(T, 0))
    b = self_attention(x, mha, H, H, 1e-6, cos, sin, causal_mask(T, 0))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- MLP, block

@FAST
@given(D=st.integers(1, 8), F=st.integers(1, 16), seed=seeds)
def test_swiglu_maps_zero_to_zero(D, F, seed):
    w = MLPWeights(gate_proj=rand(seed, F, D), up_proj=rand(seed + 1, F, D), down_proj=rand(seed + 2, D, F))
    assert (swiglu_mlp(np.zeros((2, D), np.float32), w) == 0).all()


@FAST
@given(T=st.integers(1, 5), seed=seeds)
def test_block_with_zeroed_output_projections_is_the_identity(T, seed):
    D, H, K, Dh, F = 8, 2, 1, 4, 12
    attn = AttentionWeights(q_proj=rand(seed, H * Dh, D), k_proj=rand(seed + 1, K * Dh, D),
                            v_proj=rand(seed + 2, K * Dh, D), o_proj=np.zeros((D, H * Dh), np.float32))
    w = LayerWeights(input_layernorm=rand(seed + 3, D), self_attn=attn, post_attention_layernorm=rand(seed + 4, D),
                     mlp=MLPWeights(gate_proj=rand(seed + 5, F, D), up_proj=rand(seed + 6, F, D),
                                    down_proj=np.zeros((D, F), np.float32)))
    x = rand(seed + 7, 1, T, D)
    cos, sin = rope_cos_sin(np.arange(T)[None], default_inv_freq(Dh, 1e4))
    np.testing.assert_array_equal(decoder_layer(x, w, H, K, 1e-6, cos, sin, causal_mask(T, 0)), x)


# ---------------------------------------------------------------------------------------------- KV cache

@SLOW
@given(name=st.sampled_from(["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa"]),
       cuts=st.lists(st.integers(1, 23), max_size=5, unique=True))
def test_any_split_into_chunks_through_the_cache_equals_one_full_pass(name, cuts):
    model, ids = tiny_model(name), reference(name)["input_ids"][:24]
    full = model.forward(ids)
    cache = model.new_cache(1, len(ids))
    bounds = [0, *sorted(cuts), len(ids)]
    pieces = [model.forward(ids[a:b], cache=cache) for a, b in zip(bounds, bounds[1:])]
    np.testing.assert_allclose(np.concatenate(pieces), full, rtol=1e-5, atol=1e-5 * np.abs(full).max())


@SLOW
@given(name=st.sampled_from(["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa"]),
       lengths=st.lists(st.integers(1, 12), min_size=1, max_size=3), seed=seeds, pad_id=st.integers(0, 511))
def test_left_padded_batch_equals_each_row_alone_whatever_the_padding(name, lengths, seed, pad_id):
    model = tiny_model(name)
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, model.config.vocab_size, n) for n in lengths]
    width = max(lengths)
    batch = np.full((len(rows), width), pad_id)
    mask = np.zeros((len(rows), width), np.int64)
    for r, row in enumerate(rows):
        batch[r, width - len(row):], mask[r, width - len(row):] = row, 1
    logits = model.forward(batch, attention_mask=mask)
    for r, row in enumerate(rows):
        alone = model.forward(row)
        np.testing.assert_allclose(logits[r, width - len(row):], alone, rtol=1e-5,
                                   atol=1e-5 * np.abs(alone).max())


@SLOW
@given(name=st.sampled_from(["tiny-qwen2", "tiny-qwen3"]), n=st.integers(1, 6), seed=seeds)
def test_batched_generation_equals_each_row_alone(name, n, seed):
    model = tiny_model(name)
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, 500, k) for k in (3, 7)]
    batch = np.zeros((2, 7), np.int64)
    mask = np.zeros((2, 7), np.int64)
    for r, row in enumerate(rows):
        batch[r, 7 - len(row):], mask[r, 7 - len(row):] = row, 1
    together = minillm.generate(model, batch, attention_mask=mask, max_new_tokens=n, temperature=0.0,
                                stop_token_ids=[])
    for r, row in enumerate(rows):
        np.testing.assert_array_equal(together[r], minillm.generate(model, row, n, temperature=0.0,
                                                                    stop_token_ids=[]))


# ---------------------------------------------------------------------------------------------- sampling

logit_rows = arrays((2, 12), -20.0, 20.0)
# rows of distinct logits (hypothesis likes to draw many equal values; ties make "the" greedy token ambiguous)
distinct_rows = hnp.arrays(np.float32, (2, 12), elements=st.floats(-20, 20, width=32), unique=True)


@FAST
@given(logits=distinct_rows, seed=seeds, t=st.floats(0.1, 3.0))
def test_top_k_one_and_top_p_near_zero_are_greedy(logits, seed, t):
    rng = np.random.default_rng(seed)
    greedy = logits.argmax(-1)
    np.testing.assert_array_equal(sample(logits, SamplingParams(temperature=t, top_k=1), rng), greedy)
    np.testing.assert_array_equal(sample(logits, SamplingParams(temperature=t, top_p=1e-9), rng), greedy)


@FAST
@given(logits=logit_rows, seen=hnp.arrays(bool, (2, 12)))
def test_neutral_settings_change_nothing(logits, seen):
    np.testing.assert_array_equal(min_p_filter(logits, 0.0), logits)
    np.testing.assert_array_equal(top_p_filter(logits, 1.0), logits)
    np.testing.assert_array_equal(process_logits(logits, SamplingParams(temperature=1.0, repetition_penalty=1.0),
                                                 seen), logits)


@settings(max_examples=60, deadline=None)
@given(logits=hnp.arrays(np.float32, (2, 12), elements=st.floats(-3, 3, width=32), unique=True),
       p=st.floats(0.05, 0.95))
def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(logits, p):
    probs = np.exp(logits.astype(np.float64) - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    kept = np.isfinite(top_p_filter(logits, p))
    for r in range(len(logits)):
        order = np.argsort(-probs[r], kind="stable")
        mass = np.cumsum(probs[r][order])
        n = int(np.searchsorted(mass, p - 1e-6)) + 1  # smallest prefix reaching p
        assume(abs(mass[n - 1] - p) > 1e-4 and (n < 2 or abs(mass[n - 2] - p) > 1e-4))  # no float-rounding ties
        assume(len(np.unique(probs[r][order[:n + 1]])) == n + 1)
        assert kept[r].sum() == n
        assert set(np.flatnonzero(kept[r])) == set(order[:n].tolist())


@FAST
@given(seed=seeds)
def test_the_same_seed_gives_the_same_tokens(seed):
    model, ids = tiny_model("tiny-qwen2"), reference("tiny-qwen2")["greedy_prompt"]
    kw = dict(max_new_tokens=4, temperature=1.0, top_k=0, top_p=0.95, seed=seed, stop_token_ids=[])
    np.testing.assert_array_equal(minillm.generate(model, ids, **kw), minillm.generate(model, ids, **kw))


# ---------------------------------------------------------------------------------------------- tokenizer

@pytest.fixture(scope="module")
def tok():
    return minillm.load_tokenizer(WEIGHTS / "tiny-qwen2")


SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


@FAST
@given(text=st.text(st.characters(codec="utf-8"), max_size=40))
def test_decode_of_encode_is_the_nfc_form_of_the_text(tok, text):
    assume(not any(s in text for s in SPECIALS))
    assert tok.decode(tok.encode(text)) == unicodedata.normalize("NFC", text)


@FAST
@given(ids=st.lists(st.integers(0, 502), max_size=30))
def test_streaming_decode_concatenates_to_the_full_decode_without_new_replacement_chars(tok, ids):
    d = tok.stream_decoder()
    pieces = [d.step(i) for i in ids] + [d.flush()]
    full = tok.decode(ids)
    assert "".join(pieces) == full
    assert "".join(pieces[:-1]).count("\ufffd") <= full.count("\ufffd")
