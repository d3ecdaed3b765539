"""How the gated delta rule learns: its backward pass for one head, token by token, on one screen.

The forward (minillm/model/delta_rule.py) keeps one memory S [Dk, Dv] and, per token t, with a_t = exp(g_t):
    S' = a_t S ;  d = beta_t (v_t - S'^T k_t) ;  S = S' + k_t d^T ;  o_t = S^T q_t
The backward walks the tokens in reverse, carrying dS: what the later outputs say about the memory.
Tested equal to the engine (minillm/backward/delta_rule.py, recurrent and chunked) in tests/test_train_hybrid.py.
"""

import numpy as np


def deltanet_backward(q, k, v, g, beta, dout):
    """Gradients of sum(o * dout) for one head starting from an empty memory.
    q, k [T, Dk], v [T, Dv], g, beta [T], dout [T, Dv] -> dq, dk [T, Dk], dv [T, Dv], dg, dbeta [T]"""
    T, Dk = k.shape
    Dv = v.shape[1]

    # Forward, keeping the memory before every token: states[t] is S before token t.
    states = np.zeros((T + 1, Dk, Dv), v.dtype)               # [T+1, Dk, Dv]
    for t in range(T):
        S = np.exp(g[t]) * states[t]                           # [Dk, Dv]  decay
        d = beta[t] * (v[t] - S.T @ k[t])                      # [Dv]      the correction
        states[t + 1] = S + np.outer(k[t], d)                  # [Dk, Dv]  write it

    dq, dk = np.zeros_like(q), np.zeros_like(k)                # [T, Dk]
    dv, dg, dbeta = np.zeros_like(v), np.zeros_like(g), np.zeros_like(beta)  # [T, Dv], [T], [T]
    dS = np.zeros((Dk, Dv), v.dtype)                           # [Dk, Dv]  dL/dS after the last token: 0
    for t in reversed(range(T)):
        S_old = np.exp(g[t]) * states[t]                       # [Dk, Dv]  S' (recomputed)
        p = S_old.T @ k[t]                                     # [Dv]      what the memory predicted
        d = beta[t] * (v[t] - p)                               # [Dv]

        # o_t = S^T q_t: q's gradient reads the memory; the memory's gets q_t dout_t^T
        dq[t] = states[t + 1] @ dout[t]                        # [Dk]
        dS = dS + np.outer(q[t], dout[t])                      # [Dk, Dv]

        # S = S' + k_t d^T: both k_t and d were written
        dd = dS.T @ k[t]                                       # [Dv]
        dk[t] = dS @ d                                         # [Dk]

        # d = beta_t (v_t - p)
        dv[t] = beta[t] * dd                                   # [Dv]
        dbeta[t] = dd @ (v[t] - p)                             # scalar
        dp = -beta[t] * dd                                     # [Dv]

        # p = S'^T k_t: the prediction read S' with k_t
        dk[t] += S_old @ dp                                    # [Dk]
        dS = dS + np.outer(k[t], dp)                           # [Dk, Dv]  now dL/dS'

        # S' = exp(g_t) S: the decay scales the whole memory
        dg[t] = np.sum(dS * S_old)                             # scalar    d exp(g)/dg = exp(g)
        dS = np.exp(g[t]) * dS                                 # [Dk, Dv]  dL/dS before token t
    return dq, dk, dv, dg, dbeta
