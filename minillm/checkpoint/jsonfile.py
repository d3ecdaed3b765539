"""Reading the small JSON files of a checkpoint (config, generation config, shard index, tokenizer config)."""

from __future__ import annotations

import json
from pathlib import Path


def read_json_object(file: Path, error: type[Exception]) -> dict:
    """The JSON object in ``file``; anything else (unreadable, not JSON, not an object) raises ``error``."""
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{file}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise error(f"{file}: expected a JSON object, found {type(raw).__name__}")
    return raw
