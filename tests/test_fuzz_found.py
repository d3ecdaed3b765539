"""What the issue-31 fuzz campaign found on the new surfaces (scripts/fuzz_campaign.py --surface training ...),
one test per class of bug, each fixed at its root.

* attach_lora trusted its arguments: a string lora_dropout, a negative or text seed, a target list holding an
  int, use_rslora "yes" were TypeErrors / ValueErrors from NumPy or silently truthy, and r=2**40 a MemoryError.
  Its arguments are now the same settings as adapter_config.json's and go through the same checks
  (adapter.lora_settings), and the adapter's size is checked against the memory left before it is allocated.
"""

from __future__ import annotations

import numpy as np
import pytest

import fuzz_harness as fh
import minillm
from minillm.errors import InputError
from conftest import WEIGHTS


def fresh(name: str = "tiny-qwen2") -> minillm.Model:
    return minillm.load_model(WEIGHTS / name)


@pytest.mark.parametrize("kwargs, words", [
    ({"lora_dropout": "x"}, ["lora_dropout", "expected float"]),
    ({"seed": -1}, ["seed", ">= 0"]),
    ({"seed": "x"}, ["seed"]),
    ({"use_rslora": "yes"}, ["use_rslora", "expected bool"]),
    ({"target_modules": 5}, ["target_modules"]),
    ({"target_modules": [5]}, ["target_modules", "module names"]),
    ({"lora_alpha": float("inf")}, ["lora_alpha", "finite"]),
    ({"r": 2 ** 40}, ["r", "65,536"]),
    ({"r": True}, ["r"]),
])
def test_attach_lora_arguments_are_checked_as_the_adapter_files_fields_are(kwargs, words):
    with pytest.raises(InputError) as e:
        minillm.attach_lora(fresh(), **{"r": 2, **kwargs})
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("targets, count", [("all-linear", 3 * 7), (r".*\.q_proj", 3)])
def test_attach_lora_takes_a_peft_regular_expression_as_target_modules(targets, count):
    model = fresh()
    adapter = minillm.attach_lora(model, r=2, target_modules=targets)
    assert len(adapter.modules) == count
    loss, grads = minillm.loss_and_grads(model, [1, 2, 3, 4])
    assert len(grads) == 2 * count


def test_a_lora_rank_too_large_for_the_memory_left_is_refused_before_it_is_allocated():
    def run(work):
        minillm.attach_lora(fh.Shared.model("tiny-qwen2"), r=2 ** 16)  # ~1.2 GiB of adapter
    outcome = fh.run_case(fh.Case("known", "", run), 20.0, address_space=1 << 30)
    assert outcome.kind == fh.ERROR, outcome
    assert "choose a smaller r" in outcome.detail


# ------------------------------------------------------------------------------------- fine-tuning's files

def _finetune(work, **changes):
    from minillm.training.finetune import FinetuneConfig, Finetuner
    cfg = fh.finetune_settings(work)
    cfg.update(changes)
    out = cfg.pop("out", work / "run")
    Finetuner(FinetuneConfig(**cfg), out, progress=False).run(max_steps=1)


@pytest.mark.parametrize("kind, words", [
    ("fifo", ["FIFO"]), ("dev zero", ["character device"]), ("directory", ["directory"]),
    ("deep", ["nested too deeply"]), ("digits", ["not valid JSON"]),
])
def test_chat_data_is_read_as_untrusted_input(kind, words):
    """A FIFO as --data or --eval-data hung forever, /dev/zero was read until MemoryError, a line nested
    100,000 deep was a RecursionError: the chat data is read as every other input file (jsonfile.py)."""
    def run(work):
        data = work / "bad.jsonl"
        if kind == "deep":
            data.write_text("[" * 100_000 + "]" * 100_000 + "\n")
        elif kind == "digits":
            data.write_text("9" * 5000 + "\n")
        else:
            fh._special(data, kind, work)
        _finetune(work, eval_data=str(data))
    outcome = fh.run_case(fh.Case("known", "", run), 20.0)
    assert outcome.kind == fh.ERROR, outcome
    for w in ["bad.jsonl", *words]:
        assert w in outcome.detail


@pytest.mark.parametrize("out", ["file", "under a file", "/dev/null"])
def test_a_finetune_run_directory_that_cannot_be_one_is_refused_first(tmp_path, out):
    """--out a file (or under one, or /dev/null) was a NotADirectoryError half-way (after loading the model)."""
    target = {"file": tmp_path / "f", "under a file": tmp_path / "f" / "run", "/dev/null": "/dev/null"}[out]
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="run directory"):
        _finetune(tmp_path, out=target)


# ------------------------------------------------------------------------------------- loss_and_grads' size check

def test_a_batch_too_large_is_refused_by_its_shape_before_its_ids_are_scanned():
    """A [10**5, 10**5] batch viewed from one id (np.broadcast_to) takes no memory, but scanning its 10**10 ids
    for their range took minutes before the memory check refused it: the size is checked first."""
    def run(work):
        ids = np.broadcast_to(np.int64(1), (10 ** 5, 10 ** 5))
        minillm.loss_and_grads(fh.Shared.model("tiny-qwen2"), ids)
    outcome = fh.run_case(fh.Case("known", "", run), timeout=3.0)
    assert outcome.kind == fh.ERROR, outcome
    assert "GiB of activations" in outcome.detail


# ------------------------------------------------------------------------------------- the Hub cache's refs

@pytest.mark.parametrize("content", [b"0123456789abcdef0123456789abcdef01234567", b"SECRET-FIRST-BYTES of a file"])
def test_a_ref_that_links_out_of_its_repository_is_not_read(tmp_path, monkeypatch, content):
    """refs/main linked to a file elsewhere was read: its commit hash obeyed, or its first bytes shown in the error
    (a link to /etc/shadow). A ref is a file of its own repository folder, or it is refused unread."""
    import hub_cache
    snapshot = hub_cache.add_snapshot(tmp_path / "hub", "org/m", WEIGHTS / "tiny-qwen2",
                                      commit="0123456789abcdef0123456789abcdef01234567")
    outside = tmp_path / "outside"
    outside.write_bytes(content)
    ref = snapshot.parent.parent / "refs" / "main"
    ref.unlink()
    ref.symlink_to(outside)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(minillm.CheckpointError, match="leads out of its repository") as e:
        minillm.load_model("org/m")
    assert b"SECRET" not in str(e.value).encode()


# ------------------------------------------------------------------------------------- fine-tuning's run

def test_a_diverging_finetune_stops_at_the_step_not_with_a_numpy_warning():
    """lr 1e10: the evaluation overflowed float32 (a RuntimeWarning, an error under -W error) and nothing checked
    the weights after the update. Now as in the trainer: the update is checked, the evaluation runs quietly,
    and the run stops with a TrainingError naming the step (or ends with finite weights)."""
    def run(work):
        _finetune(work, lr=1e10, steps=3)
    outcome = fh.run_case(fh.Case("known", "", run), 20.0)
    assert outcome.kind in (fh.ERROR, fh.RESULT), outcome
    if outcome.kind == fh.ERROR:
        assert "step" in outcome.detail


def test_a_finetune_batch_too_large_for_memory_is_refused_before_a_step():
    def run(work):
        _finetune(work, batch_size=10 ** 12)
    outcome = fh.run_case(fh.Case("known", "", run), 20.0)
    assert outcome.kind == fh.ERROR, outcome
    assert "GiB of activations" in outcome.detail


@pytest.mark.parametrize("elapsed", [fh.Raw("1" + "0" * 400, "10**400"), float("nan"), -1])
def test_a_resume_elapsed_time_that_is_not_a_duration(tmp_path, elapsed):
    """state.json's "elapsed": 10**400 was an OverflowError in math.isfinite."""
    import json
    import shutil
    from minillm.training.resume_checks import read_state
    source, recipe, _ = fh.Runs.half()
    ckpt = shutil.copytree(source / "run" / "checkpoint", tmp_path / "checkpoint")
    path = ckpt / "trainer_state" / "state.json"
    state = json.loads(path.read_text())
    state["elapsed"] = elapsed
    fh.write_text(path, fh.to_json(state))
    with pytest.raises(minillm.MinillmError, match="elapsed"):
        read_state(path, 2)


def test_a_training_micro_batch_too_large_for_memory_is_refused_before_its_windows_are_drawn():
    """batch_size 2**20: a million windows were drawn one by one (a Python loop) before the step's memory check."""
    def run(work):
        from minillm.training.trainer import TrainConfig, Trainer
        Trainer(TrainConfig.from_dict(fh.train_recipe(work, batch_size=2 ** 20)), work / "run", progress=False).run()
    outcome = fh.run_case(fh.Case("known", "", run), timeout=2.0)
    assert outcome.kind == fh.ERROR, outcome
    assert "GiB of activations" in outcome.detail


# ------------------------------------------------------------------------------------- the final campaign's finds

@pytest.mark.parametrize("kwargs, words", [
    ({"output_router_logits": True, "router_aux_loss_coef": "x"}, ["router_aux_loss_coef"]),
    ({"output_router_logits": True, "router_aux_loss_coef": float("nan")}, ["router_aux_loss_coef"]),
    ({"output_router_logits": "yes"}, ["output_router_logits"]),
])
def test_loss_and_grads_router_options_are_checked(kwargs, words):
    """'x' was a TypeError in the product with the auxiliary loss, NaN a NaN loss returned as a result."""
    with pytest.raises(InputError, match=words[0]):
        minillm.loss_and_grads(minillm.load_model(WEIGHTS / "tiny-qwen3-moe"), [1, 2, 3], **kwargs)


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_resume_refuses_master_weights_not_in_float32(tmp_path, dtype):
    """An F16 master.safetensors was widened and used: the resume silently stopped being exact."""
    import shutil
    import safetensors.numpy
    from minillm.checkpoint.safetensors_file import SafetensorsFile
    from minillm.training.trainer import TrainConfig, Trainer
    source, recipe, _ = fh.Runs.half()
    out = shutil.copytree(source / "run", tmp_path / "run")
    master = out / "checkpoint" / "trainer_state" / "master.safetensors"
    f = SafetensorsFile(master)
    tensors = {k: f.get_float32(k) for k in f.tensors}
    if dtype == "F16":
        safetensors.numpy.save_file({k: v.astype(np.float16) for k, v in tensors.items()}, str(master))
    else:
        from minillm.checkpoint.saving import write_safetensors
        write_safetensors(master, tensors, "BF16")
    with pytest.raises(minillm.MinillmError, match="expected dtype F32"):
        Trainer(TrainConfig.from_dict(recipe), out, resume=True, progress=False)


@pytest.mark.parametrize("out", ["/proc/self/run", "dangling"])
def test_a_run_directory_that_cannot_be_created(tmp_path, out):
    """/proc/self/run or a dangling symlink passed check_run_dir and failed in mkdir (FileNotFoundError,
    FileExistsError): the creation itself now names the run directory."""
    from minillm.training.trainer import TrainConfig, Trainer
    if out == "dangling":
        out = tmp_path / "run"
        out.symlink_to(tmp_path / "nowhere" / "x")
    with pytest.raises(InputError, match="run directory"):
        Trainer(TrainConfig.from_dict(fh.train_recipe(tmp_path)), out, progress=False)


def test_a_training_context_of_one_token_is_refused():
    """context 1: no target in a window; the data-parallel token shares divided by zero."""
    import tempfile
    from pathlib import Path
    from minillm.training.trainer import TrainConfig
    with pytest.raises(InputError, match="context"):
        TrainConfig.from_dict(fh.train_recipe(Path(tempfile.mkdtemp()), context=1))


def test_a_fifo_as_a_safetensors_file_is_refused_without_blocking(tmp_path):
    """Resume read trainer_state/master.safetensors (and an optimizer file) through SafetensorsFile, whose open()
    blocked forever on a FIFO (the fuzz campaign's training surface, seed 41): the file type is checked first."""
    import os
    import threading

    from minillm.checkpoint.safetensors_file import SafetensorsFile
    from minillm.errors import CheckpointError

    fifo = tmp_path / "master.safetensors"
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            SafetensorsFile(fifo)
        except CheckpointError as e:
            outcome.append(str(e))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # still blocked in open(): unblock it by opening the writing end, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        raise AssertionError("SafetensorsFile blocked on a FIFO")
    assert outcome and "FIFO" in outcome[0]


def test_a_log_line_with_a_nan_loss_is_refused_on_resume(tmp_path):
    """The training surface's campaign (seed 43): a kept log.jsonl line with loss NaN was accepted on resume (a
    run stops at a non-finite loss before logging it, so such a line is damage)."""
    from minillm.errors import TrainingError
    from minillm.training.resume_checks import kept_log_lines

    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "loss": 2.0, "tokens": 8}\n{"step": 1, "loss": NaN, "tokens": 8}\n')
    with pytest.raises(TrainingError, match=r"line 2: field 'loss' must be a finite number"):
        kept_log_lines(log, 1)


def test_a_negative_fine_tuning_seed_is_refused_naming_it():
    """The same campaign: `minillm finetune --seed -1` was a ValueError from NumPy's generator."""
    from minillm.errors import InputError
    from minillm.training.finetune import FinetuneConfig

    with pytest.raises(InputError, match="seed must be a non-negative integer, found -1"):
        FinetuneConfig(model="m", data="d", seed=-1).check()


RUN_FILES = ["checkpoint/trainer_state/state.json", "log.jsonl", "checkpoint/trainer_state/optimizer.safetensors"]


@pytest.mark.parametrize("runner, name", [("train", name) for name in RUN_FILES + [
    "checkpoint/trainer_state/master.safetensors"]] + [("finetune", name) for name in RUN_FILES + ["finetune.json"]])
def test_a_resume_refuses_its_files_linked_outside_the_run_folder(tmp_path, runner, name):
    """A state.json linked to a copy outside the run (same bytes: every field valid) resumed from it (found by
    the training surface, seed 51); a log.jsonl linked outside would have been REWRITTEN by the resume (the
    steps after the last save are dropped from the log). Refused, and the file outside is left as it was."""
    import json
    import shutil
    from pathlib import Path
    from minillm.training.finetune import FinetuneConfig, Finetuner
    from minillm.training.trainer import TrainConfig, Trainer
    if runner == "train":
        source, recipe, _ = fh.Runs.half()
        out = Path(shutil.copytree(source / "run", tmp_path / "run", symlinks=True))
    else:
        source, cfg = fh.Runs.finetune_half()
        shutil.copy(source / "chats.jsonl", tmp_path / "chats.jsonl")
        out = Path(shutil.copytree(source / "run", tmp_path / "run", symlinks=True))
        cfg = dict(cfg, data=str(tmp_path / "chats.jsonl"))
        saved = json.loads((out / "finetune.json").read_text())
        (out / "finetune.json").write_text(json.dumps(dict(saved, data=cfg["data"])))
    outside = tmp_path / "elsewhere" / Path(name).name
    outside.parent.mkdir()
    shutil.move(out / name, outside)
    if name == "log.jsonl":  # one line past the save: a resume would drop it from the file it rewrites
        with open(outside, "a") as f:
            f.write(json.dumps({"step": 99, "loss": 1.0, "tokens": 8}) + "\n")
    before = outside.read_bytes()
    (out / name).symlink_to(outside)
    with pytest.raises(minillm.MinillmError, match="outside the run folder"):
        if runner == "train":
            Trainer(TrainConfig.from_dict(recipe), out, resume=True, progress=False).run()
        else:
            Finetuner(FinetuneConfig(**cfg), out, resume=True, progress=False).run()
    assert outside.read_bytes() == before
