"""Attention masks: which keys each new query may see (causal, padding, sliding window).

A mask is a bool array, True = allowed. attention.py turns False into a huge negative score before the
softmax; transformer.py (Model.forward) builds one mask per call and hands it to every layer.

Worked example, one row left-padded, no cache: attention_mask [0, 0, 1, 1, 1] (T = S = 5)

    query 2 sees keys [F F T F F]      (itself: keys 0, 1 are padding)
    query 3 sees keys [F F T T F]
    query 4 sees keys [F F T T T]
    queries 0 and 1 are padding: they see nothing, their rows are thrown away.
"""

from __future__ import annotations

import numpy as np


def causal_mask(num_new: int, past_len: int, key_valid: np.ndarray | None = None,
                sliding_window: int | None = None) -> np.ndarray:
    """Which keys each new query may attend to: True = allowed.

    The T new queries sit at cache indices past_len .. past_len+T-1 and see key s iff
      s <= query index                           (causal: nothing from the future)
      and key_valid[b, s]                        (not a padding token)
      and s > query index - sliding_window       (only when this layer uses a sliding window)

    key_valid [B, S] bool or None -> mask [B or 1, 1, T, S] bool   (S = past_len + T)
    """
    total = past_len + num_new
    query_idx = np.arange(past_len, total)[:, None]  # [T, 1]
    key_idx = np.arange(total)[None, :]  # [1, S]
    allowed = key_idx <= query_idx  # [T, S]
    if sliding_window is not None:
        allowed &= key_idx > query_idx - sliding_window  # [T, S]: at most `sliding_window` keys, itself included
    allowed = allowed[None, None]  # [1, 1, T, S]
    if key_valid is not None:
        allowed = allowed & key_valid[:, None, None, :]  # [B, 1, T, S]
    return allowed
