"""Backward of the SwiGLU MLP.

Forward:  g = x Wg^T,  u = x Wu^T,  a = silu(g) * u,  out = a Wd^T
Backward (dO = dL/dout):
    da = dO Wd,        dWd = dO^T a
    du = da * silu(g)                      dg = silu_backward(da * u, g)
    dx = dg Wg + du Wu                     (x feeds both gate_proj and up_proj)
    dWg = dg^T x,      dWu = du^T x
``a`` is not kept: silu(g) is needed again for du anyway, and a = silu(g) * u is one multiplication.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.activations import silu
from ..model.fast_linear import fast_linear as linear  # y = x W^T + b (model/linear.py), at full speed
from ..model.mlp import MLPWeights
from .activations import silu_backward
from .linear import linear_backward


@dataclass
class MLPActivations:
    """What ``swiglu_mlp_forward`` keeps for ``swiglu_mlp_backward``."""

    x: np.ndarray  # [..., D]  the input (already normed): gate/up weight gradients need it
    gate: np.ndarray  # [..., F]  gate_proj(x), before silu
    up: np.ndarray  # [..., F]  up_proj(x)


def swiglu_mlp_forward(x: np.ndarray, w: MLPWeights) -> tuple[np.ndarray, MLPActivations]:
    """down_proj(silu(gate_proj x) * up_proj x), keeping x, gate and up.   x [..., D] -> [..., D], MLPActivations"""
    gate = linear(x, w.gate_proj)  # [..., D] -> [..., F]
    up = linear(x, w.up_proj)  # [..., D] -> [..., F]
    out = linear(silu(gate) * up, w.down_proj)  # [..., F] -> [..., D]
    return out, MLPActivations(x=x, gate=gate, up=up)


def swiglu_mlp_backward(dout: np.ndarray, saved: MLPActivations, w: MLPWeights,
                        frozen: bool = False) -> tuple[np.ndarray, MLPWeights]:
    """dx and an MLPWeights of gradients.   dout [..., D] -> dx [..., D], MLPWeights ([F, D], [F, D], [D, F])
    (frozen: None for every plain weight; see linear_backward)"""
    silu_gate = silu(saved.gate)  # [..., F] recomputed: cheaper than keeping it
    d_act, d_down_proj, _ = linear_backward(dout, silu_gate * saved.up, w.down_proj,
                                                   frozen=frozen)  # [..., F], [D, F]
    d_up = d_act * silu_gate  # [..., F]
    d_gate = silu_backward(d_act * saved.up, saved.gate)  # [..., F]
    dx_gate, d_gate_proj, _ = linear_backward(d_gate, saved.x, w.gate_proj, frozen=frozen)  # [..., D], [F, D]
    dx_up, d_up_proj, _ = linear_backward(d_up, saved.x, w.up_proj, frozen=frozen)  # [..., D], [F, D]
    return dx_gate + dx_up, MLPWeights(gate_proj=d_gate_proj, up_proj=d_up_proj, down_proj=d_down_proj)
