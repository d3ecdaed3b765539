"""The image processor: a picture in, ``pixel_values`` [N, C*Tp*P*P] and ``image_grid_thw`` [I, 3] out.

This is transformers' ``Qwen2VLImageProcessorPil`` (the PIL backend, what Qwen3.5's processor runs), in
NumPy. For each image:

    1. RGB, uint8 [H, W, 3].
    2. smart_resize: the size (h, w) closest to the original that keeps the aspect ratio, makes each side
       a multiple of P * m (patch size x merge size: 16 * 2 = 32 for Qwen3.5) and keeps h * w within
       [min_pixels, max_pixels] (``size.shortest_edge`` / ``size.longest_edge`` in preprocessor_config.json).
    3. A bicubic resize of the uint8 image by Pillow (exactly what the PIL backend does; transformers'
       torchvision backend resizes differently and lands one level away in about a tenth of the pixels).
    4. rescale (x / 255, in float64 then float32) and normalise ((x - mean) / std per channel, float32).
    5. patches: the image [C, h, w] is cut into P x P patches; each patch is repeated Tp times (a still
       image is a video of Tp identical frames, so the same Conv3d serves both) and flattened to
       C * Tp * P * P numbers, channel-major: [c, t, py, px].

+--------------------------------------------------------------------------------------------------------+
| THE PATCH ORDER IS NOT RASTER ORDER. The patches are listed in m x m merge blocks: block (0, 0)'s four |
| patches (top-left, top-right, bottom-left, bottom-right), then block (0, 1)'s, ... row of blocks by    |
| row. The merger at the end of the encoder concatenates each run of m^2 = 4 consecutive patches into one |
| token, so this order is what makes those four neighbours. Raster order would merge 4 patches of one    |
| row into one token: nothing fails, the features are just wrong.                                       |
+--------------------------------------------------------------------------------------------------------+

Grid of an image: (t, gh, gw) = (1, h / P, w / P); it becomes gh * gw / m^2 tokens in the prompt.
Pillow reads the files (``pip install "minillm[vision]"``); everything else is NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint.jsonfile import read_json_object
from ..checkpoint.paths import checkpoint_file
from ..errors import ConfigError, InputError

PREPROCESSOR_FILE = "preprocessor_config.json"
MAX_ASPECT_RATIO = 200  # transformers refuses a longer side more than 200 times the shorter one


def require_pillow():
    """The PIL module, or a clear error saying what to install."""
    try:
        from PIL import Image
    except ImportError:
        raise InputError('reading images needs Pillow: pip install "minillm[vision]" (or pip install pillow)') \
            from None
    return Image


@dataclass(frozen=True)
class ImageProcessorConfig:
    """preprocessor_config.json's fields, with transformers' defaults (Qwen2VLImageProcessor)."""
    patch_size: int = 14  # P
    temporal_patch_size: int = 2  # Tp
    merge_size: int = 2  # m
    min_pixels: int = 56 * 56  # size.shortest_edge
    max_pixels: int = 28 * 28 * 1280  # size.longest_edge
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    rescale_factor: float = 1 / 255


def load_image_processor_config(directory: str | Path) -> ImageProcessorConfig:
    """Read ``preprocessor_config.json`` of a checkpoint directory."""
    path = Path(directory) / PREPROCESSOR_FILE  # (shown in messages)
    file = checkpoint_file(Path(directory), PREPROCESSOR_FILE, ConfigError)  # a regular file inside the directory
    if file is None:
        raise ConfigError(f"{path}: missing; a checkpoint that reads images needs its image processor's config")
    raw = read_json_object(file, ConfigError)
    size = raw.get("size") or {}
    if not isinstance(size, dict):
        raise ConfigError(f"{path}: 'size' must be an object with shortest_edge / longest_edge, found {size!r}")
    d = ImageProcessorConfig()
    fields = dict(patch_size=raw.get("patch_size", d.patch_size),
                  temporal_patch_size=raw.get("temporal_patch_size", d.temporal_patch_size),
                  merge_size=raw.get("merge_size", d.merge_size),
                  min_pixels=size.get("shortest_edge", raw.get("min_pixels", d.min_pixels)),
                  max_pixels=size.get("longest_edge", raw.get("max_pixels", d.max_pixels)))
    limits = {"patch_size": 1024, "temporal_patch_size": 64, "merge_size": 16, "min_pixels": 1 << 28,
              "max_pixels": 1 << 28}  # beyond these a config only asks for absurd (or memory-bomb) resizes
    for name, value in fields.items():
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limits[name]:
            raise ConfigError(f"{path}: {name} must be a positive integer up to {limits[name]}, found {value!r}")
    floats = {}
    for name in ("image_mean", "image_std"):
        value = raw.get(name, getattr(d, name))
        if not (isinstance(value, (list, tuple)) and len(value) == 3
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise ConfigError(f"{path}: {name} must be 3 numbers (one per RGB channel), found {value!r}")
        floats[name] = tuple(float(v) for v in value)
    if min(floats["image_std"]) <= 0:
        raise ConfigError(f"{path}: image_std must be positive, found {floats['image_std']}")
    rescale = raw.get("rescale_factor", d.rescale_factor)
    if not isinstance(rescale, (int, float)) or isinstance(rescale, bool):
        raise ConfigError(f"{path}: rescale_factor must be a number, found {rescale!r}")
    return ImageProcessorConfig(**fields, **floats, rescale_factor=float(rescale))


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(h, w): each a multiple of ``factor``, h * w within [min_pixels, max_pixels], aspect ratio kept.

    First round each side to the nearest multiple; if that is too many pixels, shrink both sides by the
    same beta and round down; if too few, grow them and round up. Example (factor 32, Qwen3.5's budget):
    a 1080 x 1920 photo rounds to 1088 x 1920 = 2.1 M pixels, within the budget, so 34 x 60 patches of 32.
    """
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise InputError(f"image of {height} x {width} pixels: the aspect ratio must be below "
                         f"{MAX_ASPECT_RATIO}, found {max(height, width) / min(height, width):.1f}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def open_image(image):
    """A path or a PIL image -> an RGB PIL image; a file that is not an image is an InputError naming it."""
    Image = require_pillow()
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image {str(path)!r}: no such file")
        try:
            with Image.open(path) as opened:
                opened.load()
                return opened.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise InputError(f"image {str(path)!r}: not a readable image ({type(e).__name__}: {e})") from None
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    raise InputError(f"an image must be a file path or a PIL image, found {type(image).__name__}")


def patchify(image: np.ndarray, patch_size: int, merge_size: int, temporal_patch_size: int) -> np.ndarray:
    """[C, h, w] -> [gh * gw, C * Tp * P * P], the patches in m x m merge blocks (see the box above)."""
    C, h, w = image.shape
    P, m, Tp = patch_size, merge_size, temporal_patch_size
    gh, gw = h // P, w // P
    x = image.reshape(C, gh // m, m, P, gw // m, m, P)  # [C, block row, row in block, py, block col, col, px]
    x = x.transpose(1, 4, 2, 5, 0, 3, 6)  # [gh/m, gw/m, m, m, C, P, P]: block-major, then the m x m patches
    x = np.broadcast_to(x[:, :, :, :, :, None], x.shape[:5] + (Tp, P, P))  # [.., C, Tp, P, P]: frame repeated
    return x.reshape(gh * gw, C * Tp * P * P)  # [N, C*Tp*P*P]


def preprocess_image(image, cfg: ImageProcessorConfig) -> tuple[np.ndarray, tuple[int, int, int]]:
    """One image (a path or a PIL image) -> its patches [N, C*Tp*P*P] float32 and its grid (1, gh, gw)."""
    Image = require_pillow()
    rgb = open_image(image)
    width, height = rgb.size
    h, w = smart_resize(height, width, cfg.patch_size * cfg.merge_size, cfg.min_pixels, cfg.max_pixels)
    resized = np.asarray(rgb.resize((w, h), resample=Image.BICUBIC))  # [h, w, C] uint8, Pillow's bicubic
    x = (resized.astype(np.float64) * cfg.rescale_factor).astype(np.float32)  # [h, w, C] in [0, 1]
    mean = np.array(cfg.image_mean, np.float32)  # [C]
    std = np.array(cfg.image_std, np.float32)  # [C]
    x = ((x - mean) / std).transpose(2, 0, 1)  # [C, h, w] normalised, channel first
    patches = patchify(x, cfg.patch_size, cfg.merge_size, cfg.temporal_patch_size)  # [N, C*Tp*P*P]
    return np.ascontiguousarray(patches, dtype=np.float32), (1, h // cfg.patch_size, w // cfg.patch_size)


def preprocess_images(images, cfg: ImageProcessorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Several images -> pixel_values [N, C*Tp*P*P] (all patches, image after image), image_grid_thw [I, 3]."""
    parts = [preprocess_image(image, cfg) for image in images]
    pixel_values = np.concatenate([p for p, _ in parts], axis=0)  # [N, C*Tp*P*P]
    image_grid_thw = np.array([grid for _, grid in parts], dtype=np.int64).reshape(-1, 3)  # [I, 3]
    return pixel_values, image_grid_thw
