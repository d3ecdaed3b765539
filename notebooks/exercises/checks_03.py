"""Notebook 03's exercises: one decode step with a KV cache, and top-p filtering."""

from __future__ import annotations

import numpy as np

from minillm.generation.sampling import top_p_filter
from minillm.model.attention import scaled_dot_product_attention
from minillm.model.masks import causal_mask


def check_decode_step(fn) -> None:
    """fn(q [H, Dh], k_new [K, Dh], v_new [K, Dh], k_cache [K, S, Dh], v_cache [K, S, Dh])
    -> (out [H, Dh], k_cache [K, S+1, Dh], v_cache [K, S+1, Dh]): append the new key and value, then attend.

    Equal to the last row of minillm's attention over the whole sequence at once."""
    rng = np.random.default_rng(4)
    H, K, S, Dh = 4, 2, 6, 8
    keys = rng.standard_normal((K, S + 1, Dh)).astype(np.float32)  # [K, S+1, Dh]: S cached + the new one
    values = rng.standard_normal((K, S + 1, Dh)).astype(np.float32)
    queries = rng.standard_normal((H, S + 1, Dh)).astype(np.float32)  # [H, S+1, Dh]
    full = scaled_dot_product_attention(queries[None], keys[None], values[None], causal_mask(S + 1, 0))[0]
    out, k_cache, v_cache = fn(queries[:, -1], keys[:, -1], values[:, -1], keys[:, :-1], values[:, :-1])
    assert np.asarray(k_cache).shape == keys.shape, f"the cache grows by one position: {keys.shape}"
    assert np.allclose(k_cache, keys) and np.allclose(v_cache, values), "the new key/value go at the end of the cache"
    out = np.asarray(out)
    assert out.shape == (H, Dh), f"out shape {out.shape}, expected {(H, Dh)}"
    err = float(np.max(np.abs(out - full[:, -1])))
    assert err < 1e-4, (f"max |yours - full attention's last row| = {err:.3g} (scale by 1/sqrt(Dh); query head h "
                        f"reads key/value head h // (H/K); no mask is needed: the new token sees everything cached)")


def check_top_p(fn) -> None:
    """fn(logits [V], p) -> [V]: the logits of the smallest set of most likely tokens whose probability reaches p,
    -inf elsewhere (minillm's top_p_filter, which follows transformers)."""
    rng = np.random.default_rng(5)
    logits = (rng.standard_normal(50) * 2).astype(np.float32)  # [V]
    for p in (0.1, 0.5, 0.9):
        got, want = np.asarray(fn(logits.copy(), p)), top_p_filter(logits[None], p)[0]  # [V] each
        assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
        kept, kept_want = np.isfinite(got), np.isfinite(want)
        assert np.array_equal(kept, kept_want), (f"p={p}: you keep {kept.sum()} tokens, top-p keeps {kept_want.sum()} "
                                                 f"(sort by probability, keep tokens until their sum reaches p)")
        assert np.allclose(got[kept], want[kept]), f"p={p}: the kept logits must be unchanged"


CHECKS = {"decode_step": check_decode_step, "top_p": check_top_p}
