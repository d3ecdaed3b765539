"""Solutions to notebook 10's exercises. Try them yourself first."""

import math

import numpy as np


def smart_resize(height, width, factor, min_pixels, max_pixels):
    """-> (h, w): multiples of factor, h * w within [min_pixels, max_pixels], aspect ratio kept."""
    h, w = round(height / factor) * factor, round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h, w


def image_positions(start, t, gh, gw, m):
    """-> positions [3, t * gh/m * gw/m] (time, height, width), and the next text position."""
    tt, hh, ww = np.meshgrid(np.arange(t), np.arange(gh // m), np.arange(gw // m), indexing="ij")  # [t, gh/m, gw/m]
    return np.stack([tt, hh, ww]).reshape(3, -1) + start, start + max(gh // m, gw // m)
