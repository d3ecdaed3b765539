"""The checkpoint that ships inside the package, and which one is the offline default.

    minillm/bundled/minillm-bilingual    a small Qwen3 (English + Chinese) trained by minillm itself: the offline
                                         default (its recipe in scripts/bundled/, its corpus in scripts/corpus/)

``default_model_path()`` is what ``minillm generate`` / ``chat`` / ``inspect`` and the notebooks use when no
model is named. The model is package data: it sits inside the package, so the same path holds in a clone
(``pip install -e .``) and in an installed wheel (``pip install minillm-*.whl``, from any directory). The wheel
carries only what running it needs (config, generation config, weights, tokenizer; pyproject.toml's package-data)
and the record of its training data; the rest of its training record (log, recipes, reference outputs) stays in
the repository.

The random reference checkpoints of the tests (tiny-qwen2, tiny-qwen3, ...) stay in the repository's ``weights/``.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled"  # [package]/bundled
DEFAULT_MODEL_NAME = "minillm-bilingual"


def default_model_path() -> Path:
    """The directory of the bundled offline default model."""
    return BUNDLED_DIR / DEFAULT_MODEL_NAME
