"""Solutions to notebook 04's exercises. Try them yourself first."""

import numpy as np


def logit_lens(h, norm_weight, eps, lm_head_weight):
    """h [T, D] -> probs [T, V]: final RMSNorm, LM head, softmax."""
    normed = h / np.sqrt(np.mean(h * h, axis=-1, keepdims=True) + eps) * norm_weight  # [T, D]
    logits = normed @ lm_head_weight.T  # [T, V]
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)  # [T, V]


def relative_error(ours, theirs):
    """max |ours - theirs| / max |theirs|."""
    return float(np.abs(ours.astype(np.float64) - theirs).max() / np.abs(theirs).max())
