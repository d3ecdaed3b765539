"""One test per module: each function against its formula, written out the slow, obvious way."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from minillm.model.attention import (AttentionWeights, attention_probs, naive_gqa_attention,
                                     scaled_dot_product_attention, self_attention)
from minillm.model.masks import causal_mask
from minillm.model.block import LayerWeights, decoder_layer
from minillm.checkpoint.config import parse_config
from minillm.model.embedding import embed
from minillm.model.fast_linear import fast_linear
from minillm.model.linear import linear
from minillm.model.activations import silu
from minillm.model.mlp import MLPWeights, swiglu_mlp
from minillm.model.transformer import lm_head
from minillm.model.norm import rms_norm
from minillm.model.rope import apply_rope, default_inv_freq, rope_cos_sin, rope_frequencies, rotate_half
from conftest import WEIGHTS

rng = np.random.default_rng(0)


def randn(*shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def test_embedding_picks_rows():
    table = randn(10, 4)
    ids = np.array([[3, 0, 3]])
    out = embed(ids, table)
    assert out.shape == (1, 3, 4)
    for t, i in enumerate(ids[0]):
        np.testing.assert_array_equal(out[0, t], table[i])


def test_linear_is_x_times_weight_transposed_plus_bias():
    x, w, b = randn(2, 3, 5), randn(4, 5), randn(4)
    expected = np.einsum("bti,oi->bto", x.astype(np.float64), w) + b
    np.testing.assert_allclose(linear(x, w, b), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 2, 5, 8, 9, 40])
def test_the_engines_fast_linear_gives_the_plain_product(rows):
    """fast_linear (flattened, a few rows in threaded blocks) = linear.py's x W^T + b, for every path it takes."""
    x, w, b = randn(2, rows, 96), randn(9000, 96), randn(9000)  # 2 x rows positions: 2 .. 80 rows
    np.testing.assert_allclose(fast_linear(x, w, b), linear(x, w, b), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(fast_linear(x[0], w), linear(x[0], w), rtol=1e-5, atol=1e-4)


def test_rms_norm_formula_eps_inside_the_root():
    x, w, eps = randn(3, 8, scale=1e-3), randn(8), 1e-6
    expected = np.empty((3, 8))
    for r in range(3):
        ms = sum(float(v) ** 2 for v in x[r]) / 8
        expected[r] = w * x[r] / math.sqrt(ms + eps)
    got = rms_norm(x, w, eps)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_silu_and_swiglu_formula():
    u = randn(20, scale=5)
    np.testing.assert_allclose(silu(u), u / (1 + np.exp(-u.astype(np.float64))), rtol=1e-6)
    w = MLPWeights(gate_proj=randn(6, 4), up_proj=randn(6, 4), down_proj=randn(4, 6))
    x = randn(2, 4)
    g, up = x @ w.gate_proj.T, x @ w.up_proj.T
    expected = (g / (1 + np.exp(-g)) * up) @ w.down_proj.T
    np.testing.assert_allclose(swiglu_mlp(x, w), expected, rtol=1e-5, atol=1e-5)


def test_default_inv_freq_formula():
    d, theta = 64, 1e6
    expected = [1 / theta ** (2 * j / d) for j in range(d // 2)]
    np.testing.assert_allclose(default_inv_freq(d, theta), expected, rtol=1e-6)


@pytest.mark.parametrize("case", ["linear", "dynamic", "dynamic_seq200000", "yarn", "yarn_mscale", "llama3"])
def test_rope_scaling_matches_transformers_frequencies(case):
    """inv_freq and attention scaling of each RoPE type against transformers' ROPE_INIT_FUNCTIONS."""
    ref = np.load(WEIGHTS / "rope_reference.npz")
    configs = json.loads((WEIGHTS / "rope_reference_configs.json").read_text())
    base, _, seq = case.partition("_seq")
    cfg = parse_config(configs[base])
    inv_freq, scaling = rope_frequencies(cfg.head_dim, cfg.rope, cfg.max_position_embeddings,
                                         seq_len=int(seq) if seq else None)
    assert inv_freq.dtype == np.float32
    np.testing.assert_allclose(inv_freq, ref[f"{case}_inv_freq"], rtol=2e-6)
    assert scaling == pytest.approx(float(ref[f"{case}_attention_scaling"]), rel=1e-12)


def test_rope_rotates_pairs_j_and_j_plus_half():
    """x'[j] = x[j] cos - x[j+d/2] sin;  x'[j+d/2] = x[j+d/2] cos + x[j] sin   (rotate-half convention)."""
    d = 8
    x = randn(1, 2, 3, d)  # [B, heads, T, Dh]
    positions = np.array([[0, 5, 11]])
    inv_freq = default_inv_freq(d, 10000.0)
    cos, sin = rope_cos_sin(positions, inv_freq)
    got = apply_rope(x, cos, sin)
    for h in range(2):
        for t, p in enumerate(positions[0]):
            for j in range(d // 2):
                a = p * float(inv_freq[j])
                x1, x2 = float(x[0, h, t, j]), float(x[0, h, t, j + d // 2])
                assert got[0, h, t, j] == pytest.approx(x1 * math.cos(a) - x2 * math.sin(a), abs=1e-5)
                assert got[0, h, t, j + d // 2] == pytest.approx(x2 * math.cos(a) + x1 * math.sin(a), abs=1e-5)


def test_rotate_half():
    np.testing.assert_array_equal(rotate_half(np.array([1.0, 2, 3, 4], np.float32)), [-3, -4, 1, 2])


def test_causal_mask_definition_with_padding_and_window():
    valid = np.array([[False, True, True, True, True, True]])
    m = causal_mask(num_new=2, past_len=4, key_valid=valid, sliding_window=3)
    assert m.shape == (1, 1, 2, 6)
    for t in range(2):
        q = 4 + t
        for s in range(6):
            assert m[0, 0, t, s] == (s <= q and valid[0, s] and s > q - 3)


def naive_attention(q, k, v, mask):
    """Loop over query heads; head h reads KV head h // (H/K). float64."""
    B, H, T, Dh = q.shape
    K = k.shape[1]
    out = np.zeros(q.shape)
    for b in range(B):
        for h in range(H):
            kv = h // (H // K)
            s = q[b, h].astype(np.float64) @ k[b, kv].T / math.sqrt(Dh)
            s = np.where(mask[min(b, mask.shape[0] - 1), 0], s, -1e300)  # -1e300: no NaN on all-masked rows
            p = np.exp(s - s.max(-1, keepdims=True))
            out[b, h] = (p / p.sum(-1, keepdims=True)) @ v[b, kv]
    return out


def test_grouped_query_attention_against_per_head_loop():
    B, H, K, T, Dh = 2, 6, 2, 5, 4
    q, k, v = randn(B, H, T, Dh), randn(B, K, T, Dh), randn(B, K, T, Dh)
    mask = causal_mask(T, 0, np.array([[True] * 5, [False, False, True, True, True]]))
    got = scaled_dot_product_attention(q, k, v, mask)
    expected = naive_attention(q, k, v, mask)
    real = np.array([[True] * 5, [False, False, True, True, True]])
    for b in range(B):  # padding queries have no allowed key; only real positions are defined
        np.testing.assert_allclose(got[b][:, real[b]], expected[b][:, real[b]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("H, K", [(6, 2), (4, 4), (8, 1)])
def test_grouped_attention_equals_the_naive_repeat_interleave_version(H, K):
    """The [B, K, H/K, T, S] layout computes what copying each key/value head H/K times would."""
    B, T, S, Dh = 2, 3, 5, 4
    q, k, v = randn(B, H, T, Dh), randn(B, K, S, Dh), randn(B, K, S, Dh)
    for mask in (None, causal_mask(T, S - T, np.array([[True] * 5, [False, True, True, True, True]]))):
        np.testing.assert_allclose(scaled_dot_product_attention(q, k, v, mask), naive_gqa_attention(q, k, v, mask),
                                   rtol=1e-5, atol=1e-6)
    probs = attention_probs(q, k, None)  # [B, K, H/K, T, S]: group g, member m is query head g * (H/K) + m
    assert probs.shape == (B, K, H // K, T, S)
    k_rep = np.repeat(k, H // K, axis=1)  # [B, H, S, Dh]
    for h in range(H):
        scores = q[:, h] @ k_rep[:, h].swapaxes(-1, -2) / np.sqrt(Dh)  # [B, T, S]
        expected = np.exp(scores - scores.max(-1, keepdims=True))
        np.testing.assert_allclose(probs[:, h // (H // K), h % (H // K)], expected / expected.sum(-1, keepdims=True),
                                   rtol=1e-5, atol=1e-6)


def attention_weights(D, H, K, Dh, qk_norm=False, bias=True, o_bias=False):
    return AttentionWeights(
        q_proj=randn(H * Dh, D, scale=0.3), k_proj=randn(K * Dh, D, scale=0.3), v_proj=randn(K * Dh, D, scale=0.3),
        o_proj=randn(D, H * Dh, scale=0.3),
        q_proj_bias=randn(H * Dh) if bias else None, k_proj_bias=randn(K * Dh) if bias else None,
        v_proj_bias=randn(K * Dh) if bias else None, o_proj_bias=randn(D) if o_bias else None,
        q_norm=randn(Dh) if qk_norm else None, k_norm=randn(Dh) if qk_norm else None)


@pytest.mark.parametrize("qk_norm", [False, True])
def test_self_attention_against_the_step_by_step_formula(qk_norm):
    B, T, D, H, K, Dh, eps = 1, 4, 8, 4, 2, 6, 1e-6
    w = attention_weights(D, H, K, Dh, qk_norm=qk_norm, o_bias=qk_norm)
    x = randn(B, T, D)
    cos, sin = rope_cos_sin(np.arange(T)[None], default_inv_freq(Dh, 1e4))
    mask = causal_mask(T, 0)
    got = self_attention(x, w, H, K, eps, cos, sin, mask)

    q = (x @ w.q_proj.T + w.q_proj_bias).reshape(B, T, H, Dh).transpose(0, 2, 1, 3)
    k = (x @ w.k_proj.T + w.k_proj_bias).reshape(B, T, K, Dh).transpose(0, 2, 1, 3)
    v = (x @ w.v_proj.T + w.v_proj_bias).reshape(B, T, K, Dh).transpose(0, 2, 1, 3)
    if qk_norm:  # before RoPE
        q = q / np.sqrt((q ** 2).mean(-1, keepdims=True) + eps) * w.q_norm
        k = k / np.sqrt((k ** 2).mean(-1, keepdims=True) + eps) * w.k_norm
    rot = lambda t: t * cos[:, None] + np.concatenate([-t[..., Dh // 2:], t[..., :Dh // 2]], -1) * sin[:, None]
    out = naive_attention(rot(q), rot(k), v, mask).transpose(0, 2, 1, 3).reshape(B, T, H * Dh)
    expected = out @ w.o_proj.T + (w.o_proj_bias if w.o_proj_bias is not None else 0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_decoder_layer_is_two_pre_norm_residual_sublayers():
    B, T, D, H, K, Dh, F, eps = 1, 3, 8, 2, 1, 4, 12, 1e-6
    w = LayerWeights(input_layernorm=randn(D), self_attn=attention_weights(D, H, K, Dh),
                     post_attention_layernorm=randn(D),
                     mlp=MLPWeights(gate_proj=randn(F, D), up_proj=randn(F, D), down_proj=randn(D, F)))
    x = randn(B, T, D)
    cos, sin = rope_cos_sin(np.arange(T)[None], default_inv_freq(Dh, 1e6))
    mask = causal_mask(T, 0)
    h = x + self_attention(rms_norm(x, w.input_layernorm, eps), w.self_attn, H, K, eps, cos, sin, mask)
    expected = h + swiglu_mlp(rms_norm(h, w.post_attention_layernorm, eps), w.mlp)
    np.testing.assert_allclose(decoder_layer(x, w, H, K, eps, cos, sin, mask), expected, rtol=1e-6, atol=1e-6)


def test_lm_head_scores_every_vocabulary_row():
    h, W = randn(2, 4), randn(7, 4)
    np.testing.assert_allclose(lm_head(h, W), [[float(np.dot(r, w)) for w in W] for r in h], rtol=1e-5, atol=1e-6)


def test_rope_worked_example_of_the_rope_docstring():
    """Dh = 4, theta = 1e4, x = [1, 2, 3, 4] at position 1 -> [-1.984, 1.960, 2.462, 4.020] (rope.py)."""
    cos, sin = rope_cos_sin(np.array([[1]]), default_inv_freq(4, 1e4))
    got = apply_rope(np.array([[[[1.0, 2, 3, 4]]]], np.float32), cos, sin)[0, 0, 0]
    np.testing.assert_allclose(got, [-1.984, 1.960, 2.462, 4.020], atol=5e-4)


def test_interleaved_rope_is_rotate_half_after_permuting_each_heads_rows():
    """Why a checkpoint converted from an interleaved model must reorder q_proj / k_proj rows (rope.py)."""
    Dh, D = 8, 5
    w = randn(Dh, D)  # one head's q_proj rows
    x = randn(3, D)  # three tokens
    positions = np.arange(3)
    angle = positions[:, None] * default_inv_freq(Dh, 1e4)  # [T, Dh/2]
    q = x @ w.T  # [T, Dh]
    interleaved = np.empty_like(q)  # pairs (2j, 2j + 1)
    interleaved[:, 0::2] = q[:, 0::2] * np.cos(angle) - q[:, 1::2] * np.sin(angle)
    interleaved[:, 1::2] = q[:, 1::2] * np.cos(angle) + q[:, 0::2] * np.sin(angle)
    order = np.concatenate([np.arange(0, Dh, 2), np.arange(1, Dh, 2)])  # row 2j -> j, row 2j+1 -> j + Dh/2
    cos, sin = rope_cos_sin(positions[None], default_inv_freq(Dh, 1e4))
    rotate_half_on_permuted = apply_rope((x @ w[order].T)[None, None], cos, sin)[0, 0]  # [T, Dh]
    np.testing.assert_allclose(rotate_half_on_permuted, interleaved[:, order], rtol=1e-5, atol=1e-5)


def test_the_few_rows_thread_pool_works_in_a_forked_child():
    """A forked child (the fuzz harness, multiprocessing's default on Linux) must not reuse the parent's pool,
    whose threads it does not have: the child's product would wait forever."""
    import os
    import signal
    from minillm.model import fast_linear as linear_module
    w = np.ones((4096, 512), np.float32)  # [out, in]: several blocks, so the pool is used
    x = np.ones((2, 512), np.float32)  # [N, in]
    linear_module.few_rows_matmul(x, w)  # the parent's pool now exists
    pid = os.fork()
    if pid == 0:  # child: a hang is ended by the alarm (exit by signal), a wrong product exits 1
        signal.alarm(20)
        y = linear_module.few_rows_matmul(x, w)  # [2, 4096]
        os._exit(0 if np.all(y == 512.0) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child status {status}"


def test_rope_and_the_config_reader_do_not_import_each_other():
    """checkpoint/config.py uses model/rope.py (it checks the frequencies); the RoPE modules take their settings
    from checkpoint/rope_config.py, never from config.py, so either side can be imported first."""
    import ast
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "minillm"
    for module in ("model/rope.py", "model/rope_scaling.py", "checkpoint/rope_config.py"):
        tree = ast.parse((root / module).read_text(encoding="utf-8"))
        imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [m for m in imported if m and m.endswith("config") and "rope_config" not in m], module
    for first in ("minillm.model.rope_scaling", "minillm.model.rope", "minillm.checkpoint.config"):
        subprocess.run([sys.executable, "-c", f"import {first}; import minillm"], check=True)
