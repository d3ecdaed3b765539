"""The delta rule's memory during generation, with the writes of the last few tokens kept aside.

Machinery only: the math is delta_rule.py's ``delta_rule_step`` (tested equal, tests/test_qwen35_properties.py).

Why: one generation step of a linear-attention layer reads its memory S [Hv, Dk, Dv] (1 MB per layer and row
in Qwen3.5-0.8B) and then rewrites all of it, S = e^g S + k d^T. The read is needed now; the rewrite only by
the next token. Written out every token it was about 60% of the delta rule's time: two more passes over
the 1 MB (decay and add) and a 1 MB outer product, 18 layers per token. Both are linear, so they can wait:

    memory = scale * S + sum_{j < count} decays_j * k_j d_j^T          (per row and value head)

keeps S as it was ``count`` tokens ago, ``scale`` the decay since then (a product of the e^g), and each
write since then as its two vectors k_j [Dk], d_j [Dv] and the decay it has had since it was made. A token
then costs its read of S and small products with the kept vectors:

    [q; k]^T memory = scale * ([q; k]^T S) + sum_j decays_j ([q; k] . k_j) d_j
    p   = e^g (k^T memory),  d = beta (v - p),  out = e^g (q^T memory) + (q . k) d       (delta_rule.py's
    steps 2, 3 and 5, with decaying (step 1) moved past the read: k^T (e^g S) = e^g (k^T S))
    memory <- e^g memory + k d^T:   scale *= e^g, decays_j *= e^g, and (k, d) kept with decay 1  (1 and 4)

and every WRITES_KEPT tokens the kept writes go into S in one batched product (``applied``):

    S <- scale * S + K^T diag(decays) D,      K [count, Dk], D [count, Dv] per row and head

+--------------------------------------------------------------------------------------------------------+
| READ THE MEMORY THROUGH ``applied()``, NEVER ``S`` ITSELF. Between two applications S lags behind by    |
| up to WRITES_KEPT - 1 tokens. LinearAttentionState.recurrent (gated_deltanet.py) calls applied(), so    |
| everything outside the generation step (a prompt's pass, snapshots and roll-backs in cache.py, tests)   |
| sees the exact memory; only ``step`` below uses the lagging S, with the correction.                     |
+--------------------------------------------------------------------------------------------------------+

The same numbers as writing S every token, up to float32 rounding (the decays multiply in another order).
Decays below e^-60 count as 0 when the writes are applied, as delta_rule.decay_factor does per token:
a memory term below 1e-26 of its size is nothing a float32 result can show, and multiplying S by it would
run through the CPU's slow "denormal" range.
"""

from __future__ import annotations

import numpy as np

from .delta_rule import FLUSH_BELOW, decay_factor

WRITES_KEPT = 16  # writes kept aside before they go into S (measured per token, Qwen3.5-0.8B)
TINY_DECAY = np.exp(FLUSH_BELOW)  # e^-60: a decay below it counts as 0 when the writes are applied


class DeltaMemory:
    """One layer's memory S [B, Hv, Dk, Dv] and the writes kept aside from it (see the module docstring)."""

    def __init__(self, S: np.ndarray):
        self.S = S  # [B, Hv, Dk, Dv]: the memory as it was ``count`` tokens ago
        self.count = 0  # writes kept aside
        self.scale = None  # [B, Hv, 1, 1]: decay of S since then           (the buffers: at the first step)
        self.keys = None  # [B, Hv, WRITES_KEPT, Dk]: k_j of the kept writes
        self.deltas = None  # [B, Hv, WRITES_KEPT, Dv]: d_j
        self.decays = None  # [B, Hv, 1, WRITES_KEPT]: the decay each write has had since it was made

    @property
    def shape(self) -> tuple[int, ...]:
        return self.S.shape

    @property
    def nbytes(self) -> int:
        return self.S.nbytes + sum(a.nbytes for a in (self.scale, self.keys, self.deltas, self.decays)
                                   if a is not None)

    def replace(self, S: np.ndarray) -> None:
        """Make S [B, Hv, Dk, Dv] the memory (a prompt's pass computed it), dropping any kept writes."""
        self.S, self.count = S, 0

    def applied(self) -> np.ndarray:
        """The exact memory [B, Hv, Dk, Dv]: the kept writes put into S (in place), which is returned."""
        if self.count:
            m = self.count
            scale = np.where(self.scale < TINY_DECAY, 0, self.scale)  # [B, Hv, 1, 1]
            decays = np.where(self.decays[..., :m] < TINY_DECAY, 0, self.decays[..., :m])  # [B, Hv, 1, m]
            self.S *= scale  # [B, Hv, Dk, Dv]
            self.S += (self.keys[:, :, :m] * decays.swapaxes(-1, -2)).swapaxes(-1, -2) @ self.deltas[:, :, :m]
            #         [B, Hv, m, Dk] * [B, Hv, m, 1] -> [B, Hv, Dk, m] @ [B, Hv, m, Dv] -> [B, Hv, Dk, Dv]
            self.count = 0
        return self.S

    def step(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, g: np.ndarray, beta: np.ndarray) -> np.ndarray:
        """One token through the memory (delta_rule.delta_rule_step), the memory updated.
        q, k [B, Hv, Dk] (q already scaled by 1/sqrt(Dk)), v [B, Hv, Dv], g, beta [B, Hv] -> out [B, Hv, Dv]"""
        S, m = self.S, self.count
        B, Hv, Dk, Dv = S.shape
        if self.keys is None or self.keys.shape != (B, Hv, WRITES_KEPT, Dk) or self.deltas.shape[-1] != Dv or \
                self.keys.dtype != S.dtype:
            self.keys = np.empty((B, Hv, WRITES_KEPT, Dk), S.dtype)
            self.deltas = np.empty((B, Hv, WRITES_KEPT, Dv), S.dtype)
            self.decays = np.empty((B, Hv, 1, WRITES_KEPT), S.dtype)
            self.scale = np.empty((B, Hv, 1, 1), S.dtype)
        if m == 0:
            self.scale[...] = 1
        e = decay_factor(g)[..., None, None]  # [B, Hv, 1, 1]: e^g, 0 below e^-60
        self.keys[:, :, m] = k  # [B, Hv, Dk]: kept now, so that q . k comes out of the product below
        qk = np.stack([q, k], axis=-2)  # [B, Hv, 2, Dk]
        read = (qk @ S) * self.scale  # [B, Hv, 2, Dk] @ [B, Hv, Dk, Dv] -> [B, Hv, 2, Dv]: q^T, k^T (scale S)
        dots = qk @ self.keys[:, :, :m + 1].swapaxes(-1, -2)  # [B, Hv, 2, m+1]: q . k_j, k . k_j; last: q . k, k . k
        if m:
            read += (dots[..., :m] * self.decays[..., :m]) @ self.deltas[:, :, :m]  # [B, Hv, 2, m] @ [.., m, Dv]
        delta = (v - e[..., 0] * read[..., 1, :]) * beta[..., None]  # [B, Hv, Dv]: d = beta (v - e^g k^T memory)
        out = e[..., 0] * read[..., 0, :] + dots[..., 0, m:] * delta  # [B, Hv, Dv]: e^g q^T memory + (q . k) d
        self.deltas[:, :, m] = delta  # [B, Hv, Dv]
        self.scale *= e  # [B, Hv, 1, 1]: the memory decays by e^g ...
        self.decays[..., :m] *= e  # ... every kept write with it ...
        self.decays[..., m] = 1  # ... but not this token's, written after the decay
        self.count = m + 1
        if self.count == WRITES_KEPT:
            self.applied()
        return out
