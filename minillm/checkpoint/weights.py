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

A mixture-of-experts layer replaces the MLP's three matrices by a router and the stacked experts
(``mlp_shapes``), named as transformers names them in memory:

    model.layers.{i}.mlp.gate.weight                 -> weights.layers[i].mlp.gate                   [E, D]
    model.layers.{i}.mlp.experts.gate_up_proj        -> weights.layers[i].mlp.experts.gate_up_proj   [E, 2*Fe, D]
    model.layers.{i}.mlp.experts.down_proj           -> weights.layers[i].mlp.experts.down_proj      [E, D, Fe]
    model.layers.{i}.mlp.shared_expert.*_proj.weight -> weights.layers[i].mlp.shared_expert.*_proj   (Fs wide)
    model.layers.{i}.mlp.shared_expert_gate.weight   -> weights.layers[i].mlp.shared_expert_gate     [1, D]

A checkpoint may instead hold one tensor per expert (``mlp.experts.{e}.gate_proj.weight``, ...): experts.py
reads those into the same stacked arrays.
"""

from __future__ import annotations

import math
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
from ..model.moe import ExpertWeights, MoEWeights


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
            found.update((id(a), a) for a in _arrays_in(layer))
        return list(found.values())


def _arrays_in(part) -> list[np.ndarray]:
    """The arrays of a weight dataclass, looking inside nested ones (mlp.experts, mlp.shared_expert, ...)."""
    if part is None:
        return []
    if not is_dataclass(part):
        return [part]
    return [a for field in vars(part).values() for a in _arrays_in(field)]


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
    shapes["post_attention_layernorm.weight"] = (D,)
    shapes.update(mlp_shapes(cfg, i))
    return shapes


def mlp_shapes(cfg: QwenConfig, i: int) -> dict[str, tuple[int, ...]]:
    """The feed-forward tensors of layer i, named after ``model.layers.{i}.``: a dense SwiGLU MLP, or a router,
    the stacked experts and (Qwen3-Next, Qwen3.5-MoE) the shared expert with its gate."""
    D, F = cfg.hidden_size, cfg.intermediate_size
    if not cfg.is_moe_layer(i):
        return {"mlp.gate_proj.weight": (F, D), "mlp.up_proj.weight": (F, D), "mlp.down_proj.weight": (D, F)}
    E, Fe, Fs = cfg.num_experts, cfg.moe_intermediate_size, cfg.shared_expert_intermediate_size
    shapes = {"mlp.gate.weight": (E, D), "mlp.experts.gate_up_proj": (E, 2 * Fe, D),
              "mlp.experts.down_proj": (E, D, Fe)}
    if Fs:
        shapes.update({"mlp.shared_expert.gate_proj.weight": (Fs, D), "mlp.shared_expert.up_proj.weight": (Fs, D),
                       "mlp.shared_expert.down_proj.weight": (D, Fs), "mlp.shared_expert_gate.weight": (1, D)})
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


def parameter_counts(cfg: QwenConfig) -> tuple[int, int]:
    """(parameters in all, parameters one token uses). In each MoE layer a token runs through k of the E experts:
    the other E - k are not active for it. The embedding and the head count in both, as in the names
    "30B-A3B" (Qwen3-30B-A3B: 30.5 B in all, 3.3 B active per token)."""
    total = inactive = 0
    for name, shape in expected_shapes(cfg).items():
        n = math.prod(shape)
        total += n
        if ".mlp.experts." in name:  # [E, ...]: each expert's share is n / E
            inactive += n // cfg.num_experts * (cfg.num_experts - cfg.num_experts_per_tok)
    return total, total - inactive


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
        if cfg.grouped_linear_projections:  # Qwen3-Next: [q k v z] and [b a], grouped per key head
            shapes.update({a + "in_proj_qkvz.weight": (C + Hv * Dv, D), a + "in_proj_ba.weight": (2 * Hv, D)})
        else:
            shapes.update({a + "in_proj_qkv.weight": (C, D), a + "in_proj_z.weight": (Hv * Dv, D),
                           a + "in_proj_b.weight": (Hv, D), a + "in_proj_a.weight": (Hv, D)})
        shapes.update({a + "conv1d.weight": (C, 1, W), a + "A_log": (Hv,), a + "dt_bias": (Hv,),
                       a + "norm.weight": (Dv,), a + "out_proj.weight": (D, Hv * Dv)})
    else:
        a = "self_attn."  # q_proj yields the queries and the output gate: 2 Dh per head
        shapes.update({a + "q_proj.weight": (H * 2 * Dh, D), a + "k_proj.weight": (K * Dh, D),
                       a + "v_proj.weight": (K * Dh, D), a + "o_proj.weight": (D, H * Dh),
                       a + "q_norm.weight": (Dh,), a + "k_norm.weight": (Dh,)})
    shapes["post_attention_layernorm.weight"] = (D,)
    shapes.update(mlp_shapes(cfg, i))
    return shapes


def shape_origin(name: str) -> str:
    """Which config fields a tensor's expected shape comes from, for error messages."""
    if "linear_attn." in name:
        return ("linear_num_key_heads, linear_num_value_heads, linear_key_head_dim, linear_value_head_dim, "
                "linear_conv_kernel_dim, hidden_size")
    if "embed_tokens" in name or name.startswith("lm_head"):
        return "vocab_size, hidden_size"
    if ".experts." in name or "shared_expert" in name or name.endswith("mlp.gate.weight"):
        return ("num_experts, moe_intermediate_size, shared_expert_intermediate_size, hidden_size (mlp_only_layers, "
                "decoder_sparse_step: which layers are MoE)")
    if "mlp." in name:
        return "intermediate_size, hidden_size (MoE models: mlp_only_layers, decoder_sparse_step)"
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
    layers = []
    for i in range(cfg.num_hidden_layers):
        fields: dict[str, dict[str, np.ndarray]] = {"": {}, "self_attn": {}, "linear_attn": {}, "mlp": {},
                                                    "mlp.experts": {}, "mlp.shared_expert": {}}
        for name in layer_shapes(cfg, i):
            group, field = _field(name)
            fields[group][field] = tensor(f"model.layers.{i}.{name}")
        if cfg.is_moe_layer(i):  # the router, the stacked experts, the shared expert (if any)
            shared = MLPWeights(**fields["mlp.shared_expert"]) if fields["mlp.shared_expert"] else None
            mlp = MoEWeights(**fields["mlp"], experts=ExpertWeights(**fields["mlp.experts"]), shared_expert=shared)
        else:
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
        named.update(_named_in(layer, f"model.layers.{i}.", ""))
    named["model.norm.weight"] = weights.norm
    if weights.lm_head is not weights.embed_tokens:
        named["lm_head.weight"] = weights.lm_head
    return named


def _named_in(part, prefix: str, group: str) -> dict[str, np.ndarray]:
    """{tensor name: array} of one layer's dataclass, nested ones included (mlp -> mlp.experts, ...).
    A None part (the token mixer a hybrid layer does not have, an absent bias) holds no tensor."""
    named = {}
    for field, value in vars(part).items():  # input_layernorm, self_attn, mlp, ...; q_proj, q_proj_bias, ...
        if is_dataclass(value):
            named.update(_named_in(value, prefix, f"{group}.{field}" if group else field))
        elif value is not None:
            named[prefix + _tensor_name(group, field)] = value
    return named


BARE_PARAMETERS = ("A_log", "dt_bias")  # Qwen3.5's linear_attn stores these without a .weight suffix
BARE_GROUPS = ("mlp.experts",)  # and the stacked experts are parameters too: mlp.experts.gate_up_proj


def _field(name: str) -> tuple[str, str]:
    """Where a per-layer tensor goes: its sub-module and dataclass field.

    'self_attn.q_proj.bias' -> ('self_attn', 'q_proj_bias'), 'mlp.up_proj.weight' -> ('mlp', 'up_proj'),
    'input_layernorm.weight' -> ('', 'input_layernorm') (a field of LayerWeights itself),
    'linear_attn.A_log' -> ('linear_attn', 'A_log') (a bare parameter, BARE_PARAMETERS),
    'mlp.experts.down_proj' -> ('mlp.experts', 'down_proj') (BARE_GROUPS),
    'mlp.shared_expert.up_proj.weight' -> ('mlp.shared_expert', 'up_proj').
    """
    *group, last = name.split(".")
    if last in BARE_PARAMETERS or ".".join(group) in BARE_GROUPS:
        return ".".join(group), last
    *group, module = group
    return ".".join(group), module + ("_bias" if last == "bias" else "")


def _tensor_name(group: str, field: str) -> str:
    """The inverse of _field: ('self_attn', 'q_proj_bias') -> 'self_attn.q_proj.bias'."""
    prefix = group + "." if group else ""
    if field in BARE_PARAMETERS or group in BARE_GROUPS:
        return prefix + field
    if field.endswith("_bias"):
        return prefix + field.removesuffix("_bias") + ".bias"
    return prefix + field + ".weight"

