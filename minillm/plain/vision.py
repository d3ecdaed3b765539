"""How an image becomes tokens: one image through Qwen3.5's vision encoder, on one screen.

The engine (minillm/vision/encoder.py) does the same for several images at once, with checks; this is the
idea. pixel_values come from the image processor (minillm/vision/processor.py): the image resized to a grid
of gh x gw patches of P x P pixels, each patch flattened (C * Tp * P * P numbers, Tp copies of a still image),
listed in 2 x 2 merge blocks. Legend: minillm/vision/__init__.py.
"""

import math

import numpy as np


def image_to_tokens(pixel_values, gh, gw, w, cfg):
    """pixel_values [gh*gw, C*Tp*P*P] -> one token per 2 x 2 patches [gh*gw/4, D]. w: VisionWeights."""
    m, Hv, Dhv, Q = cfg.spatial_merge_size, cfg.num_heads, cfg.head_dim, cfg.grid_side
    def ln(x, g, b):  # LayerNorm over the last axis, eps 1e-6
        return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6) * g + b
    # 1. Patch embedding: the Conv3d's kernel covers exactly one patch, so it is one matrix product.
    x = pixel_values @ w.patch_embed.reshape(len(w.patch_embed), -1).T + w.patch_embed_bias  # [N, Dv]
    # Each patch's (row, col) in the image, in the merge-block order of pixel_values.
    rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")  # [gh, gw] each
    rows = rows.reshape(gh // m, m, gw // m, m).transpose(0, 2, 1, 3).reshape(-1)  # [N]
    cols = cols.reshape(gh // m, m, gw // m, m).transpose(0, 2, 1, 3).reshape(-1)  # [N]
    # 2. Learned positions: the Q x Q table, read bilinearly at (row, col) scaled so corners meet corners.
    y = rows * (Q - 1) / max(gh - 1, 1)  # [N] where each patch falls on the table's rows
    z = cols * (Q - 1) / max(gw - 1, 1)  # [N] and columns
    y0, z0 = np.floor(y).astype(int), np.floor(z).astype(int)  # [N] the table entry above-left
    y1, z1 = np.minimum(y0 + 1, Q - 1), np.minimum(z0 + 1, Q - 1)  # [N] below-right
    dy, dz = (y - y0)[:, None], (z - z0)[:, None]  # [N, 1] distances from the above-left entry
    table = w.pos_embed.reshape(Q, Q, -1)  # [Q, Q, Dv]
    x = x + ((1 - dy) * (1 - dz) * table[y0, z0] + (1 - dy) * dz * table[y0, z1]
             + dy * (1 - dz) * table[y1, z0] + dy * dz * table[y1, z1])  # [N, Dv]
    # 3. 2-D RoPE: a quarter of the head's frequencies turn with the row, a quarter with the column, twice.
    inv_freq = 1.0 / cfg.rope_theta ** (np.arange(0, Dhv // 2, 2) / (Dhv // 2))  # [Dhv/4]
    angle = np.concatenate([rows[:, None] * inv_freq, cols[:, None] * inv_freq] * 2, axis=-1)  # [N, Dhv]
    rot = lambda v: v * np.cos(angle)[:, None] + np.concatenate(  # noqa: E731  rotate-half, per head
        [-v[..., Dhv // 2:], v[..., :Dhv // 2]], -1) * np.sin(angle)[:, None]  # [N, Hv, Dhv]
    # 4. The blocks: every patch attends to every patch of this image (no causal mask), then a tanh-GELU MLP.
    for b in w.blocks:
        q, k, v = (ln(x, b.norm1, b.norm1_bias) @ b.qkv.T + b.qkv_bias).reshape(len(x), 3, Hv, Dhv).transpose(
            1, 0, 2, 3)  # [N, Hv, Dhv] each
        scores = np.einsum("qhd,khd->hqk", rot(q), rot(k)) / math.sqrt(Dhv)  # [Hv, N, N]
        p = np.exp(scores - scores.max(-1, keepdims=True))  # [Hv, N, N]
        p = p / p.sum(-1, keepdims=True)  # [Hv, N, N]
        x = x + np.einsum("hqk,khd->qhd", p, v).reshape(len(x), -1) @ b.proj.T + b.proj_bias  # [N, Dv]
        h = ln(x, b.norm2, b.norm2_bias) @ b.linear_fc1.T + b.linear_fc1_bias  # [N, Fv]
        h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))  # [N, Fv] tanh GELU
        x = x + h @ b.linear_fc2.T + b.linear_fc2_bias  # [N, Dv]
    # 5. The merger: each 2 x 2 block's 4 patches (consecutive rows) side by side, then an erf-GELU MLP.
    h = ln(x, w.merger_norm, w.merger_norm_bias).reshape(len(x) // m ** 2, -1)  # [N/4, 4 Dv]
    h = h @ w.merger_fc1.T + w.merger_fc1_bias  # [N/4, 4 Dv]
    h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))  # [N/4, 4 Dv] exact (erf) GELU
    return h @ w.merger_fc2.T + w.merger_fc2_bias  # [N/4, D]: one token of the language model's width each
