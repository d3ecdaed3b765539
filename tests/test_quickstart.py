"""The example a fresh clone trains in minutes (examples/shakespeare/): its committed tokens are exactly what its
script makes from its committed text, its recipe trains on them (the loss falls), and the run it leaves loads,
generates and prints the samples the recipe asks for."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import minillm
from minillm.errors import InputError
from minillm.training.quickstart import EXAMPLES_DIR, example_recipe, train_example
from minillm.training.trainer import Trainer, evaluate
from conftest import ROOT

SHAKESPEARE = EXAMPLES_DIR / "shakespeare"
QUICK = dict(steps=6, batch_size=4, context=32, warmup=2, eval_every=6, eval_windows=2, save_every=6,
             samples={"prompts": ["IAGO.\n"], "max_new_tokens": 5})  # the recipe's model and data, a few steps


def prepare_module():
    spec = importlib.util.spec_from_file_location("shakespeare_prepare", SHAKESPEARE / "prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_tokens_are_what_the_script_makes_from_the_committed_text():
    made = prepare_module().tokenize()
    for split in ("train", "val"):
        shipped = np.load(SHAKESPEARE / f"{split}.npy")  # [N]
        assert shipped.dtype == np.uint16 and made[split].dtype == np.uint16
        assert shipped.shape == made[split].shape, f"{split}.npy is stale: run examples/shakespeare/prepare.py --tokenize"
        assert np.array_equal(shipped, made[split]), f"{split}.npy differs from its text: re-run prepare.py --tokenize"


def test_each_play_ends_with_endoftext_and_decodes_back_to_its_text():
    tok = minillm.load_tokenizer(minillm.default_model_path())
    end = tok.token_to_id("<|endoftext|>")
    val = np.load(SHAKESPEARE / "val.npy")  # [M]: the one validation play
    assert val[-1] == end and (val[:-1] != end).all()
    assert tok.decode(val[:-1].tolist()) == (SHAKESPEARE / "text" / "tempest.txt").read_text(encoding="utf-8")


def test_the_shipped_recipe_trains_on_the_shipped_data_and_the_loss_falls(tmp_path):
    cfg = example_recipe(**QUICK)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    windows = trainer.train_data.fixed_windows(8, cfg.context)  # [8, T]: the same text before and after
    before = evaluate(trainer.model, windows, cfg.batch_size)
    assert before == pytest.approx(np.log(cfg.model["vocab_size"]), abs=0.1)  # a random model: a uniform guess
    trainer.run()
    after = evaluate(trainer.model, windows, cfg.batch_size)
    assert after < before - 0.3, f"loss {before:.3f} -> {after:.3f} after {cfg.steps} steps"


def test_the_python_call_returns_a_run_that_loads_and_generates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipe's relative paths are resolved against the repository, not here
    run = train_example(tmp_path / "run", progress=False, **QUICK)
    model = minillm.load_model(run / "checkpoint")
    tok = minillm.load_tokenizer(run / "checkpoint")
    assert model.config.num_hidden_layers == example_recipe().model["num_hidden_layers"]
    new = minillm.generate(model, tok.encode("IAGO.\n"), max_new_tokens=4, seed=0)  # [N]
    assert 1 <= len(new) <= 4 and (new < model.config.vocab_size).all()
    assert (run / "samples.txt").read_text(encoding="utf-8").startswith("--- sample 1 (step 6) ---\nIAGO.\n")
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 7)) and "val_loss" in lines[-1]


def test_the_documented_command_trains_from_the_repository_root_and_prints_samples(tmp_path, monkeypatch, capsys):
    from minillm.tools.cli import main
    monkeypatch.chdir(ROOT)
    quick = ["--steps", "2", "--batch-size", "2", "--context", "16", "--warmup", "1", "--save-every", "2"]
    assert main(["train", "--config", "examples/shakespeare/recipe.json", "--out", str(tmp_path / "run"), *quick]) == 0
    out = capsys.readouterr().out
    prompts = json.loads((SHAKESPEARE / "recipe.json").read_text())["samples"]["prompts"]
    assert "--- sample 1 (step 2) ---\n" + prompts[0] in out
    assert out.count("--- sample") == len(prompts)
    assert (tmp_path / "run" / "samples.txt").read_text(encoding="utf-8") in out


@pytest.mark.parametrize("samples, words", [
    ({"prompts": []}, "non-empty list"),
    ({"prompts": ["A"], "max_new_tokens": 0}, "max_new_tokens"),
    ({"prompts": ["A"], "temperature": 1.0}, "unknown setting(s) ['temperature']"),
    ("IAGO.", "samples must be a JSON object"),
])
def test_a_bad_samples_setting_is_refused_naming_the_field(samples, words):
    with pytest.raises(InputError, match="samples") as e:
        example_recipe(samples=samples)
    assert words in str(e.value)


def test_an_unknown_example_is_refused_listing_the_examples():
    with pytest.raises(InputError, match=r"no such example recipe; the examples are \['shakespeare'\] \(examples/ is part of a clone"):
        example_recipe("hamlet")
