"""Reading the small JSON files of a checkpoint (config, generation config, shard index, tokenizer config).

JSON from a checkpoint is untrusted. Besides bad syntax, Python's parser fails in two ways of its own that a
hostile file can trigger: an integer of more than 4300 digits (``ValueError``: the int-to-str limit) and
nesting deeper than the recursion limit (``RecursionError``). ``parse_json`` turns all of them into the
caller's minillm error, and ``read_json_object`` refuses a file too large to be a config before reading it.
"""

from __future__ import annotations

import json
import os
import stat
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


def read_small_file(file: str | Path, error: type[Exception], limit: int = MAX_JSON_BYTES,
                    what: str = "a JSON file") -> bytes:
    """The bytes of ``file``, a regular file of at most ``limit`` bytes; anything else raises ``error``.

    Checked before reading, because reading is where hostile paths bite: a FIFO blocks ``open`` forever (so
    the file type is checked first and the file opened with O_NONBLOCK), ``/dev/zero`` reports size 0 and
    never ends (so at most ``limit + 1`` bytes are read, whatever the size says), a path with a NUL byte makes
    ``os.stat`` raise ValueError, a directory or a path under a file raise OSError.
    """
    try:
        info = os.stat(file)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{_shown(file)}: expected {what}, found {file_type(info.st_mode)}")
        if info.st_size > limit:
            raise error(f"{_shown(file)}: {info.st_size:,} bytes is too large for {what} (limit {limit:,})")
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)  # bounded: the file may have grown (or be a device) since stat
    except (OSError, ValueError) as e:  # ValueError: "embedded null byte" in the path
        raise error(f"{_shown(file)}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    if len(data) > limit:
        raise error(f"{_shown(file)}: more than {limit:,} bytes is too large for {what}")
    return data


def file_type(mode: int) -> str:
    kinds = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character "
             "device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _shown(file) -> str:
    """A path as an error shows it: on one line (a NUL or a newline in it is escaped)."""
    text = str(file)
    return repr(text) if any(c in text for c in "\x00\n\r") else text


def read_json_object(file: Path, error: type[Exception]) -> dict:
    """The JSON object in ``file``; anything else (unreadable, not JSON, not an object) raises ``error``."""
    data = read_small_file(file, error, what="a JSON config file")
    raw = parse_json(data, str(file), error)
    if not isinstance(raw, dict):
        raise error(f"{_shown(file)}: expected a JSON object, found {type(raw).__name__}")
    return raw
