"""The model configuration: config.json of a Qwen2 / Qwen2.5 / Qwen3 dense, Qwen3.5 hybrid or Qwen MoE checkpoint,
read into one dataclass.

Two layouts of config.json exist in the wild, and both must give the same numbers:

* transformers 4.x (what the Hub checkpoints ship): top-level ``rope_theta``, ``rope_scaling`` (null, or a
  dict whose kind is under ``type`` or ``rope_type``), ``torch_dtype``;
* transformers 5.x (what ``save_pretrained`` writes today): ``rope_parameters`` holding ``rope_theta`` and
  ``rope_type``, ``dtype``, and an explicit ``layer_types`` list.

Trap: a v5 file has *no* top-level ``rope_theta``. Code that reads ``cfg.get("rope_theta", 10000)`` silently
runs a Qwen model (theta 1e6) with theta 1e4. We look inside ``rope_parameters`` first.

Every field is read through ``FieldReader`` (fields.py), which checks its type and range as the file is
read: a config is untrusted input, and a size used before it is checked (10 million layers), an integer
that overflows later (a sliding window of 2**63) or a RoPE factor that makes every logit NaN must fail here,
naming the field. The RoPE frequencies are computed once at the end, so parameters whose math fails (a
zero original_max_position_embeddings) fail here too, not at the first forward. The sizes are compared
with the weights (loading.py) before anything is built from them.

Qwen3.5 (``parse_qwen35_config``, below) adds a third shape: the Hub ships a *multimodal* config
(``model_type: "qwen3_5"``) whose language model sits under ``text_config`` (``"qwen3_5_text"``), next to
a ``vision_config`` we never read. Its fields go through the same FieldReader checks.

The mixtures of experts (``_parse_moe``) add their routing fields to either parser: Qwen3-MoE
(``qwen3_moe``) is Qwen3 attention with MoE feed-forward layers; Qwen3-Next (``qwen3_next``) and Qwen3.5-MoE
(``qwen3_5_moe`` wrapper, ``qwen3_5_moe_text``) are hybrids with MoE layers and a shared expert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .fields import FLOAT32_TINY, REQUIRED as _REQUIRED, FieldReader, show, token_id_list
from .jsonfile import read_json_object
from .paths import checkpoint_file, user_path
from .rope_config import RopeConfig
from ..model.rope import rope_frequencies

SUPPORTED_MODEL_TYPES = ("qwen2", "qwen3", "qwen3_5", "qwen3_5_text", "qwen3_moe", "qwen3_next", "qwen3_5_moe",
                         "qwen3_5_moe_text")
# Gated DeltaNet + gated attention: Qwen3.5 (the multimodal wrapper and its language model), Qwen3-Next, Qwen3.5-MoE
HYBRID_MODEL_TYPES = ("qwen3_5", "qwen3_5_text", "qwen3_next", "qwen3_5_moe", "qwen3_5_moe_text")
MOE_MODEL_TYPES = ("qwen3_moe", "qwen3_next", "qwen3_5_moe", "qwen3_5_moe_text")  # mixtures of experts
WRAPPERS = {"qwen3_5": "qwen3_5_text", "qwen3_5_moe": "qwen3_5_moe_text"}  # multimodal type -> its text_config's
MAX_EXPERTS = 1 << 16  # checked before anything per expert is built; the weights then fix the real count
LAYER_TYPES_HYBRID = ("linear_attention", "full_attention")
ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "llama3")
MAX_LAYERS = 4096  # checked before the per-layer list is built; the weights then fix the real count
MAX_ATTENTION_SCALING = 100.0  # YaRN's cos/sin factor: about 1 to 2 in practice; far larger overflows scores

_FieldReader = FieldReader  # the name this module used before fields.py existed


@dataclass(frozen=True)
class QwenConfig:
    """Everything the forward pass needs to know, with the names config.json uses.

    Legend of dimension names used in every shape comment of minillm:
      B batch, T new tokens in this call, S key positions (cached + new), D hidden_size,
      H query heads, K key/value heads, Dh head_dim, F intermediate_size (MLP width), V vocab_size, L layers;
      Qwen3.5's linear-attention layers: Hk / Hv key / value heads, Dk / Dv their head dims, C conv channels,
      W conv kernel width, R rotary dims; mixtures of experts: N tokens (B*T, flattened), E experts,
      k experts per token, Fe expert width, Fs shared expert width.
    """

    model_type: str  # "qwen2", "qwen3", "qwen3_5_text", "qwen3_moe", "qwen3_next" or "qwen3_5_moe_text"
    vocab_size: int  # V: rows of the embedding, columns of the logits (larger than the tokenizer)
    hidden_size: int  # D
    intermediate_size: int  # F (MoE models: the dense layers' width; 0 when no layer is dense)
    num_hidden_layers: int  # L
    num_attention_heads: int  # H
    num_key_value_heads: int  # K; H % K == 0, each KV head serves H // K query heads
    head_dim: int  # Dh; Qwen3 states it (H*Dh may differ from D), Qwen2 derives it as D // H
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 32768
    tie_word_embeddings: bool = False
    qkv_bias: bool = True  # Qwen2: always; Qwen3: config.attention_bias
    o_proj_bias: bool = False  # Qwen2: never; Qwen3: config.attention_bias
    qk_norm: bool = False  # Qwen3 only: RMSNorm over Dh on each q and k head, before RoPE
    rope: RopeConfig = field(default_factory=RopeConfig)
    sliding_window: int | None = None  # None unless use_sliding_window is true
    layer_types: tuple[str, ...] = ()  # per layer: "full_attention" or "sliding_attention"
    bos_token_id: int | None = None  # informative only: Qwen never prepends a BOS token
    eos_token_ids: tuple[int, ...] = ()
    dtype: str | None = None  # the dtype the checkpoint was saved in ("bfloat16"); we always compute in float32
    # Qwen3.5 (hybrid) only; the defaults describe the dense models (parse_qwen35_config sets them).
    partial_rotary_factor: float = 1.0  # RoPE rotates only the first R = int(Dh * factor) dims of each head
    zero_centred_norms: bool = False  # RMSNorm gains stored as offsets around 0: y = x_hat * (1 + w)
    attn_output_gate: bool = False  # q_proj also yields a per-channel sigmoid gate on the attention output
    linear_num_key_heads: int = 0  # Hk
    linear_num_value_heads: int = 0  # Hv; a multiple of Hk
    linear_key_head_dim: int = 0  # Dk
    linear_value_head_dim: int = 0  # Dv
    linear_conv_kernel_dim: int = 0  # W: the causal conv sees the current token and the W - 1 before it
    # Mixtures of experts (Qwen3-MoE, Qwen3-Next, Qwen3.5-MoE); num_experts = 0 for the dense models.
    num_experts: int = 0  # E: small SwiGLU MLPs per MoE layer ("num_experts", or "num_local_experts")
    num_experts_per_tok: int = 0  # k: how many of them each token is routed to, 1 <= k <= E
    norm_topk_prob: bool = False  # rescale the k chosen router probabilities to sum to 1
    moe_intermediate_size: int = 0  # Fe: the width of each expert
    shared_expert_intermediate_size: int = 0  # Fs: one always-on expert behind a sigmoid gate; 0 = none
    decoder_sparse_step: int = 1  # layer i is MoE when (i + 1) % step == 0 ...
    mlp_only_layers: tuple[int, ...] = ()  # ... and i is not listed here (those keep a dense MLP of width F)

    @property
    def n_rep(self) -> int:
        """How many query heads share one key/value head (GQA group size)."""
        return self.num_attention_heads // self.num_key_value_heads

    @property
    def is_hybrid(self) -> bool:
        """Qwen3.5 / Qwen3-Next: layers of linear attention (Gated DeltaNet) and of *gated* softmax attention.

        Decided by model_type, not by the presence of a linear layer: a config whose layers are all full
        attention is still Qwen3.5 (gated q_proj [2*H*Dh, D], partial RoPE, (1 + w) norms), not Qwen3."""
        return self.model_type in HYBRID_MODEL_TYPES

    def is_linear_attention(self, layer_idx: int) -> bool:
        return self.layer_types[layer_idx] == "linear_attention"

    def is_moe_layer(self, layer_idx: int) -> bool:
        """transformers' rule (Qwen3-MoE, Qwen3-Next): a mixture of experts unless listed in mlp_only_layers,
        every decoder_sparse_step-th layer. Qwen3.5-MoE has neither field: every layer is MoE."""
        return (self.num_experts > 0 and layer_idx not in self.mlp_only_layers
                and (layer_idx + 1) % self.decoder_sparse_step == 0)

    @property
    def is_moe(self) -> bool:
        return any(map(self.is_moe_layer, range(self.num_hidden_layers)))

    @property
    def grouped_linear_projections(self) -> bool:
        """Qwen3-Next stores its linear-attention projections as in_proj_qkvz / in_proj_ba, grouped per key head
        (gated_deltanet.py), where Qwen3.5 has four separate in_proj_qkv / _z / _b / _a."""
        return self.model_type == "qwen3_next"

    @property
    def rotary_dim(self) -> int:
        """R: how many leading dims of each query / key head RoPE rotates (all Dh for the dense models)."""
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def linear_conv_channels(self) -> int:
        """C = 2 Hk Dk + Hv Dv: the conv runs over the concatenated [q | k | v] projections."""
        return 2 * self.linear_num_key_heads * self.linear_key_head_dim + \
            self.linear_num_value_heads * self.linear_value_head_dim

    def uses_sliding_window(self, layer_idx: int) -> bool:
        """transformers' rule: a window mask only where the window is on *and* the layer type says so."""
        return self.sliding_window is not None and self.layer_types[layer_idx] == "sliding_attention"


# ----------------------------------------------------------------------------------------------------------
# reading config.json
# ----------------------------------------------------------------------------------------------------------


def load_config(path: str | Path) -> QwenConfig:
    """Read ``config.json`` from a checkpoint directory (or the file itself) into a QwenConfig."""
    path = user_path(path, ConfigError, "checkpoint directory or config.json")
    try:
        is_dir = path.is_dir()
    except (OSError, ValueError) as e:
        raise ConfigError(f"{show(str(path))}: not a usable path ({getattr(e, 'strerror', None) or e})") from None
    if is_dir:  # a checkpoint's config.json: the checkpoint file rule applies (paths.py)
        file = checkpoint_file(path, "config.json", ConfigError)
        shown = path / "config.json"
    else:  # a config file the user named explicitly
        file = path if path.is_file() else None
        shown = path
    if file is None:
        raise ConfigError(f"{show(str(shown))}: no config.json found (expected a Hugging Face checkpoint "
                          f"directory)")
    return parse_config(read_json_object(file, ConfigError), source=str(shown))


def parse_config(raw: dict, source: str = "config.json") -> QwenConfig:
    """Turn the dict of a config.json (either layout) into a validated QwenConfig."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a JSON object (a dict), found {type(raw).__name__}")
    get = FieldReader(raw, source)

    model_type = get("model_type", str)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"{source}: model_type {show(model_type)} is not supported; minillm implements the dense Qwen "
            f"models, Qwen3.5 and the Qwen mixtures of experts: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    if model_type in HYBRID_MODEL_TYPES:
        return parse_qwen35_config(raw, source)
    moe = model_type == "qwen3_moe"  # Qwen3 attention, MoE feed-forward layers (Qwen3-30B-A3B, 235B-A22B)
    hidden_act = get("hidden_act", str, "silu")
    if hidden_act != "silu":
        raise ConfigError(f"{source}: hidden_act: expected 'silu' (SwiGLU), found {show(hidden_act)}")

    # Sizes: positive, 32-bit; the layer count also bounded, since a list per layer is built below.
    hidden = get("hidden_size", int, low=1)
    heads = get("num_attention_heads", int, low=1)
    kv_heads = get("num_key_value_heads", int, heads, low=1)
    layers = get("num_hidden_layers", int, low=1, high=MAX_LAYERS)
    if heads % kv_heads:
        raise ConfigError(
            f"{source}: num_attention_heads ({heads}) must be divisible by num_key_value_heads ({kv_heads}) "
            f"for grouped-query attention"
        )

    # Qwen2 has no head_dim field (it is D // H); Qwen3 states it, and H * Dh may differ from D.
    head_dim = get("head_dim", int, None, low=1)
    if head_dim is None:
        if hidden % heads:
            raise ConfigError(f"{source}: hidden_size ({hidden}) is not divisible by num_attention_heads ({heads})"
                              f" and no head_dim is given")
        head_dim = hidden // heads
    if head_dim % 2:
        raise ConfigError(f"{source}: head_dim: expected a positive even integer (RoPE rotates pairs), "
                          f"found {head_dim}")

    # Biases. Qwen2: q/k/v always have one, o_proj never (there is no config flag).
    # Qwen3: attention_bias switches all four, o_proj included.
    if model_type == "qwen2":
        qkv_bias, o_proj_bias, qk_norm = True, False, False
    else:
        attention_bias = get("attention_bias", bool, False)
        qkv_bias, o_proj_bias, qk_norm = attention_bias, attention_bias, True

    # Sliding window: transformers forces sliding_window to None when use_sliding_window is false.
    use_sliding_window = get("use_sliding_window", bool, False)
    if moe and use_sliding_window:  # Qwen3-MoE would slide on every layer, ignoring max_window_layers
        raise ConfigError(f"{source}: use_sliding_window: true is not supported for qwen3_moe (no released "
                          f"checkpoint uses it)")
    sliding_window = get("sliding_window", int, None, low=1) if use_sliding_window else None
    max_window_layers = get("max_window_layers", int, 28)
    layer_types = get("layer_types", list, None) if not moe else None  # Qwen3-MoE has no layer_types
    if layer_types is None:  # v4 layout: derive, as transformers does
        layer_types = [
            "sliding_attention" if sliding_window is not None and i >= max_window_layers else "full_attention"
            for i in range(layers)
        ]
    if len(layer_types) != layers or any(t not in ("full_attention", "sliding_attention") for t in layer_types):
        raise ConfigError(
            f"{source}: layer_types: expected {layers} entries of 'full_attention'/'sliding_attention', "
            f"found {show(layer_types)}"
        )

    max_position_embeddings = get("max_position_embeddings", int, 32768, low=1)
    cfg = QwenConfig(
        model_type=model_type,
        vocab_size=get("vocab_size", int, 151936 if moe else _REQUIRED, low=1),
        hidden_size=hidden,
        intermediate_size=get("intermediate_size", int, 6144 if moe else _REQUIRED, low=1),
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        # added to a mean of squares in float32: below float32's smallest normal number it would vanish
        rms_norm_eps=get("rms_norm_eps", float, 1e-6, low=FLOAT32_TINY, high=1.0),
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=get("tie_word_embeddings", bool, False),
        qkv_bias=qkv_bias,
        o_proj_bias=o_proj_bias,
        qk_norm=qk_norm,
        rope=_parse_rope(raw, get, source, head_dim, max_position_embeddings),
        sliding_window=sliding_window,
        layer_types=tuple(layer_types),
        bos_token_id=get("bos_token_id", int, None),
        eos_token_ids=tuple(token_id_list(raw.get("eos_token_id"), "eos_token_id", source)),
        dtype=get("dtype", str, None) or get("torch_dtype", str, None),
        **(_parse_moe(get, source, model_type) if moe else {}),
    )
    return cfg


def _parse_rope(raw: dict, get: FieldReader, source: str, head_dim: int = 2,
                max_position_embeddings: int | None = None) -> RopeConfig:
    """RoPE settings from either layout: rope_parameters (v5) or rope_scaling + rope_theta (v4).

    As transformers 5 reads a file: ``rope_scaling`` if present (a v4 rope_scaling beside v5 rope_parameters is
    converted, the other ignored), else ``rope_parameters``; theta inside it, else the top-level ``rope_theta``,
    else 10000; the kind under ``rope_type`` or the legacy ``type``.
    """
    rp = raw.get("rope_scaling") or raw.get("rope_parameters") or {}
    where = "rope_scaling" if raw.get("rope_scaling") else "rope_parameters"
    if not isinstance(rp, dict):
        raise ConfigError(f"{source}: {where}: expected an object or null, found {type(rp).__name__}")
    if rp and all(isinstance(v, dict) for v in rp.values()):
        raise ConfigError(f"{source}: {where}: RoPE parameters nested per layer type ({show(sorted(rp))}) are not "
                          f"supported by Qwen dense models")
    sub = FieldReader(rp, f"{source}: {where}")
    rope_type = sub("rope_type", str, None) or sub("type", str, "default")
    if rope_type not in ROPE_TYPES:
        raise ConfigError(f"{source}: {where}.rope_type: unknown RoPE type {show(rope_type)}; "
                          f"supported: {', '.join(ROPE_TYPES)}")
    theta = sub("rope_theta", float, None, above=1)
    if theta is None:
        theta = get("rope_theta", float, 10000.0, above=1)

    # transformers requires factor >= 1 for every scaled type ("must be a float >= 1"): it slows rotations
    needs_factor = rope_type != "default"
    factor = sub("factor", float, _REQUIRED if needs_factor and rope_type != "yarn" else None, low=1)
    max_pos = get("max_position_embeddings", int, 32768, low=1) if max_position_embeddings is None \
        else max_position_embeddings
    original = sub("original_max_position_embeddings", int, None, low=1)
    if rope_type in ("yarn", "llama3"):
        # transformers 5: a top-level original_max_position_embeddings wins (kept for Phi-3-style files), then
        # the one inside the RoPE parameters, then max_position_embeddings
        original = get("original_max_position_embeddings", int, None, low=1) or original or max_pos
    if rope_type == "yarn" and factor is None:
        factor = max_pos / original  # transformers: factor defaults to the context-length ratio
        if factor < 1:
            raise ConfigError(f"{source}: {where}: no factor, and the default max_position_embeddings / "
                              f"original_max_position_embeddings = {factor:g} is below 1")
    if factor is None:
        factor = 1.0
    if rope_type == "dynamic" and head_dim <= 2:
        raise ConfigError(f"{source}: {where}: dynamic RoPE needs head_dim > 2 (its base grows as "
                          f"Dh / (Dh - 2)), found head_dim {head_dim}")
    low_freq = sub("low_freq_factor", float, _REQUIRED if rope_type == "llama3" else 1.0, above=0)
    high_freq = sub("high_freq_factor", float, _REQUIRED if rope_type == "llama3" else 4.0, above=0)
    if rope_type == "llama3" and not high_freq > low_freq:
        raise ConfigError(f"{source}: {where}: llama3 RoPE needs high_freq_factor > low_freq_factor (it blends "
                          f"between the two wavelengths), found {high_freq:g} and {low_freq:g}")

    rope = RopeConfig(
        rope_type=rope_type,
        theta=theta,
        factor=factor,
        original_max_position_embeddings=original,
        attention_factor=sub("attention_factor", float, None, above=0, high=MAX_ATTENTION_SCALING),
        beta_fast=sub("beta_fast", float, 32.0, above=0),
        beta_slow=sub("beta_slow", float, 1.0, above=0),
        mscale=sub("mscale", float, None),
        mscale_all_dim=sub("mscale_all_dim", float, None),
        truncate=sub("truncate", bool, True),
        low_freq_factor=low_freq,
        high_freq_factor=high_freq,
    )
    _check_rope_math(rope, head_dim, max_pos, f"{source}: {where}")
    return rope


def _check_rope_math(rope: RopeConfig, head_dim: int, max_pos: int, where: str) -> None:
    """Compute the frequencies once, as the forward pass will: a combination whose math fails (a division by
    zero, a log of zero, an overflow to inf) or gives unusable numbers is refused now, naming the block."""
    try:
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            inv_freq, scaling = rope_frequencies(head_dim, rope, max_pos)
    except (ArithmeticError, ValueError) as e:  # ZeroDivisionError, OverflowError, FloatingPointError, math domain
        raise ConfigError(f"{where}: these {rope.rope_type} RoPE parameters do not give usable frequencies "
                          f"({type(e).__name__}: {e})") from None
    if not (np.isfinite(inv_freq).all() and (inv_freq >= 0).all()):
        raise ConfigError(f"{where}: these {rope.rope_type} RoPE parameters give non-finite or negative "
                          f"frequencies")
    if not (math.isfinite(scaling) and 0 < scaling <= MAX_ATTENTION_SCALING):
        raise ConfigError(f"{where}: the attention scaling these {rope.rope_type} RoPE parameters give "
                          f"(mscale / mscale_all_dim / attention_factor) is {scaling:g}; expected a number in "
                          f"(0, {MAX_ATTENTION_SCALING:g}]")


# ----------------------------------------------------------------------------------------------------------
# Qwen3.5: the hybrid (Gated DeltaNet + gated attention) models
# ----------------------------------------------------------------------------------------------------------


def parse_qwen35_config(raw: dict, source: str = "config.json") -> QwenConfig:
    """A hybrid config.json: Qwen3.5, Qwen3.5-MoE or Qwen3-Next, wrapped or text-only.

    * ``model_type: "qwen3_5"`` / ``"qwen3_5_moe"`` (what the Hub ships): the language model is ``text_config``
      (``"qwen3_5_text"`` / ``"qwen3_5_moe_text"``); ``vision_config`` and the image / video token ids are not
      read (minillm is text only). The head is tied by the *top-level* ``tie_word_embeddings``, as the
      multimodal class that wrote the checkpoint does.
    * ``model_type: "qwen3_5_text"``, ``"qwen3_5_moe_text"`` or ``"qwen3_next"``: the same fields at the top level.

    Missing fields take transformers' defaults (``Qwen3_5TextConfig``, ``Qwen3_5MoeTextConfig``,
    ``Qwen3NextConfig``). Fields transformers never reads are ignored here too, on purpose: ``attn_output_gate``
    (the gate is always on, even if a file says false), ``mamba_ssm_dtype`` (the delta rule always runs in
    float32), ``mtp_*`` (the multi-token-prediction head is not run), ``output_gate_type``, ``mrope_section`` /
    ``mrope_interleaved`` (for text, M-RoPE is plain RoPE), ``full_attention_interval`` when ``layer_types`` is
    given; for Qwen3.5 and Qwen3.5-MoE ``mlp_only_layers``, ``decoder_sparse_step`` and ``norm_topk_prob``
    (Qwen3.5-MoE: every layer is MoE and always renormalises), and ``intermediate_size`` for Qwen3.5-MoE.
    """
    get = FieldReader(raw, source)
    model_type = get("model_type", str)
    if model_type in WRAPPERS:
        text_type = WRAPPERS[model_type]
        text = raw.get("text_config")
        if not isinstance(text, dict):
            raise ConfigError(f"{source}: text_config: a {model_type} (multimodal) config must hold the language "
                              f"model's config as an object, found {type(text).__name__}")
        text_model_type = FieldReader(text, f"{source}: text_config")("model_type", str, text_type)
        if text_model_type != text_type:
            raise ConfigError(f"{source}: text_config.model_type: expected {text_type!r}, "
                              f"found {show(text_model_type)}")
        cfg = parse_qwen35_config({**text, "model_type": text_type}, f"{source}: text_config")
        tie = get("tie_word_embeddings", bool, cfg.tie_word_embeddings)
        dtype = cfg.dtype or get("dtype", str, None) or get("torch_dtype", str, None)
        return replace(cfg, tie_word_embeddings=tie, dtype=dtype)
    next_, moe_only = model_type == "qwen3_next", model_type == "qwen3_5_moe_text"

    hidden_act = get("hidden_act", str, "silu")
    if hidden_act != "silu":
        raise ConfigError(f"{source}: hidden_act: expected 'silu' (SwiGLU, the conv and the output gate), "
                          f"found {show(hidden_act)}")
    if get("attention_bias", bool, False):
        raise ConfigError(f"{source}: attention_bias: true is not supported for {model_type} (no released "
                          f"checkpoint uses it)")

    # Sizes: positive, 32-bit (FieldReader); the layer count also bounded, since a list per layer is built below.
    # Defaults are transformers' (Qwen3_5TextConfig, Qwen3NextConfig, Qwen3_5MoeTextConfig). Qwen3.5-MoE has no
    # dense MLP, so no intermediate_size (0 here); Qwen3-Next's is only used by layers in mlp_only_layers.
    sizes = {name: get(name, int, default, low=1, high=high) for name, default, high in (
        ("vocab_size", 151936 if next_ else 248320, None), ("hidden_size", _REQUIRED, None),
        ("num_hidden_layers", _REQUIRED, MAX_LAYERS), ("num_attention_heads", _REQUIRED, None),
        ("num_key_value_heads", 4 if model_type == "qwen3_5_text" else 2, None), ("head_dim", 256, None),
        ("linear_num_key_heads", 16, None),
        ("linear_num_value_heads", 32, None), ("linear_key_head_dim", 128, None),
        ("linear_value_head_dim", 128, None), ("linear_conv_kernel_dim", 4, None),
        ("max_position_embeddings", 32768, None))}
    sizes["intermediate_size"] = 0 if moe_only else get("intermediate_size", int, 5632 if next_ else _REQUIRED, low=1)
    heads, kv_heads = sizes["num_attention_heads"], sizes["num_key_value_heads"]
    if heads % kv_heads:
        raise ConfigError(f"{source}: num_attention_heads ({heads}) must be divisible by num_key_value_heads "
                          f"({kv_heads}) for grouped-query attention")
    key_heads, value_heads = sizes["linear_num_key_heads"], sizes["linear_num_value_heads"]
    if value_heads % key_heads:
        raise ConfigError(f"{source}: linear_num_value_heads ({value_heads}) must be a multiple of "
                          f"linear_num_key_heads ({key_heads}): each key head serves Hv / Hk consecutive value heads")

    layers = sizes["num_hidden_layers"]
    layer_types = get("layer_types", list, None)
    if layer_types is None:  # transformers' rule: every full_attention_interval-th layer is full attention
        interval = get("full_attention_interval", int, 4, low=1)
        layer_types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(layers)]
    if len(layer_types) != layers:
        raise ConfigError(f"{source}: layer_types: expected {layers} entries (num_hidden_layers), "
                          f"found {len(layer_types)}")
    for i, kind in enumerate(layer_types):
        if kind not in LAYER_TYPES_HYBRID:
            raise ConfigError(f"{source}: layer_types[{i}]: unknown layer type {show(kind)}; hybrid layers are "
                              f"{' or '.join(map(repr, LAYER_TYPES_HYBRID))}")

    rope, partial = _parse_qwen35_rope(raw, get, source, sizes["head_dim"], sizes["max_position_embeddings"])
    return QwenConfig(
        model_type=model_type,
        vocab_size=sizes["vocab_size"],
        hidden_size=sizes["hidden_size"],
        intermediate_size=sizes["intermediate_size"],
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=sizes["head_dim"],
        # added to a mean of squares in float32: below float32's smallest normal number it would vanish
        rms_norm_eps=get("rms_norm_eps", float, 1e-6, low=FLOAT32_TINY, high=1.0),
        max_position_embeddings=sizes["max_position_embeddings"],
        tie_word_embeddings=get("tie_word_embeddings", bool, False),
        qkv_bias=False,
        o_proj_bias=False,
        qk_norm=True,
        rope=rope,
        layer_types=tuple(layer_types),
        bos_token_id=get("bos_token_id", int, None),
        eos_token_ids=tuple(token_id_list(raw.get("eos_token_id"), "eos_token_id", source)),
        dtype=get("dtype", str, None) or get("torch_dtype", str, None),
        partial_rotary_factor=partial,
        zero_centred_norms=True,
        attn_output_gate=True,  # always on in transformers, whatever attn_output_gate says (pitfall 21)
        linear_num_key_heads=key_heads,
        linear_num_value_heads=value_heads,
        linear_key_head_dim=sizes["linear_key_head_dim"],
        linear_value_head_dim=sizes["linear_value_head_dim"],
        linear_conv_kernel_dim=sizes["linear_conv_kernel_dim"],
        **(_parse_moe(get, source, model_type) if model_type in MOE_MODEL_TYPES else {}),
    )


# ----------------------------------------------------------------------------------------------------------
# Mixtures of experts: Qwen3-MoE, Qwen3-Next, Qwen3.5-MoE
# ----------------------------------------------------------------------------------------------------------

# transformers' defaults per family: num_experts, num_experts_per_tok, norm_topk_prob, moe_intermediate_size,
# shared_expert_intermediate_size (0: Qwen3-MoE has no shared expert)
MOE_DEFAULTS = {"qwen3_moe": (128, 8, False, 768, 0), "qwen3_next": (512, 10, True, 512, 512),
                "qwen3_5_moe_text": (256, 8, True, 512, 512)}


def _parse_moe(get: FieldReader, source: str, model_type: str) -> dict:
    """The routing fields of a mixture of experts, as keyword arguments of QwenConfig.

    * ``num_experts``: transformers 5 *saves* Qwen3-MoE configs as ``num_local_experts`` (an attribute map),
      while the Hub files say ``num_experts``; both are read, and must agree when both are given.
    * ``norm_topk_prob`` defaults to false for Qwen3-MoE (every released config sets true) and true for
      Qwen3-Next; Qwen3.5-MoE has no such field and always renormalises.
    * ``mlp_only_layers`` / ``decoder_sparse_step`` choose the dense layers of Qwen3-MoE and Qwen3-Next;
      Qwen3.5-MoE ignores both (every layer is MoE).
    """
    n_experts, n_per_tok, norm, width, shared = MOE_DEFAULTS[model_type]
    qwen35 = model_type == "qwen3_5_moe_text"
    low = 1 if qwen35 else 0  # Qwen3-MoE / Qwen3-Next with 0 experts: every layer is a dense MLP
    given = {key: get(key, int, None, low=low, high=MAX_EXPERTS) for key in ("num_experts", "num_local_experts")}
    if None not in given.values() and given["num_experts"] != given["num_local_experts"]:
        raise ConfigError(f"{source}: num_experts ({given['num_experts']}) and num_local_experts "
                          f"({given['num_local_experts']}) are two names for the same field and disagree")
    experts = next((v for v in given.values() if v is not None), n_experts)
    per_token = get("num_experts_per_tok", int, n_per_tok, low=1)
    if experts and per_token > experts:
        raise ConfigError(f"{source}: num_experts_per_tok ({per_token}) must be at most num_experts ({experts}): "
                          f"each token is routed to that many different experts")
    fields = dict(num_experts=experts, num_experts_per_tok=per_token,
                  norm_topk_prob=True if qwen35 else get("norm_topk_prob", bool, norm),
                  moe_intermediate_size=get("moe_intermediate_size", int, width, low=1),
                  shared_expert_intermediate_size=0 if model_type == "qwen3_moe" else
                  get("shared_expert_intermediate_size", int, shared, low=1))
    if qwen35:
        return fields
    dense = get("mlp_only_layers", list, [])
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < MAX_LAYERS for i in dense):
        raise ConfigError(f"{source}: mlp_only_layers: expected a list of layer indices (integers >= 0), "
                          f"found {show(dense)}")
    return {**fields, "decoder_sparse_step": get("decoder_sparse_step", int, 1, low=1),
            "mlp_only_layers": tuple(sorted(set(dense)))}


def _parse_qwen35_rope(raw: dict, get: FieldReader, source: str, head_dim: int,
                       max_pos: int) -> tuple[RopeConfig, float]:
    """Theta and partial_rotary_factor: inside rope_parameters first, then top level, then 1e4 and 0.25.

    Only the default RoPE (with partial rotation) exists in the hybrid models; a scaling type is refused
    rather than silently computed differently. Fields are type and range checked (FieldReader) and the
    frequencies computed once, as for the dense models (``_check_rope_math``).
    """
    rp = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    where = "rope_parameters" if raw.get("rope_parameters") else "rope_scaling"
    if not isinstance(rp, dict):
        raise ConfigError(f"{source}: {where}: expected an object or null, found {type(rp).__name__}")
    sub = FieldReader(rp, f"{source}: {where}")
    rope_type = sub("rope_type", str, None) or sub("type", str, "default")
    if rope_type != "default":
        raise ConfigError(f"{source}: {where}.rope_type: {show(rope_type)} is not a RoPE type the hybrid Qwen3.5 "
                          f"models use; only 'default' (with partial_rotary_factor) is supported")
    theta = sub("rope_theta", float, None, above=1)
    if theta is None:
        theta = get("rope_theta", float, 10000.0, above=1)  # transformers' default when no theta is given anywhere
    partial = sub("partial_rotary_factor", float, None)
    if partial is None:
        partial = get("partial_rotary_factor", float, 0.25)
    rotary = int(head_dim * partial)
    if not 0 < partial <= 1 or rotary < 2 or rotary % 2:
        raise ConfigError(f"{source}: partial_rotary_factor: {partial:g} x head_dim {head_dim} = {rotary} rotary "
                          f"dims; expected a positive even number of dims (RoPE rotates pairs), at most head_dim")
    rope = RopeConfig(rope_type="default", theta=theta)
    _check_rope_math(rope, rotary, max_pos, f"{source}: {where}")
    return rope, partial


def _token_id_list(value, name: str, source: str) -> list[int]:
    """eos_token_id may be null, one id, or a list of ids (fields.token_id_list)."""
    return token_id_list(value, name, source)
