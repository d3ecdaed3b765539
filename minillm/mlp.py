"""The feed-forward block of every decoder layer: a SwiGLU MLP (Shazeer 2020), no biases.

    MLP(x) = down_proj( silu(gate_proj(x)) * up_proj(x) ),      silu(u) = u * sigmoid(u)

gate_proj and up_proj widen D to F; the gate decides, per unit, how much of the "up" signal passes;
down_proj brings F back to D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .linear import linear


@dataclass
class MLPWeights:
    """``model.layers.{i}.mlp.*.weight``, stored [out, in] as in the checkpoint."""

    gate_proj: np.ndarray  # [F, D]
    up_proj: np.ndarray  # [F, D]
    down_proj: np.ndarray  # [D, F]


def silu(u: np.ndarray) -> np.ndarray:
    """silu(u) = u * sigmoid(u) = u / (1 + exp(-u)).   [...] -> [...]"""
    # exp(-u) overflows to inf for u < -88 in float32; u / inf = -0.0, which is the right limit.
    with np.errstate(over="ignore"):
        denominator = np.exp(-u)  # [...]
    denominator += np.float32(1.0)  # in place: no second temporary array
    return u / denominator  # [...]


def swiglu_mlp(x: np.ndarray, w: MLPWeights) -> np.ndarray:
    """down_proj(silu(gate_proj x) * up_proj x).   x [..., D] -> [..., D]"""
    gate = linear(x, w.gate_proj)  # [..., D] -> [..., F]
    up = linear(x, w.up_proj)  # [..., D] -> [..., F]
    return linear(silu(gate) * up, w.down_proj)  # [..., F] -> [..., D]
