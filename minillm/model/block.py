"""One decoder layer (a "block"): pre-norm attention and pre-norm MLP, each added to the residual stream.

    h   = x + Attention(RMSNorm(x; input_layernorm))
    out = h + MLP(RMSNorm(h; post_attention_layernorm))        (Qwen3-MoE: a mixture of experts, moe.py)

The residual stream x is never normalised in place: each sub-layer reads a normalised copy and *adds* its
result back. So what a layer returns is un-normalised, and so are transformers' hidden_states[0 .. L-1]
(the embeddings, then the stream after layers 0 .. L-2). The last one is different: hidden_states[L] is
the output of the last layer *after* the final RMSNorm (model.norm), the vector the LM head reads; the
raw output of the last layer is not returned at all (Model.forward follows the same convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import prefill  # a prompt's pass: RMSNorm in fewer passes
from .attention import AttentionWeights, self_attention
from .mlp import MLPWeights
from .moe import MoEWeights, feed_forward
from .norm import rms_norm


@dataclass
class LayerWeights:
    """``model.layers.{i}.*``"""

    input_layernorm: np.ndarray  # [D]
    self_attn: AttentionWeights
    post_attention_layernorm: np.ndarray  # [D]
    mlp: MLPWeights | MoEWeights  # MoEWeights in the MoE layers of Qwen3-MoE


def decoder_layer(x: np.ndarray, w: LayerWeights, num_heads: int, num_kv_heads: int, eps: float,
                  cos: np.ndarray, sin: np.ndarray, mask: np.ndarray, kv_cache=None, num_experts_per_tok: int = 0,
                  norm_topk_prob: bool = False, router_logits: list | None = None, last: int = 0) -> np.ndarray:
    """x [B, T, D] -> [B, T, D] (or [B, last, D]); cos/sin [B, T, Dh], mask [B or 1, 1, T, S] (see attention.py).

    A mixture-of-experts layer routes each token to ``num_experts_per_tok`` experts (moe.py) and appends its
    router logits [B, T, E] to ``router_logits`` if that is a list.
    ``last``: if 0 < last < T, only the last ``last`` positions' outputs are computed (-> [B, last, D]); the
    cache still gets every position's keys and values. The model's last layer does this when only the last
    logits are wanted (a prompt's pass when generating): the other positions' attention and MLP would be
    thrown away, about 1/L of the prefill (llama.cpp skips them too).
    """
    norm = prefill.rms_norm_rows if prefill.many_rows(x) else rms_norm  # a prompt: the same norm, fewer passes
    attended = self_attention(norm(x, w.input_layernorm, eps), w.self_attn, num_heads, num_kv_heads, eps,
                              cos, sin, mask, kv_cache, last)  # [B, T or last, D]
    h = x[:, -attended.shape[1]:] + attended  # [B, T or last, D]
    return h + feed_forward(norm(h, w.post_attention_layernorm, eps), w.mlp, num_experts_per_tok,
                            norm_topk_prob, router_logits)  # [B, T or last, D]
