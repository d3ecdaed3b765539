"""A fake Hugging Face cache, laid out byte for byte as huggingface_hub writes it (no network, no huggingface_hub).

    <cache>/models--org--name/
      blobs/<git sha1 of a small file, or sha256 of an LFS file (the safetensors)>
      refs/main                                       the commit hash, no newline
      snapshots/<commit>/<file> -> ../../blobs/<sha>  relative symlinks
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHECKPOINT_FILES = ("config.json", "generation_config.json", "model.safetensors", "model.safetensors.index.json",
                    "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def blob_name(data: bytes, lfs: bool) -> str:
    """The Hub names an LFS file's blob by its sha256, any other file's by its git blob sha1."""
    if lfs:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def add_snapshot(cache: Path, repo_id: str, source: Path, commit: str | None = None,
                 refs: tuple[str, ...] = ("main",), files: list[str] | None = None) -> Path:
    """Put the checkpoint files of ``source`` into ``cache`` as revision ``commit``; point ``refs`` at it."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    names = files if files is not None else sorted(
        p.name for p in source.iterdir()
        if p.name in CHECKPOINT_FILES or (p.name.startswith("model-") and p.suffix == ".safetensors"))
    commit = commit or hashlib.sha1(repo_id.encode() + "".join(names).encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name in names:
        data = (source / name).read_bytes()
        blob = repo / "blobs" / blob_name(data, lfs=name.endswith(".safetensors"))
        blob.write_bytes(data)
        link = snapshot / name
        link.symlink_to(os.path.relpath(blob, snapshot))  # ../../blobs/<sha>, as huggingface_hub makes it
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)  # huggingface_hub writes the bare hash
    return snapshot
