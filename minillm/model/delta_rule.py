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
| moves tiny-model logits by 2 to 7 (tests/test_qwen35.py injects both).                                 |
+--------------------------------------------------------------------------------------------------------+

Two forms, tested equal (tests/test_qwen35_properties.py):

* ``recurrent_gated_delta_rule``: the loop above, one token at a time. The form to read.
* ``chunked_gated_delta_rule``: the same numbers for a chunk of n tokens at once, in matrix products, so
  that a long prompt runs at matmul speed (the form transformers and the FLA kernels use for prefill).

(The engine's generation step is ``delta_rule_step`` too, with the memory read once and its writes kept
aside for a few tokens: delta_memory.py, tested equal to the recurrence.)

Shapes (one row of the batch per b, one value head per h): q, k [B, Hv, T, Dk] (L2-normalised, q also
scaled by 1/sqrt(Dk)), v [B, Hv, T, Dv], g and beta [B, Hv, T], S [B, Hv, Dk, Dv]. All float32.
"""

from __future__ import annotations

import numpy as np

CHUNK_SIZE = 64  # tokens per chunk in the chunked form (transformers' default)
FLUSH_BELOW = -60.0  # exp(log decay) is taken as 0 below e^-60 (about 1e-26): see decay_factor


def decay_factor(log_decay: np.ndarray) -> np.ndarray:
    """exp(log_decay), but exactly 0 where it is below e^-60.   [...] -> [...]

    A strongly decaying head (g = -10 per token) drives the memory's old content through the float32
    "denormal" range (below 1e-38), where x86 CPUs compute 10 to 100 times slower. Dropping what is already
    below 1e-26 of its original size changes nothing a float32 result can show (its resolution is 1e-7).
    """
    return np.exp(np.where(log_decay < FLUSH_BELOW, -np.inf, log_decay))  # exp(-inf) = 0 exactly


def delta_rule_step(q: np.ndarray, k: np.ndarray, v: np.ndarray, g: np.ndarray, beta: np.ndarray,
                    state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One token through the memory.   q, k [B, Hv, Dk], v [B, Hv, Dv], g, beta [B, Hv], state [B, Hv, Dk, Dv]
    -> out [B, Hv, Dv], new state [B, Hv, Dk, Dv]"""
    state = state * decay_factor(g)[..., None, None]  # [B, Hv, Dk, Dv]     1. decay
    predicted = (k[..., None, :] @ state)[..., 0, :]  # [B, Hv, 1, Dk] @ [.., Dk, Dv] -> [B, Hv, Dv]   2. k^T S
    delta = (v - predicted) * beta[..., None]  # [B, Hv, Dv]                3. beta * (v - k^T S)
    state += k[..., :, None] * delta[..., None, :]  # [B, Hv, Dk, Dv]       4. S + k delta^T (our own array)
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
    """The delta rule chunk by chunk: same shapes and (up to float rounding) same numbers as the recurrence.

    Unroll the loop over the n tokens of a chunk that starts from memory S0. With G_t = g_1 + ... + g_t (the
    log of the decay from the chunk start to token t) and d_s the corrections of step 3, the memory after
    token t is

        S_t = e^{G_t} S0 + sum_{s<=t} e^{G_t - G_s} k_s d_s^T                               (*)

    Putting (*) for S_{t-1} into step 3 gives each correction in terms of the earlier ones:

        d_t + sum_{s<t} beta_t e^{G_t - G_s} (k_t . k_s) d_s = beta_t v_t - beta_t e^{G_t} k_t^T S0

    i.e. (I + A) D = beta V - (beta e^G K) S0, with A strictly lower triangular: D = U - W S0 with

        U = (I + A)^-1 beta V          W = (I + A)^-1 diag(beta e^G) K = diag(e^G) (I + A')^-1 beta K

    (the "UT transform" of DeltaNet: unit lower triangular systems, solved by forward substitution). A' is
    A without its decays, A'_ts = beta_t k_t.k_s: moving e^G out of the system keeps W's rows at their own
    size, instead of building them from products of tiny decays, which for a strongly decaying head fall
    into the float32 "denormal" range (below 1e-38), where x86 CPUs compute 10 to 100 times slower. Then
    the outputs are (*) read with q_t, and the next chunk starts from (*) at t = n. Everything inside a
    chunk is a matrix product over its n tokens; only the chunk-to-chunk steps are sequential.
    """
    B, Hv, T, Dk = k.shape
    Dv = v.shape[-1]
    n = min(chunk_size, T)
    N = -(-T // n)  # number of chunks
    # Pad to N whole chunks. A padded token has k = v = 0, beta = 0 (no write) and g = 0 (no decay): no effect.
    pad = lambda x: np.pad(x, [(0, 0), (0, 0), (0, N * n - T)] + [(0, 0)] * (x.ndim - 3))
    chunks = lambda x: pad(x).reshape(B, Hv, N, n, *x.shape[3:])  # [B, Hv, T, ...] -> [B, Hv, N, n, ...]
    q, k, v, g, beta = chunks(q), chunks(k), chunks(v), chunks(g), chunks(beta)  # [B, Hv, N, n, Dk or Dv or -]

    # 1. Inside every chunk at once (nothing here depends on the memory).
    G = np.cumsum(g, axis=-1)  # [B, Hv, N, n]: log decay from the chunk start to t, t included
    causal = np.tril(np.ones((n, n), bool))  # [n, n]: s <= t
    # e^{G_t - G_s} for s <= t, 0 above the diagonal (masked BEFORE exp: G_t - G_s > 0 there, exp could overflow)
    decay = decay_factor(np.where(causal, G[..., :, None] - G[..., None, :], -np.inf))  # [B, Hv, N, n, n]
    k_beta = k * beta[..., None]  # [B, Hv, N, n, Dk]
    A_undecayed = np.tril(k_beta @ k.swapaxes(-1, -2), -1)  # [B, Hv, N, n, n]: beta_t k_t.k_s for s < t, else 0
    U = solve_unit_lower_triangular(A_undecayed * decay, v * beta[..., None])  # [B, Hv, N, n, Dv]
    W = solve_unit_lower_triangular(A_undecayed, k_beta) * decay_factor(G)[..., None]  # [B, Hv, N, n, Dk]
    scores = (q @ k.swapaxes(-1, -2)) * decay  # [B, Hv, N, n, n]: e^{G_t-G_s} q_t.k_s, s <= t
    q_decayed = q * decay_factor(G)[..., None]  # [B, Hv, N, n, Dk]: reads the memory as it was at the chunk start
    k_to_end = (k * decay_factor(G[..., -1:] - G)[..., None]).swapaxes(-1, -2)  # [B, Hv, N, Dk, n]: decayed to the end
    chunk_decay = decay_factor(G[..., -1])[..., None, None]  # [B, Hv, N, 1, 1]: the whole chunk's decay

    # 2. Chunk after chunk: the memory S carries everything before.
    out = np.empty((B, Hv, N, n, Dv), np.result_type(v, state))
    for c in range(N):
        corrections = U[:, :, c] - W[:, :, c] @ state  # [B, Hv, n, Dv]: D = U - W S0
        out[:, :, c] = q_decayed[:, :, c] @ state + scores[:, :, c] @ corrections  # [B, Hv, n, Dv]: (*) read by q
        state = chunk_decay[:, :, c] * state + k_to_end[:, :, c] @ corrections  # [B, Hv, Dk, Dv]: (*) at t = n
    return out.reshape(B, Hv, N * n, Dv)[:, :, :T], state  # [B, Hv, T, Dv], [B, Hv, Dk, Dv]


def solve_unit_lower_triangular(A: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """X with (I + A) X = rhs, A strictly lower triangular, by forward substitution.   A [..., n, n],
    rhs [..., n, m] -> X [..., n, m]

    Row i of X needs only the rows before it: x_i = rhs_i - sum_{j<i} A_ij x_j. One small product per row,
    for every chunk and head at once (n steps; np.linalg.solve would do the same work, much slower, one
    matrix at a time). Here |A_ij| < 1 (unit keys, beta < 1), so no pivoting is ever needed.
    """
    X = rhs.copy()  # [..., n, m]; row 0 is already final
    for i in range(1, A.shape[-1]):
        X[..., i, :] -= (A[..., i:i + 1, :i] @ X[..., :i, :])[..., 0, :]  # [..., 1, i] @ [..., i, m] -> [..., m]
    return X
