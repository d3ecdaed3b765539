"""Multimodal RoPE (M-RoPE): every token gets three positions (time, height, width) instead of one.

A text token at 1-D position p gets (p, p, p). The image tokens of one image (its gh/m x gw/m merged
patches, in raster order) all start from the position s that the next text token would have had:

    token at merged row r, column c of frame f:   (s + f, s + r, s + c)

and the text after the image continues from s + max(gh/m, gw/m): the image's largest position + 1 (not
s + number of image tokens: an image of 64 tokens on an 8 x 8 grid advances the positions by 8, not 64).
Worked example, "a b <img 2 x 3> c" (the image's 6 tokens; m already divided out):

    token       a  b  i  i  i  i  i  i  c
    time        0  1  2  2  2  2  2  2  5
    height      0  1  2  2  2  3  3  3  5
    width       0  1  2  3  4  2  3  4  5          c: 2 + max(2, 3) = 5

+--------------------------------------------------------------------------------------------------------+
| WHICH ROTARY PAIR READS WHICH COMPONENT: interleaved. The rotary dims have R/2 frequencies; Qwen3.5's   |
| ``mrope_section`` [11, 11, 10] (tiny fixture: [3, 3, 2]) says how many go to t, h and w, and they are   |
| dealt out in turn: frequency j reads h if j % 3 == 1 (and j < 3 * section_h), w if j % 3 == 2 (and     |
| j < 3 * section_w), else t. So [t h w t h w ... t h w t t]: every component gets fast and slow          |
| frequencies alike. (Qwen2-VL gave each component one contiguous block instead.) For text, whose three  |
| components are equal, any split gives plain RoPE: text-only results do not change.                     |
+--------------------------------------------------------------------------------------------------------+
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def mrope_positions(ids: np.ndarray, valid: np.ndarray, grids: list, image_token_id: int, merge: int,
                    start: int = 0) -> tuple[np.ndarray, int, int]:
    """The (t, h, w) positions of one row.   ids [T], valid [T] bool -> positions [3, T], next, images used

    ``grids``: the (t, gh, gw) of the images still to place, in order; each run of image tokens takes the next.
    ``start``: the position of the row's first token (a cache's next_position). Padding gets (0, 0, 0).
    Returns the positions, the position the next token takes (largest + 1), how many grids were used.
    """
    positions = np.zeros((3, len(ids)), np.int64)  # [3, T]
    real = np.flatnonzero(valid)  # [T_real] indices of the real tokens
    is_image = ids[real] == image_token_id  # [T_real]
    current, used, i = start, 0, 0
    while i < len(real):
        j = i
        while j < len(real) and is_image[j] == is_image[i]:
            j += 1  # [i, j): a run of text tokens, or of one image's tokens
        if not is_image[i]:
            positions[:, real[i:j]] = current + np.arange(j - i)  # (p, p, p)
            current += j - i
            i = j
            continue
        if used == len(grids):
            raise InputError(f"more <|image_pad|> tokens (id {image_token_id}) than image features: the images' "
                             f"grids cover {sum(int(np.prod(g)) // merge ** 2 for g in grids)} tokens")
        t, gh, gw = (int(v) for v in grids[used])
        hm, wm = gh // merge, gw // merge
        n = t * hm * wm
        if j - i < n:
            raise InputError(f"image {used} (grid {[t, gh, gw]}) needs {n} <|image_pad|> tokens in a row, "
                             f"found {j - i}")
        tt, hh, ww = np.meshgrid(np.arange(t), np.arange(hm), np.arange(wm), indexing="ij")  # [t, hm, wm] each
        positions[:, real[i:i + n]] = np.stack([tt, hh, ww]).reshape(3, n) + current  # [3, n]
        current += max(hm, wm)  # the next token: the image's largest position + 1
        used += 1
        i += n
    return positions, current, used


def mrope_cos_sin(positions: np.ndarray, inv_freq: np.ndarray, mrope_section: list[int],
                  attention_scaling: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of M-RoPE, laid out [angle, angle] for rotate-half, as rope.rope_cos_sin.

    positions [3, B, T], inv_freq [R/2] -> cos, sin [B, T, R]. Frequency j turns with component
    ``component_of(j)`` (the box above).
    """
    component = mrope_components(len(inv_freq), mrope_section)  # [R/2] 0 = t, 1 = h, 2 = w
    chosen = np.take_along_axis(positions, np.broadcast_to(component[:, None, None], (len(inv_freq),)
                                                           + positions.shape[1:]), axis=0)  # [R/2, B, T]
    angle = chosen.transpose(1, 2, 0).astype(np.float32) * inv_freq  # [B, T, R/2]: p_component(j) * inv_freq[j]
    angle = np.concatenate([angle, angle], axis=-1)  # [B, T, R]
    scale = np.float32(attention_scaling)
    return np.cos(angle) * scale, np.sin(angle) * scale  # [B, T, R] each


def mrope_components(half: int, mrope_section: list[int]) -> np.ndarray:
    """Which position component (0 t, 1 h, 2 w) each of the R/2 frequencies reads: interleaved.   -> [R/2]"""
    j = np.arange(half)  # [R/2]
    component = np.zeros(half, np.int64)  # [R/2] t by default
    component[(j % 3 == 1) & (j < 3 * mrope_section[1])] = 1  # h
    component[(j % 3 == 2) & (j < 3 * mrope_section[2])] = 2  # w
    return component
