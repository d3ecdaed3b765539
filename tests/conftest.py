"""Shared fixtures: the bundled tiny checkpoints and their transformers reference outputs."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest

import minillm

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
TINY_MODELS = ["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa"]


def checkpoint_dir(name: str) -> Path:
    """A checkpoint of the repository by name: the bundled model ships inside the package, the reference
    checkpoints of the tests live in weights/."""
    return minillm.default_model_path() if name == minillm.default_model_path().name else WEIGHTS / name


@functools.lru_cache(maxsize=None)
def tiny_model(name: str) -> minillm.Model:
    """Load each bundled model once per test session (tests must not modify it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", minillm.CheckpointWarning)
        return minillm.load_model(checkpoint_dir(name))


@functools.lru_cache(maxsize=None)
def reference(name: str) -> dict[str, np.ndarray]:
    with np.load(checkpoint_dir(name) / "reference.npz") as f:
        return {k: f[k] for k in f.files}


def rel_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """max |ours - theirs| over the largest magnitude of theirs (the reference), in float64."""
    return float(np.abs(ours.astype(np.float64) - theirs).max() / np.abs(theirs).max())


def load_quietly(path) -> minillm.Model:
    """load_model without the CheckpointWarnings (unused vision / MTP tensors of a Hub checkpoint)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", minillm.CheckpointWarning)
        return minillm.load_model(path)


@pytest.fixture(params=TINY_MODELS)
def model_name(request) -> str:
    return request.param


# In CI the property tests draw the same examples every run (no flaky builds); locally they explore anew.
import os  # noqa: E402

from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
