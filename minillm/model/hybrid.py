"""One decoder layer of a hybrid model (Qwen3.5, Qwen3-Next, Qwen3.5-MoE): the dense layer's shape, with the
token mixer chosen per layer.

    h   = x + Mixer_i(ZeroCentredRMSNorm(x; input_layernorm))
    out = h + FFN_i(ZeroCentredRMSNorm(h; post_attention_layernorm))

    Mixer_i = GatedDeltaNet (gated_deltanet.py)   if layer_types[i] == "linear_attention"   (3 of every 4)
              GatedAttention (gated_attention.py) if layer_types[i] == "full_attention"     (every 4th)
    FFN_i   = the SwiGLU MLP of Qwen2/3 (mlp.py)  in Qwen3.5
              a mixture of experts (moe.py)        in Qwen3.5-MoE and Qwen3-Next (but mlp_only_layers)

Only the linear layers carry a fixed-size state between calls; only the full-attention layers need
positions (RoPE), a mask and a growing KV cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .gated_attention import GatedAttentionWeights, gated_self_attention
from .gated_deltanet import GatedDeltaNetWeights, gated_deltanet
from .mlp import MLPWeights
from .moe import MoEWeights, feed_forward
from .norm import zero_centred_rms_norm


@dataclass
class HybridLayerWeights:
    """``model.layers.{i}.*`` of a hybrid model: exactly one of ``linear_attn`` / ``self_attn`` is set."""

    input_layernorm: np.ndarray  # [D]  zero-centred
    post_attention_layernorm: np.ndarray  # [D]  zero-centred
    mlp: MLPWeights | MoEWeights
    linear_attn: GatedDeltaNetWeights | None = None  # layer_types[i] == "linear_attention"
    self_attn: GatedAttentionWeights | None = None  # layer_types[i] == "full_attention"


def hybrid_decoder_layer(x: np.ndarray, w: HybridLayerWeights, cfg, cos: np.ndarray, sin: np.ndarray,
                         mask: np.ndarray | None, valid: np.ndarray | None, layer_cache=None,
                         chunked: bool = True, router_logits: list | None = None) -> np.ndarray:
    """x [B, T, D] -> [B, T, D].

    Full attention uses cos/sin [B, T, R] and mask [B or 1, 1, T, S] (see attention.py); linear attention
    uses valid [B, T] (False = left padding) and ``chunked`` (see gated_deltanet.py). ``layer_cache``: this
    layer's slice of the cache (cache.py), a KV ``LayerCache`` or a ``LinearAttentionState``. A mixture of
    experts appends its router logits [B, T, E] to ``router_logits`` if that is a list.
    """
    eps = cfg.rms_norm_eps
    normed = zero_centred_rms_norm(x, w.input_layernorm, eps)  # [B, T, D]
    if w.linear_attn is not None:
        mixed = gated_deltanet(normed, w.linear_attn, cfg.linear_num_key_heads, cfg.linear_num_value_heads, eps,
                               layer_cache, valid, chunked)  # [B, T, D]
    else:
        mixed = gated_self_attention(normed, w.self_attn, cfg.num_attention_heads, cfg.num_key_value_heads, eps,
                                     cos, sin, mask, layer_cache)  # [B, T, D]
    h = x + mixed  # [B, T, D]
    return h + feed_forward(zero_centred_rms_norm(h, w.post_attention_layernorm, eps), w.mlp,
                            cfg.num_experts_per_tok, cfg.norm_topk_prob, router_logits)  # [B, T, D]
