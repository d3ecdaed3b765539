"""Backward of RoPE: rotate the gradient back by the same angle (the transpose of the rotation).

Forward, for each pair (x1, x2) = (x[j], x[j + Dh/2]) with angle a (cos/sin may carry YaRN's scale s):
    y1 = x1 cos - x2 sin
    y2 = x2 cos + x1 sin          i.e.  y = x * cos + rotate_half(x) * sin

RoPE is linear in x, so dx is the transposed map applied to g = dL/dy:
    dx1 =  g1 cos + g2 sin
    dx2 = -g1 sin + g2 cos        i.e.  dx = g * cos - rotate_half(g * sin)

rotate_half is a 90-degree turn of every pair, and its transpose is minus itself; so the backward is the
rotation by -angle: the inverse rotation (times s^2 less than an inverse when YaRN scales cos and sin by s).
"""

from __future__ import annotations

import numpy as np

from ..model.rope import rotate_half


def apply_rope_backward(dy: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """dx of x * cos + rotate_half(x) * sin.   dy [B, heads, T, Dh], cos/sin [B or 1, T, Dh] -> [B, heads, T, Dh]"""
    cos, sin = cos[:, None], sin[:, None]  # [B, 1, T, Dh]: the same angles for every head, as in the forward
    return dy * cos - rotate_half(dy * sin)  # [B, heads, T, Dh]: rotated back by -angle
