"""What a resumed run reads back, validated before a step is trained: its own files are untrusted input too.

    OUT/checkpoint/trainer_state/state.json          {"step", "adam_step", "elapsed", "rng", "recipe"}
                                                     (fine-tuning: "tokens" instead of "recipe")
    OUT/checkpoint/trainer_state/master.safetensors  the float32 weights: every name and shape of the config
    OUT/checkpoint/trainer_state/optimizer.safetensors  "m.<name>", "v.<name>": one of each per weight, its shape
    OUT/log.jsonl                                    one JSON object per step: {"step", "loss", "tokens", ...}

A file edited by hand, truncated by a full disk, or replaced by a FIFO must not become a ZeroDivisionError in
AdamW's bias correction (``adam_step: -1``), a run at a negative learning rate (``step: -100``), a silent reset
of the moments (the resume would no longer be exact) or a hang: each check below names the file and the field.
Both resumes read through here: ``Trainer._restore`` (trainer.py) and ``Finetuner._restore`` (finetune.py), each
naming the fields its runs save; they only read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..checkpoint.config import QwenConfig
from ..checkpoint.fields import INT_MAX, show
from ..checkpoint.jsonfile import parse_json, read_small_file
from ..checkpoint.safetensors_file import SafetensorsFile
from ..checkpoint.weights import ModelWeights, build_weights, expected_shapes
from ..errors import MinillmError, TrainingError

MAX_STATE_BYTES = 16 * 1024 * 1024  # state.json holds a few numbers, the RNG state and the recipe: kilobytes
MAX_LOG_BYTES = 1024 * 1024 * 1024  # log.jsonl: ~200 bytes a step, so this is millions of steps
MAX_ELAPSED = 1e15  # seconds a run has trained (30 million years): NaN, infinities and 10**400 are refused
STATE_FILE = "checkpoint/trainer_state/state.json"  # the run folder's files a resume reads (the table above)
MASTER_FILE = "checkpoint/trainer_state/master.safetensors"
MOMENTS_FILE = "checkpoint/trainer_state/optimizer.safetensors"


def run_file(out: Path, name: str) -> Path:
    """``out / name``, a file of the run folder ``out``, if its real location (every symlink followed) lies
    inside ``out``; else TrainingError. (Missing is fine here: each reader says what a missing file means.)

    A resume reads its state, weights and moments and REWRITES log.jsonl: a state.json linked to another run's,
    or a log.jsonl linked to a file elsewhere, would make it train from someone else's state or overwrite a
    file outside the run. The run folder itself may be a symlink (the user chose it): the rule applies from
    where it resolves, as checkpoint/paths.py's does for a checkpoint.
    """
    path = out / name
    root, real = Path(os.path.realpath(out)), Path(os.path.realpath(path))  # [non-strict: a missing file resolves too]
    if root not in real.parents:
        raise TrainingError(f"{path}: cannot resume: it resolves to {show(str(real))}, outside the run folder "
                            f"{show(str(root))} (a resume reads and rewrites only the run's own files)")
    return path


def read_state(path: Path, steps: int, counters: tuple[str, ...] = (), recipe: bool = True) -> dict:
    """A run's trainer_state/state.json at ``path``, every field checked; ``steps`` is the resumed run's length.

    Every run saves "step", "adam_step", "elapsed" and "rng"; ``counters`` names its other integer fields (>= 0:
    fine-tuning's "tokens"), ``recipe`` whether it saves its settings as "recipe" (the trainer does).
    """
    if not path.exists() and not path.is_symlink():
        raise TrainingError(f"{path}: cannot resume: the trainer state file is missing")
    state = parse_json(read_small_file(path, TrainingError, MAX_STATE_BYTES, "a trainer state file"),
                       str(path), TrainingError)
    if not isinstance(state, dict):
        raise TrainingError(f"{path}: expected a JSON object, found {type(state).__name__}")
    step = _int(state, "step", path, 0, steps)
    adam_step = _int(state, "adam_step", path, 1 if step else 0, INT_MAX)  # bias correction divides by 1 - b^t
    elapsed = state.get("elapsed")
    # compared, not math.isfinite: an int of 400 digits is an OverflowError there (and in float() after)
    if not (_is_number(elapsed) and 0 <= elapsed <= MAX_ELAPSED):
        raise TrainingError(f"{path}: field 'elapsed' must be a finite number of seconds >= 0, found {show(elapsed)}")
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = state.get("rng")
    except (TypeError, ValueError, KeyError, OverflowError) as e:
        raise TrainingError(f"{path}: field 'rng' is not a NumPy random generator state ({e})") from None
    read = {"step": step, "adam_step": adam_step, "elapsed": float(elapsed), "rng": rng}
    for name in counters:
        read[name] = _int(state, name, path, 0, 2 ** 63 - 1)
    if recipe:
        read["recipe"] = _recipe(state, path)
    return read


def _recipe(state: dict, path: Path) -> dict:
    recipe = state.get("recipe")
    if not isinstance(recipe, dict):
        raise TrainingError(f"{path}: field 'recipe' must be a JSON object of settings, found {show(recipe)}")
    from .trainer import TrainConfig  # the same checks as a recipe file (trainer.py imports this module)
    try:
        TrainConfig.from_dict(recipe, source=f"{path}: field 'recipe'")
    except MinillmError as e:
        raise TrainingError(str(e)) from None
    return recipe


def read_settings(path: Path) -> dict:
    """A run's saved settings file (fine-tuning's finetune.json): a JSON object, read as untrusted input."""
    if not path.exists() and not path.is_symlink():
        raise TrainingError(f"{path}: cannot resume: the run's settings file is missing")
    settings = parse_json(read_small_file(path, TrainingError, MAX_STATE_BYTES, "a settings file"), str(path),
                          TrainingError)
    if not isinstance(settings, dict):
        raise TrainingError(f"{path}: expected a JSON object of settings, found {type(settings).__name__}")
    return settings


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int(state: dict, name: str, path: Path, low: int, high: int) -> int:
    value = state.get(name)
    if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
        raise TrainingError(f"{path}: field {name!r} must be an integer in {low}..{high}, found {show(value)}"
                            + (" (past the run's steps: pass a larger --steps to train on)"
                               if name == "step" and isinstance(value, int) and value > high else ""))
    return value


def read_master(path: Path, config: QwenConfig) -> ModelWeights:
    """The float32 master weights: exactly the tensors the config implies, each of its shape, all finite."""
    return build_weights(config, checked_tensors(path, expected_shapes(config), "weight"))


def read_moments(path: Path, shapes: dict[str, tuple[int, ...]]) -> tuple[dict, dict]:
    """AdamW's two moments: "m.<name>" and "v.<name>" for every weight in ``shapes``, finite, v >= 0."""
    get = checked_tensors(path, {f"{k}.{name}": s for k in "mv" for name, s in shapes.items()}, "moment")
    m = {name: get(f"m.{name}") for name in shapes}  # name -> [shape of the weight]
    v = {name: get(f"v.{name}") for name in shapes}
    for name, a in v.items():
        if a.size and float(a.min()) < 0:
            raise TrainingError(f"{path}: second moment 'v.{name}' has a negative entry ({float(a.min())}); "
                                f"it is a running mean of squares")
    return m, v


def checked_tensors(path: Path, shapes: dict[str, tuple[int, ...]], what: str):
    """``get(name)`` for build_weights: the file must hold exactly ``shapes``' names; each read is shape- and
    finiteness-checked, so a wrong file fails here, naming the tensor, not deep inside AdamW or RMSNorm."""
    try:
        file = SafetensorsFile(path)
    except MinillmError as e:
        raise TrainingError(f"cannot resume: {e}") from None
    missing = sorted(set(shapes) - set(file.tensors))
    extra = sorted(set(file.tensors) - set(shapes))
    if missing or extra:
        raise TrainingError(f"{path}: cannot resume: " + "; ".join(
            text for text in (f"missing {what}(s) {show(missing)}" if missing else "",
                              f"unexpected tensor(s) {show(extra)}" if extra else "") if text))

    def get(name: str) -> np.ndarray:
        found = tuple(file.tensors[name].shape)
        if file.tensors[name].dtype != "F32":  # the trainer writes float32: F16 or BF16 would resume inexactly
            raise TrainingError(f"{path}: tensor {name!r}: expected dtype F32 (as the trainer writes it), found "
                                f"{file.tensors[name].dtype}")
        if found != tuple(shapes[name]):
            raise TrainingError(f"{path}: tensor {name!r}: expected shape {list(shapes[name])}, found {list(found)}")
        try:
            array = file.get_float32(name)  # [shape]
        except MinillmError as e:
            raise TrainingError(f"cannot resume: {e}") from None
        if not np.isfinite(array).all():
            raise TrainingError(f"{path}: tensor {name!r} holds NaN or infinite values")
        return array

    return get


def keep_log_until(log: Path, step: int) -> None:
    """Steps logged after the last save (a run stopped between saves) are trained again: rewrite log.jsonl with
    only its lines up to ``step``, each checked (``kept_log_lines``). The one write of this module."""
    kept = kept_log_lines(log, step)
    log.write_text("".join(x + "\n" for x in kept), encoding="utf-8")


def kept_log_lines(log: Path, step: int) -> list[str]:
    """log.jsonl's lines up to ``step`` (steps logged after the last save are trained again), each checked to be
    an object with the integer "step" and the numbers "loss" and "tokens" the loss curve plots."""
    if not log.exists() and not log.is_symlink():
        return []
    text = read_small_file(log, TrainingError, MAX_LOG_BYTES, "a JSONL log").decode("utf-8", errors="replace")
    kept = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        entry = parse_json(line, f"{log}: line {number}", TrainingError)
        if not isinstance(entry, dict):
            raise TrainingError(f"{log}: line {number}: expected a JSON object, found {type(entry).__name__}")
        if not isinstance(entry.get("step"), int) or isinstance(entry.get("step"), bool):
            raise TrainingError(f"{log}: line {number}: field 'step' must be an integer, found "
                                f"{show(entry.get('step'))}")
        if entry["step"] > step:
            continue
        for name in ("loss", "tokens"):  # finite: a run stops at a non-finite loss before it logs the step
            if not _is_number(entry.get(name)) or not math.isfinite(entry[name]):
                raise TrainingError(f"{log}: line {number}: field {name!r} must be a finite number, found "
                                    f"{show(entry.get(name))}")
        kept.append(line)
    return kept
