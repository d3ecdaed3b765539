"""Loading the vision tower of a checkpoint (``model.visual.*``) next to its language model.

A checkpoint has a usable vision tower when its config.json has a ``vision_config``, its image token ids lie
inside the language model's vocabulary, and its weights hold ``model.visual.*``. Then ``load_model`` reads
those tensors (checked against the shapes the config implies, like every other tensor) into
``model.vision``; otherwise ``model.vision`` is None and the tower's tensors, if any, are reported unused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint.config import QwenConfig
from ..checkpoint.jsonfile import read_json_object
from ..checkpoint.paths import checkpoint_file
from ..checkpoint.safetensors_file import FLOAT_DTYPES
from ..errors import CheckpointError, ConfigError
from .config import VisionConfig, parse_vision_config
from .encoder import VisionWeights, build_vision_weights, encode_images, vision_shapes


DEFAULT_MROPE_SECTION = [11, 11, 10]  # transformers' default (Qwen3.5's value)


@dataclass
class VisionTower:
    config: VisionConfig
    weights: VisionWeights
    mrope_section: list[int]  # text_config.rope_parameters.mrope_section: rotary frequencies for t, h, w

    def encode(self, pixel_values, image_grid_thw, output_last_hidden_state: bool = False):
        """pixel_values [N, C*Tp*P*P], image_grid_thw [I, 3] -> image features [N / m^2, D] (encoder.py)."""
        return encode_images(pixel_values, image_grid_thw, self.weights, self.config, output_last_hidden_state)


def usable_vision_config(directory: Path, config: QwenConfig) -> tuple[VisionConfig, list[int]] | None:
    """The checkpoint's VisionConfig and mrope_section if its tower can run with this language model, else None."""
    file = checkpoint_file(directory, "config.json", ConfigError)  # a regular file inside the directory
    if file is None:
        return None
    raw = read_json_object(file, ConfigError)
    cfg = parse_vision_config(raw, str(directory / "config.json"))
    if cfg is None:
        return None
    ids = (cfg.image_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id)
    if max(ids) >= config.vocab_size:
        return None  # a config copied from a larger model: the image tokens do not exist in this vocabulary
    if cfg.out_hidden_size != config.hidden_size:
        raise ConfigError(f"{directory / 'config.json'}: vision_config.out_hidden_size ({cfg.out_hidden_size}) must "
                          f"equal the language model's hidden_size ({config.hidden_size})")
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else raw
    rope = text.get("rope_parameters") if isinstance(text.get("rope_parameters"), dict) else {}
    half = config.rotary_dim // 2
    if "mrope_section" not in rope and sum(DEFAULT_MROPE_SECTION) != half:
        return None  # no split of the rotary frequencies that fits: the tower cannot place its tokens
    section = rope.get("mrope_section", DEFAULT_MROPE_SECTION)
    if not (isinstance(section, list) and len(section) == 3 and all(isinstance(s, int) and not isinstance(s, bool)
                                                                    and s >= 0 for s in section)
            and sum(section) == half):
        raise ConfigError(f"{directory / 'config.json'}: text_config.rope_parameters.mrope_section must be 3 "
                          f"counts (t, h, w) summing to the {half} rotary frequencies, found {section!r}")
    return cfg, section


def read_vision_tower(files: dict, found: tuple[VisionConfig, list[int]], directory) -> VisionTower:
    """Check every model.visual.* tensor against the config, then read them as float32."""
    cfg, mrope_section = found
    problems = []
    for name, shape in vision_shapes(cfg).items():
        if name not in files:
            problems.append(f"tensor {name!r} is missing (expected shape {list(shape)})")
            continue
        info = files[name].tensors[name]
        if info.shape != shape:
            problems.append(f"tensor {name!r}: expected shape {list(shape)} (from vision_config), "
                            f"found {list(info.shape)}")
        elif info.dtype not in FLOAT_DTYPES:
            problems.append(f"tensor {name!r}: expected dtype {'/'.join(FLOAT_DTYPES)}, found {info.dtype}")
    if problems:
        more = f" (and {len(problems) - 5} more problems)" if len(problems) > 5 else ""
        raise CheckpointError(f"{directory}: vision tower does not match config.json: "
                              + "; ".join(problems[:5]) + more)
    weights = build_vision_weights(cfg, lambda name: np.ascontiguousarray(files[name].get_float32(name)))
    return VisionTower(cfg, weights, mrope_section)
