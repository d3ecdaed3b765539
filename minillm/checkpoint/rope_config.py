"""The RoPE settings of a checkpoint, read by config.py and used by model/rope.py and model/rope_scaling.py.

A module of its own so that neither of those imports the other's module: config.py computes the
frequencies once to check them (model/rope.py), and the RoPE code needs only these settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RopeConfig:
    """Rotary embedding settings, one set for all layers (Qwen dense models never nest them per layer type)."""

    rope_type: str = "default"  # one of config.ROPE_TYPES
    theta: float = 10000.0  # the base of the frequencies
    factor: float = 1.0  # linear / dynamic / yarn / llama3 scaling factor
    original_max_position_embeddings: int | None = None  # yarn, llama3
    attention_factor: float | None = None  # yarn: multiplies cos and sin
    beta_fast: float = 32.0  # yarn
    beta_slow: float = 1.0  # yarn
    mscale: float | None = None  # yarn
    mscale_all_dim: float | None = None  # yarn
    truncate: bool = True  # yarn: floor/ceil the correction range
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
