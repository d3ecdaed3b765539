"""A Qwen3.5 config whose layers are all full attention is still Qwen3.5 (issue 31, class 6): gated q_proj
[2*H*Dh, D], partial RoPE, (1 + w) norms. Hybrid-ness comes from model_type, not from a linear layer."""

from __future__ import annotations

import json

import numpy as np

import minillm
from minillm.checkpoint.safetensors_file import SafetensorsFile
from minillm.checkpoint.saving import write_safetensors
from minillm.plain.hybrid import plain_hybrid_forward
from conftest import WEIGHTS


def test_a_qwen35_checkpoint_of_only_full_attention_layers_loads_as_hybrid_and_equals_the_plain_form(tmp_path):
    source = WEIGHTS / "tiny-qwen3.5"
    config = json.loads((source / "config.json").read_text())
    full = [i for i in range(config["num_hidden_layers"]) if (i + 1) % config["full_attention_interval"] == 0]
    config.update(num_hidden_layers=len(full), layer_types=["full_attention"] * len(full))
    del config["full_attention_interval"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    f = SafetensorsFile(source / "model.safetensors")
    tensors = {}
    for name in f.tensors:
        if name.startswith("model.layers."):
            i = int(name.split(".")[2])
            if i not in full:
                continue
            name_out = name.replace(f"model.layers.{i}.", f"model.layers.{full.index(i)}.", 1)
        else:
            name_out = name
        tensors[name_out] = f.get_float32(name)
    write_safetensors(tmp_path / "model.safetensors", tensors)
    model = minillm.load_model(tmp_path)
    assert model.config.is_hybrid
    ids = np.arange(9) % config["vocab_size"]
    expected = plain_hybrid_forward(model.weights, model.config, ids)  # [T, V]
    np.testing.assert_allclose(model.forward(ids[None])[0], expected, rtol=1e-4, atol=1e-4)
