"""Notebook 10's exercises: the resize's target size, and the multimodal (t, h, w) positions of an image."""

from __future__ import annotations

import numpy as np

from minillm.vision.positions import mrope_positions
from minillm.vision.processor import smart_resize

PAD = 7  # any token id stands for <|image_pad|> here


def check_smart_resize(fn) -> None:
    """fn(height, width, factor, min_pixels, max_pixels) -> (h, w), as minillm's smart_resize: sizes kept,
    rounded, shrunk to the maximum and grown to the minimum pixel count."""
    cases = [(30, 45, 8, 256, 2304), (16, 24, 8, 256, 2304), (7, 9, 8, 256, 2304), (13, 50, 8, 256, 2304),
             (120, 200, 8, 256, 2304), (300, 20, 8, 256, 2304), (61, 33, 8, 256, 2304),
             (1080, 1920, 32, 65536, 16777216), (4000, 3000, 28, 3136, 1003520), (50, 50, 28, 3136, 1003520)]
    for height, width, factor, low, high in cases:
        got = tuple(int(v) for v in np.asarray(fn(height, width, factor, low, high)).reshape(-1))
        want = smart_resize(height, width, factor, low, high)
        assert got == want, (f"{height} x {width} (factor {factor}, pixels in [{low}, {high}]): {got}, expected "
                             f"{want} (round to the nearest multiple; if too many pixels, shrink both sides by "
                             f"beta and floor; if too few, grow and ceil)")


def check_image_positions(fn) -> None:
    """fn(start, t, gh, gw, m) -> (positions [3, t*gh/m*gw/m], next): the (t, h, w) positions of one image's tokens
    placed at ``start`` (row by row of merged patches), and the position of the text after it, as minillm's
    mrope_positions."""
    for start, t, gh, gw, m in [(0, 1, 4, 6, 2), (5, 1, 8, 12, 2), (17, 1, 12, 4, 2), (3, 2, 4, 4, 2), (9, 1, 6, 9, 3)]:
        n = t * (gh // m) * (gw // m)
        want, want_next, _ = mrope_positions(np.full(n, PAD), np.ones(n, bool), [(t, gh, gw)], PAD, m, start)
        positions, next_position = fn(start, t, gh, gw, m)
        positions = np.asarray(positions)
        assert positions.shape == want.shape, f"grid {(t, gh, gw)}, m={m}: shape {positions.shape}, expected {want.shape}"
        assert np.array_equal(positions, want), (f"grid {(t, gh, gw)} at {start}: {positions.tolist()}, expected "
                                                 f"{want.tolist()} (start + frame, start + merged row, start + "
                                                 f"merged column; rows of merged patches one after another)")
        assert int(np.asarray(next_position)) == want_next, (
            f"grid {(t, gh, gw)} at {start}: next position {next_position}, expected {want_next} "
            f"(start + max(gh / m, gw / m): the image's largest position + 1)")


CHECKS = {"smart_resize": check_smart_resize, "image_positions": check_image_positions}
