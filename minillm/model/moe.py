"""A sparse mixture of experts: the feed-forward sub-layer of Qwen3-MoE, Qwen3-Next and Qwen3.5-MoE.

    w, idx = route(x)                                     router.py: k of the E experts per token, with weights
    y      = sum_j  w_j * Expert_{idx_j}(x)               each expert a SwiGLU MLP (mlp.py) of width Fe
    y     += sigmoid(x shared_expert_gate^T) * SharedExpert(x)        Qwen3-Next and Qwen3.5-MoE only

Each expert is a dense MLP, only narrow (Qwen3-30B-A3B: 128 experts of width 768 per layer, where Qwen3-1.7B,
of the same hidden size 2048, has one MLP of width 6144). A token runs through k of them (8), so most of the
parameters sit idle for any one token: "30B-A3B" means 30.5 B parameters in all, 3.3 B active per token. Different
tokens pick different experts; that is what lets the model hold more than it computes.

``sparse_moe_block`` computes only the chosen experts: it groups the tokens by expert and runs each expert
once, on the tokens that picked it. ``dense_moe_block`` is the same sum written plainly, every expert on every
token with weight 0 where it was not chosen: E / k times the work, kept as the reference the tests compare with.

+--------------------------------------------------------------------------------------------------------+
| EXPERTS ARE STORED FUSED: experts.gate_up_proj [E, 2 Fe, D] holds, for expert e, the rows of its       |
| gate_proj then its up_proj ([gate (Fe) | up (Fe)], not interleaved), and experts.down_proj [E, D, Fe]. |
| That is transformers' layout in memory; checkpoints hold it, or one gate_proj / up_proj / down_proj    |
| per expert, which the loader stacks into the same arrays (checkpoint/experts.py).                      |
+--------------------------------------------------------------------------------------------------------+
| THE SHARED EXPERT HAS ITS OWN GATE: one number per token, sigmoid(x . shared_expert_gate), scales the  |
| always-on shared expert's output (a Linear(D, 1) without bias). Adding the shared expert ungated moves |
| the tiny Qwen3-Next and Qwen3.5-MoE logits by about their largest value (test_moe.py).                 |
+--------------------------------------------------------------------------------------------------------+
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import sigmoid, silu
from .fast_linear import fast_linear as linear  # y = x W^T + b (linear.py), at full speed
from .mlp import MLPWeights, swiglu_mlp
from .router import route


@dataclass
class ExpertWeights:
    """``model.layers.{i}.mlp.experts.*``: every expert's SwiGLU, stacked (these names have no ``.weight``)."""

    gate_up_proj: np.ndarray  # [E, 2*Fe, D]  expert e: rows [gate_proj (Fe) | up_proj (Fe)]
    down_proj: np.ndarray  # [E, D, Fe]


@dataclass
class MoEWeights:
    """``model.layers.{i}.mlp.*`` of a mixture-of-experts layer."""

    gate: np.ndarray  # [E, D]   the router ("mlp.gate.weight"); not a gate_proj
    experts: ExpertWeights
    shared_expert: MLPWeights | None = None  # [Fs, D], [Fs, D], [D, Fs]   Qwen3-Next, Qwen3.5-MoE
    shared_expert_gate: np.ndarray | None = None  # [1, D]


def expert_mlp(x: np.ndarray, gate_up_proj: np.ndarray, down_proj: np.ndarray) -> np.ndarray:
    """One expert: down_proj(silu(gate_proj x) * up_proj x), gate and up stacked in one matrix.

    x [n, D] (n: the tokens routed to this expert), gate_up_proj [2*Fe, D], down_proj [D, Fe] -> [n, D]
    """
    gate, up = np.split(linear(x, gate_up_proj), 2, axis=-1)  # [n, 2*Fe] -> [n, Fe] each: first half is the gate
    return linear(silu(gate) * up, down_proj)  # [n, Fe] -> [n, D]


def gated_shared_expert(x: np.ndarray, w: MoEWeights) -> np.ndarray:
    """sigmoid(x shared_expert_gate^T) * SharedExpert(x): the expert every token uses.   x [N, D] -> [N, D]"""
    gate = sigmoid(linear(x, w.shared_expert_gate))  # [N, 1]: one scale per token, in (0, 1)
    return gate * swiglu_mlp(x, w.shared_expert)  # [N, 1] * [N, D]


def sparse_moe_block(x: np.ndarray, w: MoEWeights, num_experts_per_tok: int, norm_topk_prob: bool,
                     router_logits: list | None = None) -> np.ndarray:
    """The mixture of experts, computing only the experts each token chose.   x [..., D] -> [..., D]

    ``router_logits``: if a list is given, this layer's router logits [..., E] are appended to it.
    """
    D, k = x.shape[-1], num_experts_per_tok
    E = w.gate.shape[0]
    flat = x.reshape(-1, D)  # [N, D]: batch and time flattened, every token is routed on its own
    weights, experts, logits = route(flat, w.gate, k, norm_topk_prob)  # [N, k], [N, k], [N, E]
    if router_logits is not None:
        router_logits.append(logits.reshape(*x.shape[:-1], E))  # [..., E]

    # Group the N * k (token, choice) slots by expert: slot s is token s // k's choice number s % k.
    slots = np.argsort(experts, axis=None, kind="stable")  # [N*k] slot numbers, expert 0's first
    counts = np.bincount(experts.ravel(), minlength=E)  # [E] how many tokens chose each expert
    starts = np.cumsum(counts) - counts  # [E] where each expert's run of slots begins in ``slots``
    y = np.zeros_like(flat)  # [N, D]
    for e in np.flatnonzero(counts):  # only the experts some token chose, in index order (as transformers)
        mine = slots[starts[e]:starts[e] + counts[e]]  # [n_e] the slots routed to expert e
        tokens = mine // k  # [n_e] all different: a token picks an expert at most once, so += below is safe
        out = expert_mlp(flat[tokens], w.experts.gate_up_proj[e], w.experts.down_proj[e])  # [n_e, D]
        y[tokens] += weights.ravel()[mine, None] * out  # [n_e, 1] * [n_e, D], added to those tokens' rows
    if w.shared_expert is not None:
        y += gated_shared_expert(flat, w)  # [N, D]
    return y.reshape(x.shape)  # [..., D]


def dense_moe_block(x: np.ndarray, w: MoEWeights, num_experts_per_tok: int, norm_topk_prob: bool) -> np.ndarray:
    """The same sum, written plainly: every expert on every token, weight 0 where not chosen (the reference for
    sparse_moe_block, E / k times the work).   x [..., D] -> [..., D]"""
    D = x.shape[-1]
    flat = x.reshape(-1, D)  # [N, D]
    weights, experts, _ = route(flat, w.gate, num_experts_per_tok, norm_topk_prob)  # [N, k], [N, k]
    dense = np.zeros((flat.shape[0], w.gate.shape[0]), np.float32)  # [N, E]
    np.put_along_axis(dense, experts, weights, axis=-1)  # [N, E]: k weights per row, zeros elsewhere
    y = sum(dense[:, e, None] * expert_mlp(flat, w.experts.gate_up_proj[e], w.experts.down_proj[e])
            for e in range(w.gate.shape[0]))  # [N, D]
    if w.shared_expert is not None:
        y = y + gated_shared_expert(flat, w)  # [N, D]
    return y.reshape(x.shape)  # [..., D]


def feed_forward(x: np.ndarray, w: MLPWeights | MoEWeights, num_experts_per_tok: int = 0,
                 norm_topk_prob: bool = False, router_logits: list | None = None) -> np.ndarray:
    """The second sub-layer of a decoder layer: a dense SwiGLU MLP, or a mixture of experts.   [..., D] -> [..., D]"""
    if isinstance(w, MoEWeights):
        return sparse_moe_block(x, w, num_experts_per_tok, norm_topk_prob, router_logits)
    return swiglu_mlp(x, w)
