"""Training Qwen3.5 and the mixtures of experts: overfitting, round trips through transformers, the plain form.

* A tiny Qwen3.5 and a tiny MoE (the tiny checkpoints' configs, random weights) overfit one fixed batch.
* The checkpoints ``minillm train`` writes load back in minillm and in transformers with the same logits
  (weights/trained-*: written by scripts/make_hybrid_grad_fixtures.py --trained, which trains them with minillm
  and records transformers' logits of each in transformers_logits.npz).
* The one-screen delta rule backward (minillm/plain/deltanet_backward.py) equals the engine's, recurrent and chunked.
* The committed recipes parse, and training options are checked.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import minillm
from minillm.backward.delta_rule import (chunked_gated_delta_rule_backward, chunked_gated_delta_rule_forward,
                                         recurrent_gated_delta_rule_backward, recurrent_gated_delta_rule_forward)
from minillm.plain.deltanet_backward import deltanet_backward
from minillm.training.trainer import TrainConfig, Trainer
from conftest import ROOT, WEIGHTS

RECIPES = ROOT / "examples" / "hybrid"


def recipe(tmp_path, name: str, **overrides) -> dict:
    cfg = json.loads((WEIGHTS / name / "config.json").read_text())
    tokens = tmp_path / "tokens.npy"
    np.save(tokens, np.random.default_rng(0).integers(0, cfg["vocab_size"], 4000).astype(np.uint16))
    raw = dict(model=cfg, train_tokens=str(tokens), steps=4, batch_size=2, context=16, warmup=1, eval_every=2,
               eval_windows=2, save_every=2, seed=3)
    raw.update(overrides)
    return raw


@pytest.mark.parametrize("name, extra", [("tiny-qwen3.5", {}), ("tiny-qwen3-moe", {"output_router_logits": True})])
def test_a_tiny_hybrid_and_a_tiny_moe_overfit_one_fixed_batch(tmp_path, name, extra):
    """One window repeated: the loss falls from ln(V) ~ 5.95 to below 1.0 within 60 steps (chunked delta rule,
    random weights initialised as transformers does; the MoE with its load-balancing loss on)."""
    raw = recipe(tmp_path, name, steps=60, batch_size=1, context=24, lr=1e-2, min_lr=1e-2, warmup=1,
                 weight_decay=0.0, save_every=1000, **extra)
    window = np.random.default_rng(5).integers(0, raw["model"]["vocab_size"], 24)
    np.save(raw["train_tokens"], window.astype(np.uint16))  # exactly one window: every batch is this one
    lines = Trainer(TrainConfig.from_dict(raw), tmp_path / "run", progress=False).run()
    assert lines[0]["loss"] > 5.0
    assert lines[-1]["loss"] < 1.0, [round(x["loss"], 2) for x in lines[::10]]


@pytest.mark.parametrize("name", ["trained-tiny-qwen3.5", "trained-tiny-qwen3-moe", "trained-tiny-qwen3-next",
                                  "trained-tiny-qwen3.5-moe"])
def test_a_checkpoint_minillm_trained_gives_transformers_logits(name):
    """transformers loaded the files minillm train wrote (scripts/make_hybrid_grad_fixtures.py --trained) and
    its logits are minillm's."""
    path = WEIGHTS / name
    ref = np.load(path / "transformers_logits.npz")
    ours = minillm.load_model(path).forward(ref["ids"])  # [1, T, V]
    scale = np.abs(ref["logits"]).max()
    assert np.abs(ours[0] - ref["logits"]).max() <= 1e-4 * scale


def test_a_trained_hybrid_checkpoint_loads_back_in_minillm_with_its_training_weights(tmp_path):
    raw = recipe(tmp_path, "tiny-qwen3-next", steps=2, save_every=2, dtype="f32", val_tokens=None)
    trainer = Trainer(TrainConfig.from_dict(raw), tmp_path / "run", progress=False)
    trainer.run()
    loaded = minillm.load_model(tmp_path / "run" / "checkpoint")
    ids = np.arange(30) % 384
    np.testing.assert_allclose(loaded.forward(ids), trainer.model.forward(ids), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("recipe_name", ["tiny_qwen35.json", "tiny_moe.json"])
def test_the_committed_recipes_parse(recipe_name):
    cfg = TrainConfig.from_dict(json.loads((RECIPES / recipe_name).read_text()), recipe_name)
    assert cfg.model["model_type"] in ("qwen3_5_text", "qwen3_moe")


def test_a_bad_router_option_is_refused_naming_the_field(tmp_path):
    with pytest.raises(minillm.InputError, match="output_router_logits"):
        TrainConfig.from_dict(recipe(tmp_path, "tiny-qwen3-moe", output_router_logits="yes"))


# ----------------------------------------------------------------------------------------------------------
# the plain one-screen form
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("T, chunk", [(1, 64), (9, 4), (70, 64)])
def test_the_one_screen_delta_rule_backward_equals_the_engine(T, chunk):
    rng = np.random.default_rng(T)
    Dk, Dv = 5, 3
    k = rng.standard_normal((T, Dk))
    q, k = rng.standard_normal((T, Dk)) * Dk ** -0.5, k / np.linalg.norm(k, axis=-1, keepdims=True)
    v, g, beta = rng.standard_normal((T, Dv)), -rng.uniform(0.01, 2, T), rng.uniform(0.05, 0.95, T)
    dout = rng.standard_normal((T, Dv))
    plain = deltanet_backward(q, k, v, g, beta, dout)
    heads = [a[None, None] for a in (q, k, v, g, beta)]  # [1, 1, T, ...]
    zero = np.zeros((1, 1, Dk, Dv))
    _, _, states = recurrent_gated_delta_rule_forward(*heads, zero)
    recurrent = recurrent_gated_delta_rule_backward(dout[None, None], *heads, states)
    _, _, starts = chunked_gated_delta_rule_forward(*heads, zero, chunk)
    chunked = chunked_gated_delta_rule_backward(dout[None, None], *heads, starts, None, chunk)
    for name, p, r, c in zip(["dq", "dk", "dv", "dg", "dbeta"], plain, recurrent, chunked):
        np.testing.assert_allclose(p, r[0, 0], rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(p, c[0, 0], rtol=1e-8, atol=1e-10, err_msg=name)


def test_the_one_screen_backward_fits_on_one_screen():
    lines = (ROOT / "minillm" / "plain" / "deltanet_backward.py").read_text().splitlines()
    body = lines[next(i for i, x in enumerate(lines) if x.startswith("def deltanet_backward")):]
    assert len(body) <= 60, len(body)


def test_the_trainer_adds_the_load_balancing_loss_when_the_recipe_asks(tmp_path):
    """Same seed and batch: with output_router_logits the first step's loss is higher by coef * aux (aux is
    about k = 2 for a balanced router), without it the plain cross-entropy."""
    losses = {}
    for on in (False, True):
        raw = recipe(tmp_path, "tiny-qwen3-moe", steps=1, val_tokens=None, output_router_logits=on,
                     router_aux_loss_coef=0.5)
        losses[on] = Trainer(TrainConfig.from_dict(raw), tmp_path / f"run-{on}", progress=False).run()[0]["loss"]
    assert 0.5 * 1.5 < losses[True] - losses[False] < 0.5 * 4
