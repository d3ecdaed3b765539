"""The router of a mixture-of-experts layer: which k of the E experts each token goes to, and with what weight.

    logits   = x gate^T                   [N, E]  one score per expert (mlp.gate.weight [E, D], no bias)
    p        = softmax(logits)            [N, E]  in float32, over ALL E experts
    w, idx   = top-k(p)                   [N, k]  the k most probable experts, most probable first (topk.py)
    w        = w / sum(w)                 only with norm_topk_prob (Qwen3-Next: default true; Qwen3.5-MoE: always;
                                          Qwen3-MoE: false by default, true in every released config)

+--------------------------------------------------------------------------------------------------------+
| SOFTMAX OVER ALL EXPERTS, THEN TOP-K, THEN (MAYBE) RENORMALISE. The k kept probabilities sum to less   |
| than 1. Renormalised, they equal a softmax over the k chosen logits alone (the other experts' terms    |
| cancel); not renormalised, a token whose router is unsure gets a smaller expert output in total.       |
| Reading the flag the wrong way moves the tiny MoE checkpoints' logits by 0.3 to 0.65 of their largest  |
| value, and greedy decoding keeps 0 to 6 of 16 tokens (test_moe.py).                                    |
+--------------------------------------------------------------------------------------------------------+

The choice is discrete: a float32 error of 1e-7 in a router logit changes nothing, unless two experts are
within 1e-7 of each other at the k-th place, and then the token's output jumps. Exact ties are settled as
torch.topk settles them (topk.py).
"""

from __future__ import annotations

import numpy as np

from .activations import softmax
from .fast_linear import fast_linear as linear  # y = x W^T + b (linear.py), at full speed
from .topk import top_k


def router_logits(x: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """One score per expert and token.   x [N, D], gate [E, D] -> [N, E]"""
    return linear(x, gate)  # [N, D] @ [D, E] -> [N, E]


def top_k_routing(logits: np.ndarray, k: int, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """The k experts of each token and their weights.   logits [N, E] -> weights [N, k] float32, experts [N, k] int

    ``normalize``: rescale the k weights to sum to 1 (norm_topk_prob); otherwise they are the plain softmax
    probabilities of the chosen experts.
    """
    probs = softmax(logits.astype(np.float32, copy=False))  # [N, E], rows sum to 1 (float32: transformers' dtype=float)
    weights, experts = top_k(probs, k)  # [N, k] each, largest probability first
    if normalize:
        weights = weights / weights.sum(axis=-1, keepdims=True)  # [N, k], each row sums to 1
    return weights, experts


def route(x: np.ndarray, gate: np.ndarray, k: int, normalize: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x [N, D], gate [E, D] -> weights [N, k], experts [N, k], the router logits [N, E]."""
    logits = router_logits(x, gate)  # [N, E]
    weights, experts = top_k_routing(logits, k, normalize)  # [N, k], [N, k]
    return weights, experts, logits
