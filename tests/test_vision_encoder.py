"""The vision encoder against transformers (weights/tiny-qwen3.5-vision/reference.npz by
scripts/make_vision_fixtures.py)."""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import minillm
from minillm.vision import encoder

CKPT = Path(__file__).resolve().parents[1] / "weights" / "tiny-qwen3.5-vision"
REF = np.load(CKPT / "reference.npz")
CASES = ["one", "two", "later"]


@pytest.fixture(scope="module")
def model():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the vision tower is used: nothing is reported unused
        return minillm.load_model(CKPT)


def relative_error(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("case", CASES)
def test_image_features_and_last_hidden_state_equal_transformers(model, case):
    features, last = model.vision.encode(REF[f"{case}_pixel_values"], REF[f"{case}_image_grid_thw"],
                                         output_last_hidden_state=True)
    assert relative_error(last, REF[f"{case}_vision_last"]) < 1e-3
    assert relative_error(features, REF[f"{case}_vision_pooler"]) < 1e-3


GELU_TOLERANCE = 1e-5  # the encoder's float32 noise against transformers is 5e-7; a GELU mix-up moves it 9e-5


def test_the_merger_uses_the_erf_gelu_and_the_blocks_the_tanh_gelu(model, monkeypatch):
    """The two GELUs differ by < 1e-3 absolute: invisible at 1e-3 relative, so tested at GELU_TOLERANCE."""
    pixels, grid = REF["two_pixel_values"], REF["two_image_grid_thw"]
    assert relative_error(model.vision.encode(pixels, grid), REF["two_vision_pooler"]) < GELU_TOLERANCE
    monkeypatch.setattr(encoder, "gelu_erf", encoder.gelu_tanh)  # the mix-up: tanh in the merger too
    assert relative_error(model.vision.encode(pixels, grid), REF["two_vision_pooler"]) > GELU_TOLERANCE
    monkeypatch.undo()
    monkeypatch.setitem(encoder.ACTIVATION, "gelu_pytorch_tanh", encoder.gelu_erf)  # erf in the blocks too
    assert relative_error(model.vision.encode(pixels, grid), REF["two_vision_pooler"]) > GELU_TOLERANCE


def test_erf_matches_math_erf_to_float32_accuracy():
    x = np.linspace(-6, 6, 4001, dtype=np.float32)
    exact = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert np.abs(encoder.erf(x) - exact).max() < 3e-7


def test_the_patch_embedding_conv3d_is_a_linear_map_of_each_patch():
    rng = np.random.default_rng(0)
    Dv, C, Tp, P = 5, 3, 2, 4
    weight = rng.standard_normal((Dv, C, Tp, P, P)).astype(np.float32)
    patch = rng.standard_normal((C, Tp, P, P)).astype(np.float32)
    conv = np.array([(weight[o] * patch).sum() for o in range(Dv)])  # the convolution at its single position
    np.testing.assert_allclose(encoder.patch_embed(patch.reshape(1, -1), weight, np.zeros(Dv, np.float32))[0],
                               conv, rtol=1e-5, atol=1e-5)


def test_resampled_positions_take_the_table_corners_exactly():
    Q, Dv = 6, 3
    table = np.arange(Q * Q * Dv, dtype=np.float32).reshape(Q * Q, Dv)
    pos = encoder.interpolated_positions(table, 4, 10, 2)  # [40, Dv] in merge-block order
    rows, cols = encoder.merge_block_coordinates(4, 10, 2)
    corner = {(r, c): i for i, (r, c) in enumerate(zip(rows, cols))}
    np.testing.assert_allclose(pos[corner[0, 0]], table[0])
    np.testing.assert_allclose(pos[corner[3, 9]], table[Q * Q - 1])
    np.testing.assert_allclose(pos[corner[0, 9]], table[Q - 1])


def test_vision_rope_angles_run_row_col_row_col():
    cos, sin = encoder.vision_rope_cos_sin(2, 4, 2, head_dim=8, theta=10000.0)
    rows, cols = encoder.merge_block_coordinates(2, 4, 2)
    i = int(np.flatnonzero((rows == 1) & (cols == 3))[0])
    angle = np.arctan2(sin[i], cos[i])  # [8]: quarters row, col, row, col at frequencies [1, 0.01]
    np.testing.assert_allclose(angle, [1, 0.01, 3, 0.03, 1, 0.01, 3, 0.03], rtol=1e-5)


def test_attention_stays_within_each_image(model):
    pixels, grid = REF["two_pixel_values"], REF["two_image_grid_thw"]
    first = int(grid[0].prod())
    alone = model.vision.encode(pixels[:first], grid[:1])
    together = model.vision.encode(pixels, grid)
    np.testing.assert_allclose(together[:len(alone)], alone, rtol=1e-5, atol=1e-5)
