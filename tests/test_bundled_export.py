"""scripts/bundled/export.py --average: the exported weights are the BF16 mean of the branches' float32 master
weights, and the log keeps the steps the branches share once."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

import minillm
from minillm.checkpoint.safetensors_file import SafetensorsFile
from minillm.checkpoint.saving import float32_to_bf16_bits
from conftest import ROOT, WEIGHTS


def load_export():
    spec = importlib.util.spec_from_file_location("bundled_export", ROOT / "scripts" / "bundled" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_branch(run, master, own_steps, train_tokens):
    """A run directory as minillm train leaves it: checkpoint/ with the trainer state, and log.jsonl."""
    ckpt = run / "checkpoint"
    (ckpt / "trainer_state").mkdir(parents=True)
    for name in ("config.json", "generation_config.json"):
        (ckpt / name).write_text((WEIGHTS / "tiny-qwen3" / name).read_text())
    save_file(master, str(ckpt / "trainer_state" / "master.safetensors"))
    (ckpt / "trainer_state" / "state.json").write_text(json.dumps({"recipe": {"train_tokens": train_tokens}}))
    shared = [dict(step=s, loss=5.0 - s / 10, lr=1e-3, tokens=s * 8, elapsed=s) for s in (1, 2, 3)]
    own = [dict(step=s, loss=l, lr=1e-4, tokens=s * 8, elapsed=s) for s, l in own_steps]
    (run / "log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in shared + own))


def test_average_export_writes_the_bf16_mean_and_one_copy_of_the_shared_steps(tmp_path, monkeypatch):
    export = load_export()
    tiny = minillm.load_model(WEIGHTS / "tiny-qwen3")
    rng = np.random.default_rng(0)
    names = {"model.embed_tokens.weight": tiny.weights.embed_tokens.shape, "model.norm.weight": tiny.weights.norm.shape}
    a = {k: rng.standard_normal(s).astype(np.float32) for k, s in names.items()}
    b = {k: rng.standard_normal(s).astype(np.float32) for k, s in names.items()}
    fake_branch(tmp_path / "a", a, [(4, 1.5), (5, 1.4)], "stage4.npy")
    fake_branch(tmp_path / "b", b, [(4, 1.6), (5, 1.3)], "stage4zh.npy")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "recipe.json").write_text("{}")  # the replaced model's recipe goes
    monkeypatch.setattr(export, "DEST", dest)
    export.main(["--average", str(tmp_path / "a"), str(tmp_path / "b")])

    written = SafetensorsFile(dest / "model.safetensors")
    for k in names:
        assert written.tensors[k].dtype == "BF16"
        mean = (a[k] + b[k]) / 2
        np.testing.assert_array_equal(written.raw(k), float32_to_bf16_bits(mean))  # the stored bit patterns
    lines = [json.loads(x) for x in (dest / "training_log.jsonl").read_text().splitlines()]
    assert [(x["step"], x.get("branch")) for x in lines] == [(1, None), (2, None), (3, None),
                                                             (4, 1), (5, 1), (4, 2), (5, 2)]
    assert not (dest / "recipe.json").exists()
    assert json.loads((dest / "recipe_branch2.json").read_text())["train_tokens"] == "stage4zh.npy"
    assert (dest / "loss_curve.png").stat().st_size > 0


def test_average_export_refuses_runs_that_are_not_branches_of_one_run(tmp_path, monkeypatch):
    export = load_export()
    fake_branch(tmp_path / "a", {"w": np.zeros((2, 3), np.float32)}, [(4, 1.0)], "x.npy")
    fake_branch(tmp_path / "b", {"w": np.zeros((3, 2), np.float32)}, [(4, 1.0)], "x.npy")
    monkeypatch.setattr(export, "DEST", tmp_path)
    with pytest.raises(SystemExit, match="names or shapes"):
        export.main(["--average", str(tmp_path / "a"), str(tmp_path / "b")])
