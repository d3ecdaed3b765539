"""Resume reads its own files back (issue 31, class 1): trainer_state/state.json, log.jsonl, the optimizer's
moments and the float32 master weights are untrusted input like any checkpoint. Each damaged file is refused
before a step is trained, with an error naming the file and the field."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from minillm.checkpoint.safetensors_file import SafetensorsFile
from minillm.checkpoint.saving import write_safetensors
from minillm.errors import MinillmError
from minillm.training.trainer import TrainConfig, Trainer
from test_training import recipe


@pytest.fixture
def saved_run(tmp_path):
    """A run of 4 steps stopped after its save at step 2: what --resume reads."""
    Trainer(TrainConfig.from_dict(recipe(tmp_path)), tmp_path / "run", progress=False).run(max_steps=2)
    return tmp_path / "run"


def resume(run, **overrides):
    return Trainer(TrainConfig.from_dict(recipe(run.parent, **overrides)), run, resume=True, progress=False)


def state_path(run):
    return run / "checkpoint" / "trainer_state" / "state.json"


def edit_state(run, **changes):
    state = json.loads(state_path(run).read_text())
    state.update(changes)
    state_path(run).write_text(json.dumps(state))


@pytest.mark.parametrize("field, value", [("step", -100), ("step", 3.5), ("step", "2"), ("step", None),
                                          ("step", float("nan")), ("step", 99), ("adam_step", -1),
                                          ("adam_step", 0), ("elapsed", "soon"), ("elapsed", float("inf")), ("elapsed", -1.0),
                                          ("rng", {"bit_generator": "PCG64"}), ("rng", [1, 2]), ("recipe", []),
                                          ("recipe", {"seed": 3})])
def test_a_damaged_state_json_field_is_refused_naming_the_file_and_the_field(saved_run, field, value):
    edit_state(saved_run, **{field: value})
    with pytest.raises(MinillmError) as e:
        resume(saved_run)
    assert "state.json" in str(e.value) and field in str(e.value)


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", "null"])
def test_a_state_json_that_is_not_a_json_object_is_refused_naming_the_file(saved_run, content):
    state_path(saved_run).write_text(content)
    with pytest.raises(MinillmError, match="state.json"):
        resume(saved_run)


def test_a_missing_state_json_is_refused_naming_the_file(saved_run):
    state_path(saved_run).unlink()
    with pytest.raises(MinillmError, match="state.json"):
        resume(saved_run)


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_state_json_or_log_that_is_a_fifo_or_a_device_is_refused_without_reading_it(saved_run, special):
    for path in (state_path(saved_run), saved_run / "log.jsonl"):
        backup = path.read_bytes()
        path.unlink()
        if special == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to(special)
        with pytest.raises(MinillmError, match=path.name):
            resume(saved_run)
        path.unlink()
        path.write_bytes(backup)


def test_a_log_line_that_is_not_json_is_refused_naming_the_file_and_the_line(saved_run):
    with open(saved_run / "log.jsonl", "a") as log:
        log.write("{broken\n")
    with pytest.raises(MinillmError, match=r"log\.jsonl: line 3"):
        resume(saved_run)


@pytest.mark.parametrize("line", [[1, 2], {"loss": 1.0}, {"step": "1", "loss": 1.0, "tokens": 3},
                                  {"step": 1, "loss": 1.0}])
def test_a_log_line_without_the_fields_the_loss_curve_needs_is_refused(saved_run, line):
    text = (saved_run / "log.jsonl").read_text().splitlines()
    text[0] = json.dumps(line)
    (saved_run / "log.jsonl").write_text("\n".join(text) + "\n")
    with pytest.raises(MinillmError, match=r"log\.jsonl: line 1"):
        resume(saved_run)


def rewrite(path, change):
    f = SafetensorsFile(path)
    tensors = {name: f.get_float32(name) for name in f.tensors}
    change(tensors)
    write_safetensors(path, tensors)


def test_master_weights_of_the_wrong_shape_are_refused_naming_the_file_and_the_tensor(saved_run):
    master = saved_run / "checkpoint" / "trainer_state" / "master.safetensors"
    rewrite(master, lambda t: t.update({"model.norm.weight": t["model.norm.weight"][:-1]}))
    with pytest.raises(MinillmError, match=r"master\.safetensors.*model\.norm\.weight"):
        resume(saved_run)


def test_non_finite_master_weights_are_refused_naming_the_tensor(saved_run):
    master = saved_run / "checkpoint" / "trainer_state" / "master.safetensors"
    rewrite(master, lambda t: t["model.norm.weight"].__setitem__(0, np.nan))
    with pytest.raises(MinillmError, match=r"master\.safetensors.*model\.norm\.weight"):
        resume(saved_run)


@pytest.mark.parametrize("damage", ["missing", "shape", "extra", "negative v"])
def test_optimizer_moments_that_do_not_match_the_weights_are_refused(saved_run, damage):
    optim = saved_run / "checkpoint" / "trainer_state" / "optimizer.safetensors"
    def change(t):
        if damage == "missing":
            del t["m.model.norm.weight"]
        elif damage == "shape":
            t["v.model.norm.weight"] = t["v.model.norm.weight"][:-1]
        elif damage == "extra":
            t["m.model.extra.weight"] = np.zeros(3, np.float32)
        else:
            t["v.model.norm.weight"][0] = -1.0
    rewrite(optim, change)
    with pytest.raises(MinillmError, match=r"optimizer\.safetensors.*model\.(norm|extra)\.weight"):
        resume(saved_run)


def test_an_undamaged_run_still_resumes_to_the_end(saved_run):
    trainer = resume(saved_run)
    assert trainer.step == 2
    trainer.run()
    assert trainer.step == 4
