"""Backward of the mixture of experts (model/moe.py, model/router.py) and of the router's load-balancing loss.

Forward, per token (x [D]; model/router.py and model/moe.py):
    p        = softmax(x Wg^T)                     [E]   over all experts
    t, idx   = top-k(p)                            [k]   the chosen probabilities and experts
    w        = t / sum(t)   (norm_topk_prob)  or  t
    y        = sum_j w_j Expert_{idx_j}(x)  +  sigmoid(x . Wsg) SharedExpert(x)

Backward (dY = dL/dy):
    dw_j     = dY . Expert_{idx_j}(x)               each chosen expert's output, dotted with dY
    dExpert  = w_j dY                               into that expert's SwiGLU backward (its weights and dx)
    dt       = (dw - sum_j dw_j w_j) / sum(t)       with norm_topk_prob (the quotient rule), else dt = dw
    dp       = dt scattered to the chosen experts, 0 elsewhere
    dlogits  = softmax_backward(dp, p)              so the experts NOT chosen still get a gradient, through
                                                    the softmax's denominator (and through renormalisation, none)
    shared:  s = sigmoid(x . Wsg):  dShared = s dY,  d(x . Wsg) = (dY . Shared(x)) s (1 - s)
The choice itself (top-k) is piecewise constant: it has no gradient, as in PyTorch.

+--------------------------------------------------------------------------------------------------------+
| THE LOAD-BALANCING LOSS (Switch Transformer eq. 4-6), exactly as transformers' load_balancing_loss_func |
| computes it with output_router_logits=True and no attention mask: over the R = N * (MoE layers) rows   |
| of every MoE layer's router logits together,                                                           |
|     f_e = (times expert e is among a row's top k) / R      P_e = (sum of p_e over the rows) / R          |
|     aux = E * sum_e f_e P_e           loss = cross-entropy + router_aux_loss_coef * aux                  |
| f is a count (no gradient), so d aux / d p_e = E f_e / R for every row of every layer: one vector [E], |
| added to each MoE layer's dp before its softmax backward.                                              |
+--------------------------------------------------------------------------------------------------------+
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.activations import sigmoid, silu, softmax
from ..model.fast_linear import fast_linear as linear  # y = x W^T + b (model/linear.py), at full speed
from ..model.moe import ExpertWeights, MoEWeights
from ..model.topk import top_k
from .activations import silu_backward, softmax_backward
from .linear import linear_backward
from .mlp import MLPActivations, swiglu_mlp_backward, swiglu_mlp_forward


@dataclass
class MoEActivations:
    """What ``sparse_moe_block_forward`` keeps for ``sparse_moe_block_backward``."""

    x: np.ndarray  # [N, D]       the input, tokens flattened
    probs: np.ndarray  # [N, E]   the router's softmax over all experts
    chosen: np.ndarray  # [N, k]  the chosen probabilities t (before renormalisation)
    experts: np.ndarray  # [N, k] int, the chosen experts
    tokens: dict  # {e: [n_e] the tokens routed to expert e}
    slots: dict  # {e: [n_e] their slots (token * k + choice number)}
    gate_up: dict  # {e: [n_e, 2 Fe] the expert's gate and up projections of its tokens}
    shared: MLPActivations | None  # the shared expert's (Qwen3-Next, Qwen3.5-MoE)
    shared_gate: np.ndarray | None  # [N, 1]  x . Wsg, before its sigmoid


def sparse_moe_block_forward(x: np.ndarray, w: MoEWeights, num_experts_per_tok: int,
                             norm_topk_prob: bool) -> tuple[np.ndarray, MoEActivations]:
    """model/moe.py's sparse_moe_block, keeping what the backward needs.   x [..., D] -> [..., D], MoEActivations"""
    D, k = x.shape[-1], num_experts_per_tok
    flat = x.reshape(-1, D)  # [N, D]
    probs = softmax(linear(flat, w.gate))  # [N, E]
    chosen, experts = top_k(probs, k)  # [N, k] each (torch.topk's order, ties included)
    weights = chosen / chosen.sum(axis=-1, keepdims=True) if norm_topk_prob else chosen  # [N, k]
    y = np.zeros_like(flat)  # [N, D]
    tokens, slots, gate_up = {}, {}, {}
    order = np.argsort(experts, axis=None, kind="stable")  # [N*k] slots grouped by expert, as model/moe.py
    counts = np.bincount(experts.ravel(), minlength=w.gate.shape[0])  # [E]
    starts = np.cumsum(counts) - counts  # [E]
    for e in np.flatnonzero(counts):
        mine = order[starts[e]:starts[e] + counts[e]]  # [n_e]
        tok = mine // k  # [n_e]
        gu = linear(flat[tok], w.experts.gate_up_proj[e])  # [n_e, 2 Fe]
        gate, up = np.split(gu, 2, axis=-1)  # [n_e, Fe] each
        y[tok] += weights.ravel()[mine, None] * linear(silu(gate) * up, w.experts.down_proj[e])  # [n_e, D]
        tokens[e], slots[e], gate_up[e] = tok, mine, gu
    shared = shared_gate = None
    if w.shared_expert is not None:
        shared_out, shared = swiglu_mlp_forward(flat, w.shared_expert)  # [N, D]
        shared_gate = linear(flat, w.shared_expert_gate)  # [N, 1]
        y += sigmoid(shared_gate) * shared_out  # [N, D]
    return y.reshape(x.shape), MoEActivations(x=flat, probs=probs, chosen=chosen, experts=experts, tokens=tokens,
                                              slots=slots, gate_up=gate_up, shared=shared, shared_gate=shared_gate)


def sparse_moe_block_backward(dy: np.ndarray, saved: MoEActivations, w: MoEWeights, norm_topk_prob: bool,
                              d_probs_extra: np.ndarray | None = None) -> tuple[np.ndarray, MoEWeights]:
    """dx and a MoEWeights of gradients (stacked experts get stacked gradients, 0 for an expert no token chose).

    dy [..., D]; d_probs_extra [E] or [N, E]: a gradient added to the router probabilities (the load-balancing
    loss's, ``load_balancing_backward``) -> dx [..., D], MoEWeights
    """
    D = dy.shape[-1]
    dflat = dy.reshape(-1, D)  # [N, D]
    N, k = saved.experts.shape
    x = saved.x  # [N, D]
    total = saved.chosen.sum(axis=-1, keepdims=True)  # [N, 1]
    weights = saved.chosen / total if norm_topk_prob else saved.chosen  # [N, k]
    dx = np.zeros_like(x)  # [N, D]
    d_weights = np.zeros_like(weights)  # [N, k]
    d_gate_up = np.zeros_like(w.experts.gate_up_proj)  # [E, 2 Fe, D]
    d_down = np.zeros_like(w.experts.down_proj)  # [E, D, Fe]
    for e, tok in saved.tokens.items():
        mine = saved.slots[e]  # [n_e]
        gate, up = np.split(saved.gate_up[e], 2, axis=-1)  # [n_e, Fe] each
        act = silu(gate) * up  # [n_e, Fe]
        out = linear(act, w.experts.down_proj[e])  # [n_e, D]: the expert's output, recomputed
        d_weights.ravel()[mine] = (dflat[tok] * out).sum(axis=-1)  # [n_e]
        d_out = weights.ravel()[mine, None] * dflat[tok]  # [n_e, D]
        d_act, d_down[e], _ = linear_backward(d_out, act, w.experts.down_proj[e])  # [n_e, Fe], [D, Fe]
        d_gu = np.concatenate([silu_backward(d_act * up, gate), d_act * silu(gate)], axis=-1)  # [n_e, 2 Fe]
        dx_e, d_gate_up[e], _ = linear_backward(d_gu, x[tok], w.experts.gate_up_proj[e])  # [n_e, D], [2 Fe, D]
        dx[tok] += dx_e  # each token appears once per expert

    if norm_topk_prob:  # w = t / sum(t)
        d_chosen = (d_weights - (d_weights * weights).sum(axis=-1, keepdims=True)) / total  # [N, k]
    else:
        d_chosen = d_weights  # [N, k]
    d_probs = np.zeros_like(saved.probs)  # [N, E]
    np.put_along_axis(d_probs, saved.experts, d_chosen, axis=-1)  # [N, E]: a token picks an expert once
    if d_probs_extra is not None:
        d_probs += d_probs_extra  # [N, E]
    d_logits = softmax_backward(d_probs, saved.probs)  # [N, E]
    dx_router, d_router, _ = linear_backward(d_logits, x, w.gate)  # [N, D], [E, D]
    dx += dx_router

    d_shared = d_shared_gate = None
    if w.shared_expert is not None:
        s = sigmoid(saved.shared_gate)  # [N, 1]
        shared_out = linear(silu(saved.shared.gate) * saved.shared.up, w.shared_expert.down_proj)  # [N, D]
        dx_shared, d_shared = swiglu_mlp_backward(s * dflat, saved.shared, w.shared_expert)  # [N, D]
        d_pre = (dflat * shared_out).sum(axis=-1, keepdims=True) * s * (1 - s)  # [N, 1]
        dx_sg, d_shared_gate, _ = linear_backward(d_pre, x, w.shared_expert_gate)  # [N, D], [1, D]
        dx += dx_shared + dx_sg
    return dx.reshape(dy.shape), MoEWeights(gate=d_router, experts=ExpertWeights(gate_up_proj=d_gate_up,
                                                                                 down_proj=d_down),
                                            shared_expert=d_shared, shared_expert_gate=d_shared_gate)


def load_balancing_loss(layers: list[MoEActivations], num_experts: int) -> tuple[float, np.ndarray]:
    """transformers' load_balancing_loss_func (no attention mask) from the MoE layers' kept routing, and its
    gradient with respect to every row's router probabilities (the same for every row and layer).

    -> aux (float), d_probs [E] = E f / R   (see the module docstring)
    """
    E = num_experts
    R = sum(saved.probs.shape[0] for saved in layers)  # rows of all MoE layers together
    counts = sum(np.bincount(saved.experts.ravel(), minlength=E) for saved in layers)  # [E]
    prob_sums = sum(saved.probs.astype(np.float64).sum(axis=0) for saved in layers)  # [E]
    f = counts / R  # [E]  the share of the k slots, per row, that went to each expert
    aux = float(E * (f * prob_sums / R).sum())
    return aux, (E * f / R).astype(layers[0].probs.dtype)  # [E]


def feed_forward_forward(x: np.ndarray, w, num_experts_per_tok: int = 0, norm_topk_prob: bool = False):
    """model/moe.py's feed_forward, keeping what the backward needs: a dense SwiGLU MLP or a mixture of experts.
    x [B, T, D] -> [B, T, D], MLPActivations or MoEActivations"""
    if isinstance(w, MoEWeights):
        return sparse_moe_block_forward(x, w, num_experts_per_tok, norm_topk_prob)
    return swiglu_mlp_forward(x, w)


def feed_forward_backward(dy: np.ndarray, saved, w, norm_topk_prob: bool = False,
                          d_probs_extra: np.ndarray | None = None, frozen: bool = False):
    """dx and the weights' gradients of feed_forward_forward.   dy [B, T, D] -> dx [B, T, D], MLPWeights or MoEWeights
    (``frozen``, LoRA on a dense MLP: no gradient of its plain weights; a MoE never carries an adapter)"""
    if isinstance(w, MoEWeights):
        return sparse_moe_block_backward(dy, saved, w, norm_topk_prob, d_probs_extra)
    return swiglu_mlp_backward(dy, saved, w, frozen)
