"""Several projections of the same input as ONE product: machinery only, the math is linear.py.

A Qwen3.5 linear-attention layer multiplies its normed input by four matrices (in_proj_qkv, in_proj_z,
in_proj_b, in_proj_a: 6144, 2048, 16 and 16 rows in the 0.8B), a full-attention layer by three (q_proj with its
gate, k_proj, v_proj). At load (``fuse_hybrid_projections``, called by checkpoint/loading.py next to the dense
models' prefill.fuse_projections) each group's weights are laid out as consecutive rows of one array, and the
dataclass fields become views of those rows: the checkpoint's names, shapes and values are unchanged, no memory
is added, and a weight changed IN PLACE through its own name (an optimiser's ``p -= step``) is changed in the
fused array too, since it is the same memory. ``fused_projections`` then makes one product and cuts it into
the parts; ``projections``, which the model's modules call, makes the separate products when they are not fused.
For one token (decode) that is one matrix-vector product where there were four: the two 16-row products, too
small to stream, cost as much in call and thread hand-off as a 2048-row one.
The dense models' q/k/v and gate/up, fused at load by prefill.fuse_projections for a prompt's pass, go through
``projections`` too when a pass has few rows (decode, a short speculative pass: attention.py, mlp.py): one
product of [(H + 2K) Dh, D] and one of [2F, D] per layer instead of five (measured on the real 0.5B checkpoint,
interleaved: 1.01x decode, the same tokens; fewer calls and thread hand-offs, the same bytes read).

A field REPLACED by another array (a LoRA wrapper's base is still found; a copy, a new array from a resumed
run or a test) is no longer a view of the fused array: ``prefill.stacked`` then finds nothing and ``projections``
makes the separate products of the readable path, so nothing can go stale.
"""

from __future__ import annotations

import weakref

import numpy as np

from .fast_linear import fast_linear
from .lora import LoraWeight, lora_delta
from .prefill import _fuse_fields, fused_weight

LINEAR_ATTENTION_GROUP = ("in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a")  # GatedDeltaNetWeights, Qwen3.5
FULL_ATTENTION_GROUP = ("q_proj", "k_proj", "v_proj")  # GatedAttentionWeights


def fuse_hybrid_projections(layers) -> None:
    """Lay each hybrid layer's input projections out as consecutive rows of one array, in place.

    ``layers``: HybridLayerWeights (hybrid.py). Linear attention: in_proj_qkv | in_proj_z | in_proj_b |
    in_proj_a (Qwen3-Next's in_proj_qkvz / in_proj_ba stay two); gated attention: q_proj | k_proj | v_proj.
    Each field becomes a view of the fused array (same shape and values); other layers are left alone.
    """
    from .gated_attention import GatedAttentionWeights
    from .gated_deltanet import GatedDeltaNetWeights

    for layer in layers:
        linear_attn, self_attn = getattr(layer, "linear_attn", None), getattr(layer, "self_attn", None)
        if isinstance(linear_attn, GatedDeltaNetWeights) and linear_attn.in_proj_qkv is not None:
            _fuse_fields(linear_attn, LINEAR_ATTENTION_GROUP)
        if isinstance(self_attn, GatedAttentionWeights):
            _fuse_fields(self_attn, FULL_ATTENTION_GROUP)


def fused_projections(x: np.ndarray, *parts) -> tuple[np.ndarray, ...] | None:
    """(x W_1^T, x W_2^T, ...) in one product x [W_1; W_2; ...]^T, or None if the parts are not fused.

    x [..., in], parts [out_i, in] (arrays or LoraWeights of arrays laid out by fuse_hybrid_projections)
    -> one [..., out_i] view per part. The product is fast_linear's (the one-row path: OpenBLAS's gemv on a
    quiet machine, minillm's pool while another process keeps a core busy); a LoRA-wrapped part gets its
    low-rank term added after the base product, as fast_linear does for it alone.
    """
    fused = _fused_array(parts)  # [sum out_i, in] or None
    if fused is None:
        return None
    y = fast_linear(x, fused)  # [..., sum out_i]
    outs, start = [], 0
    for part in parts:
        rows = part.shape[0]
        out = y[..., start:start + rows]  # [..., out_i], a view
        outs.append(out + lora_delta(x, part) if isinstance(part, LoraWeight) else out)
        start += rows
    return tuple(outs)


def projections(x: np.ndarray, *parts, biases=None) -> tuple[np.ndarray, ...]:
    """x W_i^T (+ b_i) for every part: ONE product when the loader fused the parts (``fused_projections``),
    else one ``fast_linear`` each, the readable path's products.

    x [..., in], parts [out_i, in], biases (one per part, each [out_i] or None; default none) -> [..., out_i] each
    """
    biases = (None,) * len(parts) if biases is None else biases
    fused = fused_projections(x, *parts)  # [..., out_i] views of one product, or None
    if fused is None:
        return tuple(fast_linear(x, w, b) for w, b in zip(parts, biases))
    return tuple(y if b is None else y + b for y, b in zip(fused, biases))


_known: dict[int, tuple[tuple[weakref.ref, ...], np.ndarray]] = {}  # id(first part) -> (its parts, their fused array)


def _fused_array(parts) -> np.ndarray | None:
    """``prefill.fused_weight(*parts)``, remembered for parts that are plain arrays.

    Why: prefill.stacked reads each part's address (``.ctypes.data``, about 10 us each), 24 times per generated
    token of Qwen3.5-0.8B: 0.5 to 1.5 ms per token. Whether arrays are consecutive rows of one array cannot
    change while they exist (an array's memory and base are fixed), so the answer is kept for as long as
    these very objects exist: a hit is checked by identity (``is``) of every part, and a replaced field (a new
    object) is a miss, found unfused by stacked again. Weak references: the cache keeps no weight alive.
    """
    if not all(type(p) is np.ndarray for p in parts):  # LoRA-wrapped parts: found by their base, every time
        return fused_weight(*parts)
    key = id(parts[0])
    known = _known.get(key)
    if known is not None and len(known[0]) == len(parts) and all(r() is p for r, p in zip(known[0], parts)):
        return known[1]
    fused = fused_weight(*parts)
    if fused is not None:
        forget = lambda _, key=key: _known.pop(key, None)  # the first part is gone: so is the entry
        _known[key] = (tuple(weakref.ref(p, forget if i == 0 else None) for i, p in enumerate(parts)), fused)
    return fused
