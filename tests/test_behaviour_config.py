"""RoPE scaling and config.json precedence at their edges, against what transformers computes from the same files.

The fixtures (weights/behaviour/) come from scripts/make_behaviour_fixtures.py: each config.json dict beside the
inverse frequencies and attention scaling transformers' rotary embedding derives from it, and tiny-qwen2 run by
transformers with dynamic RoPE limited to 16 positions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import minillm
from minillm.checkpoint.config import parse_config
from minillm.model.rope import rope_frequencies
from conftest import WEIGHTS, tiny_model

BEHAVIOUR = WEIGHTS / "behaviour"
ROPE_CASES = json.loads((BEHAVIOUR / "rope_edges.json").read_text())
CONFIG_CASES = json.loads((BEHAVIOUR / "configs.json").read_text())


@pytest.fixture(scope="module")
def rope_arrays():
    with np.load(BEHAVIOUR / "rope_edges.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("case", sorted(ROPE_CASES))
def test_rope_frequencies_and_scaling_at_the_edges_match_transformers(case, rope_arrays):
    spec = ROPE_CASES[case]
    cfg = parse_config(spec["config"])
    inv_freq, scaling = rope_frequencies(cfg.head_dim, cfg.rope, cfg.max_position_embeddings)
    np.testing.assert_allclose(inv_freq, rope_arrays[f"{case}_inv_freq"], rtol=2e-6)
    assert scaling == pytest.approx(spec["attention_scaling"], rel=1e-9)


@pytest.mark.parametrize("seq_len", ROPE_CASES["dynamic"]["seq_lens"])
def test_dynamic_rope_keeps_its_base_up_to_max_position_embeddings_and_grows_it_past(seq_len, rope_arrays):
    cfg = parse_config(ROPE_CASES["dynamic"]["config"])  # max_position_embeddings 4096
    inv_freq, _ = rope_frequencies(cfg.head_dim, cfg.rope, cfg.max_position_embeddings, seq_len=seq_len)
    np.testing.assert_allclose(inv_freq, rope_arrays[f"dynamic_seq{seq_len}_inv_freq"], rtol=2e-6)


# ------------------------------------------------------------------------------------ dynamic RoPE in the model

@pytest.fixture(scope="module")
def dynamic():
    with np.load(BEHAVIOUR / "dynamic_rope.npz") as f:
        return {k: f[k] for k in f.files}


def dynamic_model(fixture) -> minillm.Model:
    """A fresh model (nothing computed yet) of tiny-qwen2's weights with dynamic RoPE up to 16 positions."""
    raw = json.loads((WEIGHTS / "tiny-qwen2" / "config.json").read_text())
    raw.update(json.loads(str(fixture["config_changes"])))
    return minillm.Model(parse_config(raw), tiny_model("tiny-qwen2").weights)


def assert_close_to(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("T", [16, 17, 24])
def test_dynamic_rope_at_exactly_just_past_and_beyond_the_limit_matches_transformers(dynamic, T):
    model = dynamic_model(dynamic)
    assert model.config.rope.rope_type == "dynamic" and model.config.max_position_embeddings == 16
    assert_close_to(model.forward(dynamic["input_ids"][:T])[-4:], dynamic[f"logits_{T}_last4"])


def test_a_short_call_after_a_long_one_uses_the_original_frequencies_again(dynamic):
    model = dynamic_model(dynamic)
    model.forward(dynamic["input_ids"][:24])  # grows the base past the limit
    assert_close_to(model.forward(dynamic["input_ids"][:8]), dynamic["logits_8_after_24"])


def test_greedy_decoding_across_the_dynamic_limit_matches_transformers(dynamic):
    """Prefill 12 tokens, then decode positions 12..21: the base grows at every step past 16, as in transformers."""
    with pytest.warns(minillm.MinillmWarning, match="past max_position_embeddings"):  # on purpose here
        new = minillm.generate(dynamic_model(dynamic), dynamic["greedy_prompt"], 10, temperature=0.0,
                               stop_token_ids=[])
    np.testing.assert_array_equal(new, dynamic["greedy_new"])


# ------------------------------------------------------------------------------------ config.json defaults

@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_fields_a_config_json_leaves_out_take_transformers_defaults(case):
    spec, expected = CONFIG_CASES[case]["config"], CONFIG_CASES[case]["transformers"]
    cfg = parse_config(spec)
    assert cfg.rms_norm_eps == expected["rms_norm_eps"]
    assert cfg.max_position_embeddings == expected["max_position_embeddings"]
    assert cfg.tie_word_embeddings == expected["tie_word_embeddings"]
    assert cfg.num_key_value_heads == expected["num_key_value_heads"]
    assert cfg.head_dim == expected["head_dim"]
    assert (cfg.rope.theta, cfg.rope.rope_type) == (expected["rope_theta"], expected["rope_type"])
    assert cfg.eos_token_ids == tuple(expected["eos_token_ids"])  # a list keeps every id, in order
    assert (cfg.qkv_bias, cfg.o_proj_bias) == ((True, False) if cfg.model_type == "qwen2" else
                                               (expected["attention_bias"],) * 2)
    window = expected["sliding_window"]
    assert cfg.sliding_window == window
    assert [cfg.uses_sliding_window(i) for i in range(cfg.num_hidden_layers)] == \
        [window is not None and t == "sliding_attention" for t in expected["layer_types"]]
