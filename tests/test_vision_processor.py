"""The image processor against transformers' PIL backend (weights/tiny-qwen3.5-vision/reference.npz)."""

import math
from pathlib import Path

import numpy as np
import pytest

from minillm.errors import InputError
from minillm.vision.processor import (load_image_processor_config, patchify, preprocess_image, preprocess_images,
                                      smart_resize)

CKPT = Path(__file__).resolve().parents[1] / "weights" / "tiny-qwen3.5-vision"
REF = np.load(CKPT / "reference.npz")
IMAGES = sorted((CKPT / "images").glob("image_*.png"), key=lambda p: int(p.name.split("_")[1]))


@pytest.mark.parametrize("k", range(len(IMAGES)))
def test_pixel_values_and_grid_equal_transformers_pil_backend(k):
    cfg = load_image_processor_config(CKPT)
    pixels, grid = preprocess_images([IMAGES[k]], cfg)
    np.testing.assert_array_equal(grid, REF[f"image_{k}_grid_thw"])
    # the same uint8 resize, then (x / 255 - mean) / std in float32: equal up to float32 rounding
    np.testing.assert_allclose(pixels, REF[f"image_{k}_pixel_values"], rtol=0, atol=1e-6)


def test_images_of_the_fixture_need_resizing_up_and_down_and_keep_their_aspect():
    cfg = load_image_processor_config(CKPT)
    factor = cfg.patch_size * cfg.merge_size
    grown = shrunk = False
    for path in IMAGES:
        h, w = (int(s) for s in path.stem.split("_")[2].split("x"))
        rh, rw = smart_resize(h, w, factor, cfg.min_pixels, cfg.max_pixels)
        assert rh % factor == 0 and rw % factor == 0 and cfg.min_pixels <= rh * rw <= cfg.max_pixels
        grown |= rh * rw > h * w
        shrunk |= rh * rw < h * w
    assert grown and shrunk


def test_patches_come_in_merge_blocks_not_raster_order():
    C, P, m = 1, 1, 2
    image = np.arange(16, dtype=np.float32).reshape(C, 4, 4)  # pixel value = its raster index
    patches = patchify(image, P, m, temporal_patch_size=1)  # [16, 1]
    # block (0, 0): pixels 0, 1, 4, 5; block (0, 1): 2, 3, 6, 7; ...
    assert patches[:8, 0].tolist() == [0, 1, 4, 5, 2, 3, 6, 7]


def test_a_still_image_fills_the_temporal_patch_with_copies():
    cfg = load_image_processor_config(CKPT)
    pixels, _ = preprocess_image(IMAGES[0], cfg)
    per_frame = pixels.reshape(len(pixels), 3, cfg.temporal_patch_size, -1)  # [N, C, Tp, P*P]
    np.testing.assert_array_equal(per_frame[:, :, 0], per_frame[:, :, 1])


def test_a_corrupt_image_file_is_an_input_error_naming_it(tmp_path):
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(InputError, match="photo.png.*not a readable image"):
        preprocess_image(bad, load_image_processor_config(CKPT))
    with pytest.raises(InputError, match="no such file"):
        preprocess_image(tmp_path / "missing.png", load_image_processor_config(CKPT))


def test_without_pillow_the_error_says_what_to_install(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(InputError, match=r"minillm\[vision\]"):
        preprocess_image(IMAGES[0], load_image_processor_config(CKPT))


from hypothesis import given, strategies as st  # noqa: E402


@given(st.integers(1, 4000), st.integers(1, 4000))
def test_smart_resize_keeps_multiples_the_pixel_budget_and_roughly_the_aspect(height, width):
    factor, low, high = 32, 64 * 64, 1024 * 1024
    if max(height, width) / min(height, width) > 200:
        with pytest.raises(InputError, match="aspect ratio"):
            smart_resize(height, width, factor, low, high)
        return
    h, w = smart_resize(height, width, factor, low, high)
    assert h % factor == 0 and w % factor == 0 and h >= factor and w >= factor
    assert h * w <= high or min(h, w) == factor  # only a side already at its minimum can exceed the budget
    assert h * w >= low
    # both sides scaled by one common factor s (1, or the one reaching the budget), then rounded to a multiple
    # (never below one factor): so the aspect ratio is kept up to that rounding
    scales = [1.0, math.sqrt(high / (height * width)), math.sqrt(low / (height * width))]
    assert any(abs(h - max(height * s, factor)) <= factor and abs(w - max(width * s, factor)) <= factor
               for s in scales)


def test_an_image_url_part_is_refused_with_what_to_do_instead():
    from minillm.vision.chat import split_images
    with pytest.raises(InputError, match="image_url parts are not fetched"):
        split_images([{"role": "user", "content": [{"type": "image_url", "image_url": "http://x/y.png"}]}])


def test_a_missing_or_malformed_preprocessor_config_is_a_config_error_naming_the_file(tmp_path):
    from minillm.errors import ConfigError
    with pytest.raises(ConfigError, match="preprocessor_config.json: missing"):
        load_image_processor_config(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text('{"patch_size": 0}')
    with pytest.raises(ConfigError, match="patch_size must be a positive integer up to 1024, found 0"):
        load_image_processor_config(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text('{"image_std": [0.5, 0, 0.5]}')
    with pytest.raises(ConfigError, match="image_std must be positive"):
        load_image_processor_config(tmp_path)


def test_a_very_wide_image_under_a_small_budget_keeps_one_patch_of_height():
    # The shrink rounds each side down; a side shorter than one patch after shrinking stays at one patch.
    # Expected values: transformers' smart_resize (qwen2_vl, PIL backend) on the same arguments.
    assert smart_resize(100, 10000, 32, 32 * 32, 51200) == (32, 2240)
    assert smart_resize(10000, 100, 32, 32 * 32, 51200) == (2240, 32)
