"""Generating text on one screen: a KV cache that grows, and sampling (temperature, top-k, top-p) written out.

``plain_generate`` gives the same token ids as ``minillm.generate(model, ids, n, temperature, top_k=...,
top_p=..., seed=..., min_p=0, repetition_penalty=1, stop_token_ids=[])`` (tests/test_plain.py): the same
filters in the same order, the same random numbers. The engine (minillm/generation/) adds batches, stop
tokens, min-p, the repetition penalty, a preallocated cache and speculative decoding.
"""

from __future__ import annotations

import numpy as np

from .forward import plain_forward
from .ops import softmax


def plain_sample(logits, temperature, top_k, top_p, rng) -> int:
    """One token from the logits of the last position.   logits [V] -> a token id

    Temperature divides the logits (< 1 sharpens, > 1 flattens); top-k keeps the k largest (and any tied
    with the k-th); top-p keeps the most likely tokens whose mass reaches p (nucleus sampling). A removed
    token's logit becomes -inf, so softmax gives it probability 0. Temperature 0 is greedy: the argmax.
    """
    if temperature == 0:
        return int(np.argmax(logits))  # greedy: the first maximum on ties
    logits = logits / np.float32(temperature) if temperature != 1.0 else logits  # [V]
    if 0 < top_k < len(logits):
        kth = np.sort(logits)[-top_k]  # the k-th largest logit
        logits = np.where(logits < kth, -np.inf, logits).astype(np.float32)  # [V]
    if top_p < 1.0:
        order = np.argsort(logits, kind="stable")  # [V]: least likely first
        tail = np.cumsum(softmax(logits[order])) <= np.float32(1 - top_p)  # [V]: the unlikely tail, mass <= 1-p
        tail[-1] = False  # the most likely token always stays
        logits = logits.copy()  # [V]
        logits[order[tail]] = -np.inf  # back in vocabulary order: order[i] is the token at sorted place i
    cdf = np.cumsum(softmax(logits.astype(np.float64)))  # [V] float64, so the last entry is 1 to ~1e-16
    u = rng.random() * cdf[-1]  # uniform in [0, total)
    return int(min((cdf <= u).sum(), len(cdf) - 1))  # the first token whose cdf exceeds u


def plain_generate(weights, config, ids, max_new_tokens, temperature=0.0, top_k=0, top_p=1.0, seed=None):
    """Prefill the prompt, then decode one token at a time through a KV cache.   ids [T] -> new ids [N] int64

    Why a cache: attention is causal, so a token's key and value never change once computed. Keeping them
    (per layer, [K, S, Dh] each, growing by one position a step) lets each step run the model on the ONE
    new token, attending to the stored keys: O(S) work per token instead of re-running the whole text.
    GQA keeps this cache K/H the size of one with a key per query head. Always N = max_new_tokens: there
    is no stop token here (the engine stops on the checkpoint's end-of-text ids).
    """
    rng = np.random.default_rng(seed)  # one uniform draw per sampled token, as minillm.generate
    K, Dh = config.num_key_value_heads, config.head_dim
    cache = [[np.zeros((K, 0, Dh), np.float32)] * 2 for _ in weights.layers]  # L x [k, v]: empty [K, 0, Dh]
    logits = plain_forward(weights, config, ids, cache)[-1]  # prefill: the whole prompt at once; [T, V] -> [V]
    new = []
    for step in range(max_new_tokens):
        new.append(plain_sample(logits, temperature, top_k, top_p, rng))
        if step < max_new_tokens - 1:
            logits = plain_forward(weights, config, [new[-1]], cache)[-1]  # decode: one position; [1, V] -> [V]
    return np.array(new, np.int64)  # [N]
