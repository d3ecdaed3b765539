"""Which tensors a Qwen checkpoint must hold, with which shapes, and how they fill the weight dataclasses.

The names are the safetensors keys, and the dataclass fields repeat them, so a learner can hold the
checkpoint listing and the code side by side:

    model.embed_tokens.weight                        -> weights.embed_tokens                     [V, D]
    model.layers.{i}.input_layernorm.weight          -> weights.layers[i].input_layernorm        [D]
    model.layers.{i}.self_attn.q_proj.weight / .bias -> weights.layers[i].self_attn.q_proj(_bias) [H*Dh, D]
    ...
    model.norm.weight                                -> weights.norm                             [D]
    lm_head.weight (absent when tied)                -> weights.lm_head                          [V, D]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..model.attention import AttentionWeights
from ..model.block import LayerWeights
from .config import QwenConfig
from ..model.mlp import MLPWeights


@dataclass
class ModelWeights:
    embed_tokens: np.ndarray  # [V, D]
    layers: list[LayerWeights]  # L of them
    norm: np.ndarray  # [D]   the final RMSNorm
    lm_head: np.ndarray  # [V, D]  the same array as embed_tokens when the embeddings are tied

    def arrays(self) -> list[np.ndarray]:
        """Every distinct weight array once (a tied head is the embedding, so it is not counted twice)."""
        found = {id(a): a for a in (self.embed_tokens, self.norm, self.lm_head)}
        for layer in self.layers:
            for a in (layer.input_layernorm, layer.post_attention_layernorm, *vars(layer.mlp).values(),
                      *vars(layer.self_attn).values()):
                if a is not None:
                    found[id(a)] = a
        return list(found.values())


def expected_shapes(cfg: QwenConfig, with_lm_head: bool | None = None) -> dict[str, tuple[int, ...]]:
    """Every tensor name the config implies, with its shape. lm_head only when the head is not tied."""
    V, D, F = cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size
    H, K, Dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    shapes = {"model.embed_tokens.weight": (V, D)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (D,)
        shapes[p + "self_attn.q_proj.weight"] = (H * Dh, D)
        shapes[p + "self_attn.k_proj.weight"] = (K * Dh, D)
        shapes[p + "self_attn.v_proj.weight"] = (K * Dh, D)
        shapes[p + "self_attn.o_proj.weight"] = (D, H * Dh)
        if cfg.qkv_bias:
            shapes[p + "self_attn.q_proj.bias"] = (H * Dh,)
            shapes[p + "self_attn.k_proj.bias"] = (K * Dh,)
            shapes[p + "self_attn.v_proj.bias"] = (K * Dh,)
        if cfg.o_proj_bias:
            shapes[p + "self_attn.o_proj.bias"] = (D,)
        if cfg.qk_norm:
            shapes[p + "self_attn.q_norm.weight"] = (Dh,)
            shapes[p + "self_attn.k_norm.weight"] = (Dh,)
        shapes[p + "post_attention_layernorm.weight"] = (D,)
        shapes[p + "mlp.gate_proj.weight"] = (F, D)
        shapes[p + "mlp.up_proj.weight"] = (F, D)
        shapes[p + "mlp.down_proj.weight"] = (D, F)
    shapes["model.norm.weight"] = (D,)
    if not cfg.tie_word_embeddings if with_lm_head is None else with_lm_head:
        shapes["lm_head.weight"] = (V, D)
    return shapes


def shape_origin(name: str) -> str:
    """Which config fields a tensor's expected shape comes from, for error messages."""
    if "embed_tokens" in name or name.startswith("lm_head"):
        return "vocab_size, hidden_size"
    if "mlp." in name:
        return "intermediate_size, hidden_size"
    if "_norm" in name:
        return "head_dim"
    if "self_attn" in name:
        return "num_attention_heads, num_key_value_heads, head_dim, hidden_size"
    return "hidden_size"


def build_weights(cfg: QwenConfig, tensor: Callable[[str], np.ndarray], tied: bool | None = None) -> ModelWeights:
    """Unpack named float32 tensors into the dataclasses. ``tensor(name)`` returns one array.

    ``tied`` (default: config.tie_word_embeddings) says whether the LM head reuses the embedding matrix.
    """
    tied = cfg.tie_word_embeddings if tied is None else tied

    def optional(name: str) -> np.ndarray | None:
        return tensor(name) if name in expected else None

    expected = expected_shapes(cfg)
    layers = []
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        a = p + "self_attn."
        layers.append(LayerWeights(
            input_layernorm=tensor(p + "input_layernorm.weight"),
            self_attn=AttentionWeights(
                q_proj=tensor(a + "q_proj.weight"), k_proj=tensor(a + "k_proj.weight"),
                v_proj=tensor(a + "v_proj.weight"), o_proj=tensor(a + "o_proj.weight"),
                q_proj_bias=optional(a + "q_proj.bias"), k_proj_bias=optional(a + "k_proj.bias"),
                v_proj_bias=optional(a + "v_proj.bias"), o_proj_bias=optional(a + "o_proj.bias"),
                q_norm=optional(a + "q_norm.weight"), k_norm=optional(a + "k_norm.weight"),
            ),
            post_attention_layernorm=tensor(p + "post_attention_layernorm.weight"),
            mlp=MLPWeights(gate_proj=tensor(p + "mlp.gate_proj.weight"), up_proj=tensor(p + "mlp.up_proj.weight"),
                           down_proj=tensor(p + "mlp.down_proj.weight")),
        ))
    embed_tokens = tensor("model.embed_tokens.weight")
    # Tied embeddings: the LM head IS the embedding matrix (one array, two roles).
    lm_head = embed_tokens if tied else tensor("lm_head.weight")
    return ModelWeights(embed_tokens=embed_tokens, layers=layers, norm=tensor("model.norm.weight"), lm_head=lm_head)


def named_tensors(weights: ModelWeights) -> dict[str, np.ndarray]:
    """The inverse of build_weights: {checkpoint tensor name: array}, the arrays themselves (no copies).

    Optional tensors that are None (biases, q/k-norm) are left out; a tied head (``lm_head is embed_tokens``)
    is listed once, as model.embed_tokens.weight, so the keys are exactly those of ``expected_shapes``.
    """
    named = {"model.embed_tokens.weight": weights.embed_tokens}
    for i, layer in enumerate(weights.layers):
        p = f"model.layers.{i}."
        named[p + "input_layernorm.weight"] = layer.input_layernorm
        for field, array in vars(layer.self_attn).items():  # q_proj, q_proj_bias, ..., q_norm, k_norm
            if array is not None:
                suffix = ".bias" if field.endswith("_bias") else ".weight"
                named[p + "self_attn." + field.removesuffix("_bias") + suffix] = array
        named[p + "post_attention_layernorm.weight"] = layer.post_attention_layernorm
        for field, array in vars(layer.mlp).items():  # gate_proj, up_proj, down_proj
            named[p + "mlp." + field + ".weight"] = array
    named["model.norm.weight"] = weights.norm
    if weights.lm_head is not weights.embed_tokens:
        named["lm_head.weight"] = weights.lm_head
    return named
