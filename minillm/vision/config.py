"""The vision tower's config: config.json's ``vision_config`` and the image token ids, checked when read.

A Qwen3.5 config.json (Hub layout) holds, next to ``text_config``:

    "image_token_id": 248056, "video_token_id": 248057,          <|image_pad|>, <|video_pad|>
    "vision_start_token_id": 248053, "vision_end_token_id": 248054,
    "vision_config": {"depth": 12, "hidden_size": 768, "num_heads": 12, "intermediate_size": 3072,
                      "out_hidden_size": 1024, "patch_size": 16, "temporal_patch_size": 2,
                      "spatial_merge_size": 2, "num_position_embeddings": 2304, "hidden_act": "gelu_pytorch_tanh",
                      "in_channels": 3, ...}                      (Qwen3.5-0.8B)

The vision RoPE's theta (10000) is not in the Hub's file: transformers' class default, taken here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checkpoint.fields import FieldReader
from ..errors import ConfigError

VISION_ROPE_THETA = 10000.0  # Qwen3_5VisionConfig's default; the Hub's config.json does not carry it
ACTIVATIONS = ("gelu_pytorch_tanh", "gelu")  # the blocks' MLP: tanh GELU (Qwen3.5) or erf GELU


@dataclass(frozen=True)
class VisionConfig:
    depth: int  # number of ViT blocks
    hidden_size: int  # Dv
    num_heads: int  # Hv
    intermediate_size: int  # Fv
    out_hidden_size: int  # D, the language model's width (what the merger outputs)
    patch_size: int  # P
    temporal_patch_size: int  # Tp
    spatial_merge_size: int  # m
    in_channels: int  # C
    num_position_embeddings: int  # Q * Q, the learned position table
    hidden_act: str
    rope_theta: float
    image_token_id: int
    video_token_id: int
    vision_start_token_id: int
    vision_end_token_id: int

    @property
    def head_dim(self) -> int:  # Dhv
        return self.hidden_size // self.num_heads

    @property
    def grid_side(self) -> int:  # Q
        return math.isqrt(self.num_position_embeddings)

    @property
    def patch_dim(self) -> int:  # C * Tp * P * P, one row of pixel_values
        return self.in_channels * self.temporal_patch_size * self.patch_size ** 2


def parse_vision_config(raw: dict, source: str = "config.json") -> VisionConfig | None:
    """The vision config of a multimodal config.json, or None when it has none."""
    vision = raw.get("vision_config")
    if vision is None:
        return None
    if not isinstance(vision, dict):
        raise ConfigError(f"{source}: vision_config must be an object, found {type(vision).__name__}")
    get = FieldReader(vision, f"{source}: vision_config")
    top = FieldReader(raw, source)
    rope = vision.get("rope_parameters") or {}
    theta = FieldReader(rope if isinstance(rope, dict) else {}, f"{source}: vision_config.rope_parameters")(
        "rope_theta", float, VISION_ROPE_THETA, above=0)
    cfg = VisionConfig(
        depth=get("depth", int, low=1, high=1024), hidden_size=get("hidden_size", int, low=1, high=1 << 16),
        num_heads=get("num_heads", int, low=1, high=1024),
        intermediate_size=get("intermediate_size", int, low=1, high=1 << 18),
        out_hidden_size=get("out_hidden_size", int, low=1, high=1 << 16),
        patch_size=get("patch_size", int, low=1, high=1024),
        temporal_patch_size=get("temporal_patch_size", int, 2, low=1, high=64),
        spatial_merge_size=get("spatial_merge_size", int, 2, low=1, high=64),
        in_channels=get("in_channels", int, 3, low=1, high=64),
        num_position_embeddings=get("num_position_embeddings", int, low=1, high=1 << 24),
        hidden_act=get("hidden_act", str, "gelu_pytorch_tanh"), rope_theta=theta,
        image_token_id=top("image_token_id", int, 151655), video_token_id=top("video_token_id", int, 151656),
        vision_start_token_id=top("vision_start_token_id", int, 151652),
        vision_end_token_id=top("vision_end_token_id", int, 151653))
    if cfg.hidden_size % cfg.num_heads or cfg.head_dim % 4:
        raise ConfigError(f"{source}: vision_config.hidden_size ({cfg.hidden_size}) / num_heads ({cfg.num_heads}) "
                          f"must be a whole head dim divisible by 4 (2-D RoPE: rows and columns, sin and cos)")
    if cfg.grid_side ** 2 != cfg.num_position_embeddings:
        raise ConfigError(f"{source}: vision_config.num_position_embeddings must be a square (a Q x Q table), "
                          f"found {cfg.num_position_embeddings}")
    if cfg.hidden_act not in ACTIVATIONS:
        raise ConfigError(f"{source}: vision_config.hidden_act must be one of {ACTIVATIONS}, found "
                          f"{cfg.hidden_act!r}")
    return cfg
