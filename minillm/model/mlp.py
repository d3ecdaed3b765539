"""The feed-forward block of every decoder layer: a SwiGLU MLP (Shazeer 2020), no biases.

    MLP(x) = down_proj( silu(gate_proj(x)) * up_proj(x) ),      silu(u) = u * sigmoid(u)

gate_proj and up_proj widen D to F; down_proj brings F back to D. In between, each of the F units
multiplies its "up" value by silu(gate value): an input-dependent scale, not a 0-to-1 valve. silu is
unbounded above (silu(u) ~ u for large u), near 0 for very negative u, and dips below zero in between
(its minimum is about -0.278, at u about -1.278), so a unit can pass its up value amplified, shrunk,
or with its sign flipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import silu
from .fast_linear import fast_linear as linear  # y = x W^T + b (linear.py), at full speed
from . import prefill  # a prompt's pass: gate and up as one product, silu * up in place
from .fused_linear import projections  # the same for a few rows (decode): one product, cut in two


@dataclass
class MLPWeights:
    """``model.layers.{i}.mlp.*.weight``, stored [out, in] as in the checkpoint."""

    gate_proj: np.ndarray  # [F, D]
    up_proj: np.ndarray  # [F, D]
    down_proj: np.ndarray  # [D, F]


def swiglu_mlp(x: np.ndarray, w: MLPWeights) -> np.ndarray:
    """down_proj(silu(gate_proj x) * up_proj x).   x [..., D] -> [..., D]"""
    gate_up_proj = prefill.fused_weight(w.gate_proj, w.up_proj) if prefill.many_rows(x) else None
    if gate_up_proj is not None:  # a prompt: the same, gate and up as one product (fused at load, prefill.py)
        return prefill.swiglu_fused(x, gate_up_proj, w)
    gate, up = projections(x, w.gate_proj, w.up_proj)  # [..., D] -> [..., F] each: one product if fused at load
    return linear(silu(gate) * up, w.down_proj)  # [..., F] -> [..., D]
