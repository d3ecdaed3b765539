"""Layer-by-layer comparison of minillm against a reference dump (what the tests and `minillm verify` do).

A reference file is an .npz holding ``input_ids`` [T], ``hidden_0`` .. ``hidden_L`` [T, D] (transformers'
``output_hidden_states``) and ``logits`` [T, V], all float32. scripts/make_tiny_models.py writes them;
docs in the README show how to make one for your own checkpoint with transformers.

A reference file is input too: an .npz is a zip of .npy files, and an .npy header states its array's shape,
which NumPy allocates before reading the data. So ``load_reference`` reads every header first and refuses
a file whose arrays claim more bytes than the archive can hold, holds Python objects, or has the wrong
dtypes, before NumPy reads anything.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

MAX_DEFLATE_RATIO = 1032  # DEFLATE cannot expand data more than this: a member claiming more lies


@dataclass
class ErrorRow:
    name: str  # "embeddings", "layer 0", ..., "final norm", "logits"
    max_abs_error: float
    scale: float  # the largest magnitude in the reference tensor
    rel_error: float  # max_abs_error / scale


def load_reference(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a reference .npz, each header checked before NumPy reads (and allocates) its data."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename[:-4]: info for info in archive.infolist() if info.filename.endswith(".npy")}
            for key in ("input_ids", "logits", "hidden_0"):
                if key not in members:
                    raise CheckpointError(f"{path}: reference file has no {key!r} array (found {sorted(members)})")
            ref = {}
            for key, info in members.items():
                if key not in ("input_ids", "logits") and not key.startswith("hidden_"):
                    continue  # other arrays (a reference may carry more) are not read
                with archive.open(info) as f:
                    _check_array_header(path, key, info, f)
                with archive.open(info) as f:
                    ref[key] = np.lib.format.read_array(f, allow_pickle=False)
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{path}: not an .npz archive ({e}); save a reference with np.savez(...)") from None
    except (OSError, ValueError, EOFError, zlib.error, NotImplementedError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot read reference file ({type(e).__name__}: {e})") from None
    return ref


def _check_array_header(path: Path, key: str, info: zipfile.ZipInfo, f) -> None:
    """What one .npy member claims, against what the archive can hold and what a reference is."""
    version = np.lib.format.read_magic(f)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in read_header:
        raise CheckpointError(f"{path}: array {key!r} has an .npy format version {version} minillm does not read")
    shape, _, dtype = read_header[version](f)
    if dtype.hasobject:
        raise CheckpointError(f"{path}: array {key!r} holds Python objects; a reference holds numbers only")
    wanted = "iu" if key == "input_ids" else "f"
    if dtype.kind not in wanted:
        raise CheckpointError(f"{path}: array {key!r} has dtype {dtype}; expected "
                              f"{'integers' if key == 'input_ids' else 'floats'}")
    claimed = math.prod(shape) * dtype.itemsize
    stored = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
        min(info.file_size, MAX_DEFLATE_RATIO * info.compress_size + 1024)
    if claimed > stored or claimed > info.file_size:
        raise CheckpointError(f"{path}: array {key!r} claims shape {list(shape)} ({claimed:,} bytes), more than "
                              f"its {stored:,} bytes in the archive can hold")


def compare_to_reference(model, ref: dict[str, np.ndarray]) -> list[ErrorRow]:
    """Run the reference's input_ids through the model; one row per hidden state, then the logits."""
    logits, hidden = model.forward(ref["input_ids"], output_hidden_states=True)
    L = len(hidden) - 1
    if f"hidden_{L}" not in ref:
        raise CheckpointError(f"reference has no hidden_{L}: it was made for a model with a different number "
                              f"of layers")
    names = ["embeddings"] + [f"layer {i - 1} output" for i in range(1, L)] + ["final norm"]
    rows = [_row(names[i], hidden[i], ref[f"hidden_{i}"]) for i in range(L + 1)]
    rows.append(_row("logits", logits, ref["logits"]))
    return rows


def _row(name: str, ours: np.ndarray, theirs: np.ndarray) -> ErrorRow:
    if ours.shape != theirs.shape:
        raise CheckpointError(f"{name}: shape {list(ours.shape)} differs from the reference's {list(theirs.shape)}")
    err = float(np.abs(ours.astype(np.float64) - theirs).max())
    scale = float(np.abs(theirs).max()) or 1.0
    return ErrorRow(name, err, scale, err / scale)


def format_error_table(rows: list[ErrorRow], tolerance: float | None = None) -> str:
    lines = [f"{'tensor':<22}{'max |diff|':>12}{'max |ref|':>12}{'relative':>12}"]
    for r in rows:
        flag = "  <-- over tolerance" if tolerance is not None and r.rel_error > tolerance else ""
        lines.append(f"{r.name:<22}{r.max_abs_error:>12.3e}{r.scale:>12.3g}{r.rel_error:>12.3e}{flag}")
    return "\n".join(lines)
