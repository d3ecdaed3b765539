"""The language model's side of an image: features into the <|image_pad|> slots, and (t, h, w) positions.

    x = embed_tokens[ids]                       [B, T, D]
    x[ids == image_token_id] = features         the vision encoder's [N / m^2, D], image after image, in
                                                prompt order: the k-th pad token gets the k-th feature
    cos, sin = M-RoPE of the (t, h, w) positions (positions.py)

Everything after that is the ordinary forward pass (transformer.py): the layers never know which tokens
came from an image. With a cache, the next position is the largest one used + 1 (which, after an image, is
less than the number of tokens): it is written into ``cache.next_position``, so decoding continues from
there with plain 1-D positions, as transformers does with its ``rope_deltas``.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..model.embedding import embed
from .positions import mrope_cos_sin, mrope_positions


def multimodal_inputs(model, ids_BT: np.ndarray, valid_BT: np.ndarray, start_position: np.ndarray,
                      pixel_values, image_grid_thw) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """ids [B, T], valid [B, T], start [B] -> input embeddings [B, T, D], (cos, sin) [B, T, R], next positions [B]."""
    tower = model.vision
    if tower is None:
        raise InputError(f"this model has no vision tower ({model.path or 'model'}: config.json has no usable "
                         f"vision_config or the weights hold no model.visual.*): it reads text only, so "
                         f"pixel_values cannot be used")
    if pixel_values is None or image_grid_thw is None:
        raise InputError("images need both pixel_values and image_grid_thw (as load_processor returns them)")
    cfg = tower.config
    features = tower.encode(pixel_values, image_grid_thw)  # [N / m^2, D]; checks the grid against the pixels
    grids = [tuple(g) for g in np.asarray(image_grid_thw).tolist()]
    is_pad = (ids_BT == cfg.image_token_id) & valid_BT  # [B, T]
    if int(is_pad.sum()) != len(features):
        raise InputError(f"the prompt holds {int(is_pad.sum())} <|image_pad|> tokens (id {cfg.image_token_id}) but "
                         f"the images give {len(features)} features (one per {cfg.spatial_merge_size} x "
                         f"{cfg.spatial_merge_size} patches of image_grid_thw {grids}): they must be equal")
    x = embed(ids_BT, model.weights.embed_tokens)  # [B, T, D]
    x[is_pad] = features  # [N / m^2, D] into the pad slots, in order (row by row, left to right)

    B, T = ids_BT.shape
    positions = np.zeros((3, B, T), np.int64)  # [3, B, T]
    next_position = np.zeros(B, np.int64)  # [B]
    used = 0
    for b in range(B):
        positions[:, b], next_position[b], n = mrope_positions(ids_BT[b], valid_BT[b], grids[used:],
                                                               cfg.image_token_id, cfg.spatial_merge_size,
                                                               int(start_position[b]))
        used += n
    if used != len(grids):
        raise InputError(f"image_grid_thw holds {len(grids)} images but the prompt has pad tokens for {used}")
    inv_freq, scaling = model._rope_frequencies(int(positions.max()) + 1)  # [R/2]
    cos, sin = mrope_cos_sin(positions, inv_freq, tower.mrope_section, scaling)  # [B, T, R] each
    return x, (cos, sin), next_position
