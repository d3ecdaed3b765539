"""Train a small model in minutes on data the repository ships: ``examples/<name>/`` holds a recipe and its tokens.

    minillm train --config examples/shakespeare/recipe.json --out runs/shakespeare     # from the repository root

    from minillm.training.quickstart import train_example                              # from Python, anywhere
    run = train_example("runs/shakespeare")            # -> Path: run/checkpoint, log.jsonl, loss_curve.png, samples.txt
    run = train_example("runs/short", steps=40)        # any recipe setting can be overridden

A recipe names its files relative to the repository root (``examples/shakespeare/train.npy``), as the command
above reads them; ``example_recipe`` makes them absolute, so the Python call works from any directory (a
notebook runs in notebooks/). The example and its data are described in examples/shakespeare/README.md.
"""

from __future__ import annotations

from pathlib import Path

from ..checkpoint.jsonfile import read_json_object
from ..errors import InputError
from .samples import write_samples
from .trainer import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[2]  # the repository (a clone): examples/ sits beside the package
EXAMPLES_DIR = ROOT / "examples"


def example_recipe(name: str = "shakespeare", **overrides) -> TrainConfig:
    """examples/<name>/recipe.json with its file paths made absolute, and ``overrides`` applied (steps=40, ...)."""
    path = EXAMPLES_DIR / name / "recipe.json"
    if not path.is_file():
        found = sorted(p.parent.name for p in EXAMPLES_DIR.glob("*/recipe.json"))
        raise InputError(f"{path}: no such example recipe; the examples are {found} (examples/ is part of a "
                         f"clone of the repository, not of an installed package)")
    raw = read_json_object(path, InputError)
    for key in ("train_tokens", "val_tokens", "tokenizer", "init_from"):
        if raw.get(key) and not Path(raw[key]).is_absolute():
            raw[key] = str(ROOT / raw[key])
    raw.update(overrides)
    return TrainConfig.from_dict(raw, source=str(path))


def train_example(out: str | Path, name: str = "shakespeare", *, resume: bool = False, progress: bool = True,
                  max_steps: int | None = None, **overrides) -> Path:
    """Train (or resume, or continue for ``max_steps``) the example into ``out``; returns the run directory.

    At the end of the run the recipe's samples are written to ``out/samples.txt``, as ``minillm train`` does.
    """
    cfg = example_recipe(name, **overrides)
    trainer = Trainer(cfg, out, resume=resume, progress=progress)
    trainer.run(max_steps=max_steps)
    if trainer.step == cfg.steps and cfg.samples:
        write_samples(trainer)
    return Path(out)
