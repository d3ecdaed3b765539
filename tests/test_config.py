"""config.json parsing: both layouts, derived fields, sliding-window semantics, clear refusals."""

from __future__ import annotations

import json

import pytest

import minillm
from minillm.checkpoint.config import parse_config
from conftest import WEIGHTS

CONFIGS = WEIGHTS / "configs"  # Hub (v4) configs and transformers 5's re-save of each (v5)


@pytest.mark.parametrize("name", ["qwen2.5-0.5b-instruct", "qwen3-0.6b", "qwen2.5-7b-instruct-yarn"])
def test_hub_layout_and_transformers5_layout_give_the_same_config(name):
    v4 = minillm.load_config(CONFIGS / f"{name}.v4.json")
    v5 = minillm.load_config(CONFIGS / f"{name}.v5.json")
    assert v4 == v5


def test_qwen25_05b_fields():
    c = minillm.load_config(CONFIGS / "qwen2.5-0.5b-instruct.v4.json")
    assert (c.model_type, c.hidden_size, c.num_attention_heads, c.num_key_value_heads) == ("qwen2", 896, 14, 2)
    assert c.head_dim == 64  # derived: 896 // 14
    assert c.rope.theta == 1e6 and c.rope.rope_type == "default"
    assert c.qkv_bias and not c.o_proj_bias and not c.qk_norm  # Qwen2: q/k/v bias always, no o_proj bias
    assert c.sliding_window is None  # 32768 in the file, but use_sliding_window is false
    assert c.tie_word_embeddings and c.eos_token_ids == (151645,) and c.n_rep == 7


def test_qwen3_06b_fields():
    c = minillm.load_config(CONFIGS / "qwen3-0.6b.v4.json")
    assert c.head_dim == 128 and c.num_attention_heads * c.head_dim == 2048 != c.hidden_size
    assert c.rope.theta == 1e6  # written as the integer 1000000
    assert c.qk_norm and not c.qkv_bias and not c.o_proj_bias


def test_yarn_from_the_legacy_type_key():
    c = minillm.load_config(CONFIGS / "qwen2.5-7b-instruct-yarn.v4.json")
    assert c.rope.rope_type == "yarn" and c.rope.factor == 4.0
    assert c.rope.original_max_position_embeddings == 32768


def test_v5_config_without_top_level_rope_theta_keeps_theta_1e6():
    raw = json.loads((CONFIGS / "qwen3-0.6b.v5.json").read_text())
    assert "rope_theta" not in raw  # the trap: a naive cfg.get("rope_theta", 10000) gives 1e4
    assert parse_config(raw).rope.theta == 1e6


def test_qwen3_attention_bias_switches_q_k_v_and_o_proj():
    raw = json.loads((CONFIGS / "qwen3-0.6b.v4.json").read_text())
    c = parse_config({**raw, "attention_bias": True})
    assert c.qkv_bias and c.o_proj_bias


def test_sliding_window_applies_only_above_max_window_layers_when_enabled():
    raw = json.loads((CONFIGS / "qwen2.5-0.5b-instruct.v4.json").read_text())
    on = parse_config({**raw, "use_sliding_window": True, "sliding_window": 4096, "max_window_layers": 21})
    assert on.sliding_window == 4096
    assert [on.uses_sliding_window(i) for i in range(24)] == [False] * 21 + [True] * 3
    off = parse_config({**raw, "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 0})
    assert not any(off.uses_sliding_window(i) for i in range(24))


def test_explicit_layer_types_are_used_as_given():
    raw = json.loads((CONFIGS / "qwen3-0.6b.v5.json").read_text())
    types = ["sliding_attention" if i % 2 else "full_attention" for i in range(28)]
    c = parse_config({**raw, "use_sliding_window": True, "sliding_window": 128, "layer_types": types})
    assert [c.uses_sliding_window(i) for i in range(28)] == [i % 2 == 1 for i in range(28)]


def test_missing_num_key_value_heads_means_multi_head_attention():
    raw = json.loads((CONFIGS / "qwen2.5-0.5b-instruct.v4.json").read_text())
    del raw["num_key_value_heads"]
    assert parse_config(raw).num_key_value_heads == 14


@pytest.mark.parametrize("change, words", [
    ({"model_type": "llama"}, ["model_type", "llama", "qwen2", "qwen3"]),
    ({"model_type": "qwen2_moe"}, ["model_type", "qwen2_moe", "qwen3_moe"]),
    ({"num_key_value_heads": 3}, ["num_attention_heads (14)", "num_key_value_heads (3)"]),
    ({"rope_scaling": {"type": "longrope", "factor": 2.0}}, ["rope_type", "longrope"]),
    ({"rope_scaling": {"rope_type": "linear"}}, ["factor", "missing"]),
    ({"hidden_size": "896"}, ["hidden_size", "expected int", "str"]),
    ({"hidden_size": None}, ["hidden_size", "missing"]),
    ({"rms_norm_eps": -1.0}, ["rms_norm_eps"]),
    ({"hidden_act": "gelu"}, ["hidden_act", "silu", "gelu"]),
    ({"tie_word_embeddings": "yes"}, ["tie_word_embeddings", "expected bool"]),
])
def test_unsupported_or_malformed_config_is_refused_naming_the_field(change, words):
    raw = json.loads((CONFIGS / "qwen2.5-0.5b-instruct.v4.json").read_text())
    raw.update(change)
    with pytest.raises(minillm.ConfigError) as e:
        parse_config(raw)
    for w in words:
        assert w in str(e.value)


def test_nested_per_layer_rope_parameters_are_refused():
    raw = json.loads((CONFIGS / "qwen3-0.6b.v5.json").read_text())
    raw["rope_parameters"] = {"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                              "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}
    with pytest.raises(minillm.ConfigError, match="nested per layer type"):
        parse_config(raw)
