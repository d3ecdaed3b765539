"""Solutions to notebook 03's exercises. Try them yourself first."""

import numpy as np


def decode_step(q, k_new, v_new, k_cache, v_cache):
    """Append the new key/value to the cache, then the new query attends over every cached position."""
    k_cache = np.concatenate([k_cache, k_new[:, None]], axis=1)  # [K, S+1, Dh]
    v_cache = np.concatenate([v_cache, v_new[:, None]], axis=1)  # [K, S+1, Dh]
    H, K, Dh = q.shape[0], k_cache.shape[0], q.shape[-1]
    k = np.repeat(k_cache, H // K, axis=0)  # [H, S+1, Dh]
    v = np.repeat(v_cache, H // K, axis=0)  # [H, S+1, Dh]
    scores = (k @ q[:, :, None])[:, :, 0] / np.sqrt(Dh)  # [H, S+1]
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)  # [H, S+1]
    out = (probs[:, None, :] @ v)[:, 0]  # [H, Dh]
    return out, k_cache, v_cache


def top_p(logits, p):
    """Keep the most likely tokens until their probability reaches p (the top one always); -inf elsewhere."""
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()  # [V]
    order = np.argsort(-probs)  # most likely first
    before = np.cumsum(probs[order]) - probs[order]  # [V]: the mass of the tokens ranked above each one
    keep = np.zeros(len(logits), bool)
    keep[order[before < p]] = True  # a token is kept while the mass above it has not reached p
    return np.where(keep, logits, -np.inf)  # [V]
