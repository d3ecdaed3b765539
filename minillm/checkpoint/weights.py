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


def layer_shapes(cfg: QwenConfig) -> dict[str, tuple[int, ...]]:
    """The tensors of one decoder layer, named after ``model.layers.{i}.``, with their shapes.

    The one list of per-layer tensor names: expected_shapes prefixes it for every layer, and build_weights
    reads the dataclass fields from it (``self_attn.q_proj.bias`` -> ``self_attn.q_proj_bias``).
    """
    D, F = cfg.hidden_size, cfg.intermediate_size
    H, K, Dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    shapes = {
        "input_layernorm.weight": (D,),
        "self_attn.q_proj.weight": (H * Dh, D),
        "self_attn.k_proj.weight": (K * Dh, D),
        "self_attn.v_proj.weight": (K * Dh, D),
        "self_attn.o_proj.weight": (D, H * Dh),
    }
    if cfg.qkv_bias:  # Qwen2 always; Qwen3 only with attention_bias
        shapes.update({"self_attn.q_proj.bias": (H * Dh,), "self_attn.k_proj.bias": (K * Dh,),
                       "self_attn.v_proj.bias": (K * Dh,)})
    if cfg.o_proj_bias:  # Qwen3 with attention_bias only
        shapes["self_attn.o_proj.bias"] = (D,)
    if cfg.qk_norm:  # Qwen3
        shapes.update({"self_attn.q_norm.weight": (Dh,), "self_attn.k_norm.weight": (Dh,)})
    shapes.update({
        "post_attention_layernorm.weight": (D,),
        "mlp.gate_proj.weight": (F, D),
        "mlp.up_proj.weight": (F, D),
        "mlp.down_proj.weight": (D, F),
    })
    return shapes


def expected_shapes(cfg: QwenConfig, with_lm_head: bool | None = None) -> dict[str, tuple[int, ...]]:
    """Every tensor name the config implies, with its shape. lm_head only when the head is not tied."""
    V, D = cfg.vocab_size, cfg.hidden_size
    shapes = {"model.embed_tokens.weight": (V, D)}
    per_layer = layer_shapes(cfg)
    for i in range(cfg.num_hidden_layers):
        shapes.update({f"model.layers.{i}.{name}": shape for name, shape in per_layer.items()})
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
    names = list(layer_shapes(cfg))  # the tensors this config gives each layer (optional biases, norms included)
    layers = []
    for i in range(cfg.num_hidden_layers):
        fields: dict[str, dict[str, np.ndarray]] = {"": {}, "self_attn": {}, "mlp": {}}
        for name in names:
            group, field = _field(name)
            fields[group][field] = tensor(f"model.layers.{i}.{name}")
        layers.append(LayerWeights(**fields[""], self_attn=AttentionWeights(**fields["self_attn"]),
                                   mlp=MLPWeights(**fields["mlp"])))  # absent optional tensors stay None
    embed_tokens = tensor("model.embed_tokens.weight")
    # Tied embeddings: the LM head IS the embedding matrix (one array, two roles; see transformer.lm_head).
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


def _field(name: str) -> tuple[str, str]:
    """Where a per-layer tensor goes: its sub-module and dataclass field.

    'self_attn.q_proj.bias' -> ('self_attn', 'q_proj_bias'), 'mlp.up_proj.weight' -> ('mlp', 'up_proj'),
    'input_layernorm.weight' -> ('', 'input_layernorm') (a field of LayerWeights itself).
    """
    *group, module, kind = name.split(".")
    return ".".join(group), module + ("_bias" if kind == "bias" else "")
