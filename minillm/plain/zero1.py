"""ZeRO-1 on one screen: N workers each keep AdamW's moments for 1/N of the weights, and update only that part.

    the weights, flattened end to end          [P]
    worker r owns elements P*r//N .. P*(r+1)//N, and the moments m, v of those only ([P_r] each, not [P])
    each worker: AdamW on its part (the gradient's part: what a reduce-scatter gives it)
    the allgather: every worker receives every updated part, so all hold the whole new weights again

The moments are 8 of the 16 bytes per parameter that training keeps (weight 4, gradient 4, m 4, v 4): sharding
them saves 8 P (N-1)/N bytes per worker, and the step is exactly AdamW's, element for element (adamw.py).
The engine (training/distributed.py) does the same on N processes, in buckets, through MPI.
"""

from __future__ import annotations

import numpy as np



def zero1_adamw_step(params: dict[str, np.ndarray], grads: dict[str, np.ndarray], shards: list[dict[str, np.ndarray]],
                     step: int, lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    """AdamW step ``step`` (1, 2, ...) of every weight, in place, done by len(shards) workers.

    shards[r] = {"m": [P_r], "v": [P_r]}: worker r's part of the two moments (zeros before the first step).
    """
    names = list(params)
    flat_p = np.concatenate([params[k].ravel() for k in names])  # [P] the weights, end to end
    flat_g = np.concatenate([grads[k].ravel() for k in names])  # [P] the summed gradient
    decay = np.concatenate([np.full(params[k].size, params[k].ndim >= 2) for k in names])  # [P] bool: matrices
    N, P, (b1, b2) = len(shards), flat_p.size, betas
    parts = []
    for r, moments in enumerate(shards):  # each worker, on its own part only
        a, b = P * r // N, P * (r + 1) // N
        p = flat_p[a:b].copy()  # [P_r]
        p[decay[a:b]] *= np.float32(1.0 - lr * weight_decay)  # the decay, on matrices only (as adamw_step)
        g, m, v = flat_g[a:b], moments["m"], moments["v"]  # [P_r] each: the gradient's part, this worker's moments
        m += (g - m) * np.float32(1.0 - b1)  # = b1 m + (1 - b1) g   (AdamW exactly as training/adamw.py writes it)
        v *= np.float32(b2)
        v += np.float32(1.0 - b2) * g * g  # [P_r]
        denom = np.sqrt(v) / np.float32((1.0 - b2 ** step) ** 0.5) + np.float32(eps)  # bias-corrected RMS [P_r]
        p -= np.float32(lr / (1.0 - b1 ** step)) * (m / denom)  # [P_r]
        parts.append(p)
    new = np.concatenate(parts)  # [P]: the allgather
    at = 0
    for k in names:
        params[k][...] = new[at:at + params[k].size].reshape(params[k].shape)
        at += params[k].size
