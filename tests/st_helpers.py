"""Writing safetensors files with the safetensors library itself (so the loader is checked against it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from safetensors import TensorSpec, serialize_file

NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray]], metadata=None) -> None:
    """tensors: name -> (dtype, storage array); dtype is "F32", "F16" or "BF16" (storage uint16 bits)."""
    keep = {}
    specs = {}
    for name, (dtype, arr) in tensors.items():
        arr = np.array(arr, order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
        keep[name] = arr
        st_dtype = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]
        specs[name] = TensorSpec(dtype=st_dtype, shape=arr.shape, data_ptr=arr.ctypes.data,
                                 data_len=arr.nbytes)
    serialize_file(specs, str(path), metadata=metadata)
    del keep


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def rewrite_config(directory: Path, **changes) -> None:
    cfg = json.loads((directory / "config.json").read_text())
    cfg.update(changes)
    (directory / "config.json").write_text(json.dumps(cfg))
