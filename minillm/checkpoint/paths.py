"""Which files a checkpoint may make minillm read: one rule, applied to every file the loaders open.

A checkpoint is untrusted input: someone else wrote its config, its tokenizer, its chat template and its
shard index. Loading a "model" must never read other files of the machine (a chat_template.jinja linked to
a system file would be rendered into the prompt). So ``checkpoint_file`` is the only way a loader turns a
file name into a path to open, and it enforces:

    A checkpoint file is read only if it is a regular file (not a directory, FIFO or device) whose real
    location, after following every symlink, lies inside the checkpoint directory. When the checkpoint
    directory is a snapshot of the Hugging Face cache (``.../models--org--name/snapshots/<revision>/``),
    whose files are symlinks into ``../../blobs/``, the real location may lie anywhere inside that model's
    cache folder ``models--org--name/``. A name from a file (a shard of the index) must moreover be a
    relative path without ``..`` or NUL bytes.

So a shard named ``../x``, a config.json linked to another model's, a tokenizer.json linked to /dev/zero
are refused with an error naming the file. The checkpoint directory itself may be a symlink (the user
chose it); the rule applies from where it resolves. The check is made when the file is opened; it is a
rule about what a checkpoint may point at, not a defence against a process swapping files meanwhile.

``checkpoint_directory`` checks the path a user gives (``~`` expanded, no NUL byte, a directory), so a
name that cannot exist becomes a minillm error too, not an OSError or RuntimeError from the OS layer.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePath

from .fields import show


def user_path(path, error: type[Exception], what: str = "checkpoint directory") -> Path:
    """The path a user gave (str or os.PathLike), with ``~`` expanded; an unusable one raises ``error``."""
    if not isinstance(path, (str, os.PathLike)):
        raise error(f"expected a path to a {what}, found {type(path).__name__} {show(path)}")
    try:
        text = os.fspath(path)
    except TypeError as e:
        raise error(f"expected a path to a {what} ({e})") from None
    if not isinstance(text, str):
        raise error(f"expected a path to a {what} as text, found {type(text).__name__} {show(text)}")
    if "\0" in text:
        raise error(f"{show(text)}: a path cannot contain a NUL byte")
    try:
        return Path(text).expanduser()
    except RuntimeError as e:  # ~nosuchuser/...
        raise error(f"{show(text)}: cannot expand '~' ({e})") from None


def checkpoint_directory(path, error: type[Exception]) -> Path:
    """The checkpoint directory a user named: it must exist and be a directory (``~`` expanded)."""
    directory = user_path(path, error)
    try:
        is_dir = directory.is_dir()
    except (OSError, ValueError) as e:  # a name too long for the file system, ...
        raise error(f"{show(str(directory))}: not a usable path ({getattr(e, 'strerror', None) or e})") from None
    if not is_dir:
        raise error(f"{show(str(directory))}: not a directory (expected a checkpoint directory with "
                    f"config.json and safetensors weights)")
    return directory


def allowed_roots(directory: Path) -> list[Path]:
    """Where the files of ``directory`` may really live: itself, and its Hugging Face cache repo folder.

    A directory *named* as a snapshot (``models--org--name/snapshots/<rev>``) is judged by that name, not by
    where it resolves: its files may live only inside its own ``models--org--name/``, so a snapshot (or a
    repository folder) that is a symlink to elsewhere, or to another repository's snapshot, reads nothing.
    """
    given = Path(os.path.abspath(directory))
    if is_hub_snapshot(given):
        repo = given.parent.parent
        if os.path.islink(repo) or os.path.islink(given.parent):  # the cache folder itself leads elsewhere
            return [repo / "snapshots" / "(a symlink: nothing inside is trusted)"]
        real_repo = Path(os.path.realpath(repo))
        real = Path(os.path.realpath(given))
        return [real_repo] if real_repo in real.parents else [given / "(a symlink leaving its repository)"]
    root = Path(os.path.realpath(directory))
    roots = [root]
    if is_hub_snapshot(root):
        roots.append(root.parent.parent)  # models--org--name/: snapshots/<rev>/<file> -> ../../blobs/<hash>
    return roots


def is_hub_snapshot(path: Path) -> bool:
    """``.../models--org--name/snapshots/<rev>``: both names, not only one (a run's ``x/snapshots/run1`` is not)."""
    return path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--")


def checkpoint_file(directory: Path, name: str, error: type[Exception], label: str | None = None) -> Path | None:
    """The real path of checkpoint file ``name`` (relative to ``directory``), after the rule above.

    None when there is no such file at all; raises ``error`` (naming ``label``, by default the path) when
    the name, the link or the file breaks the rule.
    """
    where = label or show(str(directory / name) if isinstance(name, str) else name)
    if not isinstance(name, str) or not name:
        raise error(f"{where}: expected a file name, found {show(name)}")
    if "\0" in name:
        raise error(f"{where}: a file name cannot contain a NUL byte")
    if PurePath(name).is_absolute() or ".." in PurePath(name).parts:
        raise error(f"{where}: {show(name)} leaves the checkpoint directory; refused")
    candidate = directory / name
    try:
        real = Path(os.path.realpath(candidate, strict=True))
    except FileNotFoundError:
        if os.path.islink(candidate):
            raise error(f"{where}: a symlink to a file that does not exist ({show(os.readlink(candidate))})") \
                from None
        return None
    except (OSError, ValueError) as e:  # a symlink loop, a name too long, a file where a directory should be
        raise error(f"{where}: cannot be opened ({getattr(e, 'strerror', None) or e})") from None
    roots = allowed_roots(directory)
    if not any(real == r or r in real.parents for r in roots):
        raise error(f"{where}: leaves the checkpoint directory {show(str(roots[-1]))}: it resolves to "
                    f"{show(str(real))}; refused (a checkpoint may only read its own files)")
    try:
        mode = os.stat(real).st_mode
    except OSError as e:
        raise error(f"{where}: cannot be opened ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise error(f"{where}: is {kind}, not a regular file")
    return real
