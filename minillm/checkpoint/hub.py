"""Models by Hugging Face Hub id: ``"Qwen/Qwen2.5-0.5B-Instruct"`` (optionally ``@revision``) -> a local directory.

The files are looked up first in the local Hugging Face cache, read directly (huggingface_hub is not needed):

    $HF_HUB_CACHE          (else $HF_HOME/hub, else ~/.cache/huggingface/hub; as huggingface_hub decides)
      models--Qwen--Qwen2.5-0.5B-Instruct/         one folder per repository: "models--" + id, "/" -> "--"
        refs/main                                   a text file: the commit hash "main" named when downloaded
        refs/pr/1, refs/v1.0                        (other branches, tags and pull requests, the same way)
        snapshots/<commit hash>/                    one folder per downloaded commit, laid out as the repository
          config.json -> ../../blobs/<sha1>          each file a *relative symlink* to its content
          model.safetensors -> ../../blobs/<sha256>
        blobs/<sha>                                 the contents, stored once, named by their git or LFS hash

So ``org/name`` is ``snapshots/<contents of refs/main>/``, ``org/name@v1.0`` reads ``refs/v1.0`` instead, and
``org/name@<40-hex commit hash>`` names ``snapshots/<hash>/`` directly. A snapshot folder is an ordinary
checkpoint directory for the loader (which follows the symlinks into ``blobs/``, inside the same
``models--*`` folder).

When the model is not in the cache: with the optional ``huggingface_hub`` installed (``pip install
minillm[hub]``) and ``HF_HUB_OFFLINE`` unset, it is downloaded into that cache with ``snapshot_download``,
fetching only the files minillm reads; otherwise the error says how to get it (``hf download org/name``).

A path that exists always wins over an id of the same spelling: ``weights/tiny-qwen2`` is a directory here.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import CheckpointError
from .jsonfile import MAX_JSON_BYTES
from .paths import user_path

# huggingface_hub's rule for a repository id (utils/_validators.py): "org/name", each part of word characters,
# "-" and ".", starting and ending with a word character; "--" and ".." are not allowed.
_REPO_ID = re.compile(r"(?!.*(--|\.\.))\b[\w.-]{1,96}\b/\b[\w.-]{1,96}\b")
_COMMIT_HASH = re.compile(r"[0-9a-f]{40}")
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's true values for environment flags

# The files minillm reads from a checkpoint; nothing else is downloaded (no .bin, no ONNX, no GGUF).
DOWNLOAD_PATTERNS = ["config.json", "generation_config.json", "model*.safetensors", "model.safetensors.index.json",
                     "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                     "preprocessor_config.json"]  # the image processor's settings (Qwen3.5, minillm/vision)


def hub_cache_dir() -> Path:
    """The cache huggingface_hub uses: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub.

    (Also its legacy HUGGINGFACE_HUB_CACHE and XDG_CACHE_HOME, in huggingface_hub's order.)
    """
    def expand(p: str) -> Path:
        return Path(os.path.expandvars(os.path.expanduser(p)))

    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return expand(os.environ[var])
    if os.environ.get("HF_HOME"):
        return expand(os.environ["HF_HOME"]) / "hub"
    return expand(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface" / "hub"


def repo_folder(cache: Path, repo_id: str) -> Path:
    """``models--org--name``: where one repository lives in the cache."""
    return cache / ("models--" + repo_id.replace("/", "--"))


def parse_hub_id(name: str) -> tuple[str, str] | None:
    """``"org/name@rev"`` -> (``"org/name"``, ``"rev"``); the revision defaults to ``"main"``. None if not an id."""
    repo_id, _, revision = name.partition("@")
    if not _REPO_ID.fullmatch(repo_id):
        return None
    return repo_id, revision or "main"


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A checkpoint directory for a path or a Hub id (``org/name`` or ``org/name@revision``).

    * a ``Path``, or a string naming a file or directory that exists: that path (``~`` expanded);
    * a Hub id: its snapshot in the local Hugging Face cache, downloaded first if it is missing and
      huggingface_hub is installed (and ``HF_HUB_OFFLINE`` is not set);
    * anything else: the path as given, for the loader to report.
    Raises CheckpointError naming the id and the cache searched when a Hub id cannot be found.
    """
    path = user_path(name_or_path, CheckpointError)  # ~ expanded; a non-path or ~nosuchuser: a clear error
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a name too long for the file system: let the loader report it
        return path
    if not isinstance(name_or_path, str) or exists:
        return path  # a directory that exists always wins over an id of the same spelling
    parsed = parse_hub_id(name_or_path)
    if parsed is None:
        return path
    repo_id, revision = parsed
    if ".." in revision.split("/") or revision.startswith("/") or not revision.isprintable():
        raise CheckpointError(f"{name_or_path!r}: revision {revision!r} is not a branch, tag or commit hash")

    cache = hub_cache_dir()
    snapshot = cached_snapshot(cache, repo_id, revision)
    if snapshot is not None and not missing_files(snapshot):
        return snapshot

    where = (f"found in the Hugging Face cache at {snapshot} but incomplete ({', '.join(missing_files(snapshot))})"
             if snapshot is not None else f"not in the Hugging Face cache {cache}")
    get_it = f"`hf download {repo_id}" + (f" --revision {revision}`" if revision != "main" else "`")
    if _is_true(os.environ.get("HF_HUB_OFFLINE")) or _is_true(os.environ.get("TRANSFORMERS_OFFLINE")):
        raise CheckpointError(f"{name_or_path}: not a directory, and {where}; HF_HUB_OFFLINE is set, so it is "
                              f"not downloaded (get it with {get_it} while online)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(f"{name_or_path}: not a directory, and {where}; get it with {get_it}, or install "
                              f"huggingface_hub (the minillm[hub] extra) to let minillm download it") from None
    try:  # huggingface_hub draws its own progress bar
        downloaded = snapshot_download(repo_id, revision=revision, cache_dir=str(cache),
                                       allow_patterns=DOWNLOAD_PATTERNS, ignore_patterns=["*/*"])
    except Exception as e:  # not found, no network, no permission...: huggingface_hub has many error types
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"{name_or_path}: {where}, and downloading it failed "
                              f"({type(e).__name__}: {first_line})") from None
    return Path(downloaded)


def cached_snapshot(cache: Path, repo_id: str, revision: str = "main") -> Path | None:
    """The snapshot folder of ``repo_id`` at ``revision`` (a ref or a commit hash) in ``cache``, if present.

    The cache is read as untrusted input too: a ref must be a small regular file holding a commit hash, so a
    hostile ``refs/main`` (``../../..``, a FIFO, megabytes) cannot point the loader outside the repository.
    """
    repo = repo_folder(cache, repo_id)
    ref = repo / "refs" / revision
    # huggingface_hub writes a ref as a file; one that leads out of the repository (a symlink to /etc/passwd,
    # to another repository's ref) is never opened: its first bytes would reach the error message below.
    if os.path.lexists(ref) and not os.path.realpath(ref).startswith(os.path.realpath(repo) + os.sep):
        raise CheckpointError(f"{ref}: this ref of the Hugging Face cache leads out of its repository folder "
                              f"(a symlink); refused")
    try:
        is_ref = ref.is_file()
        if not is_ref and (ref.exists() or ref.is_symlink()):  # a FIFO, a device, a dangling link: never opened
            raise CheckpointError(f"{ref}: this ref of the Hugging Face cache is not a regular file; refused")
    except (OSError, ValueError):  # a revision name too long for the file system
        is_ref = False
    if is_ref:
        try:
            data = ref.read_bytes() if ref.stat().st_size <= 1024 else b""
        except OSError as e:
            raise CheckpointError(f"{ref}: cannot read this ref of the Hugging Face cache ({e.strerror or e})") \
                from None
        commit = data.decode("utf-8", "replace").strip()
        if not _COMMIT_HASH.fullmatch(commit):
            raise CheckpointError(f"{ref}: expected a commit hash (40 hexadecimal digits) in this ref of the "
                                  f"Hugging Face cache, found {data[:60]!r}")
    elif _COMMIT_HASH.fullmatch(revision):
        commit = revision  # a commit hash names its snapshot directly
    else:
        return None
    snapshot = repo / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def missing_files(snapshot: Path) -> list[str]:
    """What a snapshot lacks to be loaded: config.json and the weights (a single file, or every indexed shard)."""
    try:
        missing = [] if (snapshot / "config.json").is_file() else ["config.json"]
        index = snapshot / "model.safetensors.index.json"
        if (snapshot / "model.safetensors").is_file():
            return missing
        if not index.is_file():
            return missing + ["model.safetensors"]
        if index.stat().st_size > MAX_JSON_BYTES:
            return missing  # too large to be an index: the loader reports it, naming the file
        shards = set(json.loads(index.read_bytes())["weight_map"].values())
        return missing + sorted(s for s in shards if not (snapshot / s).is_file())
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return []  # a malformed snapshot: let the loader report it, naming the file


def _is_true(value: str | None) -> bool:
    return value is not None and value.upper() in _TRUE
