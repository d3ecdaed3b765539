"""Solutions to notebook 07's exercises. Try them yourself first."""

import math

import numpy as np


def cross_entropy(logits, ids):
    """logits [B, T, V], ids [B, T] -> mean over (b, t < T-1) of -log softmax(logits[b, t])[ids[b, t + 1]]."""
    z = logits[:, :-1]  # [B, T-1, V]: the last position has nothing to predict
    targets = ids[:, 1:]  # [B, T-1]: position t predicts token t + 1
    m = z.max(axis=-1, keepdims=True)  # [B, T-1, 1]
    log_probs = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))  # [B, T-1, V] log softmax
    return float(-np.take_along_axis(log_probs, targets[..., None], axis=-1).mean())


def adamw_step(p, g, m, v, t, lr, b1, b2, eps, wd):
    """One AdamW step of a matrix p with gradient g at step t (1, 2, ...) -> (new p, new m, new v)."""
    p = p * (1 - lr * wd)  # decoupled weight decay: outside the Adam ratio
    m = b1 * m + (1 - b1) * g  # running mean of the gradient
    v = b2 * v + (1 - b2) * g * g  # running mean of its square
    p = p - lr / (1 - b1 ** t) * m / (np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)  # bias-corrected ratio
    return p, m, v


def cosine_learning_rate(step, total_steps, peak, warmup, floor):
    """Linear warmup to peak over `warmup` steps, then a cosine from peak down to floor at total_steps."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
