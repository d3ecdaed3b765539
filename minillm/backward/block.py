"""Backward of one decoder layer: the two residual sub-layers, undone in reverse order.

Forward:   h = x + Attn(RMSNorm(x; input_layernorm))        out = h + MLP(RMSNorm(h; post_attention_layernorm))
Backward:  a residual connection copies its gradient to both branches, so with dO = dL/dout:
    dh = dO + RMSNorm_backward(MLP_backward(dO))
    dx = dh + RMSNorm_backward(Attn_backward(dh))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.block import LayerWeights
from ..model.norm import rms_norm
from .attention import AttentionActivations, self_attention_backward, self_attention_forward
from .mlp import MLPActivations
from .moe import MoEActivations, feed_forward_backward, feed_forward_forward
from .norm import rms_norm_backward


@dataclass
class LayerActivations:
    """What ``decoder_layer_forward`` keeps for ``decoder_layer_backward``."""

    x: np.ndarray  # [B, T, D]  the layer's input (input_layernorm's backward needs it)
    attn: AttentionActivations
    h: np.ndarray  # [B, T, D]  the residual stream after attention (post_attention_layernorm's backward)
    mlp: MLPActivations | MoEActivations  # MoEActivations in the MoE layers of Qwen3-MoE


def decoder_layer_forward(x: np.ndarray, w: LayerWeights, num_heads: int, num_kv_heads: int, eps: float,
                          cos: np.ndarray, sin: np.ndarray,
                          mask: np.ndarray | None, num_experts_per_tok: int = 0,
                          norm_topk_prob: bool = False) -> tuple[np.ndarray, LayerActivations]:
    """model/block.py's decoder_layer (no cache), keeping what the backward needs.   x [B, T, D] -> [B, T, D]"""
    attn_out, attn = self_attention_forward(rms_norm(x, w.input_layernorm, eps), w.self_attn, num_heads,
                                            num_kv_heads, eps, cos, sin, mask)  # [B, T, D]
    h = x + attn_out  # [B, T, D]
    mlp_out, mlp = feed_forward_forward(rms_norm(h, w.post_attention_layernorm, eps), w.mlp, num_experts_per_tok,
                                        norm_topk_prob)  # [B, T, D]
    return h + mlp_out, LayerActivations(x=x, attn=attn, h=h, mlp=mlp)


def decoder_layer_backward(dout: np.ndarray, saved: LayerActivations, w: LayerWeights, num_heads: int,
                           num_kv_heads: int, eps: float, cos: np.ndarray,
                           sin: np.ndarray, norm_topk_prob: bool = False,
                           d_probs_extra: np.ndarray | None = None, frozen: bool = False) -> tuple[np.ndarray, LayerWeights]:
    """dx and a LayerWeights of gradients.   dout [B, T, D] -> dx [B, T, D], LayerWeights
    (``d_probs_extra``: the load-balancing loss's gradient of a MoE layer's router probabilities, moe.py;
    ``frozen``, LoRA: no gradient of the plain projections; the norms' small ones are still computed)"""
    d_mlp_in, d_mlp = feed_forward_backward(dout, saved.mlp, w.mlp, norm_topk_prob, d_probs_extra,
                                            frozen)  # [B, T, D]
    d_h_norm, d_post_norm = rms_norm_backward(d_mlp_in, saved.h, w.post_attention_layernorm, eps)  # [B, T, D], [D]
    dh = dout + d_h_norm  # [B, T, D]: the residual path plus the MLP branch
    d_attn_in, d_attn = self_attention_backward(dh, saved.attn, w.self_attn, num_heads, num_kv_heads, eps,
                                                cos, sin, frozen)  # [B, T, D]
    d_x_norm, d_input_norm = rms_norm_backward(d_attn_in, saved.x, w.input_layernorm, eps)  # [B, T, D], [D]
    dx = dh + d_x_norm  # [B, T, D]: the residual path plus the attention branch
    return dx, LayerWeights(input_layernorm=d_input_norm, self_attn=d_attn,
                            post_attention_layernorm=d_post_norm, mlp=d_mlp)
