"""The gated delta rule (Yang, Kautz & Hatamizadeh 2024): linear attention with a fixed-size memory.

Softmax attention keeps every past key and value and compares each new query with all of them: the KV
cache grows with the context. A linear-attention layer instead keeps, per head, one matrix S [Dk, Dv], an
associative memory that maps keys to values (read it with a key k: k^T S gives a value). Each token

    S   = exp(g_t) * S                       1. forget a little: decay the whole memory (g_t <= 0)
    p   = k_t^T S                            2. what the memory currently returns for this key      [Dv]
    d   = beta_t * (v_t - p)                 3. the error, scaled by the write strength beta_t in (0, 1)
    S   = S + k_t d^T                        4. write the correction (an outer product [Dk, Dv])
    o_t = q_t^T S                            5. read with the query, from the UPDATED memory         [Dv]

Steps 2-4 are the "delta rule" (Widrow & Hoff 1960): with a unit key and beta = 1 the memory afterwards
returns exactly v_t for k_t, overwriting what it held for that key instead of piling a second value on
top (plain linear attention, S += k v^T, only accumulates). The gate g_t makes it forget gradually.
Memory and time per token are constant, whatever the context length.

+--------------------------------------------------------------------------------------------------------+
| ORDER MATTERS. Decay first, then predict, correct, write, and read o_t with the updated memory, so     |
| the current token's own value reaches its output. Decaying after the write, or reading before it,     |
| moves tiny-model logits by 2 to 7 (QWEN35_SPEC.md 4.4).                                                |
+--------------------------------------------------------------------------------------------------------+

Two forms, tested equal (tests/test_qwen35.py):

* ``recurrent_gated_delta_rule``: the loop above, one token at a time. The form to read, and the one a
  generation step uses.
* ``chunked_gated_delta_rule``: the same numbers for a chunk of n tokens at once, in matrix products, so
  that a long prompt runs at matmul speed (the form transformers and the FLA kernels use for prefill).

Shapes (one row of the batch per b, one value head per h): q, k [B, Hv, T, Dk] (L2-normalised, q also
scaled by 1/sqrt(Dk)), v [B, Hv, T, Dv], g and beta [B, Hv, T], S [B, Hv, Dk, Dv]. All float32.
"""

from __future__ import annotations

import numpy as np

CHUNK_SIZE = 64  # tokens per chunk in the chunked form (transformers' default)


def delta_rule_step(q: np.ndarray, k: np.ndarray, v: np.ndarray, g: np.ndarray, beta: np.ndarray,
                    state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One token through the memory.   q, k [B, Hv, Dk], v [B, Hv, Dv], g, beta [B, Hv], state [B, Hv, Dk, Dv]
    -> out [B, Hv, Dv], new state [B, Hv, Dk, Dv]"""
    state = state * np.exp(g)[..., None, None]  # [B, Hv, Dk, Dv]           1. decay
    predicted = (k[..., None, :] @ state)[..., 0, :]  # [B, Hv, 1, Dk] @ [.., Dk, Dv] -> [B, Hv, Dv]   2. k^T S
    delta = (v - predicted) * beta[..., None]  # [B, Hv, Dv]                3. beta * (v - k^T S)
    state = state + k[..., :, None] * delta[..., None, :]  # [B, Hv, Dk, Dv]  4. S + k delta^T
    out = (q[..., None, :] @ state)[..., 0, :]  # [B, Hv, Dv]               5. q^T S, after the write
    return out, state


def recurrent_gated_delta_rule(q: np.ndarray, k: np.ndarray, v: np.ndarray, g: np.ndarray, beta: np.ndarray,
                               state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The delta rule token by token.   q, k [B, Hv, T, Dk], v [B, Hv, T, Dv], g, beta [B, Hv, T],
    state [B, Hv, Dk, Dv] -> out [B, Hv, T, Dv], final state [B, Hv, Dk, Dv]"""
    outs = []
    for t in range(k.shape[2]):
        out, state = delta_rule_step(q[:, :, t], k[:, :, t], v[:, :, t], g[:, :, t], beta[:, :, t], state)
        outs.append(out)  # [B, Hv, Dv]
    return np.stack(outs, axis=2), state  # [B, Hv, T, Dv], [B, Hv, Dk, Dv]


def chunked_gated_delta_rule(q: np.ndarray, k: np.ndarray, v: np.ndarray, g: np.ndarray, beta: np.ndarray,
                             state: np.ndarray, chunk_size: int = CHUNK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The delta rule chunk by chunk: same shapes and (up to float rounding) same numbers as the recurrence."""
    outs = []
    for start in range(0, k.shape[2], chunk_size):
        c = slice(start, start + chunk_size)
        out, state = delta_rule_chunk(q[:, :, c], k[:, :, c], v[:, :, c], g[:, :, c], beta[:, :, c], state)
        outs.append(out)  # [B, Hv, n, Dv]
    return np.concatenate(outs, axis=2), state  # [B, Hv, T, Dv], [B, Hv, Dk, Dv]


def delta_rule_chunk(q: np.ndarray, k: np.ndarray, v: np.ndarray, g: np.ndarray, beta: np.ndarray,
                     state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """n tokens of the recurrence at once, starting from memory S0, in a handful of matrix products.

    q, k [B, Hv, n, Dk], v [B, Hv, n, Dv], g, beta [B, Hv, n], state S0 [B, Hv, Dk, Dv] -> out, new state

    Unroll the loop. With G_t = g_1 + ... + g_t (the log of the decay from the chunk start to t) and d_s the
    corrections (step 3), the memory after token t is

        S_t = e^{G_t} S0 + sum_{s<=t} e^{G_t - G_s} k_s d_s^T                               (*)

    Putting (*) for S_{t-1} into step 3 gives d_t in terms of the earlier corrections:

        d_t + sum_{s<t} beta_t e^{G_t - G_s} (k_t . k_s) d_s = beta_t v_t - beta_t e^{G_t} S0^T k_t

    that is, (I + A) D = beta V - (beta e^G K) S0 with A strictly lower triangular: a unit lower
    triangular system, solved for all n corrections at once (the "UT transform" of DeltaNet). Then the
    outputs and the final memory are (*) read with q_t, and (*) at t = n, all matrix products.
    """
    n = k.shape[2]
    G = np.cumsum(g, axis=-1)  # [B, Hv, n]: log decay from the chunk start to t, t included
    causal = np.tril(np.ones((n, n), bool))  # [n, n]: s <= t
    # e^{G_t - G_s} for s <= t, 0 above the diagonal (masked BEFORE exp: G_t - G_s > 0 there, exp could overflow)
    decay = np.exp(np.where(causal, G[..., :, None] - G[..., None, :], -np.inf))  # [B, Hv, n, n]

    k_beta = k * beta[..., None]  # [B, Hv, n, Dk]
    A = np.tril((k_beta @ k.swapaxes(-1, -2)) * decay, -1)  # [B, Hv, n, n]: beta_t e^{G_t-G_s} k_t.k_s, s < t
    system = A + np.eye(n, dtype=np.float32)  # [B, Hv, n, n] unit lower triangular; |A| < 1 (unit keys, beta < 1)
    rhs = np.concatenate([v * beta[..., None], k_beta * np.exp(G)[..., None]], axis=-1)  # [B, Hv, n, Dv+Dk]
    solved = np.linalg.solve(system, rhs)  # [B, Hv, n, Dv+Dk]: forward substitution, all heads at once
    Dv = v.shape[-1]
    corrections = solved[..., :Dv] - solved[..., Dv:] @ state  # [B, Hv, n, Dv]: D = U - W S0

    # o_t = q_t^T S_t, with S_t from (*): the old memory decayed to t, plus this chunk's writes up to t
    scores = (q @ k.swapaxes(-1, -2)) * decay  # [B, Hv, n, n]: e^{G_t-G_s} q_t.k_s, s <= t
    out = (q * np.exp(G)[..., None]) @ state + scores @ corrections  # [B, Hv, n, Dv]
    # (*) at the end of the chunk: the memory the next chunk starts from
    k_to_end = k * np.exp(G[..., -1:] - G)[..., None]  # [B, Hv, n, Dk]: each write decayed to the chunk end
    state = np.exp(G[..., -1])[..., None, None] * state + k_to_end.swapaxes(-1, -2) @ corrections  # [B, Hv, Dk, Dv]
    return out, state
