"""The vision encoder (``model.visual.*``): pixel_values [N, C*Tp*P*P] -> image features [N / m^2, D].

    x     = patch_embed(pixel_values)                 [N, Dv]   the Conv3d, a linear map of each patch
    x     = x + resampled position table              [N, Dv]   learned Q x Q table, bilinear to each grid
    x     = block(x) for each of the depth blocks      [N, Dv]   pre-LayerNorm ViT: 2-D RoPE attention within
                                                                each image, tanh-GELU MLP
    out   = merger(x)                                 [N/m^2, D]  LayerNorm, m x m neighbours concatenated,
                                                                erf-GELU MLP to the language model's width D

Each image's N_i = t * gh * gw patches arrive in m x m merge blocks (processor.py), and every per-patch
table here (positions, rotary angles) is built in that same order.

Traps (each checked against transformers by tests/test_vision_encoder.py):
  * the position table is resampled with align_corners=True: the corners of the image grid land exactly
    on the corners of the table (row i of gh samples the table at i * (Q - 1) / (gh - 1));
  * the vision RoPE's theta is 10000 and its angles run [row, col, row, col] over the head dim (below);
  * the blocks' MLP uses the tanh GELU, the merger the erf GELU (mixing them up moves the features by a
    few percent, the logits by a few 1e-3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model.linear import linear
from .config import VisionConfig

LAYER_NORM_EPS = 1e-6  # every LayerNorm of the tower (nn.LayerNorm(..., eps=1e-6))


@dataclass
class VisionBlockWeights:  # model.visual.blocks.{i}.*
    norm1: np.ndarray  # [Dv]
    norm1_bias: np.ndarray  # [Dv]
    qkv: np.ndarray  # [3 Dv, Dv]  rows: the queries, the keys, the values, each Hv heads of Dhv
    qkv_bias: np.ndarray  # [3 Dv]
    proj: np.ndarray  # [Dv, Dv]
    proj_bias: np.ndarray  # [Dv]
    norm2: np.ndarray  # [Dv]
    norm2_bias: np.ndarray  # [Dv]
    linear_fc1: np.ndarray  # [Fv, Dv]   mlp.linear_fc1
    linear_fc1_bias: np.ndarray  # [Fv]
    linear_fc2: np.ndarray  # [Dv, Fv]   mlp.linear_fc2
    linear_fc2_bias: np.ndarray  # [Dv]


@dataclass
class VisionWeights:  # model.visual.*
    patch_embed: np.ndarray  # [Dv, C, Tp, P, P]   patch_embed.proj.weight (a Conv3d kernel)
    patch_embed_bias: np.ndarray  # [Dv]
    pos_embed: np.ndarray  # [Q*Q, Dv]   the learned position table, row-major over a Q x Q grid
    blocks: list[VisionBlockWeights]
    merger_norm: np.ndarray  # [Dv]
    merger_norm_bias: np.ndarray  # [Dv]
    merger_fc1: np.ndarray  # [m^2 Dv, m^2 Dv]
    merger_fc1_bias: np.ndarray  # [m^2 Dv]
    merger_fc2: np.ndarray  # [D, m^2 Dv]
    merger_fc2_bias: np.ndarray  # [D]


BLOCK_TENSORS = {  # tensor name after model.visual.blocks.{i}. -> (field, shape from the config)
    "norm1.weight": "norm1", "norm1.bias": "norm1_bias", "attn.qkv.weight": "qkv", "attn.qkv.bias": "qkv_bias",
    "attn.proj.weight": "proj", "attn.proj.bias": "proj_bias", "norm2.weight": "norm2", "norm2.bias": "norm2_bias",
    "mlp.linear_fc1.weight": "linear_fc1", "mlp.linear_fc1.bias": "linear_fc1_bias",
    "mlp.linear_fc2.weight": "linear_fc2", "mlp.linear_fc2.bias": "linear_fc2_bias"}
TOP_TENSORS = {
    "patch_embed.proj.weight": "patch_embed", "patch_embed.proj.bias": "patch_embed_bias",
    "pos_embed.weight": "pos_embed", "merger.norm.weight": "merger_norm", "merger.norm.bias": "merger_norm_bias",
    "merger.linear_fc1.weight": "merger_fc1", "merger.linear_fc1.bias": "merger_fc1_bias",
    "merger.linear_fc2.weight": "merger_fc2", "merger.linear_fc2.bias": "merger_fc2_bias"}


def vision_shapes(cfg: VisionConfig) -> dict[str, tuple[int, ...]]:
    """Every ``model.visual.*`` tensor the config implies, with its shape."""
    Dv, Fv, D, m2 = cfg.hidden_size, cfg.intermediate_size, cfg.out_hidden_size, cfg.spatial_merge_size ** 2
    p = "model.visual."
    shapes = {p + "patch_embed.proj.weight": (Dv, cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size,
                                              cfg.patch_size),
              p + "patch_embed.proj.bias": (Dv,), p + "pos_embed.weight": (cfg.num_position_embeddings, Dv)}
    block = {"norm1.weight": (Dv,), "norm1.bias": (Dv,), "attn.qkv.weight": (3 * Dv, Dv), "attn.qkv.bias": (3 * Dv,),
             "attn.proj.weight": (Dv, Dv), "attn.proj.bias": (Dv,), "norm2.weight": (Dv,), "norm2.bias": (Dv,),
             "mlp.linear_fc1.weight": (Fv, Dv), "mlp.linear_fc1.bias": (Fv,), "mlp.linear_fc2.weight": (Dv, Fv),
             "mlp.linear_fc2.bias": (Dv,)}
    for i in range(cfg.depth):
        shapes.update({f"{p}blocks.{i}.{name}": shape for name, shape in block.items()})
    shapes.update({p + "merger.norm.weight": (Dv,), p + "merger.norm.bias": (Dv,),
                   p + "merger.linear_fc1.weight": (m2 * Dv, m2 * Dv), p + "merger.linear_fc1.bias": (m2 * Dv,),
                   p + "merger.linear_fc2.weight": (D, m2 * Dv), p + "merger.linear_fc2.bias": (D,)})
    return shapes


def build_vision_weights(cfg: VisionConfig, tensor) -> VisionWeights:
    """``tensor(name)`` -> float32 array, for every name of vision_shapes."""
    p = "model.visual."
    blocks = [VisionBlockWeights(**{field: tensor(f"{p}blocks.{i}.{name}") for name, field in BLOCK_TENSORS.items()})
              for i in range(cfg.depth)]
    return VisionWeights(**{field: tensor(p + name) for name, field in TOP_TENSORS.items()}, blocks=blocks)


# ------------------------------------------------------------------------------------------------ the math

def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = LAYER_NORM_EPS) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis.   [..., Dv] -> [..., Dv]"""
    mean = x.mean(-1, keepdims=True)  # [..., 1]
    var = ((x - mean) ** 2).mean(-1, keepdims=True)  # [..., 1]
    return (x - mean) / np.sqrt(var + np.float32(eps)) * weight + bias  # [..., Dv]


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation ("gelu_pytorch_tanh"): the blocks' MLP.   [...] -> [...]"""
    c = np.float32(math.sqrt(2 / math.pi))
    cube = x * x * x  # [...] (x ** 3 would call pow(), ten times slower)
    return np.float32(0.5) * x * (np.float32(1) + np.tanh(c * (x + np.float32(0.044715) * cube)))  # [...]


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, to float32 accuracy (NumPy has none): Abramowitz & Stegun 7.1.26 in float64,
    |error| < 1.5e-7, within float32 rounding of the exact value.   [...] -> [...] float32"""
    z = np.abs(x.astype(np.float64))  # [...]
    t = 1.0 / (1.0 + 0.3275911 * z)  # [...]
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (np.sign(x) * (1.0 - poly * np.exp(-z * z))).astype(np.float32)  # [...]


def gelu_erf(x: np.ndarray) -> np.ndarray:
    """GELU, exact: x Phi(x) = x (1 + erf(x / sqrt 2)) / 2 (nn.GELU()): the merger's MLP.   [...] -> [...]"""
    return np.float32(0.5) * x * (np.float32(1) + erf(x / np.float32(math.sqrt(2))))  # [...]


ACTIVATION = {"gelu_pytorch_tanh": gelu_tanh, "gelu": gelu_erf}


def patch_embed(pixel_values: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The Conv3d patch embedding, which is a linear map of each flattened patch.

    pixel_values [N, C*Tp*P*P], weight [Dv, C, Tp, P, P], bias [Dv] -> [N, Dv]
    The kernel is exactly one patch (C x Tp x P x P) and the stride is the kernel, so the convolution
    visits each patch once and computes, per output channel, one dot product of the kernel with the
    patch: weight reshaped to [Dv, C*Tp*P*P] times the flattened patch (flattened [c, t, py, px], the
    order of both the kernel and pixel_values' rows).
    """
    return linear(pixel_values, weight.reshape(weight.shape[0], -1), bias)  # [N, Dv]


def merge_block_coordinates(gh: int, gw: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of each patch of a gh x gw grid, listed in m x m merge blocks.   -> [gh*gw] each

    Example, gh = gw = 4, m = 2: rows 0 0 1 1 0 0 1 1 2 2 3 3 ..., cols 0 1 0 1 2 3 2 3 0 1 0 1 ...
    """
    rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")  # [gh, gw] each
    order = lambda a: a.reshape(gh // m, m, gw // m, m).transpose(0, 2, 1, 3).reshape(-1)  # noqa: E731
    return order(rows), order(cols)  # [gh*gw] each


def interpolated_positions(pos_embed: np.ndarray, gh: int, gw: int, m: int) -> np.ndarray:
    """The learned Q x Q position table resampled bilinearly (align_corners=True) to a gh x gw grid, in merge
    block order.   pos_embed [Q*Q, Dv] -> [gh*gw, Dv]

    Row i of gh samples the table at y = i (Q - 1) / (gh - 1), between table rows floor(y) and floor(y) + 1
    with weights 1 - (y - floor y) and y - floor y (the same along the columns): the image's corner patches
    take the table's corner entries exactly, whatever the image's size.
    """
    Q = int(round(math.sqrt(pos_embed.shape[0])))

    def taps(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # per index: 2 table indices, 2 weights
        src = np.arange(size, dtype=np.float32) * np.float32(Q - 1) / np.float32(max(size - 1, 1))  # [size]
        low = np.floor(src)  # [size]
        index = np.clip(low[:, None].astype(np.int64) + np.arange(2), 0, Q - 1)  # [size, 2]
        weight = np.clip(np.float32(1) - np.abs(src[:, None] - low[:, None] - np.arange(2, dtype=np.float32)),
                         0, None)  # [size, 2]
        return index, weight

    rows, cols = merge_block_coordinates(gh, gw, m)  # [gh*gw] each
    (hi, hw), (wi, ww) = taps(gh), taps(gw)
    index = (hi[rows][:, :, None] * Q + wi[cols][:, None, :]).reshape(-1, 4)  # [gh*gw, 4] the 4 corners
    weight = (hw[rows][:, :, None] * ww[cols][:, None, :]).reshape(-1, 4)  # [gh*gw, 4]
    return (pos_embed[index] * weight[:, :, None]).sum(1)  # [gh*gw, 4, Dv] -> [gh*gw, Dv]


def vision_rope_cos_sin(gh: int, gw: int, m: int, head_dim: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin of the 2-D rotary embedding of each patch, in merge block order.   -> [gh*gw, Dhv] each

    Half of each head's rotation pairs turn with the patch's row, half with its column, at the frequencies
    inv_freq[j] = 1 / theta^(4j / Dhv) for j < Dhv / 4. The angles are laid out

        [row * inv_freq, col * inv_freq, row * inv_freq, col * inv_freq]     (each block Dhv / 4 wide)

    i.e. [row, col] written twice, as rotate-half pairs coordinate j with j + Dhv / 2: pair j turns with
    the row for j < Dhv / 4 and with the column after.
    """
    spatial = head_dim // 2
    inv_freq = np.float32(1) / np.float32(theta) ** (np.arange(0, spatial, 2, dtype=np.float32)
                                                     / np.float32(spatial))  # [Dhv/4]
    rows, cols = merge_block_coordinates(gh, gw, m)  # [gh*gw] each
    angle = np.concatenate([rows[:, None] * inv_freq, cols[:, None] * inv_freq], axis=-1)  # [gh*gw, Dhv/2]
    angle = np.concatenate([angle, angle], axis=-1).astype(np.float32)  # [gh*gw, Dhv]
    return np.cos(angle), np.sin(angle)  # [gh*gw, Dhv] each


def rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)  # [..., Dhv]


def vision_attention(x: np.ndarray, w: VisionBlockWeights, num_heads: int, cos: np.ndarray, sin: np.ndarray,
                     segments: list[int]) -> np.ndarray:
    """Bidirectional multi-head attention within each segment (one image, or one frame) only.

    x [N, Dv], cos/sin [N, Dhv], segments: lengths summing to N -> [N, Dv]
    """
    N, Dv = x.shape
    Dhv = Dv // num_heads
    qkv = linear(x, w.qkv, w.qkv_bias).reshape(N, 3, num_heads, Dhv)  # [N, 3, Hv, Dhv]
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # [N, Hv, Dhv] each
    q = q * cos[:, None] + rotate_half(q) * sin[:, None]  # [N, Hv, Dhv] rotated by row and column
    k = k * cos[:, None] + rotate_half(k) * sin[:, None]  # [N, Hv, Dhv]
    out = np.empty((N, num_heads, Dhv), np.float32)  # [N, Hv, Dhv]
    start = 0
    for n in segments:  # no patch sees another image's patches: one attention per segment, no mask needed
        s = slice(start, start + n)
        # contiguous per head: NumPy hands a stack of matrices to BLAS only when each is contiguous
        qh, kh, vh = (np.ascontiguousarray(a[s].transpose(1, 0, 2)) for a in (q, k, v))  # [Hv, n, Dhv] each
        scores = qh @ kh.transpose(0, 2, 1)  # [Hv, n, n]
        scores *= np.float32(1 / math.sqrt(Dhv))  # scaled by 1/sqrt(Dhv); in place: n^2 per head is large
        scores -= scores.max(-1, keepdims=True)  # [Hv, n, n] softmax, stably
        np.exp(scores, out=scores)  # [Hv, n, n]
        scores /= scores.sum(-1, keepdims=True)  # [Hv, n, n] the attention probabilities
        out[s] = (scores @ vh).transpose(1, 0, 2)  # [Hv, n, Dhv] -> [n, Hv, Dhv]
        start += n
    return linear(out.reshape(N, Dv), w.proj, w.proj_bias)  # [N, Dv]


def vision_block(x: np.ndarray, w: VisionBlockWeights, cfg: VisionConfig, cos: np.ndarray, sin: np.ndarray,
                 segments: list[int]) -> np.ndarray:
    """x + attn(LN1(x)), then + MLP(LN2(x)) with the config's GELU (tanh for Qwen3.5).   [N, Dv] -> [N, Dv]"""
    x = x + vision_attention(layer_norm(x, w.norm1, w.norm1_bias), w, cfg.num_heads, cos, sin, segments)  # [N, Dv]
    h = ACTIVATION[cfg.hidden_act](linear(layer_norm(x, w.norm2, w.norm2_bias), w.linear_fc1,
                                          w.linear_fc1_bias))  # [N, Fv]
    return x + linear(h, w.linear_fc2, w.linear_fc2_bias)  # [N, Dv]


def merger(x: np.ndarray, w: VisionWeights, m: int) -> np.ndarray:
    """LayerNorm, then each run of m^2 patches (one m x m block) concatenated and an erf-GELU MLP to width D.

    x [N, Dv] -> [N / m^2, D]. The m^2 consecutive rows are neighbours because the patches come in merge
    blocks (processor.py): the reshape is all the "merging" there is.
    """
    h = layer_norm(x, w.merger_norm, w.merger_norm_bias)  # [N, Dv]
    h = h.reshape(-1, m * m * x.shape[1])  # [N/m^2, m^2 Dv]: the 4 neighbours side by side
    h = gelu_erf(linear(h, w.merger_fc1, w.merger_fc1_bias))  # [N/m^2, m^2 Dv]
    return linear(h, w.merger_fc2, w.merger_fc2_bias)  # [N/m^2, D]


def check_vision_input(pixel_values, image_grid_thw, cfg: VisionConfig) -> tuple[np.ndarray, np.ndarray]:
    """pixel_values [N, C*Tp*P*P] float and image_grid_thw [I, 3] that agree, or an InputError saying how not."""
    pixels = np.asarray(pixel_values)
    grid = np.asarray(image_grid_thw)
    if pixels.ndim != 2 or pixels.shape[1] != cfg.patch_dim or not np.issubdtype(pixels.dtype, np.number):
        raise InputError(f"pixel_values must be numbers shaped [patches, {cfg.patch_dim}] (C * Tp * P * P = "
                         f"{cfg.in_channels} * {cfg.temporal_patch_size} * {cfg.patch_size} * {cfg.patch_size}), "
                         f"found shape {list(pixels.shape)} of {pixels.dtype}")
    if grid.ndim != 2 or grid.shape[1] != 3 or not np.issubdtype(grid.dtype, np.integer) or (grid < 1).any():
        raise InputError(f"image_grid_thw must be positive integers shaped [images, 3] (t, h, w per image), "
                         f"found {grid.tolist() if grid.size < 20 else list(grid.shape)}")
    m = cfg.spatial_merge_size
    if (grid[:, 1:] % m).any():
        raise InputError(f"image_grid_thw: each image's h and w must be multiples of spatial_merge_size {m}, "
                         f"found {grid.tolist()}")
    if int(grid.prod(-1).sum()) != len(pixels):
        raise InputError(f"image_grid_thw {grid.tolist()} describes {int(grid.prod(-1).sum())} patches, but "
                         f"pixel_values holds {len(pixels)}")
    if not np.isfinite(pixels).all():
        raise InputError("pixel_values holds NaN or infinite values")
    return pixels.astype(np.float32), grid.astype(np.int64)


def encode_images(pixel_values, image_grid_thw, w: VisionWeights, cfg: VisionConfig,
                  output_last_hidden_state: bool = False):
    """pixel_values [N, C*Tp*P*P], image_grid_thw [I, 3] -> image features [N / m^2, D] (images in order).

    With ``output_last_hidden_state=True`` returns (features, the last block's output [N, Dv]).
    """
    pixels, grid = check_vision_input(pixel_values, image_grid_thw, cfg)
    m = cfg.spatial_merge_size
    x = patch_embed(pixels, w.patch_embed, w.patch_embed_bias)  # [N, Dv]
    positions, cos, sin, segments = [], [], [], []
    for t, gh, gw in grid.tolist():  # the frames of one image share its position table and angles
        positions += [interpolated_positions(w.pos_embed, gh, gw, m)] * t  # t x [gh*gw, Dv]
        c, s = vision_rope_cos_sin(gh, gw, m, cfg.head_dim, cfg.rope_theta)  # [gh*gw, Dhv] each
        cos += [c] * t
        sin += [s] * t
        segments += [gh * gw] * t  # attention stays within one frame of one image
    x = x + np.concatenate(positions)  # [N, Dv]
    cos, sin = np.concatenate(cos), np.concatenate(sin)  # [N, Dhv] each
    for block in w.blocks:
        x = vision_block(x, block, cfg, cos, sin, segments)  # [N, Dv]
    features = merger(x, w, m)  # [N/m^2, D]
    return (features, x) if output_last_hidden_state else features
