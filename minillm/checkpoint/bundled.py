"""The checkpoints that ship in the repository's ``weights/`` folder, and which one is the offline default.

    weights/minillm-bilingual                             a small Qwen3 (English + Chinese) trained by minillm itself:
                                                          the offline default (scripts/bundled/, scripts/corpus/)
    weights/tiny-qwen2, tiny-qwen3, tiny-qwen3-yarn-swa   random weights, for the parity tests against transformers

``default_model_path()`` is what ``minillm generate`` / ``chat`` / ``inspect`` and the notebooks use when no
model is named. The folder sits beside the package, so it exists in a clone (``pip install -e .``).
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"  # [repo]/weights
DEFAULT_MODEL_NAME = "minillm-bilingual"


def default_model_path() -> Path:
    """The directory of the bundled offline default model."""
    return WEIGHTS_DIR / DEFAULT_MODEL_NAME
