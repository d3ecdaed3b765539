"""Solutions to notebook 08's exercises. Try them yourself first."""

import numpy as np


def route(logits, k):
    """logits [N, E] -> weights [N, k], experts [N, k]."""
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)  # [N, E]
    experts = np.argsort(-probs, axis=-1, kind="stable")[:, :k]  # [N, k] most probable first
    weights = np.take_along_axis(probs, experts, axis=-1)  # [N, k]
    return weights / weights.sum(-1, keepdims=True), experts


def expert(x, gate_up_proj, down_proj):
    """x [n, D] -> [n, D]: split the stacked projection, silu(gate) * up, project back."""
    gate, up = np.split(x @ gate_up_proj.T, 2, axis=-1)  # [n, Fe] each
    return (gate / (1 + np.exp(-gate)) * up) @ down_proj.T  # [n, D]
