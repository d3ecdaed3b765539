"""Backward of the gated delta rule (model/delta_rule.py), in its two forms: the recurrence and the chunks.

THE RECURRENT FORM (the reference). Per value head, one token t, with a_t = exp(g_t):

    forward                                   backward (dS = dL/dS_t from the later tokens, do_t = dL/do_t)
    S'  = a_t S_{t-1}                         dS    += q_t do_t^T                 o_t = S_t^T q_t
    p   = S'^T k_t                 [Dv]       dq_t   = S_t do_t
    d   = beta_t (v_t - p)         [Dv]       dd     = dS^T k_t,   dk_t = dS d      S_t = S' + k_t d^T
    S_t = S' + k_t d^T             [Dk, Dv]   dv_t   = beta_t dd,  dbeta_t = dd . (v_t - p),  dp = -beta_t dd
    o_t = S_t^T q_t                [Dv]       dS'    = dS + k_t dp^T,  dk_t += S' dp        (p = S'^T k_t)
                                              dg_t   = <dS', S'>  (d a_t / d g_t = a_t),  dS_{t-1} = a_t dS'

Backpropagation through the state: the loop runs backwards, and dS carries to token t everything the later
tokens' losses say about the memory. The forward keeps every S_t (``recurrent_gated_delta_rule_forward``):
T Dk Dv floats per head, fine for a reference, too much for training.

THE CHUNKED FORM (what training runs). model/delta_rule.py writes a chunk of n tokens starting from memory S0
as (G = cumsum g inside the chunk, Gam_ts = e^{G_t - G_s} for s <= t, else 0; A'_ts = beta_t k_t.k_s, s < t):

    U   = (I + A' o Gam)^-1 (beta v)               [n, Dv]   the corrections' part that ignores S0
    X   = (I + A')^-1 (beta k),  W = e^G X          [n, Dk]   the part that reads S0 ("UT transform")
    Dc  = U - W S0                                 [n, Dv]   the corrections d_t of the whole chunk
    o   = (q e^G) S0 + ((q k^T) o Gam) Dc           [n, Dv]
    S1  = e^{G_n} S0 + (k e^{G_n - G})^T Dc         [Dk, Dv]  the memory handed to the next chunk

Backward, chunk after chunk from the last (dS1 from the next chunk; do from the layer above):

    dDc = ((q k^T) o Gam)^T do + (k e^{G_n-G}) dS1      dS0 = (q e^G)^T do + e^{G_n} dS1 - W^T dDc
    dU  = dDc,   dW = -dDc S0^T,   d(q e^G) = do S0^T,   d(k e^{G_n-G}) = Dc dS1^T,   dscores = do Dc^T
    dG_n += e^{G_n} <dS1, S0>

Only dS0 is sequential (it is the previous chunk's dS1); the rest is then done for every chunk at once, as the
forward does. The one new step is the backward of a unit lower triangular solve, X = (I + L)^-1 R:

    dR = (I + L)^-T dX         (one back substitution: the transposed system is upper triangular)
    dL = -dR X^T               (kept below the diagonal only: L has nothing on or above it)

since dX = -(I + L)^-1 dL X. The rest is the chain rule through products and exponentials: a factor e^{f}
gives df = (its gradient) * (the factor's value), and G = cumsum(g) gives dg_s = sum_{t >= s} dG_t (a reversed
cumsum). The forward keeps one memory per chunk (``chunked_gated_delta_rule_forward``): Dk Dv / n floats per
token and head, and recomputes the rest of the chunk (U, W, the decays) in the backward.

Shapes as in model/delta_rule.py: q, k [B, Hv, T, Dk], v [B, Hv, T, Dv], g, beta [B, Hv, T], S [B, Hv, Dk, Dv].
"""

from __future__ import annotations

import numpy as np

from ..model.delta_rule import CHUNK_SIZE, decay_factor, delta_rule_step, solve_unit_lower_triangular


# ------------------------------------------------------------------------------------------------------------
# the recurrent form
# ------------------------------------------------------------------------------------------------------------

def recurrent_gated_delta_rule_forward(q, k, v, g, beta, state):
    """The recurrence, keeping every memory.   q, k [B, Hv, T, Dk], v [B, Hv, T, Dv], g, beta [B, Hv, T],
    state [B, Hv, Dk, Dv] -> out [B, Hv, T, Dv], final state [B, Hv, Dk, Dv], states [B, Hv, T+1, Dk, Dv]"""
    outs, states = [], [state]
    for t in range(k.shape[2]):
        out, state = delta_rule_step(q[:, :, t], k[:, :, t], v[:, :, t], g[:, :, t], beta[:, :, t], state)
        outs.append(out)  # [B, Hv, Dv]
        states.append(state)  # [B, Hv, Dk, Dv]: S_t
    return np.stack(outs, axis=2), state, np.stack(states, axis=2)  # [B, Hv, T, Dv], [B, Hv, Dk, Dv], [.., T+1, ..]


def recurrent_gated_delta_rule_backward(dout, q, k, v, g, beta, states, dstate=None):
    """dq, dk, dv, dg, dbeta, dstate0 by backpropagation through the state, token by token from the last.

    dout [B, Hv, T, Dv], q/k/v/g/beta as in the forward, states [B, Hv, T+1, Dk, Dv] (S_0 .. S_T from the
    forward), dstate [B, Hv, Dk, Dv] the gradient of the final memory (None: 0)
    -> dq, dk [B, Hv, T, Dk], dv [B, Hv, T, Dv], dg, dbeta [B, Hv, T], dstate0 [B, Hv, Dk, Dv]
    """
    T = k.shape[2]
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)  # [B, Hv, T, Dk|Dv]
    dg, dbeta = np.zeros_like(g), np.zeros_like(beta)  # [B, Hv, T]
    dS = np.zeros_like(states[:, :, 0]) if dstate is None else dstate.copy()  # [B, Hv, Dk, Dv]
    for t in reversed(range(T)):
        q_t, k_t, v_t, b_t = q[:, :, t], k[:, :, t], v[:, :, t], beta[:, :, t, None]  # [B, Hv, Dk|Dv], [B, Hv, 1]
        a_t = decay_factor(g[:, :, t])[..., None, None]  # [B, Hv, 1, 1]
        S_decayed = a_t * states[:, :, t]  # [B, Hv, Dk, Dv]  S'
        p = (k_t[..., None, :] @ S_decayed)[..., 0, :]  # [B, Hv, Dv]  S'^T k_t
        d = b_t * (v_t - p)  # [B, Hv, Dv]
        do_t = dout[:, :, t]  # [B, Hv, Dv]
        dq[:, :, t] = (states[:, :, t + 1] @ do_t[..., None])[..., 0]  # [B, Hv, Dk]  S_t do_t
        dS = dS + q_t[..., :, None] * do_t[..., None, :]  # [B, Hv, Dk, Dv]  + q_t do_t^T
        dd = (k_t[..., None, :] @ dS)[..., 0, :]  # [B, Hv, Dv]  dS^T k_t
        dp = -b_t * dd  # [B, Hv, Dv]
        dv[:, :, t] = b_t * dd  # [B, Hv, Dv]
        dbeta[:, :, t] = (dd * (v_t - p)).sum(-1)  # [B, Hv]
        dk[:, :, t] = (dS @ d[..., None])[..., 0] + (S_decayed @ dp[..., None])[..., 0]  # [B, Hv, Dk]
        dS = dS + k_t[..., :, None] * dp[..., None, :]  # [B, Hv, Dk, Dv]  dS'
        dg[:, :, t] = (dS * S_decayed).sum((-1, -2))  # [B, Hv]  <dS', S'>
        dS = a_t * dS  # [B, Hv, Dk, Dv]  dS_{t-1}
    return dq, dk, dv, dg, dbeta, dS


# ------------------------------------------------------------------------------------------------------------
# the chunked form
# ------------------------------------------------------------------------------------------------------------

def _chunks(x: np.ndarray, n: int, N: int) -> np.ndarray:
    """[B, Hv, T, ...] -> [B, Hv, N, n, ...], zero-padded to N whole chunks (a zero token has no effect)."""
    B, Hv, T = x.shape[:3]
    x = np.pad(x, [(0, 0), (0, 0), (0, N * n - T)] + [(0, 0)] * (x.ndim - 3))  # [B, Hv, N*n, ...]
    return x.reshape(B, Hv, N, n, *x.shape[3:])


def chunked_gated_delta_rule_forward(q, k, v, g, beta, state, chunk_size: int = CHUNK_SIZE):
    """model/delta_rule.py's chunked form, keeping the memory at the start of every chunk.

    q, k [B, Hv, T, Dk], v [B, Hv, T, Dv], g, beta [B, Hv, T], state [B, Hv, Dk, Dv]
    -> out [B, Hv, T, Dv], final state [B, Hv, Dk, Dv], starts [B, Hv, N, Dk, Dv] (S0 of each of the N chunks)
    """
    B, Hv, T, Dk = k.shape
    n = min(chunk_size, T)
    N = -(-T // n)
    qc, kc, vc, gc, bc = (_chunks(x, n, N) for x in (q, k, v, g, beta))  # [B, Hv, N, n, ...]
    U, W, scores, decay, G, _, _ = _chunk_parts(qc, kc, vc, gc, bc)
    q_decayed = qc * decay_factor(G)[..., None]  # [B, Hv, N, n, Dk]
    k_to_end = kc * decay_factor(G[..., -1:] - G)[..., None]  # [B, Hv, N, n, Dk]
    chunk_decay = decay_factor(G[..., -1])[..., None, None]  # [B, Hv, N, 1, 1]
    out = np.empty(vc.shape, np.result_type(v, state))  # [B, Hv, N, n, Dv]
    starts = np.empty((B, Hv, N) + state.shape[2:], out.dtype)  # [B, Hv, N, Dk, Dv]
    for c in range(N):
        starts[:, :, c] = state
        corrections = U[:, :, c] - W[:, :, c] @ state  # [B, Hv, n, Dv]
        out[:, :, c] = q_decayed[:, :, c] @ state + scores[:, :, c] @ corrections  # [B, Hv, n, Dv]
        state = chunk_decay[:, :, c] * state + k_to_end[:, :, c].swapaxes(-1, -2) @ corrections  # [B, Hv, Dk, Dv]
    return out.reshape(B, Hv, N * n, -1)[:, :, :T], state, starts


def _chunk_parts(qc, kc, vc, gc, bc):
    """The memory-free part of every chunk (model/delta_rule.py step 1).   [B, Hv, N, n, ...] ->
    U [.., n, Dv], W [.., n, Dk], scores [.., n, n] ((q k^T) o Gam), decay [.., n, n] (Gam), G [.., n],
    X [.., n, Dk] (W before its e^G), A [.., n, n] (A')"""
    n = kc.shape[-2]
    G = np.cumsum(gc, axis=-1)  # [B, Hv, N, n]
    causal = np.tril(np.ones((n, n), bool))  # [n, n]
    decay = decay_factor(np.where(causal, G[..., :, None] - G[..., None, :], -np.inf))  # [B, Hv, N, n, n]
    k_beta = kc * bc[..., None]  # [B, Hv, N, n, Dk]
    A = np.tril(k_beta @ kc.swapaxes(-1, -2), -1)  # [B, Hv, N, n, n]  A'
    U = solve_unit_lower_triangular(A * decay, vc * bc[..., None])  # [B, Hv, N, n, Dv]
    X = solve_unit_lower_triangular(A, k_beta)  # [B, Hv, N, n, Dk]
    W = X * decay_factor(G)[..., None]  # [B, Hv, N, n, Dk]
    scores = (qc @ kc.swapaxes(-1, -2)) * decay  # [B, Hv, N, n, n]
    return U, W, scores, decay, G, X, A


def solve_unit_upper_transposed(A: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Y with (I + A)^T Y = rhs, A strictly lower triangular (so (I + A)^T is unit UPPER triangular), by back
    substitution from the last row: y_i = rhs_i - sum_{j>i} A_ji y_j.   A [..., n, n], rhs [..., n, m] -> [..., n, m]"""
    Y = rhs.copy()  # [..., n, m]; the last row is already final
    n = A.shape[-1]
    for i in range(n - 2, -1, -1):
        Y[..., i, :] -= (A[..., i + 1:, i][..., None, :] @ Y[..., i + 1:, :])[..., 0, :]  # [..., 1, n-i-1] @ [..]
    return Y


def solve_unit_lower_triangular_backward(dX: np.ndarray, X: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """drhs, dA of X = (I + A)^-1 rhs (A strictly lower triangular).   dX, X [..., n, m], A [..., n, n]
    -> drhs [..., n, m], dA [..., n, n] (zero on and above the diagonal)"""
    drhs = solve_unit_upper_transposed(A, dX)  # [..., n, m]  (I + A)^-T dX
    dA = np.tril(-(drhs @ X.swapaxes(-1, -2)), -1)  # [..., n, n]  -drhs X^T, below the diagonal
    return drhs, dA


def chunked_gated_delta_rule_backward(dout, q, k, v, g, beta, starts, dstate=None, chunk_size: int = CHUNK_SIZE):
    """dq, dk, dv, dg, dbeta, dstate0 of the chunked form (the derivation is in the module docstring).

    dout [B, Hv, T, Dv], q/k/v/g/beta as in the forward, starts [B, Hv, N, Dk, Dv] from the forward, dstate
    [B, Hv, Dk, Dv] the gradient of the final memory (None: 0)
    -> dq, dk [B, Hv, T, Dk], dv [B, Hv, T, Dv], dg, dbeta [B, Hv, T], dstate0 [B, Hv, Dk, Dv]
    """
    B, Hv, T, Dk = k.shape
    n = min(chunk_size, T)
    N = -(-T // n)
    qc, kc, vc, gc, bc = (_chunks(x, n, N) for x in (q, k, v, g, beta))  # [B, Hv, N, n, ...]
    doc = _chunks(dout, n, N)  # [B, Hv, N, n, Dv]; the padded outputs have no gradient
    U, W, scores, decay, G, X, A = _chunk_parts(qc, kc, vc, gc, bc)  # recomputed: cheaper than keeping them
    eG = decay_factor(G)[..., None]  # [B, Hv, N, n, 1]   e^{G_t}
    e_to_end = decay_factor(G[..., -1:] - G)[..., None]  # [B, Hv, N, n, 1]   e^{G_n - G_t}
    q_decayed, k_to_end = qc * eG, kc * e_to_end  # [B, Hv, N, n, Dk] each
    chunk_decay = decay_factor(G[..., -1])[..., None, None]  # [B, Hv, N, 1, 1]   e^{G_n}

    # 1. Chunk after chunk, from the last: the memory's gradient dS travels backwards.
    corrections = U - W @ starts  # [B, Hv, N, n, Dv]  Dc of every chunk (from the kept S0s)
    dS = np.zeros_like(starts[:, :, 0]) if dstate is None else dstate.copy()  # [B, Hv, Dk, Dv]  dS1 of the last
    d_corr = np.empty_like(corrections)  # [B, Hv, N, n, Dv]
    d_k_to_end = np.empty_like(k_to_end)  # [B, Hv, N, n, Dk]
    dG_last = np.empty(G.shape[:-1], G.dtype)  # [B, Hv, N]   dL/dG_n from e^{G_n} S0
    for c in reversed(range(N)):
        S0, do = starts[:, :, c], doc[:, :, c]  # [B, Hv, Dk, Dv], [B, Hv, n, Dv]
        d_corr[:, :, c] = scores[:, :, c].swapaxes(-1, -2) @ do + k_to_end[:, :, c] @ dS  # [B, Hv, n, Dv]
        d_k_to_end[:, :, c] = corrections[:, :, c] @ dS.swapaxes(-1, -2)  # [B, Hv, n, Dk]  Dc dS1^T
        dG_last[:, :, c] = chunk_decay[:, :, c, 0, 0] * (dS * S0).sum((-1, -2))  # [B, Hv]  e^{G_n} <dS1, S0>
        dS = (q_decayed[:, :, c].swapaxes(-1, -2) @ do + chunk_decay[:, :, c] * dS
              - W[:, :, c].swapaxes(-1, -2) @ d_corr[:, :, c])  # [B, Hv, Dk, Dv]  dS0 = the previous chunk's dS1

    # 2. Inside every chunk at once.
    dU = d_corr  # [B, Hv, N, n, Dv]
    dW = -(d_corr @ starts.swapaxes(-1, -2))  # [B, Hv, N, n, Dk]   -dDc S0^T
    d_q_decayed = doc @ starts.swapaxes(-1, -2)  # [B, Hv, N, n, Dk]   do S0^T
    d_scores = doc @ corrections.swapaxes(-1, -2)  # [B, Hv, N, n, n]   do Dc^T
    dG = (d_q_decayed * q_decayed).sum(-1)  # [B, Hv, N, n]         q e^G
    dG -= (d_k_to_end * k_to_end).sum(-1)  # k e^{G_n - G}: -G_t here ...
    dG_last += (d_k_to_end * k_to_end).sum((-1, -2))  # ... and +G_n
    dG += (dW * W).sum(-1)  # W = e^G X
    dq = d_q_decayed * eG + (d_scores * decay) @ kc  # [B, Hv, N, n, Dk]   scores = (q k^T) o Gam
    dk = d_k_to_end * e_to_end + (d_scores * decay).swapaxes(-1, -2) @ qc  # [B, Hv, N, n, Dk]
    d_decay = d_scores * (qc @ kc.swapaxes(-1, -2))  # [B, Hv, N, n, n]

    k_beta = kc * bc[..., None]  # [B, Hv, N, n, Dk]
    d_v_beta, dM = solve_unit_lower_triangular_backward(dU, U, A * decay)  # [.., n, Dv], [.., n, n]  U = (I+M)^-1 bv
    dv = d_v_beta * bc[..., None]  # [B, Hv, N, n, Dv]
    dbeta = (d_v_beta * vc).sum(-1)  # [B, Hv, N, n]
    dA = dM * decay  # [B, Hv, N, n, n]   M = A' o Gam
    d_decay += dM * A
    d_k_beta, dA_X = solve_unit_lower_triangular_backward(dW * eG, X, A)  # X = (I + A')^-1 k beta
    dA += dA_X
    d_k_beta += dA @ kc  # [B, Hv, N, n, Dk]   A' = tril(k_beta k^T, -1)
    dk += dA.swapaxes(-1, -2) @ k_beta
    dk += d_k_beta * bc[..., None]  # k_beta = k beta
    dbeta += (d_k_beta * kc).sum(-1)  # [B, Hv, N, n]

    d_log_decay = d_decay * decay  # [B, Hv, N, n, n]   Gam_ts = e^{G_t - G_s}
    dG += d_log_decay.sum(-1) - d_log_decay.sum(-2)  # [B, Hv, N, n]
    dG[..., -1] += dG_last
    dg = np.cumsum(dG[..., ::-1], axis=-1)[..., ::-1]  # [B, Hv, N, n]   G = cumsum(g): a reversed cumsum

    unchunk = lambda x: x.reshape(B, Hv, N * n, *x.shape[4:])[:, :, :T]  # [B, Hv, N, n, ...] -> [B, Hv, T, ...]
    return unchunk(dq), unchunk(dk), unchunk(dv), unchunk(dg), unchunk(dbeta), dS
