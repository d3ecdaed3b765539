"""The one-screen forward pass (minillm/model/plain.py) computes exactly what Model.forward computes."""

from __future__ import annotations

import numpy as np
import pytest

from minillm.model.plain import plain_forward
from conftest import TINY_MODELS, reference, tiny_model


@pytest.mark.parametrize("name", TINY_MODELS)
def test_plain_forward_equals_model_forward(name):
    """Every bundled checkpoint: Qwen2 biases, Qwen3 q/k-norm and head_dim, YaRN, sliding-window layers."""
    model = tiny_model(name)
    ids = reference(name)["input_ids"]  # on tiny-qwen3-yarn-swa: longer than the window and the YaRN span
    got = plain_forward(model.weights, model.config, ids)
    assert got.shape == (len(ids), model.config.vocab_size) and got.dtype == np.float32
    np.testing.assert_allclose(got, model.forward(ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", TINY_MODELS)
def test_plain_forward_matches_transformers(name):
    ref = reference(name)
    got = plain_forward(tiny_model(name).weights, tiny_model(name).config, ref["input_ids"])
    scale = np.abs(ref["logits"]).max()
    assert np.abs(got - ref["logits"]).max() / scale < 1e-4
