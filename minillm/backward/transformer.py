"""The whole model, trained: a forward pass that keeps what the backward needs, the backward, and
``loss_and_grads``, which returns the loss and one gradient per checkpoint tensor.

    forward                                            backward (in reverse)
    x_0     = embed_tokens[ids]                        d embed_tokens  += scatter-add of dx_0 (embedding.py)
    x_{i+1} = decoder_layer(x_i)     i = 0..L-1        dx_i, d layer i  = decoder_layer_backward(dx_{i+1})
    h       = RMSNorm(x_L; model.norm)                 dx_L, d norm     = rms_norm_backward(dh)
    logits  = h lm_head^T                              dh, d lm_head    = linear_backward(dlogits)
    loss    = cross_entropy(logits, labels)            dlogits          = cross_entropy_backward(...)

+--------------------------------------------------------------------------------------------------------+
| TIED EMBEDDINGS (tiny-qwen2, Qwen2.5-0.5B, Qwen3-0.6B): one matrix plays two roles, the embedding      |
| table and the LM head, so its gradient is the SUM of both: the scatter-add of dx_0 and dlogits^T h.    |
| There is then no 'lm_head.weight' gradient, as there is no such tensor in the checkpoint.              |
+--------------------------------------------------------------------------------------------------------+

Training has no padding and no KV cache: every row is a full sequence at positions 0..T-1 (pack or crop your
text to equal lengths; mark what should not be scored with -100 in the labels). Sliding-window layers and
every RoPE scaling are used exactly as in ``Model.forward``.

Every architecture minillm loads trains here: the hybrid models (Qwen3.5, Qwen3-Next, Qwen3.5-MoE) through
hybrid.py (Gated DeltaNet in its chunked form, gated attention, (1 + w) norms, also for the final norm), the
mixtures of experts through moe.py. With ``output_router_logits=True`` the loss adds transformers' router
load-balancing loss times ``router_aux_loss_coef`` (moe.py), and its gradient. The gradients are named as the
checkpoint names its tensors: a model loaded from the Hub's multimodal layout gets ``model.language_model.*``
names (its vision tower and MTP head are not part of minillm's model and are not trained).

LoRA (a model loaded with ``adapter=``, or given one by ``attach_lora``): the base weights are frozen, so no
base gradient is computed (neither the [V, D] head and embedding ones nor any projection's dW), and
``loss_and_grads`` returns the adapter's gradients under their names in adapter_model.safetensors.

Gradient checkpointing (``model_forward(..., checkpoint=True)``): keep only each layer's input x [B, T, D] and
recompute the layer's activations just before its backward. The activations then held at once are those of ONE
layer instead of L (at the price of a second forward, about a third more arithmetic); docs/FINETUNING.md has
the measured peaks.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np

from ..checkpoint.adapter import adapter_gradients
from ..checkpoint.weights import ModelWeights, named_tensors
from ..errors import InputError
from ..model.embedding import embed
from ..model.masks import causal_mask
from ..model.norm import rms_norm, zero_centred_rms_norm
from ..model.rope import rope_cos_sin
from ..model.fast_linear import fast_linear as linear  # y = x W^T + b (model/linear.py), at full speed
from ..model.transformer import Model, check_token_ids
from ..training.loss import check_labels, cross_entropy, cross_entropy_backward
from .block import LayerActivations, decoder_layer_backward, decoder_layer_forward
from .embedding import embed_backward
from .hybrid import HybridLayerActivations, hybrid_decoder_layer_backward, hybrid_decoder_layer_forward
from .linear import linear_backward
from .memory import check_activation_memory
from .moe import MoEActivations, load_balancing_loss
from .norm import rms_norm_backward, zero_centred_rms_norm_backward

ROUTER_AUX_LOSS_COEF = 0.001  # transformers' default router_aux_loss_coef (Qwen3-MoE, Qwen3-Next, Qwen3.5-MoE)


@dataclass
class ModelActivations:
    """Everything the backward of the whole model needs, kept by ``model_forward``."""

    ids: np.ndarray  # [B, T] int64, for the embedding's scatter-add
    cos: np.ndarray  # [1, T, Dh] RoPE at positions 0..T-1 (tiny; kept so the backward uses the same angles)
    sin: np.ndarray  # [1, T, Dh]
    layers: list  # L of them, LayerActivations (HybridLayerActivations); with checkpointing only each layer's x [B, T, D]
    x_last: np.ndarray  # [B, T, D] the last layer's output: the final norm's backward needs it
    h: np.ndarray  # [B, T, D] the final norm's output: the LM head's weight gradient needs it
    masks: list[np.ndarray] | None = None  # L x [1, 1, T, T] (shared arrays): kept to recompute a layer


def model_forward(model: Model, ids: np.ndarray, checkpoint: bool = False) -> tuple[np.ndarray, ModelActivations]:
    """Logits of every position and the activations for ``model_backward``.

    ids [B, T] int64 (already checked), positions 0..T-1, no padding -> logits [B, T, V], ModelActivations
    checkpoint: keep only each layer's input (gradient checkpointing, see the module docstring).
    """
    cfg, w = model.config, model.weights
    B, T = ids.shape
    inv_freq, scaling = model._rope_frequencies(T)  # [Dh/2]: the same (possibly scaled) RoPE as forward()
    cos, sin = rope_cos_sin(np.arange(T)[None], inv_freq, scaling)  # [1, T, Dh] each, shared by the rows
    full_mask = causal_mask(T, 0)  # [1, 1, T, T]
    window_mask = causal_mask(T, 0, None, cfg.sliding_window) if cfg.sliding_window else None  # [1, 1, T, T]

    x = embed(ids, w.embed_tokens)  # [B, T, D]
    layers, masks = [], []
    for i, layer in enumerate(w.layers):
        x_in = x  # [B, T, D]
        mask = window_mask if cfg.uses_sliding_window(i) else full_mask
        if cfg.is_hybrid:  # Qwen3.5, Qwen3-Next, Qwen3.5-MoE (cos/sin: the R rotated dims only)
            x, saved = hybrid_decoder_layer_forward(x, layer, cfg, cos, sin, full_mask)  # [B, T, D]
        else:
            x, saved = decoder_layer_forward(x, layer, cfg.num_attention_heads, cfg.num_key_value_heads,
                                             cfg.rms_norm_eps, cos, sin, mask, cfg.num_experts_per_tok,
                                             cfg.norm_topk_prob)  # [B, T, D]
        # checkpointing (dense, no MoE): `saved` is dropped here and recomputed from x_in just before the backward
        layers.append(x_in if checkpoint and not (cfg.is_hybrid or cfg.is_moe) else saved)
        masks.append(mask)
    final_norm = zero_centred_rms_norm if cfg.zero_centred_norms else rms_norm  # Qwen3.5: 1 + w
    h = final_norm(x, w.norm, cfg.rms_norm_eps)  # [B, T, D]
    logits = linear(h, w.lm_head)  # [B, T, D] -> [B, T, V]: lm_head(), as one [B*T, D] @ [D, V] product
    return logits, ModelActivations(ids=ids, cos=cos, sin=sin, layers=layers, x_last=x, h=h, masks=masks)


def model_backward(model: Model, dlogits: np.ndarray, saved: ModelActivations,
                   router_d_probs: np.ndarray | None = None, release: bool = False) -> ModelWeights:
    """The gradient of every weight, as a ModelWeights of gradients (same fields and shapes as model.weights).

    dlogits [B, T, V] -> ModelWeights; when the head is tied, its lm_head IS its embed_tokens (both uses summed).
    ``router_d_probs`` [E]: the load-balancing loss's gradient of every MoE layer's router probabilities.
    With an adapter (LoRA) the base is frozen: its projections, head and embedding get None, and each adapted
    projection a LoraGrads (backward/lora.py). ``release=True`` drops each layer's activations from ``saved``
    once its backward is done, so a full fine-tune's gradients replace them in memory instead of adding to them.
    """
    cfg, w = model.config, model.weights
    H, K, eps = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.rms_norm_eps
    frozen = getattr(model, "adapter", None) is not None
    dh, d_lm_head, _ = linear_backward(dlogits, saved.h, w.lm_head, frozen=frozen)  # [B, T, D], [V, D]
    norm_backward = zero_centred_rms_norm_backward if cfg.zero_centred_norms else rms_norm_backward
    dx, d_norm = norm_backward(dh, saved.x_last, w.norm, eps)  # [B, T, D], [D]
    d_layers = [None] * len(w.layers)
    for i in reversed(range(len(w.layers))):
        layer_saved = saved.layers[i]
        if cfg.is_hybrid:
            dx, d_layers[i] = hybrid_decoder_layer_backward(dx, layer_saved, w.layers[i], cfg, saved.cos,
                                                            saved.sin, router_d_probs)  # [B, T, D]
        else:
            if isinstance(layer_saved, np.ndarray):  # gradient checkpointing: recompute this layer's activations
                _, layer_saved = decoder_layer_forward(layer_saved, w.layers[i], H, K, eps, saved.cos, saved.sin,
                                                       saved.masks[i], cfg.num_experts_per_tok, cfg.norm_topk_prob)
            dx, d_layers[i] = decoder_layer_backward(dx, layer_saved, w.layers[i], H, K, eps, saved.cos,
                                                     saved.sin, cfg.norm_topk_prob, router_d_probs,
                                                     frozen)  # [B, T, D]
        del layer_saved  # a recomputed layer's activations go as soon as its backward is done
        if release:
            saved.layers[i] = None
    if frozen:
        return ModelWeights(embed_tokens=None, layers=d_layers, norm=d_norm, lm_head=None)
    d_embed = embed_backward(dx, saved.ids, w.embed_tokens)  # [V, D]
    tied = w.lm_head is w.embed_tokens
    if tied:
        d_embed += d_lm_head  # [V, D]: one matrix, two uses, one gradient
    return ModelWeights(embed_tokens=d_embed, layers=d_layers, norm=d_norm,
                        lm_head=d_embed if tied else d_lm_head)


def activation_bytes(saved) -> int:
    """Bytes kept for the backward: every array inside ``saved`` (dataclasses, lists and dicts are walked), each
    underlying buffer counted once (a view, e.g. one head split of a projection, costs nothing extra)."""
    buffers: dict[int, int] = {}

    def visit(obj) -> None:
        if isinstance(obj, np.ndarray):
            while isinstance(obj.base, np.ndarray):
                obj = obj.base
            buffers[id(obj)] = obj.nbytes
        elif isinstance(obj, (list, dict)):  # dict: the MoE's per-expert arrays
            for item in (obj.values() if isinstance(obj, dict) else obj):
                visit(item)
        elif hasattr(obj, "__dataclass_fields__"):
            for item in vars(obj).values():
                visit(item)

    visit(saved)
    return sum(buffers.values())


def minimum_activation_bytes(cfg, batch_size: int, seq_len: int, itemsize: int = 4) -> int:
    """What the backward strictly needs to find kept from the forward, in bytes: per token and layer,
    x (D), q and k as projected (H*Dh + K*Dh), v (K*Dh), the attention probabilities on and below the
    diagonal (H*(T+1)/2 on average: a causal mask makes the rest 0), the merged heads (H*Dh), h (D), gate and
    up (2F); the last layer's output (D); the ids
    and RoPE's cos/sin. Everything else the backward uses is an element-wise function of these (the normed
    copies, rotated q and k, silu(gate) * up) or is recomputed anyway (each norm's 1/rms)."""
    D, F, H, K, Dh = cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads, \
        cfg.head_dim
    per_layer = D + H * Dh + K * Dh + K * Dh + H * Dh + D + 2 * F  # floats per token
    probs = H * seq_len * (seq_len + 1) // 2  # floats per row of the batch, per layer
    floats = batch_size * (seq_len * (cfg.num_hidden_layers * per_layer + D) + cfg.num_hidden_layers * probs) \
        + 2 * seq_len * Dh
    return floats * itemsize + batch_size * seq_len * 8  # + the int64 ids


def moe_layers(saved: ModelActivations) -> list[MoEActivations]:
    """The kept routing of every mixture-of-experts layer, in layer order."""
    ffn = [layer.ffn if isinstance(layer, HybridLayerActivations) else layer.mlp for layer in saved.layers
           if not isinstance(layer, np.ndarray)]  # an array: a checkpointed dense layer (never a MoE one)
    return [f for f in ffn if isinstance(f, MoEActivations)]


def loss_and_grads(model: Model, ids, labels=None, output_router_logits: bool = False,
                   router_aux_loss_coef: float = ROUTER_AUX_LOSS_COEF,
                   checkpoint: bool = False) -> tuple[float, dict[str, np.ndarray]]:
    """The mean next-token cross-entropy and its gradient with respect to every checkpoint tensor.

        loss, grads = minillm.loss_and_grads(model, ids, labels=None)

    ids [T] or [B, T] int; labels like ids (default: the ids themselves), -100 = not scored. The logits at
    position t are scored against labels[..., t+1] (transformers' convention), and the loss is the mean over
    every scored target of the batch. Rows sit at positions 0..T-1 with no padding (see the module docstring).
    -> loss (float), grads {tensor name: array of that tensor's shape and the model's dtype (float32)}, with
    exactly the names of the checkpoint: a tied head has no 'lm_head.weight' key, and the embedding's
    gradient includes the head's; a model loaded from the Hub's multimodal layout gets model.language_model.*.
    ``output_router_logits`` (mixtures of experts): add router_aux_loss_coef times transformers' load-balancing
    loss (backward/moe.py), as transformers does when called with output_router_logits=True and labels.
    With an adapter (LoRA): the gradients of the adapter's tensors only, keyed by their names in
    adapter_model.safetensors (``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight``).
    ``checkpoint=True``: gradient checkpointing of the dense layers (the same numbers, less memory, more time).
    """
    cfg = model.config
    if not isinstance(output_router_logits, (bool, np.bool_)):
        raise InputError(f"output_router_logits must be True or False, found {type(output_router_logits).__name__} "
                         f"{output_router_logits!r}")
    coef = router_aux_loss_coef
    if isinstance(coef, (bool, np.bool_)) or not isinstance(coef, (int, float, np.number)) or \
            not (math.isfinite(coef) and coef >= 0):  # 'x' was a TypeError in the product, NaN a NaN loss
        raise InputError(f"router_aux_loss_coef must be a finite number >= 0, found {type(coef).__name__} {coef!r}")
    if isinstance(ids, np.ndarray) and ids.ndim in (1, 2):  # the size first: a [10**5, 10**5] view (np.broadcast_to)
        check_activation_memory(cfg, *(1,) * (2 - ids.ndim), *ids.shape)  # takes no memory, but minutes to scan
    ids = check_token_ids(ids, cfg.vocab_size)  # [T] or [B, T] int64
    labels = check_labels(ids if labels is None else labels, ids.shape, cfg.vocab_size)  # like ids, int64
    ids_BT, labels_BT = (ids[None], labels[None]) if ids.ndim == 1 else (ids, labels)  # [B, T] each
    T = ids_BT.shape[1]
    if T > cfg.max_position_embeddings:
        raise InputError(f"ids have {T} positions, more than the model's context: max_position_embeddings is "
                         f"{cfg.max_position_embeddings}")
    check_activation_memory(cfg, *ids_BT.shape)  # memory.py: refused before the forward allocates

    logits, saved = model_forward(model, ids_BT, checkpoint)  # [B, T, V]
    loss = cross_entropy(logits, labels_BT)
    dlogits = cross_entropy_backward(logits, labels_BT, in_place=True)  # [B, T, V], in the logits' own memory
    del logits  # the largest array of the step: its memory is the gradient's now
    router_d_probs = None
    routed = moe_layers(saved)
    if output_router_logits and routed:
        aux, d_probs = load_balancing_loss(routed, cfg.num_experts)  # float, [E]
        loss += router_aux_loss_coef * aux
        router_d_probs = np.asarray(router_aux_loss_coef, d_probs.dtype) * d_probs  # [E]
    if getattr(model, "adapter", None) is not None:
        return loss, adapter_gradients(model_backward(model, dlogits, saved, router_d_probs, release=True))
    grads = named_tensors(model_backward(model, dlogits, saved, router_d_probs, release=True))
    stored = getattr(model, "stored_name", None)  # loading.py: the name each tensor has in its checkpoint files
    return loss, grads if stored is None else {stored(name): g for name, g in grads.items()}
