"""Training: AdamW equals torch's, the schedule and clipping follow their definitions, a run resumes bit for bit,
a tiny model overfits a fixed batch, checkpoints load back, and bad settings fail clearly."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

import minillm
from minillm.checkpoint.safetensors_file import bf16_bits_to_float32
from minillm.checkpoint.saving import float32_to_bf16_bits, save_model_dir
from minillm.errors import InputError, TrainingError
from minillm.training.adamw import AdamWState, adamw_step, clip_grad_norm
from minillm.training.schedule import learning_rate, wsd_learning_rate
from minillm.training.trainer import TrainConfig, Trainer
from conftest import WEIGHTS, tiny_model


def test_adamw_matches_torch_step_for_step_with_decay_only_on_matrices():
    with np.load(WEIGHTS / "adamw_reference.npz") as f:
        ref = {k: f[k] for k in f.files}
    b1, b2, eps, wd = ref["settings"]
    names = [k.split("/", 1)[1] for k in ref if k.startswith("start/")]
    params = {n: ref[f"start/{n}"].copy() for n in names}
    state = AdamWState()
    for step, lr in enumerate(ref["lrs"]):
        grads = {n: ref[f"grad{step}/{n}"] for n in names}
        adamw_step(params, grads, state, float(lr), (float(b1), float(b2)), float(eps), float(wd))
        for n in names:
            np.testing.assert_allclose(params[n], ref[f"after{step}/{n}"], rtol=1e-6, atol=1e-7, err_msg=n)


def test_learning_rate_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    kw = dict(total_steps=110, peak=1.0, warmup=10, floor=0.1)
    assert learning_rate(0, **kw) == pytest.approx(0.1)  # (0 + 1) / 10
    assert learning_rate(9, **kw) == pytest.approx(1.0)  # end of warmup: the peak
    assert learning_rate(10, **kw) == pytest.approx(1.0)  # cosine starts at the peak
    assert learning_rate(60, **kw) == pytest.approx(0.55)  # halfway: floor + (peak - floor) / 2
    assert learning_rate(110, **kw) == pytest.approx(0.1)  # the end: the floor
    assert learning_rate(111, **kw) == learning_rate(200, **kw) == pytest.approx(0.1)  # past the end: the floor


def test_wsd_warms_up_holds_the_peak_then_decays_linearly_to_the_floor():
    kw = dict(total_steps=110, peak=1.0, warmup=10, floor=0.1, decay_steps=20)
    assert wsd_learning_rate(0, **kw) == pytest.approx(0.1)  # warmup as the cosine's
    assert wsd_learning_rate(9, **kw) == pytest.approx(1.0)
    assert [wsd_learning_rate(s, **kw) for s in (10, 50, 89)] == [1.0, 1.0, 1.0]  # stable until total - decay
    assert wsd_learning_rate(90, **kw) == pytest.approx(1.0)  # the decay starts at the peak
    assert wsd_learning_rate(100, **kw) == pytest.approx(0.55)  # halfway through the decay
    assert wsd_learning_rate(110, **kw) == pytest.approx(0.1)  # the end: the floor
    assert wsd_learning_rate(111, **kw) == wsd_learning_rate(200, **kw) == pytest.approx(0.1)  # past it: the floor


def test_a_wsd_run_lengthened_on_resume_is_the_longer_run(tmp_path):
    """Before its decay, a WSD run does not depend on its total: resume it with more steps and it is bit for bit
    the run that had the larger total from the start (a cosine run would not be: its rates depend on the total)."""
    wsd = dict(schedule="wsd", decay_steps=2, warmup=1, eval_every=100, save_every=2)
    straight = Trainer(TrainConfig.from_dict(recipe(tmp_path, steps=6, **wsd)), tmp_path / "a", progress=False)
    straight.run()
    first = Trainer(TrainConfig.from_dict(recipe(tmp_path, steps=4, **wsd)), tmp_path / "b", progress=False)
    first.run(max_steps=2)
    longer = Trainer(TrainConfig.from_dict(recipe(tmp_path, steps=6, **wsd)), tmp_path / "b", resume=True,
                     progress=False)
    longer.run()
    for name, p in straight.params.items():
        np.testing.assert_array_equal(longer.params[name], p, err_msg=name)
    rates = [json.loads(x)["lr"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert rates[:4] == [1e-3] * 4 and rates[4] > rates[5] > 1e-4  # recipe(): lr 1e-3 (the default), floor 1e-4


@pytest.mark.parametrize("change, words", [
    (dict(schedule="linear"), "schedule must be one of ['cosine', 'wsd'], found 'linear'"),
    (dict(schedule="wsd"), "decay_steps must be 1 .. steps - warmup (3) with schedule 'wsd', found 0"),
    (dict(schedule="wsd", decay_steps=4), "decay_steps must be 1 .. steps - warmup (3) with schedule 'wsd', found 4"),
    (dict(decay_steps=2), "decay_steps is a setting of schedule 'wsd'"),
    (dict(schedule="wsd", decay_steps=-1), "decay_steps"),
])
def test_bad_schedule_settings_are_refused_naming_the_field(tmp_path, change, words):
    with pytest.raises(InputError, match=re.escape(words)):
        TrainConfig.from_dict(recipe(tmp_path, **change))


def test_clipping_scales_every_gradient_by_one_global_norm():
    grads = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([[4.0]], np.float32)}
    total = clip_grad_norm(grads, max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(grads["a"], [3 / 5.000001, 0], rtol=1e-6)
    np.testing.assert_allclose(grads["b"], [[4 / 5.000001]], rtol=1e-6)
    small = {"a": np.array([0.3], np.float32)}
    clip_grad_norm(small, max_norm=1.0)
    assert small["a"][0] == np.float32(0.3)  # under the limit: untouched


def test_bf16_rounding_is_round_to_nearest_even():
    x = np.array([1.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 1.0 + 2 ** -7 + 2 ** -9], np.float32)
    bits = float32_to_bf16_bits(x)
    back = bf16_bits_to_float32(bits)
    # 1 + 2^-8 is a tie between 1 and 1 + 2^-7: to even (1). 1 + 3*2^-8 is a tie: to even (1 + 2^-6).
    np.testing.assert_array_equal(back, np.array([1.0, 1.0, 1.0 + 2 ** -6, 1.0 + 2 ** -7], np.float32))
    nan_with_low_bits = np.array([0x7FFFFFFF], np.uint32).view(np.float32)  # would carry into infinity
    assert np.isnan(bf16_bits_to_float32(float32_to_bf16_bits(nan_with_low_bits))).all()


def recipe(tmp_path, **overrides) -> dict:
    cfg = json.loads((WEIGHTS / "tiny-qwen3" / "config.json").read_text())
    rng = np.random.default_rng(0)
    tokens = tmp_path / "tokens.npy"
    np.save(tokens, rng.integers(0, cfg["vocab_size"], 4000).astype(np.uint16))
    raw = dict(model=cfg, train_tokens=str(tokens), val_tokens=str(tokens), tokenizer=str(WEIGHTS / "tiny-qwen3"),
               steps=4, batch_size=2, context=16, warmup=1, eval_every=2, eval_windows=2, save_every=2, seed=3)
    raw.update(overrides)
    return raw


def test_a_run_resumed_halfway_is_bit_identical_to_a_run_straight_through(tmp_path):
    straight = Trainer(TrainConfig.from_dict(recipe(tmp_path)), tmp_path / "a", progress=False)
    straight.run()
    first = Trainer(TrainConfig.from_dict(recipe(tmp_path)), tmp_path / "b", progress=False)
    first.run(max_steps=2)
    with open(tmp_path / "b" / "log.jsonl", "a") as log:  # a step logged after the last save, then a crash
        log.write(json.dumps({"step": 3, "loss": 1.0}) + "\n")
    second = Trainer(TrainConfig.from_dict(recipe(tmp_path)), tmp_path / "b", resume=True, progress=False)
    assert second.step == 2
    second.run()
    for name, p in straight.params.items():
        np.testing.assert_array_equal(second.params[name], p, err_msg=name)
        np.testing.assert_array_equal(second.opt.m[name], straight.opt.m[name], err_msg=name)
        np.testing.assert_array_equal(second.opt.v[name], straight.opt.v[name], err_msg=name)
    assert second.opt.step == straight.opt.step == 4
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the unsaved step's line was dropped and logged again


def test_a_tiny_model_overfits_one_fixed_batch(tmp_path):
    """One window repeated: the loss must fall from ln(V) ~ 6.2 to below 1.0 within 60 steps."""
    raw = recipe(tmp_path, steps=60, batch_size=1, context=16, lr=1e-2, min_lr=1e-2, warmup=1, weight_decay=0.0,
                 val_tokens=None, save_every=1000)
    window = np.random.default_rng(5).integers(0, raw["model"]["vocab_size"], 16)
    np.save(raw["train_tokens"], window.astype(np.uint16))  # exactly one window: every batch is this one
    trainer = Trainer(TrainConfig.from_dict(raw), tmp_path / "run", progress=False)
    lines = trainer.run()
    assert lines[0]["loss"] > 5.0
    assert lines[-1]["loss"] < 1.0


def test_a_saved_checkpoint_loads_back_with_identical_logits(tmp_path):
    model = tiny_model("tiny-qwen3")
    tensors = minillm.checkpoint.weights.named_tensors(model.weights)
    config = json.loads((WEIGHTS / "tiny-qwen3" / "config.json").read_text())
    save_model_dir(tmp_path / "f32", config, tensors, "F32", tokenizer_dir=WEIGHTS / "tiny-qwen3")
    ids = np.arange(12) % model.config.vocab_size
    np.testing.assert_array_equal(minillm.load_model(tmp_path / "f32").forward(ids), model.forward(ids))
    save_model_dir(tmp_path / "bf16", config, tensors, "BF16")
    loaded = minillm.checkpoint.weights.named_tensors(minillm.load_model(tmp_path / "bf16").weights)
    for name, a in tensors.items():
        rounded = bf16_bits_to_float32(float32_to_bf16_bits(a))
        np.testing.assert_array_equal(loaded[name], rounded, err_msg=name)
    assert (tmp_path / "f32" / "tokenizer.json").is_file()


def test_the_train_command_trains_then_resumes(tmp_path, capsys):
    from minillm.tools.cli import main
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe(tmp_path)))
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run"), "--max-steps", "2"]) == 0
    assert not (tmp_path / "run" / "loss_curve.png").exists()  # plotted when the run ends, not at a stop
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run"), "--resume"]) == 0
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 0  # matplotlib is a dev dependency
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert minillm.load_model(tmp_path / "run" / "checkpoint").config.vocab_size == recipe(tmp_path)["model"]["vocab_size"]
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 1  # not empty, no --resume
    assert "not empty" in capsys.readouterr().err
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run"), "--resume", "--steps", "6",
                 "--schedule", "wsd", "--decay-steps", "2", "--allow-schedule-change"]) == 0  # two more steps,
    # both in WSD's decay (from a finished cosine run: the rate goes back up, so the change must be asked for)
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6]
    assert [x["lr"] for x in lines[4:]] == pytest.approx([1e-3, 0.55e-3])  # from the peak halfway to min_lr 1e-4


def test_lengthening_a_cosine_run_on_resume_is_refused_showing_the_jump_unless_asked_for(tmp_path, capsys):
    from minillm.tools.cli import main
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe(tmp_path, steps=4, warmup=1)))
    run = ["train", "--config", str(path), "--out", str(tmp_path / "run")]
    assert main(run) == 0
    capsys.readouterr()
    assert main(run + ["--resume", "--steps", "6"]) == 1
    err = capsys.readouterr().err
    last = learning_rate(3, 4, 1e-3, 1, 1e-4)  # step 4, the last trained (1-based, as the log counts)
    after = learning_rate(4, 6, 1e-3, 1, 1e-4)  # step 5 on the longer cosine
    assert f"{last:.2e} at step 4" in err and f"{after:.2e} at step 5" in err and "--allow-schedule-change" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run" / "log.jsonl").read_text().count('"step": 5')
    assert main(run + ["--resume", "--steps", "6", "--allow-schedule-change"]) == 0
    rates = [json.loads(x)["lr"] for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rates[4] == pytest.approx(after)


def test_a_missing_token_file_is_named_with_the_script_that_makes_it(tmp_path):
    raw = recipe(tmp_path, train_tokens=str(tmp_path / "data" / "tokens" / "train_stage3.npy"))
    with pytest.raises(InputError) as e:
        Trainer(TrainConfig.from_dict(raw), tmp_path / "run", progress=False)
    message = str(e.value)
    assert "train_stage3.npy" in message and "does not exist" in message and "Errno" not in message
    assert "scripts/corpus/tokenize_corpus.py --name train_stage3" in message and "scripts/corpus/README.md" in message


def test_token_ids_beyond_the_vocab_are_refused_naming_the_file(tmp_path):
    raw = recipe(tmp_path)
    np.save(raw["train_tokens"], np.array([1, 2, raw["model"]["vocab_size"]], np.uint16))
    with pytest.raises(InputError, match=r"tokens\.npy: token id \d+ is out of range"):
        Trainer(TrainConfig.from_dict(raw), tmp_path / "run", progress=False)


def test_a_context_longer_than_the_model_allows_is_refused_naming_the_field(tmp_path):
    raw = recipe(tmp_path)
    with pytest.raises(InputError, match="max_position_embeddings"):
        TrainConfig.from_dict(dict(raw, context=raw["model"]["max_position_embeddings"] + 1))


def test_resuming_with_a_different_model_is_refused_naming_the_field(tmp_path):
    Trainer(TrainConfig.from_dict(recipe(tmp_path)), tmp_path / "run", progress=False).run(max_steps=2)
    other = recipe(tmp_path)
    other["model"] = dict(other["model"], rms_norm_eps=1e-5)
    with pytest.raises(TrainingError, match="model.rms_norm_eps"):
        Trainer(TrainConfig.from_dict(other), tmp_path / "run", resume=True, progress=False)


def test_a_non_finite_loss_stops_at_that_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = Trainer(TrainConfig.from_dict(recipe(tmp_path)), tmp_path / "run", progress=False)
    trainer.run(max_steps=2)  # saved at step 2
    saved = (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes()
    import minillm.training.trainer as tr
    monkeypatch.setattr(tr, "loss_and_grads", lambda model, ids: (math.nan, {}))
    with pytest.raises(TrainingError, match="step 3: the loss is nan.*step 2"):
        trainer.run()
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes() == saved
    assert not list((tmp_path / "run").glob("*.tmp-*"))


def test_a_failed_save_leaves_no_partial_directory(tmp_path, monkeypatch):
    import minillm.checkpoint.saving as saving
    def broken(path, tensors, dtype="F32"):
        raise OSError("disk full")
    monkeypatch.setattr(saving, "write_safetensors", broken)
    with pytest.raises(minillm.CheckpointError, match="disk full"):
        save_model_dir(tmp_path / "ckpt", {"model_type": "qwen3"}, {}, "F32")
    assert list(tmp_path.iterdir()) == []


def test_the_last_step_is_saved_and_evaluated_when_steps_is_not_a_multiple_of_the_intervals(tmp_path):
    trainer = Trainer(TrainConfig.from_dict(recipe(tmp_path, steps=3, save_every=2, eval_every=2)), tmp_path / "run",
                      progress=False)
    lines = trainer.run()
    state = json.loads((tmp_path / "run" / "checkpoint" / "trainer_state" / "state.json").read_text())
    assert state["step"] == 3  # not the step-2 save: the run's end is its last checkpoint
    assert [("val_loss" in line) for line in lines] == [False, True, True]  # every eval_every, and the last step


def test_tokens_seen_count_every_micro_batch(tmp_path):
    lines = Trainer(TrainConfig.from_dict(recipe(tmp_path, steps=2, accumulation=3)), tmp_path / "run",
                    progress=False).run()
    assert [line["tokens"] for line in lines] == [1 * 2 * 16 * 3, 2 * 2 * 16 * 3]  # step x batch x context x accum.


def test_resuming_with_another_accumulation_is_refused_naming_it(tmp_path):
    Trainer(TrainConfig.from_dict(recipe(tmp_path)), tmp_path / "run", progress=False).run(max_steps=2)
    with pytest.raises(TrainingError, match="accumulation differs from the saved run"):
        Trainer(TrainConfig.from_dict(recipe(tmp_path, accumulation=2)), tmp_path / "run", resume=True,
                progress=False)


def test_a_schedule_change_that_alters_only_the_last_trained_step_is_refused(tmp_path):
    """warmup 1: steps 0 and 1 (the peak, where the cosine starts) have the same rate whatever the total; step 2
    does not. So a run saved after 3 steps and resumed longer differs from the saved one at its last step only."""
    assert learning_rate(1, 4, 1e-3, 1, 1e-4) == learning_rate(1, 8, 1e-3, 1, 1e-4)
    assert learning_rate(2, 4, 1e-3, 1, 1e-4) != learning_rate(2, 8, 1e-3, 1, 1e-4)
    Trainer(TrainConfig.from_dict(recipe(tmp_path, warmup=1, save_every=3)), tmp_path / "run",
            progress=False).run(max_steps=3)
    with pytest.raises(TrainingError, match="changes the learning-rate schedule"):
        Trainer(TrainConfig.from_dict(recipe(tmp_path, warmup=1, save_every=3, steps=8)), tmp_path / "run",
                resume=True, progress=False)
