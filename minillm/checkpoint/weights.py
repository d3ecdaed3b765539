"""Which tensors a Qwen checkpoint must hold, with which shapes, and how they fill the weight dataclasses.

The names are the safetensors keys, and the dataclass fields repeat them, so a learner can hold the
checkpoint listing and the code side by side:

    model.embed_tokens.weight                        -> weights.embed_tokens                     [V, D]
    model.layers.{i}.input_layernorm.weight          -> weights.layers[i].input_layernorm        [D]
    model.layers.{i}.self_attn.q_proj.weight / .bias -> weights.layers[i].self_attn.q_proj(_bias) [H*Dh, D]
    ...
    model.norm.weight                                -> weights.norm                             [D]
    lm_head.weight (absent when tied)                -> weights.lm_head                          [V, D]

Qwen3.5 (hybrid) layers hold ``linear_attn.*`` (Gated DeltaNet) or ``self_attn.*`` (gated attention) by
``layer_types``; see ``hybrid_layer_shapes``. Hub checkpoints store them under ``model.language_model.``;
loading.py maps those names to the ``model.*`` names used here.
"""

from __future__ import annotations

from dataclasses import dataclass, is_dataclass
from typing import Callable

import numpy as np

from ..model.attention import AttentionWeights
from ..model.block import LayerWeights
from ..model.gated_attention import GatedAttentionWeights
from ..model.gated_deltanet import GatedDeltaNetWeights
from ..model.hybrid import HybridLayerWeights
from .config import QwenConfig
from ..model.mlp import MLPWeights


@dataclass
class ModelWeights:
    embed_tokens: np.ndarray  # [V, D]
    layers: list[LayerWeights] | list[HybridLayerWeights]  # L of them
    norm: np.ndarray  # [D]   the final RMSNorm
    lm_head: np.ndarray  # [V, D]  the same array as embed_tokens when the embeddings are tied

    def arrays(self) -> list[np.ndarray]:
        """Every distinct weight array once (a tied head is the embedding, so it is not counted twice)."""
        found = {id(a): a for a in (self.embed_tokens, self.norm, self.lm_head)}
        for layer in self.layers:
            for part in vars(layer).values():  # a norm's array, or a dataclass of arrays (mlp, self_attn, ...)
                for a in (vars(part).values() if is_dataclass(part) else [part]):
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
        if cfg.is_hybrid:
            shapes.update(hybrid_layer_shapes(cfg, i))
            continue
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


def hybrid_layer_shapes(cfg: QwenConfig, i: int) -> dict[str, tuple[int, ...]]:
    """The tensors of Qwen3.5 layer i: Gated DeltaNet or gated attention (by layer_types[i]), norms, MLP."""
    D, F = cfg.hidden_size, cfg.intermediate_size
    H, K, Dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    Hv, Dv, C, W = cfg.linear_num_value_heads, cfg.linear_value_head_dim, cfg.linear_conv_channels, \
        cfg.linear_conv_kernel_dim
    p = f"model.layers.{i}."
    shapes = {p + "input_layernorm.weight": (D,)}
    if cfg.is_linear_attention(i):
        a = p + "linear_attn."
        shapes.update({a + "in_proj_qkv.weight": (C, D), a + "in_proj_z.weight": (Hv * Dv, D),
                       a + "in_proj_b.weight": (Hv, D), a + "in_proj_a.weight": (Hv, D),
                       a + "conv1d.weight": (C, 1, W), a + "A_log": (Hv,), a + "dt_bias": (Hv,),
                       a + "norm.weight": (Dv,), a + "out_proj.weight": (D, Hv * Dv)})
    else:
        a = p + "self_attn."
        shapes.update({a + "q_proj.weight": (H * 2 * Dh, D), a + "k_proj.weight": (K * Dh, D),
                       a + "v_proj.weight": (K * Dh, D), a + "o_proj.weight": (D, H * Dh),
                       a + "q_norm.weight": (Dh,), a + "k_norm.weight": (Dh,)})
    shapes.update({p + "post_attention_layernorm.weight": (D,), p + "mlp.gate_proj.weight": (F, D),
                   p + "mlp.up_proj.weight": (F, D), p + "mlp.down_proj.weight": (D, F)})
    return shapes


def shape_origin(name: str) -> str:
    """Which config fields a tensor's expected shape comes from, for error messages."""
    if "linear_attn." in name:
        return ("linear_num_key_heads, linear_num_value_heads, linear_key_head_dim, linear_value_head_dim, "
                "linear_conv_kernel_dim, hidden_size")
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
        if cfg.is_hybrid:
            layers.append(build_hybrid_layer(cfg, i, tensor))
            continue
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


def build_hybrid_layer(cfg: QwenConfig, i: int, tensor: Callable[[str], np.ndarray]) -> HybridLayerWeights:
    """Qwen3.5 layer i from its named tensors (the names of ``hybrid_layer_shapes``)."""
    p = f"model.layers.{i}."
    linear_attn = self_attn = None
    if cfg.is_linear_attention(i):
        a = p + "linear_attn."
        linear_attn = GatedDeltaNetWeights(
            in_proj_qkv=tensor(a + "in_proj_qkv.weight"), in_proj_z=tensor(a + "in_proj_z.weight"),
            in_proj_b=tensor(a + "in_proj_b.weight"), in_proj_a=tensor(a + "in_proj_a.weight"),
            conv1d=tensor(a + "conv1d.weight"), A_log=tensor(a + "A_log"), dt_bias=tensor(a + "dt_bias"),
            norm=tensor(a + "norm.weight"), out_proj=tensor(a + "out_proj.weight"))
    else:
        a = p + "self_attn."
        self_attn = GatedAttentionWeights(
            q_proj=tensor(a + "q_proj.weight"), k_proj=tensor(a + "k_proj.weight"),
            v_proj=tensor(a + "v_proj.weight"), o_proj=tensor(a + "o_proj.weight"),
            q_norm=tensor(a + "q_norm.weight"), k_norm=tensor(a + "k_norm.weight"))
    return HybridLayerWeights(
        input_layernorm=tensor(p + "input_layernorm.weight"),
        post_attention_layernorm=tensor(p + "post_attention_layernorm.weight"),
        mlp=MLPWeights(gate_proj=tensor(p + "mlp.gate_proj.weight"), up_proj=tensor(p + "mlp.up_proj.weight"),
                       down_proj=tensor(p + "mlp.down_proj.weight")),
        linear_attn=linear_attn, self_attn=self_attn)
