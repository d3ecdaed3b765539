"""`minillm finetune`: a tiny model learns a fixed task (LoRA and full), runs resume exactly, the commands work."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minillm
from minillm.errors import InputError, TrainingError
from minillm.tools.cli import main
from minillm.training.finetune import FinetuneConfig, Finetuner
from conftest import WEIGHTS

QUESTIONS = ["Hi", "What is two plus two?", "Name a color", "Where is Paris?", "Tell me a joke", "How are you?",
             "What time is it?", "Say something"]
ANSWER = "Arr, matey!"  # the fixed task: one persona's reply to anything


@pytest.fixture
def chats(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": ANSWER}]}) + "\n"
                            for q in QUESTIONS))
    return path


def settings(chats, **changes) -> FinetuneConfig:
    base = dict(model=str(WEIGHTS / "tiny-qwen3"), data=str(chats), eval_fraction=0.25, lora_rank=8, lora_alpha=16,
                steps=30, batch_size=4, lr=1e-2, warmup=2, eval_every=10, save_every=10)
    return FinetuneConfig(**{**base, **changes})


def test_lora_finetuning_learns_a_fixed_reply_on_held_out_questions(chats, tmp_path):
    tuner = Finetuner(settings(chats), tmp_path / "run", progress=False)
    first = tuner.evaluate()
    lines = tuner.run()
    assert first > 5.0  # a random tiny model: about ln(512) per token
    assert lines[-1]["val_loss"] < 0.5, [line.get("val_loss") for line in lines]  # on the 2 held-out questions
    model = minillm.load_model(WEIGHTS / "tiny-qwen3", adapter=tmp_path / "run" / "adapter")
    tok = minillm.load_tokenizer(WEIGHTS / "tiny-qwen3")
    prompt = tok.apply_chat_template([{"role": "user", "content": "Where is Paris?"}], add_generation_prompt=True,
                                     enable_thinking=False)
    out = minillm.generate(model, tok.encode(prompt), max_new_tokens=16, temperature=0)
    assert tok.decode(out).startswith(ANSWER)


def test_full_finetuning_learns_it_too(chats, tmp_path):
    tuner = Finetuner(settings(chats, full=True, lr=3e-3, steps=20, eval_every=20, save_every=20), tmp_path / "run",
                      progress=False)
    lines = tuner.run()
    assert lines[-1]["val_loss"] < 1.0, [line["loss"] for line in lines]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_a_resumed_run_ends_with_the_adapter_of_an_uninterrupted_one(chats, tmp_path):
    cfg = settings(chats, steps=6, save_every=3, lora_dropout=0.1, gradient_checkpointing=True)
    whole = Finetuner(cfg, tmp_path / "whole", progress=False)
    whole.run()
    Finetuner(cfg, tmp_path / "halves", progress=False).run(max_steps=3)
    resumed = Finetuner(cfg, tmp_path / "halves", resume=True, progress=False)
    assert resumed.step == 3
    resumed.run()
    for name, array in whole.model.adapter.tensors().items():
        np.testing.assert_allclose(resumed.model.adapter.tensors()[name], array, rtol=1e-5, atol=1e-7)
    lines = (tmp_path / "halves" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4, 5, 6]


def test_finetune_chat_and_merge_commands(chats, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main(["finetune", "--model", str(WEIGHTS / "tiny-qwen3"), "--data", str(chats), "--out", str(run),
                 "--target", "q,v", "--lora-rank", "4", "--steps", "2", "--batch-size", "2", "--eval-every", "1"]) == 0
    assert "--adapter" in capsys.readouterr().out
    assert (run / "loss_curve.png").stat().st_size > 0  # at the run's end (matplotlib is a dev dependency)
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert config["target_modules"] == ["q_proj", "v_proj"] and config["r"] == 4 and config["lora_alpha"] == 32
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("Hi\n"))
    assert main(["chat", "--model", str(WEIGHTS / "tiny-qwen3"), "--adapter", str(run / "adapter"),
                 "--max-new-tokens", "3", "--temperature", "0"]) == 0
    assert main(["merge", "--model", str(WEIGHTS / "tiny-qwen3"), "--adapter", str(run / "adapter"),
                 "--out", str(tmp_path / "merged"), "--dtype", "f32"]) == 0
    merged = minillm.load_model(tmp_path / "merged")
    adapted = minillm.load_model(WEIGHTS / "tiny-qwen3", adapter=run / "adapter")
    ids = np.arange(1, 20)
    np.testing.assert_allclose(merged.forward(ids), adapted.forward(ids), rtol=1e-4, atol=1e-4)


def test_finetune_refuses_a_used_directory_an_unknown_target_and_a_mismatched_resume(chats, tmp_path, capsys):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(TrainingError, match="not empty"):
        Finetuner(settings(chats), tmp_path / "used", progress=False)
    assert main(["finetune", "--model", str(WEIGHTS / "tiny-qwen3"), "--data", str(chats), "--out",
                 str(tmp_path / "r"), "--target", "q,nope"]) == 1
    assert "unknown module 'nope'" in capsys.readouterr().err
    Finetuner(settings(chats, steps=2, save_every=1), tmp_path / "run", progress=False).run(max_steps=1)
    with pytest.raises(TrainingError, match="batch_size differs"):
        Finetuner(settings(chats, steps=2, batch_size=3), tmp_path / "run", resume=True, progress=False)
    with pytest.raises(InputError, match="steps must be a positive integer"):
        Finetuner(settings(chats, steps=0), tmp_path / "other", progress=False)


def test_a_resumed_full_finetune_ends_with_the_weights_of_an_uninterrupted_one(chats, tmp_path):
    cfg = settings(chats, full=True, lr=1e-3, steps=4, save_every=2, eval_every=4)
    whole = Finetuner(cfg, tmp_path / "whole", progress=False)
    whole.run()
    Finetuner(cfg, tmp_path / "halves", progress=False).run(max_steps=2)
    resumed = Finetuner(cfg, tmp_path / "halves", resume=True, progress=False)
    resumed.run()
    for name, array in whole.params.items():
        np.testing.assert_allclose(resumed.params[name], array, rtol=1e-5, atol=1e-7, err_msg=name)
    assert resumed.model.path == whole.model.path  # the base's tokenizer and config, not the checkpoint's copy


# -- resume reads its own files back as untrusted input (issue 31, class 1), through the trainer's checks -------

@pytest.fixture
def stopped_run(chats, tmp_path):
    """A LoRA run of 2 steps stopped after its save at step 1: what --resume reads."""
    cfg = settings(chats, steps=2, save_every=1, eval_every=1, target=["q_proj", "v_proj"], lora_rank=4)
    Finetuner(cfg, tmp_path / "run", progress=False).run(max_steps=1)
    return cfg, tmp_path / "run"


def finetune_state(run):
    return run / "checkpoint" / "trainer_state" / "state.json"


def rewrite_moments(run, change):
    from minillm.checkpoint.safetensors_file import SafetensorsFile
    from minillm.checkpoint.saving import write_safetensors
    path = run / "checkpoint" / "trainer_state" / "optimizer.safetensors"
    file = SafetensorsFile(path)
    tensors = {name: file.get_float32(name) for name in file.tensors}
    change(tensors)
    write_safetensors(path, tensors)


@pytest.mark.parametrize("damage, where", [
    ("missing", "state.json"), ("not json", "state.json"), ("a list", "state.json"),
    ("step -100", "'step'"), ("step past the end", "'step'"), ("adam_step -1", "'adam_step'"),
    ("tokens -1", "'tokens'"), ("no tokens", "'tokens'"), ("rng", "'rng'"), ("elapsed nan", "'elapsed'")])
def test_a_finetune_resume_refuses_a_damaged_state_json_naming_the_file_and_the_field(stopped_run, damage, where):
    cfg, run = stopped_run
    path = finetune_state(run)
    state = json.loads(path.read_text())
    if damage == "missing":
        path.unlink()
    elif damage == "not json":
        path.write_text("{not json")
    elif damage == "a list":
        path.write_text("[1, 2]")
    else:
        field, _, value = damage.partition(" ")
        changed = {"step -100": {"step": -100}, "step past the end": {"step": 99}, "adam_step -1": {"adam_step": -1},
                   "tokens -1": {"tokens": -1}, "rng": {"rng": [1, 2]}, "elapsed nan": {"elapsed": "NaN"}}
        if damage == "no tokens":
            del state["tokens"]
        else:
            state.update(changed[damage])
        path.write_text(json.dumps(state).replace('"NaN"', "NaN"))
    with pytest.raises(TrainingError) as e:
        Finetuner(cfg, run, resume=True, progress=False)
    assert "state.json" in str(e.value) and where in str(e.value), str(e.value)


@pytest.mark.parametrize("damage", ["shape", "missing", "extra", "negative v", "nan"])
def test_a_finetune_resume_refuses_moments_that_do_not_match_the_adapter(stopped_run, damage):
    cfg, run = stopped_run
    name = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    def change(t):
        assert f"m.{name}" in t, sorted(t)[:4]
        if damage == "shape":
            t[f"m.{name}"] = t[f"m.{name}"][:-1]
        elif damage == "missing":
            del t[f"v.{name}"]
        elif damage == "extra":
            t["m.base_model.model.extra.weight"] = np.zeros(3, np.float32)
        elif damage == "negative v":
            t[f"v.{name}"][0, 0] = -1.0
        else:
            t[f"m.{name}"][0, 0] = np.nan
    rewrite_moments(run, change)
    with pytest.raises(TrainingError, match=r"optimizer\.safetensors.*(lora_A|extra)"):
        Finetuner(cfg, run, resume=True, progress=False)


def test_a_finetune_resume_refuses_a_damaged_log_or_settings_file(stopped_run):
    cfg, run = stopped_run
    log = run / "log.jsonl"
    good = log.read_text()
    log.write_text(good + "{oops\n")
    with pytest.raises(TrainingError, match=r"log\.jsonl: line 2"):
        Finetuner(cfg, run, resume=True, progress=False)
    log.write_text(good)
    (run / "finetune.json").write_text("[]")
    with pytest.raises(TrainingError, match=r"finetune\.json: expected a JSON object"):
        Finetuner(cfg, run, resume=True, progress=False)
    (run / "finetune.json").unlink()
    with pytest.raises(TrainingError, match=r"finetune\.json.*missing"):
        Finetuner(cfg, run, resume=True, progress=False)


def test_an_undamaged_finetune_still_resumes_to_the_end(stopped_run):
    cfg, run = stopped_run
    tuner = Finetuner(cfg, run, resume=True, progress=False)
    assert tuner.step == 1 and tuner.tokens > 0
    tuner.run()
    assert tuner.step == 2 and [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()] == [1, 2]


# -- the settings' edges: warmup longer than the run, the last step off save_every, held-out fractions --------

def test_a_warmup_longer_than_the_run_is_cut_so_the_run_reaches_its_peak(chats, tmp_path):
    """warmup is capped at steps - 1: a 2-step run with warmup 10 trains at the peak (step 0 ends the warmup,
    step 1 starts the cosine at the peak), instead of never getting past a fifth of it."""
    cfg = settings(chats, steps=2, warmup=10, lr=1e-3, eval_every=100, save_every=100)
    lines = Finetuner(cfg, tmp_path / "run", progress=False).run()
    assert [line["lr"] for line in lines] == [1e-3, 1e-3]


def test_a_run_whose_steps_are_not_a_multiple_of_save_every_saves_and_returns_its_last_step(chats, tmp_path):
    from minillm.checkpoint.safetensors_file import SafetensorsFile
    cfg = settings(chats, steps=3, save_every=2, eval_every=100, target=["q_proj"], lora_rank=2)
    tuner = Finetuner(cfg, tmp_path / "run", progress=False)
    tuner.run()
    state = json.loads((tmp_path / "run" / "checkpoint" / "trainer_state" / "state.json").read_text())
    assert state["step"] == 3
    saved = SafetensorsFile(tmp_path / "run" / "adapter" / "adapter_model.safetensors")
    for name, array in tuner.model.adapter.tensors().items():  # the result is the trained adapter, not step 2's
        np.testing.assert_array_equal(saved.get_float32(name), array, err_msg=name)


def test_eval_fraction_zero_holds_out_nothing_and_one_is_refused(chats, tmp_path):
    tuner = Finetuner(settings(chats, eval_fraction=0.0), tmp_path / "run", progress=False)
    assert tuner.eval_set == [] and len(tuner.train_set) == len(QUESTIONS)
    with pytest.raises(InputError, match=r"eval_fraction must be in \[0, 1\)"):
        Finetuner(settings(chats, eval_fraction=1.0), tmp_path / "other", progress=False)


def test_the_held_out_loss_is_the_mean_over_scored_tokens_and_max_length_is_capped_by_the_model(chats, tmp_path):
    from minillm.training.loss import cross_entropy
    tuner = Finetuner(settings(chats, eval_fraction=0.5, batch_size=3, max_length=10 ** 9), tmp_path / "run",
                      progress=False)
    assert tuner.max_length == tuner.model.config.max_position_embeddings
    total, count = 0.0, 0
    for ex in tuner.eval_set:  # one conversation at a time: no padding, each weighed by its scored tokens
        n = int((ex.labels[1:] != -100).sum())
        total += cross_entropy(tuner.model.forward(ex.ids[None]), ex.labels[None]) * n
        count += n
    assert len(tuner.eval_set) == 4 and tuner.evaluate() == pytest.approx(total / count, rel=1e-5)
