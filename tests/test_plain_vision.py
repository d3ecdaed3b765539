"""minillm/plain/vision.py (one image through the vision encoder on one screen) equals the engine."""

from pathlib import Path

import numpy as np
import pytest

import minillm
from minillm.plain.vision import image_to_tokens

CKPT = Path(__file__).resolve().parents[1] / "weights" / "tiny-qwen3.5-vision"
REF = np.load(CKPT / "reference.npz")


@pytest.mark.parametrize("k", [0, 2, 4, 5])
def test_plain_image_to_tokens_equals_the_engine(k):
    model = minillm.load_model(CKPT)
    pixels, grid = REF[f"image_{k}_pixel_values"], REF[f"image_{k}_grid_thw"]
    _, gh, gw = grid[0]
    plain = image_to_tokens(pixels, int(gh), int(gw), model.vision.weights, model.vision.config)
    engine = model.vision.encode(pixels, grid)
    assert plain.shape == engine.shape == (gh * gw // 4, model.config.hidden_size)
    np.testing.assert_allclose(plain, engine, rtol=0, atol=1e-4 * np.abs(engine).max())
