"""Reading the small JSON files of a checkpoint (config, generation config, shard index, tokenizer config).

JSON from a checkpoint is untrusted. Besides bad syntax, Python's parser fails in two ways of its own that a
hostile file can trigger: an integer of more than 4300 digits (``ValueError``: the int-to-str limit) and
nesting deeper than the recursion limit (``RecursionError``). ``parse_json`` turns all of them into the
caller's minillm error, and ``read_json_object`` refuses a file too large to be a config before reading it.
"""

from __future__ import annotations

import json
from pathlib import Path

MAX_JSON_BYTES = 64 * 1024 * 1024  # configs, indexes and tokenizer configs are kilobytes; this is generous


def parse_json(text: str | bytes, where: str, error: type[Exception]):
    """``json.loads(text)``; any way it fails raises ``error`` with ``where`` (a file name) in the message."""
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{where}: JSON nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, bad UTF-8, an int of > 4300 digits
        raise error(f"{where}: not valid JSON ({e})") from None


def read_json_object(file: Path, error: type[Exception]) -> dict:
    """The JSON object in ``file``; anything else (unreadable, not JSON, not an object) raises ``error``."""
    try:
        size = file.stat().st_size
        if size > MAX_JSON_BYTES:
            raise error(f"{file}: {size:,} bytes is too large for a JSON config file "
                        f"(limit {MAX_JSON_BYTES:,})")
        data = file.read_bytes()
    except OSError as e:
        raise error(f"{file}: cannot read ({e.strerror or e})") from None
    raw = parse_json(data, str(file), error)
    if not isinstance(raw, dict):
        raise error(f"{file}: expected a JSON object, found {type(raw).__name__}")
    return raw
