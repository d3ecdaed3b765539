"""Backward of one hybrid decoder layer (model/hybrid.py: Qwen3.5, Qwen3-Next, Qwen3.5-MoE).

The dense layer's two residual sub-layers (block.py), with the (1 + w) norms and the mixer chosen per layer:

    h   = x + Mixer(ZeroCentredRMSNorm(x))           Mixer: gated_deltanet.py or gated_attention.py
    out = h + FFN(ZeroCentredRMSNorm(h))             FFN: mlp.py or moe.py
    dh  = dO + ZCRMSNorm_backward(FFN_backward(dO))
    dx  = dh + ZCRMSNorm_backward(Mixer_backward(dh))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.hybrid import HybridLayerWeights
from ..model.norm import zero_centred_rms_norm
from .gated_attention import gated_self_attention_backward, gated_self_attention_forward
from .gated_deltanet import gated_deltanet_backward, gated_deltanet_forward
from .moe import feed_forward_backward, feed_forward_forward
from .norm import zero_centred_rms_norm_backward


@dataclass
class HybridLayerActivations:
    """What ``hybrid_decoder_layer_forward`` keeps for ``hybrid_decoder_layer_backward``."""

    x: np.ndarray  # [B, T, D]  the layer's input
    mixer: object  # GatedDeltaNetActivations or GatedAttentionActivations
    h: np.ndarray  # [B, T, D]  the residual stream after the mixer
    ffn: object  # MLPActivations or MoEActivations


def hybrid_decoder_layer_forward(x: np.ndarray, w: HybridLayerWeights, cfg, cos: np.ndarray, sin: np.ndarray,
                                 mask: np.ndarray) -> tuple[np.ndarray, HybridLayerActivations]:
    """model/hybrid.py's layer (no cache, no padding), keeping what the backward needs.   x [B, T, D] -> [B, T, D]"""
    eps = cfg.rms_norm_eps
    normed = zero_centred_rms_norm(x, w.input_layernorm, eps)  # [B, T, D]
    if w.linear_attn is not None:
        mixed, mixer = gated_deltanet_forward(normed, w.linear_attn, cfg.linear_num_key_heads,
                                              cfg.linear_num_value_heads, eps)  # [B, T, D]
    else:
        mixed, mixer = gated_self_attention_forward(normed, w.self_attn, cfg.num_attention_heads,
                                                    cfg.num_key_value_heads, eps, cos, sin, mask)  # [B, T, D]
    h = x + mixed  # [B, T, D]
    ffn_out, ffn = feed_forward_forward(zero_centred_rms_norm(h, w.post_attention_layernorm, eps), w.mlp,
                                        cfg.num_experts_per_tok, cfg.norm_topk_prob)  # [B, T, D]
    return h + ffn_out, HybridLayerActivations(x=x, mixer=mixer, h=h, ffn=ffn)


def hybrid_decoder_layer_backward(dout: np.ndarray, saved: HybridLayerActivations, w: HybridLayerWeights, cfg,
                                  cos: np.ndarray, sin: np.ndarray,
                                  d_probs_extra: np.ndarray | None = None) -> tuple[np.ndarray, HybridLayerWeights]:
    """dx and a HybridLayerWeights of gradients.   dout [B, T, D] -> dx [B, T, D], HybridLayerWeights
    (``d_probs_extra``: the load-balancing loss's gradient of the router probabilities, moe.py)"""
    eps = cfg.rms_norm_eps
    d_ffn_in, d_mlp = feed_forward_backward(dout, saved.ffn, w.mlp, cfg.norm_topk_prob, d_probs_extra)
    d_h_norm, d_post = zero_centred_rms_norm_backward(d_ffn_in, saved.h, w.post_attention_layernorm, eps)
    dh = dout + d_h_norm  # [B, T, D]
    d_linear = d_self = None
    if w.linear_attn is not None:
        d_mixer_in, d_linear = gated_deltanet_backward(dh, saved.mixer, w.linear_attn, cfg.linear_num_key_heads,
                                                       cfg.linear_num_value_heads, eps)  # [B, T, D]
    else:
        d_mixer_in, d_self = gated_self_attention_backward(dh, saved.mixer, w.self_attn, cfg.num_attention_heads,
                                                           cfg.num_key_value_heads, eps, cos, sin)  # [B, T, D]
    d_x_norm, d_input = zero_centred_rms_norm_backward(d_mixer_in, saved.x, w.input_layernorm, eps)
    return dh + d_x_norm, HybridLayerWeights(input_layernorm=d_input, post_attention_layernorm=d_post, mlp=d_mlp,
                                             linear_attn=d_linear, self_attn=d_self)
