"""Token embedding: each token id picks one row of ``model.embed_tokens.weight``.

Qwen has no position embedding (positions enter through RoPE inside attention) and, unlike Gemma, does not
scale the embedding by sqrt(D).
"""

from __future__ import annotations

import numpy as np


def embed(ids: np.ndarray, embed_tokens: np.ndarray) -> np.ndarray:
    """x = E[ids].   ids [B, T] int, embed_tokens [V, D] -> x [B, T, D] (a fresh copy of the rows)."""
    return embed_tokens[ids]  # [B, T] -> [B, T, D]
