"""Layer-by-layer comparison of minillm against a reference dump (what the tests and `minillm verify` do).

A reference file is an .npz holding ``input_ids`` [T], ``hidden_0`` .. ``hidden_L`` [T, D] (transformers'
``output_hidden_states``) and ``logits`` [T, V], all float32. scripts/make_tiny_models.py writes them;
docs in the README show how to make one for your own checkpoint with transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError


@dataclass
class ErrorRow:
    name: str  # "embeddings", "layer 0", ..., "final norm", "logits"
    max_abs_error: float
    scale: float  # the largest magnitude in the reference tensor
    rel_error: float  # max_abs_error / scale


def load_reference(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path) as f:
            ref = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read reference file ({e})") from None
    for key in ("input_ids", "logits", "hidden_0"):
        if key not in ref:
            raise CheckpointError(f"{path}: reference file has no {key!r} array (found {sorted(ref)})")
    return ref


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
