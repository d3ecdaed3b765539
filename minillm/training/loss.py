"""Next-token cross-entropy, exactly as transformers' causal-LM loss computes it (``ForCausalLMLoss``).

    loss = (1 / N) * sum over scored (b, t) of  -log softmax(logits[b, t])[labels[b, t + 1]]

+--------------------------------------------------------------------------------------------------------+
| THE SHIFT. ``labels`` are aligned with ``ids`` (by default they ARE the ids), and the logits at         |
| position t predict the token at t + 1. So logits[:, t] is scored against labels[:, t + 1]: the last    |
| position has nothing to predict and labels[:, 0] is never a target. transformers does it by padding    |
| labels with -100 on the right and dropping the first column; ``next_token_targets`` does the same.     |
+--------------------------------------------------------------------------------------------------------+

* -100 (``IGNORE_INDEX``) marks a label that is not scored: a prompt token, padding, anything.
* N counts the scored targets of the WHOLE batch (one mean over all of them, not a mean of per-row means):
  transformers' ``num_items_in_batch=None`` case, i.e. ``F.cross_entropy(..., reduction="mean")``.
* Stable log-softmax: log softmax(z)[y] = z[y] - logsumexp(z), logsumexp(z) = m + log(sum(exp(z - m))),
  m = max(z), so exp never overflows.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

IGNORE_INDEX = -100  # transformers' (and PyTorch's) ignore_index


def next_token_targets(labels: np.ndarray) -> np.ndarray:
    """targets[:, t] = labels[:, t + 1], and IGNORE_INDEX at the last position.   [B, T] -> [B, T]"""
    targets = np.full_like(labels, IGNORE_INDEX)  # [B, T]
    targets[:, :-1] = labels[:, 1:]  # [B, T-1]: what each position must predict
    return targets


def logsumexp(z: np.ndarray) -> np.ndarray:
    """log(sum(exp(z))) over the last axis, with the max subtracted first.   [..., V] -> [...]"""
    m = z.max(axis=-1, keepdims=True)  # [..., 1]
    e = z - m  # [..., V], all <= 0
    np.exp(e, out=e)  # in place: e is one of the largest arrays of a training step ([B, T, V])
    return (m + np.log(e.sum(axis=-1, keepdims=True)))[..., 0]  # [...]


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean next-token negative log-likelihood over the scored targets.

    logits [B, T, V] float, labels [B, T] int (-100 = not scored) -> loss (a Python float)
    """
    targets = next_token_targets(labels)  # [B, T]
    scored = targets != IGNORE_INDEX  # [B, T] bool
    picked = np.take_along_axis(logits, np.where(scored, targets, 0)[..., None], axis=-1)[..., 0]  # [B, T] z[y]
    nll = logsumexp(logits) - picked  # [B, T]: -log softmax(z)[y]
    return float(nll[scored].sum() / scored.sum())


def cross_entropy_backward(logits: np.ndarray, labels: np.ndarray, in_place: bool = False) -> np.ndarray:
    """d loss / d logits = (softmax(z) - onehot(y)) / N on scored positions, 0 elsewhere.

    Derivation: for one scored row, l = logsumexp(z) - z[y], so dl/dz = exp(z - logsumexp(z)) - onehot(y)
    = softmax(z) - onehot(y); the mean divides by N; an unscored row (and the last position) adds nothing.

    logits [B, T, V], labels [B, T] -> dlogits [B, T, V] (a new array, the dtype of logits; with
    ``in_place=True``, logits itself, overwritten: the [B, T, V] array is the largest of a step, so not to
    hold two when the logits are no longer needed)
    """
    targets = next_token_targets(labels)  # [B, T]
    scored = targets != IGNORE_INDEX  # [B, T] bool
    top = logits.max(axis=-1, keepdims=True)  # [B, T, 1]
    dlogits = np.subtract(logits, top, out=logits if in_place else None)  # [B, T, V]; the softmax is built in it
    np.exp(dlogits, out=dlogits)  # [B, T, V]
    dlogits /= dlogits.sum(axis=-1, keepdims=True)  # [B, T, V] softmax(z)
    b, t = np.nonzero(scored)  # [N] each: the scored positions
    dlogits[b, t, targets[b, t]] -= 1.0  # softmax - onehot(y)
    dlogits *= (scored / scored.sum()).astype(logits.dtype)[..., None]  # [B, T, V]: 1/N where scored, else 0
    return dlogits


def check_labels(labels, ids_shape: tuple[int, ...], vocab_size: int) -> np.ndarray:
    """Validate labels (shaped like the ids; -100 or a token id) and return them as int64, same shape.

    Raises InputError for a wrong shape or dtype, a label that is neither -100 nor a valid id, and for
    labels that leave nothing to score (remember: labels[:, 0] is never a target).
    """
    try:
        arr = np.asarray(labels)  # [T] or [B, T], like the ids
    except ValueError as e:  # ragged nested lists
        raise InputError(f"labels must be a rectangular array: {e}") from None
    if arr.shape != tuple(ids_shape):
        raise InputError(f"labels have shape {list(arr.shape)}, expected {list(ids_shape)} like the ids")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"labels must be integers (token ids or -100), found dtype {arr.dtype}")
    arr = arr.astype(np.int64)  # [T] or [B, T]
    bad = (arr != IGNORE_INDEX) & ((arr < 0) | (arr >= vocab_size))  # [T] or [B, T] bool
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"label {int(arr[where])} at position {list(where)} is out of range: expected "
                         f"{IGNORE_INDEX} (not scored) or a token id 0..{vocab_size - 1}")
    rows = arr.reshape(-1, arr.shape[-1])  # [B, T]
    if not (rows[:, 1:] != IGNORE_INDEX).any():
        raise InputError(f"no label is scored: every target is {IGNORE_INDEX} (the logits at position t are "
                         f"scored against label t+1, so label 0 of each row is never a target"
                         f"{'; a single token has no next token to predict' if rows.shape[1] == 1 else ''})")
    return arr
