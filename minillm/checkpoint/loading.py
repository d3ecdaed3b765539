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

Every file is opened through ``checkpoint_file`` (paths.py): a regular file inside the checkpoint directory
(or its Hugging Face cache folder), so a shard named ``../x`` or a config.json linked elsewhere is refused,
because loading a "model" must never read files elsewhere on the machine. The config's sizes are compared
with the weights before anything is built from them: a config claiming 10 million layers fails at once.
(A snapshot of the Hugging Face cache may link into blobs/ of its own models--org--name folder, see hub.py.)

Qwen3.5 on the Hub is a multimodal checkpoint: the language model's tensors are named
``model.language_model.*`` (read as ``model.*``), next to a vision tower (``model.visual.*``, read by
minillm/vision/tower.py when the config's image tokens exist in the vocabulary) and a multi-token-prediction
head (``mtp.*``) that minillm does not run; what is not run is reported in one line and skipped.

The experts of a mixture of experts may be stored stacked or one tensor per expert; experts.py checks the
per-expert ones and reads them into the stacked arrays the model uses.
"""

from __future__ import annotations

import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from .config import QwenConfig, load_config
from .experts import per_expert_sources, read_stacked
from .fields import show
from .jsonfile import read_json_object
from ..errors import CheckpointError, MinillmWarning
from .generation_config import load_generation_config
from .hub import resolve_model_path
from .paths import checkpoint_directory, checkpoint_file
from .safetensors_file import FLOAT_DTYPES, SafetensorsFile
from .weights import ModelWeights, build_weights, expected_shapes, shape_origin

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
LANGUAGE_MODEL_PREFIX = "model.language_model."  # Hub Qwen3.5: the LM inside the multimodal wrapper
NOT_LANGUAGE_MODEL = {"model.visual.": "vision tower", "mtp.": "multi-token-prediction head"}  # never run here


class CheckpointWarning(MinillmWarning):
    """Something in a checkpoint that loads but deserves the user's attention (extra tensors, a stored head)."""


def open_checkpoint(directory: str | Path) -> dict[str, SafetensorsFile]:
    """Map every tensor name of the checkpoint to the open (header-validated) file that holds it."""
    directory = checkpoint_directory(directory, CheckpointError)
    single = checkpoint_file(directory, SINGLE_FILE, CheckpointError)
    if single is not None:  # transformers' order too: the single file first, then the index
        f = SafetensorsFile(single)
        return {name: f for name in f.tensors}
    index_path = checkpoint_file(directory, INDEX_FILE, CheckpointError)
    if index_path is not None:
        return _open_shards(directory, index_path)
    others = sorted(p.name for p in directory.glob("*.safetensors"))
    hint = f"; found {show(others)}, but no {INDEX_FILE} naming them" if others else ""
    raise CheckpointError(f"{directory}: no weights: expected {SINGLE_FILE} or {INDEX_FILE}{hint}")


def _open_shards(directory: Path, index_path: Path) -> dict[str, SafetensorsFile]:
    shown = directory / INDEX_FILE
    index = read_json_object(index_path, CheckpointError)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{shown}: expected an object with a 'weight_map' of tensor name -> shard file")

    shards: dict[str, SafetensorsFile] = {}
    located: dict[str, SafetensorsFile] = {}
    for name, shard in weight_map.items():
        if shard not in shards:
            # Security boundary (paths.py): a shard must be a regular file inside the checkpoint directory.
            label = f"{shown}: shard path {show(shard)} (for tensor {show(name)})"
            shard_path = checkpoint_file(directory, shard, CheckpointError, label)
            if shard_path is None:
                raise CheckpointError(f"{shown}: tensor {show(name)} is mapped to shard {show(shard)}, "
                                      f"which does not exist in {directory}")
            shards[shard] = SafetensorsFile(shard_path)
        if name not in shards[shard].tensors:
            raise CheckpointError(f"{shown}: tensor {show(name)} is mapped to {show(shard)}, but that file "
                                  f"does not contain it")
        located[name] = shards[shard]
    return located


def report_problems(problems: list[str], where: str) -> None:
    """Raise one CheckpointError listing the first five problems found (and how many more), if any."""
    if problems:
        more = f" (and {len(problems) - 5} more problems)" if len(problems) > 5 else ""
        raise CheckpointError(f"{where}: " + "; ".join(problems[:5]) + more)


def check_layer_count(files: dict, config: QwenConfig, directory) -> None:
    """The config's num_hidden_layers against the layers the weights hold, before anything is built per layer.

    A config may claim fewer layers than the files hold (the rest are reported as unused tensors), never more.
    """
    held = {int(m.group(1)) for name in files if (m := re.match(r"model\.layers\.(\d{1,9})\.", name))}
    count = max(held) + 1 if held else 0
    if config.num_hidden_layers > count:
        found = f"{count} layers (model.layers.0 .. model.layers.{count - 1})" if count else "no model.layers.*"
        raise CheckpointError(f"{directory}: checkpoint does not match config.json: num_hidden_layers is "
                              f"{config.num_hidden_layers}, but the weights hold {found}")


def language_model_tensors(files: dict[str, SafetensorsFile]) -> tuple[dict[str, SafetensorsFile],
                                                                        Callable[[str], str], dict[str, list[str]]]:
    """The language model's tensors under their text-only names (``model.*``), whatever the layout.

    Returns (file of each tensor by LM name, LM name -> name stored in the file, {prefix: stored names} of
    the parts that are not the language model: the vision tower and the MTP head).
    """
    multimodal = any(name.startswith(LANGUAGE_MODEL_PREFIX) for name in files)

    def stored(name: str) -> str:
        return LANGUAGE_MODEL_PREFIX + name[len("model."):] if multimodal and name.startswith("model.") else name

    lm, skipped = {}, {}
    for name, f in files.items():
        part = next((prefix for prefix in NOT_LANGUAGE_MODEL if name.startswith(prefix)), None)
        if part is not None:
            skipped.setdefault(part, []).append(name)
        elif multimodal and name.startswith(LANGUAGE_MODEL_PREFIX):
            lm["model." + name[len(LANGUAGE_MODEL_PREFIX):]] = f
        else:
            lm[name] = f  # lm_head.weight (top level in both layouts), or anything else
    return lm, stored, skipped


def read_checkpoint(directory: str | Path, config: QwenConfig,
                    progress: Callable[[int, int], None] | None = None,
                    vision_used: bool = False) -> tuple[ModelWeights, list[str]]:
    """Validate every tensor against the config, then convert them to float32 into ModelWeights.

    Returns the weights and the names of the tensors the checkpoint holds but the model does not use.
    ``progress(done, total)`` is called after each tensor (the CLI draws a bar with it).
    """
    files, stored, skipped = language_model_tensors(open_checkpoint(directory))
    if vision_used:  # read by minillm/vision/tower.py: not reported as unused
        skipped.pop("model.visual.", None)
    check_layer_count(files, config, directory)  # on the language model's names (model.layers.*), any layout
    tied = config.tie_word_embeddings
    has_head = "lm_head.weight" in files
    expected = expected_shapes(config, with_lm_head=(not tied) or has_head)

    per_expert, problems = per_expert_sources(files, expected, stored)  # experts stored one tensor per expert
    for name, shape in expected.items():
        if name in per_expert:
            continue  # checked part by part above
        if name not in files:
            problems.append(f"tensor {stored(name)!r} is missing (expected shape {list(shape)})")
            continue
        info = files[name].tensors[stored(name)]
        if info.shape != shape:
            problems.append(f"tensor {stored(name)!r} in {files[name].path.name}: expected shape {list(shape)} "
                            f"(from config {shape_origin(name)}), found {list(info.shape)}")
        elif info.dtype not in FLOAT_DTYPES:
            problems.append(f"tensor {stored(name)!r} in {files[name].path.name}: expected dtype "
                            f"{'/'.join(FLOAT_DTYPES)}, found {info.dtype}")
    report_problems(problems, f"{directory}: checkpoint does not match config.json")

    if skipped:  # one line for the parts of a multimodal checkpoint that are not the language model
        parts = " and ".join(f"the {NOT_LANGUAGE_MODEL[prefix]} ({len(names)} tensors, {prefix}*)"
                             for prefix, names in skipped.items())
        warnings.warn(f"{directory}: {parts} {'are' if len(skipped) > 1 else 'is'} not used: minillm runs "
                      f"the language model only", CheckpointWarning,
                      stacklevel=3)
    used = set(expected) | {part for parts in per_expert.values() for _, _, part in parts}
    unexpected = sorted(stored(n) for n in set(files) - used)
    if unexpected:
        shown = ", ".join(unexpected[:8]) + (" ..." if len(unexpected) > 8 else "")
        warnings.warn(f"{directory}: {len(unexpected)} tensors in the checkpoint are not used by a "
                      f"{config.model_type} model and were ignored: {shown}", CheckpointWarning, stacklevel=3)

    if tied and has_head:
        # Qwen3-0.6B stores lm_head.weight although tie_word_embeddings is true. transformers 5 ties only
        # when the two are equal, and otherwise uses the stored head (transformers 4 always tied); so do we.
        embed = "model.embed_tokens.weight"
        same = np.array_equal(files["lm_head.weight"].raw("lm_head.weight"), files[embed].raw(stored(embed)))
        tied = same
        warnings.warn(
            f"{directory}: tie_word_embeddings is true but lm_head.weight is stored too; "
            + ("it equals the embedding, so one copy is used" if same else
               "it differs from the embedding, so the stored lm_head.weight is used (transformers 5 rule)"),
            CheckpointWarning, stacklevel=3)
    names = [n for n in expected if not (tied and n == "lm_head.weight")]

    # Each tensor is read through its memory map and widened to float32 once. NumPy releases the GIL while
    # converting, so two threads keep both cores busy; results come back in order.
    def read(name: str) -> np.ndarray:
        if name in per_expert:  # stacked from its per-expert tensors, each read straight into its slice
            return read_stacked(files, per_expert[name], expected[name], stored)
        return files[name].get_float32(stored(name))

    arrays: dict[str, np.ndarray] = {}
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        for done, (name, array) in enumerate(zip(names, pool.map(read, names)), 1):
            arrays[name] = array
            if progress is not None:
                progress(done, len(names))
    not_used = unexpected + sorted(name for names in skipped.values() for name in names)
    return build_weights(config, arrays.__getitem__, tied=tied), not_used


def load_model(path: str | Path, progress: Callable[[int, int], None] | None = None, adapter: str | Path | None = None):
    """Load a Qwen2 / Qwen2.5 / Qwen3 / Qwen3.5 / Qwen3-MoE / Qwen3-Next / Qwen3.5-MoE checkpoint into a float32
    ``Model``.

    ``path``: a checkpoint directory, or a Hub id ``"Qwen/Qwen2.5-0.5B-Instruct"`` (optionally ``@revision``)
    found in the local Hugging Face cache, or downloaded when huggingface_hub is installed (hub.py).
    ``adapter``: a PEFT LoRA adapter directory (adapter.py); the model then computes base + adapter.
    """
    from ..model.transformer import Model  # transformer.py never imports this file: keep the dependency one way
    from ..model.prefill import fuse_projections
    from ..model.fused_linear import fuse_hybrid_projections

    from ..vision.tower import read_vision_tower, usable_vision_config

    path = checkpoint_directory(resolve_model_path(path), CheckpointError)
    config = load_config(path)
    vision_config = usable_vision_config(path, config)  # None: a text-only model (or a tower it cannot run)
    files = open_checkpoint(path) if vision_config is not None else {}
    if not any(n.startswith("model.visual.") for n in files):
        vision_config = None  # no vision_config, or one without the tower's weights (a text-only export)
    weights, unexpected = read_checkpoint(path, config, progress, vision_used=vision_config is not None)
    fuse_projections(weights.layers)  # q/k/v and gate/up as rows of one array each: one product per prompt pass
    fuse_hybrid_projections(weights.layers)  # Qwen3.5's input projections likewise: one product per token too
    model = Model(config, weights, path=path, unexpected_tensors=unexpected,
                  generation_config=load_generation_config(path))
    if vision_config is not None:  # Qwen3.5 sees: the vision tower, model.visual.* (minillm/vision)
        model.vision = read_vision_tower(files, vision_config, path)
    _, stored, _ = language_model_tensors(open_checkpoint(path))
    model.stored_name = stored  # model.* name -> the name in the files (model.language_model.*): for the gradients
    if adapter is not None:
        from .adapter import load_adapter
        load_adapter(model, adapter)
    return model
