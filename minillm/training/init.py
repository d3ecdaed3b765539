"""A new model's starting weights: small random matrices, unit norms, zero biases (as transformers initialises Qwen).

    matrices  ~ normal(0, initializer_range = 0.02)       projections, MLP, embedding (and an untied head)
    norms     = 1                                         RMSNorm weights: start as the identity scale
    biases    = 0
Qwen3.5 / Qwen3-Next (as transformers' Qwen3_5PreTrainedModel._init_weights):
    (1 + w) norms  = 0                                    zero-centred: a gain of 1 is stored as 0
    linear_attn.norm = 1                                  the gated norm's plain gain
    A_log     = log(uniform(0.01, 16)),  dt_bias = 1      decay rates spread over heads
"""

from __future__ import annotations

import numpy as np

from ..checkpoint.config import QwenConfig
from ..checkpoint.weights import ModelWeights, build_weights, expected_shapes


def init_weights(config: QwenConfig, seed: int = 0, std: float = 0.02) -> ModelWeights:
    """Seeded float32 weights for ``config``, drawn in checkpoint-name order (so a seed fixes every tensor)."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in expected_shapes(config).items():
        if config.zero_centred_norms and name.endswith("norm.weight") and not name.endswith("linear_attn.norm.weight"):
            tensors[name] = np.zeros(shape, np.float32)  # [D] or [Dh]: gain 1 + 0
        elif name.endswith("linear_attn.A_log"):
            tensors[name] = np.log(rng.uniform(0.01, 16, shape)).astype(np.float32)  # [Hv]
        elif name.endswith("linear_attn.dt_bias"):
            tensors[name] = np.ones(shape, np.float32)  # [Hv]
        elif name.endswith("norm.weight"):  # input_layernorm, post_attention_layernorm, q_norm, k_norm, model.norm
            tensors[name] = np.ones(shape, np.float32)  # [D] or [Dh]
        elif name.endswith(".bias"):
            tensors[name] = np.zeros(shape, np.float32)  # [out]
        else:
            tensors[name] = (rng.standard_normal(shape, dtype=np.float32) * np.float32(std))  # [out, in] or [V, D]
    return build_weights(config, tensors.__getitem__)
