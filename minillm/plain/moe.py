"""A mixture of experts on one screen: the feed-forward sub-layer of Qwen3-MoE, Qwen3-Next and Qwen3.5-MoE.

``plain_moe_block`` equals the engine's ``sparse_moe_block`` (minillm/model/moe.py, router.py, topk.py) on the
tiny MoE checkpoints' layer inputs (tests/test_plain.py). Ties: the plain top-k takes the lowest expert
index first (a stable sort); the engine reproduces torch.topk's CPU order, which differs only when two
experts have exactly the same probability at the k-th place, so the test uses inputs without such ties.
Legend: N tokens, E experts, k experts per token, Fe expert width (minillm/__init__.py).
"""

from __future__ import annotations

import numpy as np

from .ops import sigmoid, silu, softmax


def plain_moe_block(mlp, config, x) -> np.ndarray:
    """Route each token to k of E experts; sum their SwiGLU outputs, weighted.   x [N, D] (normed) -> [N, D]

    Why: capacity without compute. Each expert is a narrow SwiGLU MLP; a token runs through k of them, so
    most parameters sit idle for any one token (Qwen3-30B-A3B: 30B parameters, 3B used per token), and
    different tokens use different experts. The router's softmax runs over ALL E experts, then the top k
    are kept (and rescaled to sum to 1 when norm_topk_prob). The shared expert (Qwen3-Next, Qwen3.5-MoE)
    runs on every token, scaled by its own sigmoid gate.
    """
    k, E = config.num_experts_per_tok, mlp.gate.shape[0]
    probs = softmax(x @ mlp.gate.T)  # [N, E]: the router ("mlp.gate"), over all experts
    chosen = np.argsort(-probs, axis=-1, kind="stable")[:, :k]  # [N, k]: most probable first
    weight = np.take_along_axis(probs, chosen, axis=-1)  # [N, k]: their probabilities, summing to < 1
    if config.norm_topk_prob:
        weight = weight / weight.sum(axis=-1, keepdims=True)  # [N, k]: each row sums to 1
    y = np.zeros_like(x)  # [N, D]
    for e in range(E):
        rows, slot = np.nonzero(chosen == e)  # [n] the tokens that chose expert e, [n] as which choice
        if len(rows):
            gate, up = np.split(x[rows] @ mlp.experts.gate_up_proj[e].T, 2, axis=-1)  # [n, Fe] each: [gate | up]
            out = (silu(gate) * up) @ mlp.experts.down_proj[e].T  # [n, Fe] -> [n, D]
            y[rows] += weight[rows, slot][:, None] * out  # [n, 1] * [n, D]
    if mlp.shared_expert is not None:
        s = mlp.shared_expert
        shared = (silu(x @ s.gate_proj.T) * (x @ s.up_proj.T)) @ s.down_proj.T  # [N, Fs] -> [N, D]
        y += sigmoid(x @ mlp.shared_expert_gate.T) * shared  # [N, 1] * [N, D]: one gate per token
    return y  # [N, D]
