"""The run directory (``--out``), checked before anything is written into it.

A run writes recipe.json, log.jsonl and checkpoint/ under OUT. An OUT that is a file (``/dev/null`` too), lies
under a file, holds a NUL byte or is longer than the system allows would otherwise fail half-way, in ``mkdir``
or ``open``, as a raw OSError or ValueError; here it fails first, with one line that names it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import InputError


def check_run_dir(out: Path) -> None:
    """Refuse an ``out`` that cannot be (or become) a directory; an existing directory or a new path is fine."""
    shown = repr(str(out)) if any(c in str(out) for c in "\0\n\r") else str(out)
    if "\0" in str(out):
        raise InputError(f"run directory (--out) {shown}: a path cannot contain a NUL byte")
    try:
        info = os.stat(out)
    except FileNotFoundError:
        info = None
    except OSError as e:  # ENAMETOOLONG, ENOTDIR (under a file), EACCES, ELOOP
        raise InputError(f"run directory (--out) {_short(shown)}: cannot be used ({e.strerror or e})") from None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise InputError(f"run directory (--out) {shown}: exists and is not a directory")
    if info is None:
        parent = next((p for p in Path(out).absolute().parents if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise InputError(f"run directory (--out) {shown}: {parent} is not a directory")


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
