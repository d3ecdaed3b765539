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
``layer_types``; ``layer_shapes(cfg, i)`` gives the table of layer i either way. Hub checkpoints store them under ``model.language_model.``;
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


def layer_shapes(cfg: QwenConfig, i: int = 0) -> dict[str, tuple[int, ...]]:
    """The tensors of decoder layer i, named after ``model.layers.{i}.``, with their shapes.

    The one list of per-layer tensor names: expected_shapes prefixes it for every layer, and build_weights
    reads the dataclass fields from it (``self_attn.q_proj.bias`` -> ``self_attn.q_proj_bias``). Every layer
    of a dense model has the same table; a Qwen3.5 layer's depends on its type (``hybrid_layer_shapes``).
    """
    if cfg.is_hybrid:
        return hybrid_layer_shapes(cfg, i)
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
    for i in range(cfg.num_hidden_layers):
        shapes.update({f"model.layers.{i}.{name}": shape for name, shape in layer_shapes(cfg, i).items()})
    shapes["model.norm.weight"] = (D,)
    if not cfg.tie_word_embeddings if with_lm_head is None else with_lm_head:
        shapes["lm_head.weight"] = (V, D)
    return shapes


def hybrid_layer_shapes(cfg: QwenConfig, i: int) -> dict[str, tuple[int, ...]]:
    """The tensors of Qwen3.5 layer i, named after ``model.layers.{i}.``: Gated DeltaNet or gated attention
    (by layer_types[i]), norms, MLP."""
    D, F = cfg.hidden_size, cfg.intermediate_size
    H, K, Dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    Hv, Dv, C, W = cfg.linear_num_value_heads, cfg.linear_value_head_dim, cfg.linear_conv_channels, \
        cfg.linear_conv_kernel_dim
    shapes = {"input_layernorm.weight": (D,)}
    if cfg.is_linear_attention(i):
        a = "linear_attn."
        shapes.update({a + "in_proj_qkv.weight": (C, D), a + "in_proj_z.weight": (Hv * Dv, D),
                       a + "in_proj_b.weight": (Hv, D), a + "in_proj_a.weight": (Hv, D),
                       a + "conv1d.weight": (C, 1, W), a + "A_log": (Hv,), a + "dt_bias": (Hv,),
                       a + "norm.weight": (Dv,), a + "out_proj.weight": (D, Hv * Dv)})
    else:
        a = "self_attn."  # q_proj yields the queries and the output gate: 2 Dh per head
        shapes.update({a + "q_proj.weight": (H * 2 * Dh, D), a + "k_proj.weight": (K * Dh, D),
                       a + "v_proj.weight": (K * Dh, D), a + "o_proj.weight": (D, H * Dh),
                       a + "q_norm.weight": (Dh,), a + "k_norm.weight": (Dh,)})
    shapes.update({"post_attention_layernorm.weight": (D,), "mlp.gate_proj.weight": (F, D),
                   "mlp.up_proj.weight": (F, D), "mlp.down_proj.weight": (D, F)})
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
    names = list(layer_shapes(cfg))  # the tensors this config gives each layer (optional biases, norms included)
    layers = []
    for i in range(cfg.num_hidden_layers):
        fields: dict[str, dict[str, np.ndarray]] = {"": {}, "self_attn": {}, "linear_attn": {}, "mlp": {}}
        for name in layer_shapes(cfg, i):
            group, field = _field(name)
            fields[group][field] = tensor(f"model.layers.{i}.{name}")
        mlp = MLPWeights(**fields["mlp"])
        if cfg.is_hybrid:  # exactly one token mixer per layer, by layer_types[i]
            linear_attn = GatedDeltaNetWeights(**fields["linear_attn"]) if fields["linear_attn"] else None
            self_attn = GatedAttentionWeights(**fields["self_attn"]) if fields["self_attn"] else None
            layers.append(HybridLayerWeights(**fields[""], mlp=mlp, linear_attn=linear_attn, self_attn=self_attn))
        else:
            layers.append(LayerWeights(**fields[""], self_attn=AttentionWeights(**fields["self_attn"]),
                                       mlp=mlp))  # absent optional tensors stay None
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
    for i, layer in enumerate(weights.layers):  # LayerWeights or (Qwen3.5) HybridLayerWeights
        p = f"model.layers.{i}."
        for group, part in vars(layer).items():  # input_layernorm, self_attn, [linear_attn,] mlp, ...
            if part is None:  # the token mixer a hybrid layer does not have
                continue
            if not is_dataclass(part):  # a norm's array, a field of the layer itself
                named[p + _tensor_name("", group)] = part
                continue
            for field, array in vars(part).items():  # q_proj, q_proj_bias, ..., A_log, dt_bias, ...
                if array is not None:
                    named[p + _tensor_name(group, field)] = array
    named["model.norm.weight"] = weights.norm
    if weights.lm_head is not weights.embed_tokens:
        named["lm_head.weight"] = weights.lm_head
    return named


BARE_PARAMETERS = ("A_log", "dt_bias")  # Qwen3.5's linear_attn stores these without a .weight suffix


def _field(name: str) -> tuple[str, str]:
    """Where a per-layer tensor goes: its sub-module and dataclass field.

    'self_attn.q_proj.bias' -> ('self_attn', 'q_proj_bias'), 'mlp.up_proj.weight' -> ('mlp', 'up_proj'),
    'input_layernorm.weight' -> ('', 'input_layernorm') (a field of LayerWeights itself),
    'linear_attn.A_log' -> ('linear_attn', 'A_log') (a bare parameter, BARE_PARAMETERS).
    """
    *group, last = name.split(".")
    if last in BARE_PARAMETERS:
        return ".".join(group), last
    *group, module = group
    return ".".join(group), module + ("_bias" if last == "bias" else "")


def _tensor_name(group: str, field: str) -> str:
    """The inverse of _field: ('self_attn', 'q_proj_bias') -> 'self_attn.q_proj.bias'."""
    prefix = group + "." if group else ""
    if field in BARE_PARAMETERS:
        return prefix + field
    if field.endswith("_bias"):
        return prefix + field.removesuffix("_bias") + ".bias"
    return prefix + field + ".weight"

