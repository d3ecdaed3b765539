"""Loading a checkpoint directory: config.json plus one ``model.safetensors`` or shards with an index.

    checkpoint/
      config.json
      model.safetensors                              (small models: one file)
    or
      model.safetensors.index.json                   {"weight_map": {tensor name: shard file name}}
      model-00001-of-00002.safetensors, ...

Everything is checked before any weight is converted, so a bad checkpoint fails fast and nothing is left
half-loaded: every expected tensor present, with the shape the config implies and a float dtype. Then each
tensor is read once through the memory map and widened to float32 (BF16 exactly), one at a time, so the
peak memory is the float32 model, not the float32 model plus a copy of every file.

A shard index is untrusted: a shard name must be a plain file inside the checkpoint directory. ``../x``, an
absolute path, or a file that is a symlink to somewhere else is refused, because loading a "model" must never
read files elsewhere on the machine. (A snapshot of the Hugging Face cache is the one exception: its files are
symlinks into ``blobs/`` of the same ``models--org--name`` folder, see hub.py.)
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from .config import QwenConfig, load_config
from .jsonfile import read_json_object
from ..errors import CheckpointError
from .generation_config import load_generation_config
from .hub import checkpoint_root, resolve_model_path
from .safetensors_file import FLOAT_DTYPES, SafetensorsFile
from .weights import ModelWeights, build_weights, expected_shapes, shape_origin

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class CheckpointWarning(UserWarning):
    """Something in a checkpoint that loads but deserves the user's attention (extra tensors, a stored head)."""


def open_checkpoint(directory: str | Path) -> dict[str, SafetensorsFile]:
    """Map every tensor name of the checkpoint to the open (header-validated) file that holds it."""
    directory = Path(directory)
    single = directory / SINGLE_FILE
    if single.is_file():  # transformers' order too: the single file first, then the index
        f = SafetensorsFile(single)
        return {name: f for name in f.tensors}
    index_path = directory / INDEX_FILE
    if index_path.is_file():
        return _open_shards(directory, index_path)
    others = sorted(p.name for p in directory.glob("*.safetensors"))
    hint = f"; found {others}, but no {INDEX_FILE} naming them" if others else ""
    raise CheckpointError(f"{directory}: no weights: expected {SINGLE_FILE} or {INDEX_FILE}{hint}")


def _open_shards(directory: Path, index_path: Path) -> dict[str, SafetensorsFile]:
    index = read_json_object(index_path, CheckpointError)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index_path}: expected an object with a 'weight_map' of tensor name -> shard file")

    root = checkpoint_root(directory)  # the directory, or a Hub cache snapshot's models--* folder (hub.py)
    shards: dict[str, SafetensorsFile] = {}
    located: dict[str, SafetensorsFile] = {}
    for name, shard in weight_map.items():
        if shard not in shards:
            shard_path = (directory / shard).resolve()
            # Security boundary: a shard must be a file inside the checkpoint directory tree, symlinks followed
            # (in the Hugging Face cache, a snapshot's files are symlinks into the same models--* folder).
            if Path(shard).is_absolute() or ".." in Path(shard).parts or root not in shard_path.parents:
                raise CheckpointError(f"{index_path}: shard path {shard!r} (for tensor {name!r}) leaves the "
                                      f"checkpoint directory; refused")
            if not shard_path.is_file():
                raise CheckpointError(f"{index_path}: tensor {name!r} is mapped to shard {shard!r}, "
                                      f"which does not exist in {directory}")
            shards[shard] = SafetensorsFile(shard_path)
        if name not in shards[shard].tensors:
            raise CheckpointError(f"{index_path}: tensor {name!r} is mapped to {shard!r}, but that file "
                                  f"does not contain it")
        located[name] = shards[shard]
    return located


def read_checkpoint(directory: str | Path, config: QwenConfig,
                    progress: Callable[[int, int], None] | None = None) -> tuple[ModelWeights, list[str]]:
    """Validate every tensor against the config, then convert them to float32 into ModelWeights.

    Returns the weights and the names of the tensors the checkpoint holds but the model does not use.
    ``progress(done, total)`` is called after each tensor (the CLI draws a bar with it).
    """
    files = open_checkpoint(directory)
    tied = config.tie_word_embeddings
    has_head = "lm_head.weight" in files
    expected = expected_shapes(config, with_lm_head=(not tied) or has_head)

    problems = []
    for name, shape in expected.items():
        if name not in files:
            problems.append(f"tensor {name!r} is missing (expected shape {list(shape)})")
            continue
        info = files[name].tensors[name]
        if info.shape != shape:
            problems.append(f"tensor {name!r} in {files[name].path.name}: expected shape {list(shape)} "
                            f"(from config {shape_origin(name)}), found {list(info.shape)}")
        elif info.dtype not in FLOAT_DTYPES:
            problems.append(f"tensor {name!r} in {files[name].path.name}: expected dtype "
                            f"{'/'.join(FLOAT_DTYPES)}, found {info.dtype}")
    if problems:
        more = f" (and {len(problems) - 5} more problems)" if len(problems) > 5 else ""
        raise CheckpointError(f"{directory}: checkpoint does not match config.json: "
                              + "; ".join(problems[:5]) + more)

    unexpected = sorted(set(files) - set(expected))
    if unexpected:
        shown = ", ".join(unexpected[:8]) + (" ..." if len(unexpected) > 8 else "")
        warnings.warn(f"{directory}: {len(unexpected)} tensors in the checkpoint are not used by a "
                      f"{config.model_type} model and were ignored: {shown}", CheckpointWarning, stacklevel=3)

    if tied and has_head:
        # Qwen3-0.6B stores lm_head.weight although tie_word_embeddings is true. transformers 5 ties only
        # when the two are equal, and otherwise uses the stored head (transformers 4 always tied); so do we.
        same = np.array_equal(files["lm_head.weight"].raw("lm_head.weight"),
                              files["model.embed_tokens.weight"].raw("model.embed_tokens.weight"))
        tied = same
        warnings.warn(
            f"{directory}: tie_word_embeddings is true but lm_head.weight is stored too; "
            + ("it equals the embedding, so one copy is used" if same else
               "it differs from the embedding, so the stored lm_head.weight is used (transformers 5 rule)"),
            CheckpointWarning, stacklevel=3)
    names = [n for n in expected if not (tied and n == "lm_head.weight")]

    # Each tensor is read through its memory map and widened to float32 once. NumPy releases the GIL while
    # converting, so two threads keep both cores busy; results come back in order.
    arrays: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        for done, (name, array) in enumerate(zip(names, pool.map(lambda n: files[n].get_float32(n), names)), 1):
            arrays[name] = array
            if progress is not None:
                progress(done, len(names))
    return build_weights(config, arrays.__getitem__, tied=tied), unexpected


def load_model(path: str | Path, progress: Callable[[int, int], None] | None = None):
    """Load a Qwen2 / Qwen2.5 / Qwen3 checkpoint into a float32 ``Model``.

    ``path``: a checkpoint directory, or a Hub id ``"Qwen/Qwen2.5-0.5B-Instruct"`` (optionally ``@revision``)
    found in the local Hugging Face cache, or downloaded when huggingface_hub is installed (hub.py).
    """
    from ..model.transformer import Model  # transformer.py never imports this file: keep the dependency one way

    path = resolve_model_path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a directory (expected a checkpoint directory with config.json "
                              f"and safetensors weights)")
    config = load_config(path)
    weights, unexpected = read_checkpoint(path, config, progress)
    return Model(config, weights, path=path, unexpected_tensors=unexpected,
                 generation_config=load_generation_config(path))
