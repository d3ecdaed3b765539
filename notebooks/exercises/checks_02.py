"""Notebook 02's exercises: RoPE, and grouped-query attention's sharing of key/value heads."""

from __future__ import annotations

import numpy as np

from minillm.model.attention import scaled_dot_product_attention
from minillm.model.rope import apply_rope, default_inv_freq, rope_cos_sin

from .compare import assert_close


def check_apply_rope(fn) -> None:
    """fn(x [T, Dh], positions [T], theta) -> [T, Dh]: x rotated as minillm's default RoPE rotates one head."""
    rng = np.random.default_rng(2)
    T, Dh, theta = 6, 16, 10000.0
    x = rng.standard_normal((T, Dh)).astype(np.float32)  # [T, Dh]
    positions = np.array([0, 1, 2, 7, 30, 500])  # [T]
    cos, sin = rope_cos_sin(positions[None], default_inv_freq(Dh, theta), 1.0)  # [1, T, Dh] each
    want = apply_rope(x[None, None], cos, sin)[0, 0]  # [T, Dh]
    assert_close(fn(x, positions, theta), want, 1e-4, "pair j is (x[j], x[j + Dh/2]), not (x[2j], x[2j+1]); "
                 "inv_freq[j] = theta^(-2j/Dh); angle = position * inv_freq[j]")


def check_repeat_kv(fn) -> None:
    """fn(k [K, S, Dh], n_rep) -> [K*n_rep, S, Dh]: query head h reads key/value head h // n_rep."""
    rng = np.random.default_rng(3)
    K, S, Dh, n_rep = 3, 5, 4, 2
    k = rng.standard_normal((K, S, Dh)).astype(np.float32)  # [K, S, Dh]
    v = rng.standard_normal((K, S, Dh)).astype(np.float32)  # [K, S, Dh]
    q = rng.standard_normal((K * n_rep, 2, Dh)).astype(np.float32)  # [H, T=2, Dh]
    got = np.asarray(fn(k, n_rep))
    assert got.shape == (K * n_rep, S, Dh), f"shape {got.shape}, expected {(K * n_rep, S, Dh)}"
    # attention with every query head given its own (repeated) key/value head must equal minillm's grouped form
    scores = q @ got.swapaxes(-1, -2) / np.sqrt(Dh)  # [H, T, S]
    probs = np.exp(scores - scores.max(-1, keepdims=True)); probs /= probs.sum(-1, keepdims=True)
    ours = probs @ np.asarray(fn(v, n_rep))  # [H, T, Dh]
    want = scaled_dot_product_attention(q[None], k[None], v[None], None)[0]  # [H, T, Dh]
    err = float(np.max(np.abs(ours - want)))
    assert err < 1e-4, (f"attention with your repeated heads differs from minillm's by {err:.3g}: consecutive query "
                        f"heads share a key head (0,0,1,1,2,2: np.repeat), not every K-th (0,1,2,0,1,2: np.tile)")


CHECKS = {"apply_rope": check_apply_rope, "repeat_kv": check_repeat_kv}
