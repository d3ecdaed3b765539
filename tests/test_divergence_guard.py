"""Training that diverges stops, naming the step, and never writes a NaN checkpoint (issue 31, class 3); a recipe
whose generation_config load_model would refuse is refused before training."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minillm
from minillm.errors import MinillmError, TrainingError
from minillm.tools.cli import main
from minillm.training.trainer import TrainConfig, Trainer
from test_training import recipe


@pytest.mark.parametrize("setting", [{"lr": 1e10, "min_lr": 1e10}, {"weight_decay": 1e30}])
def test_a_diverging_run_exits_non_zero_naming_the_step_and_saves_no_nan_checkpoint(tmp_path, capsys, setting):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe(tmp_path, steps=4, save_every=1, warmup=0, **setting)))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "step " in err and ("not finite" in err or "nan" in err.lower() or "inf" in err)
    ckpt = tmp_path / "run" / "checkpoint"
    if ckpt.exists():  # a checkpoint that was written is a good one
        model = minillm.load_model(ckpt)
        for name, a in minillm.checkpoint.weights.named_tensors(model.weights).items():
            assert np.isfinite(a).all(), name


def test_the_named_last_good_checkpoint_is_finite(tmp_path):
    trainer = Trainer(TrainConfig.from_dict(recipe(tmp_path, steps=6, save_every=1)), tmp_path / "run", progress=False)
    trainer.run(max_steps=1)
    trainer.cfg.lr = trainer.cfg.min_lr = 1e10  # the run turns bad after a good save
    with pytest.raises(TrainingError, match=r"step \d+: .*last good checkpoint .*\(step [12]\)"):
        trainer.run()
    model = minillm.load_model(tmp_path / "run" / "checkpoint")
    for name, a in minillm.checkpoint.weights.named_tensors(model.weights).items():
        assert np.isfinite(a).all(), name


@pytest.mark.parametrize("generation_config", [{"temperature": -1}, {"top_p": 2.0}, {"max_new_tokens": -3}])
def test_a_recipe_whose_generation_config_load_model_would_refuse_is_refused_before_training(tmp_path, generation_config):
    with pytest.raises(MinillmError, match="generation_config"):
        TrainConfig.from_dict(recipe(tmp_path, generation_config=generation_config))


def test_gradient_accumulation_averages_the_micro_batches_like_one_larger_batch(tmp_path):
    """accumulation 2 x batch 1 sees the same two windows as 1 x batch 2 (the same random draws), and the mean of
    two equal-length windows' mean losses is the mean over both: the same gradient norm, the same update."""
    one = Trainer(TrainConfig.from_dict(recipe(tmp_path, batch_size=2, accumulation=1, val_tokens=None)),
                  tmp_path / "a", progress=False).run(max_steps=1)[0]
    two = Trainer(TrainConfig.from_dict(recipe(tmp_path, batch_size=1, accumulation=2, val_tokens=None)),
                  tmp_path / "b", progress=False).run(max_steps=1)[0]
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_update_stops_on_any_non_finite_weight_or_gradient_norm(bad):
    from minillm.training.divergence import check_update
    asked = []
    def last_good():
        asked.append(1)
        return "run/checkpoint (step 2)"
    params = {"a.weight": np.ones(3, np.float32), "b.weight": np.array([1.0, bad, 2.0], np.float32)}
    with pytest.raises(TrainingError, match=r"step 3: the update made weight 'b\.weight' non-finite.*step 2"):
        check_update(params, 1.0, 3, last_good)
    with pytest.raises(TrainingError, match=r"step 3: the gradient norm is .*step 2"):
        check_update({"a.weight": np.ones(3, np.float32)}, float(bad), 3, last_good)
    assert len(asked) == 2
    check_update({"a.weight": np.ones(3, np.float32)}, 1e30, 3, last_good)  # large but finite: fine
    assert len(asked) == 2  # the run's files are read only when the check fails


def test_finite_weights_whose_logits_overflow_are_not_saved(tmp_path, capsys):
    """A weight decay of 1e10 keeps every weight finite but makes some huge: the loss before the update and the
    weights after it pass their checks, yet what the checkpoint would compute is infinite (found by the fuzz
    campaign). The run stops before writing it."""
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe(tmp_path, steps=2, save_every=1, warmup=0, weight_decay=1e10)))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 1
    assert "forward overflows float32" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint").exists()


@pytest.mark.parametrize("save_every", [1, 4])
def test_an_update_that_overflows_the_weights_stops_at_that_step_naming_the_weight(tmp_path, save_every):
    """lr 3e38 (the largest float32 is 3.4e38): the first update's Adam step of about lr per weight overflows
    float32, and the error says so at step 1, naming a weight, whether a save follows the step (save_every 1)
    or not (4): not one step late as a NaN loss, nor as "the weights are finite" from the check before a save."""
    cfg = TrainConfig.from_dict(recipe(tmp_path, steps=4, save_every=save_every, warmup=0, lr=3e38, min_lr=3e38))
    with pytest.raises(TrainingError, match=r"^step 1: the update made weight '[\w.]+' non-finite"):
        Trainer(cfg, tmp_path / "run", progress=False).run()
    assert not (tmp_path / "run" / "checkpoint").exists()
