"""Writing a checkpoint directory that minillm and transformers both load: config.json, model.safetensors
(BF16 or F32), generation_config.json, and the tokenizer files.

The safetensors format, written by hand (it is the reader in safetensors_file.py, backwards):

    [8 bytes: header length n, little-endian u64][n bytes: JSON header][tensor bytes, back to back]
    header = {"__metadata__": {"format": "pt"}, name: {"dtype": "BF16", "shape": [...], "data_offsets": [a, b]}}

BF16 is the top 16 bits of a float32. Rounding to nearest (ties to even) instead of cutting the low bits:
add 0x7FFF plus the lowest kept bit, then shift right by 16.

A directory appears whole or not at all: everything is written into ``<dir>.tmp-<pid>`` and renamed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import CheckpointError


def float32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 to the nearest bfloat16 (ties to even); return its 16-bit patterns.   [...] -> [...] uint16"""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)  # [...]
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)  # [...]: ties go to the even neighbour
    rounded = ((bits + rounding) >> 16).astype(np.uint16)  # [...]
    # A NaN's low bits could carry into the exponent and turn it into infinity: keep NaN a (quiet) NaN.
    return np.where(np.isnan(x), np.uint16(0x7FC0), rounded)  # [...]


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str = "F32") -> None:
    """Write ``tensors`` (float32 arrays) to one safetensors file as F32 or BF16."""
    if dtype not in ("F32", "BF16"):
        raise CheckpointError(f"{path}: dtype must be 'F32' or 'BF16', found {dtype!r}")
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], np.float32)
        blob = (float32_to_bf16_bits(a) if dtype == "BF16" else np.ascontiguousarray(a)).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # pad the header so the tensor data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for blob in blobs:
            f.write(blob)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json", "merges.txt",
                   "special_tokens_map.json")


def save_model_dir(directory: str | Path, config: dict, tensors: dict[str, np.ndarray], dtype: str = "BF16",
                   generation_config: dict | None = None, tokenizer_dir: str | Path | None = None,
                   extra_files: dict[str, bytes | dict[str, np.ndarray]] | None = None) -> Path:
    """Write a complete checkpoint directory atomically; an existing one is replaced only once the new is whole.

    ``config``: the config.json dict; ``tensors``: {checkpoint name: float32 array} (a tied head: no lm_head);
    ``extra_files``: {relative path: bytes, or {name: array} written as an F32 safetensors file} written inside
    (e.g. the trainer state).
    """
    final = Path(directory)
    tmp = final.parent / f"{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        config = dict(config, torch_dtype="bfloat16" if dtype == "BF16" else "float32")
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        write_safetensors(tmp / "model.safetensors", tensors, dtype)
        if generation_config is not None:
            (tmp / "generation_config.json").write_text(json.dumps(generation_config, indent=2) + "\n",
                                                         encoding="utf-8")
        if tokenizer_dir is not None:
            for name in TOKENIZER_FILES:
                if (Path(tokenizer_dir) / name).is_file():
                    shutil.copyfile(Path(tokenizer_dir) / name, tmp / name)
        for rel, data in (extra_files or {}).items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, dict):
                write_safetensors(tmp / rel, data, "F32")
            else:
                (tmp / rel).write_bytes(data)
        old = final.parent / f"{final.name}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)  # two renames: there is always one whole directory on disk
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"{final}: could not write the checkpoint ({e})") from None
    return final
