"""Qwen3.5: the hybrid models (Gated DeltaNet + gated attention) match transformers, in both checkpoint layouts.

The fixtures weights/tiny-qwen3.5 (text-only layout) and weights/tiny-qwen3.5-hub (the Hub's multimodal
layout, BF16 shards, vision and MTP tensors) were written by scripts/make_qwen35_fixtures.py with transformers
as the reference. The tolerance is 1e-3 of each tensor's scale: a float32 evaluation of the hybrid layers is
only good to about 1e-4 (the chunked and recurrent delta rule sum in different orders), and every known mistake moves the logits by 0.2 to 1.5 of
their scale (test_each_known_mistake_moves_the_logits_far_beyond_the_tolerance).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import minillm
from minillm.checkpoint.config import parse_config
from minillm.generation.chat import ChatSession
from minillm.model.cache import kv_bytes_per_token, linear_state_bytes
from minillm.model.delta_memory import WRITES_KEPT
from minillm.tools.verify import compare_to_reference, format_error_table
from conftest import WEIGHTS, load_quietly, reference, rel_error, tiny_model
from st_helpers import rewrite_config, write_safetensors

QWEN35_MODELS = ["tiny-qwen3.5", "tiny-qwen3.5-hub"]
RTOL = 1e-3
CONFIGS = WEIGHTS / "configs"


@pytest.fixture(params=QWEN35_MODELS)
def name(request) -> str:
    return request.param


# ---------------------------------------------------------------------------------------------- config

def test_qwen35_08b_hub_config_fields():
    c = minillm.load_config(CONFIGS / "qwen3.5-0.8b.json")
    assert c.model_type == "qwen3_5_text" and c.is_hybrid
    assert c.layer_types == ("linear_attention",) * 3 + ("full_attention",) + c.layer_types[4:]
    assert c.layer_types.count("full_attention") == 6 and len(c.layer_types) == 24
    assert (c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (1024, 8, 2, 256)
    assert c.rotary_dim == 64 and c.rope.theta == 1e7 and c.rope.rope_type == "default"
    assert (c.linear_num_key_heads, c.linear_num_value_heads, c.linear_key_head_dim, c.linear_value_head_dim,
            c.linear_conv_kernel_dim) == (16, 16, 128, 128, 4)
    assert c.linear_conv_channels == 6144  # 2 * 16 * 128 + 16 * 128, in_proj_qkv's rows
    assert c.tie_word_embeddings and c.eos_token_ids == (248044,) and c.vocab_size == 248320
    assert c.zero_centred_norms and c.attn_output_gate and c.dtype == "bfloat16"


def test_hub_config_and_transformers_resave_give_the_same_config():
    assert minillm.load_config(CONFIGS / "qwen3.5-0.8b.json") == minillm.load_config(CONFIGS / "qwen3.5-0.8b.v5.json")


def test_multimodal_wrapper_and_its_text_config_give_the_same_config():
    raw = json.loads((CONFIGS / "qwen3.5-0.8b.json").read_text())
    assert parse_config(raw) == parse_config(raw["text_config"])


def test_layer_types_are_derived_from_full_attention_interval_when_absent():
    raw = json.loads((WEIGHTS / "tiny-qwen3.5" / "config.json").read_text())
    assert "layer_types" not in raw and raw["full_attention_interval"] == 2
    assert parse_config(raw).layer_types == ("linear_attention", "full_attention") * 2
    del raw["full_attention_interval"]  # transformers' default interval: 4
    assert parse_config(raw).layer_types == ("linear_attention",) * 3 + ("full_attention",)


@pytest.mark.parametrize("changes", [{"attn_output_gate": False}, {"mamba_ssm_dtype": "bfloat16"},
                                     {"mtp_num_hidden_layers": 3, "mtp_use_dedicated_embeddings": True},
                                     {"output_gate_type": "swish"}, {"mlp_only_layers": [0, 1]},
                                     {"full_attention_interval": 2}])
def test_keys_transformers_ignores_change_nothing(changes):
    raw = json.loads((CONFIGS / "qwen3.5-0.8b.json").read_text())
    changed = {**raw, "text_config": {**raw["text_config"], **changes}}
    assert parse_config(changed) == parse_config(raw)


def test_an_output_gate_switched_off_in_the_config_is_still_applied_as_transformers_does(tmp_path):
    path = Path(shutil.copytree(WEIGHTS / "tiny-qwen3.5-hub", tmp_path / "ckpt"))
    cfg = json.loads((path / "config.json").read_text())
    cfg["text_config"]["attn_output_gate"] = False
    (path / "config.json").write_text(json.dumps(cfg))
    ids = reference("tiny-qwen3.5-hub")["input_ids"]
    np.testing.assert_array_equal(load_quietly(path).forward(ids), tiny_model("tiny-qwen3.5-hub").forward(ids))


def test_rope_theta_and_partial_factor_come_from_rope_parameters_first_then_the_top_level():
    base = {"model_type": "qwen3_5_text", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
            "num_attention_heads": 4, "head_dim": 32}
    assert (parse_config(base).rope.theta, parse_config(base).partial_rotary_factor) == (10000.0, 0.25)  # defaults
    top = parse_config({**base, "rope_theta": 5e6, "partial_rotary_factor": 0.5})
    assert (top.rope.theta, top.rotary_dim) == (5e6, 16)
    both = parse_config({**base, "rope_theta": 5e6, "partial_rotary_factor": 0.5,
                         "rope_parameters": {"rope_type": "default", "rope_theta": 10000000,
                                             "partial_rotary_factor": 0.25}})
    assert (both.rope.theta, both.rotary_dim) == (1e7, 8)


# ---------------------------------------------------------------------------------------------- loading

def test_the_hub_layout_reports_vision_and_mtp_tensors_in_one_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", minillm.CheckpointWarning)
        model = minillm.load_model(WEIGHTS / "tiny-qwen3.5-hub")
    messages = [str(w.message) for w in caught if issubclass(w.category, minillm.CheckpointWarning)]
    assert len(messages) == 1 and len(messages[0].splitlines()) == 1
    assert "vision tower" in messages[0] and "model.visual.*" in messages[0] and "mtp.*" in messages[0]
    assert any(n.startswith("model.visual.") for n in model.unexpected_tensors)
    assert "mtp.fc.weight" in model.unexpected_tensors


def test_the_text_only_layout_loads_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", minillm.CheckpointWarning)
        minillm.load_model(WEIGHTS / "tiny-qwen3.5")


def test_tied_and_untied_heads():
    hub, text = tiny_model("tiny-qwen3.5-hub"), tiny_model("tiny-qwen3.5")
    assert hub.config.tie_word_embeddings and hub.weights.lm_head is hub.weights.embed_tokens
    assert not text.config.tie_word_embeddings and text.weights.lm_head is not text.weights.embed_tokens


def test_a_stored_copy_of_the_tied_head_is_recognised_in_the_hub_layout(tmp_path):
    """Some Hub files store lm_head.weight although the head is tied; equal to the embedding, one copy is kept."""
    from minillm.checkpoint.safetensors_file import SafetensorsFile

    path = _hub_copy(tmp_path)
    index = json.loads((path / "model.safetensors.index.json").read_text())
    embed = "model.language_model.embed_tokens.weight"
    bits = SafetensorsFile(path / index["weight_map"][embed]).raw(embed)
    write_safetensors(path / "model-head.safetensors", {"lm_head.weight": ("BF16", bits)})
    index["weight_map"]["lm_head.weight"] = "model-head.safetensors"
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", minillm.CheckpointWarning)
        model = minillm.load_model(path)
    assert any("it equals the embedding, so one copy is used" in str(w.message) for w in caught)
    assert model.weights.lm_head is model.weights.embed_tokens


def test_the_forward_does_not_depend_on_the_checkpoint_layout(tmp_path):
    """The Hub checkpoint's language model rewritten as a text-only checkpoint gives identical logits."""
    from minillm.checkpoint.loading import language_model_tensors, open_checkpoint

    files, stored, _ = language_model_tensors(open_checkpoint(WEIGHTS / "tiny-qwen3.5-hub"))
    out = tmp_path / "text-only"
    out.mkdir()
    write_safetensors(out / "model.safetensors", {n: ("BF16", f.raw(stored(n))) for n, f in files.items()})
    raw = json.loads((WEIGHTS / "tiny-qwen3.5-hub" / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**raw["text_config"], "tie_word_embeddings": True}))
    ids = reference("tiny-qwen3.5-hub")["input_ids"]
    np.testing.assert_array_equal(load_quietly(out).forward(ids), tiny_model("tiny-qwen3.5-hub").forward(ids))


def test_everything_is_float32_no_float64_creeps_in(name):
    model, ref = tiny_model(name), reference(name)
    assert {a.dtype for a in model.weights.arrays()} == {np.dtype(np.float32)}
    logits, hidden = model.forward(ref["input_ids"], output_hidden_states=True)
    assert {h.dtype for h in hidden} | {logits.dtype} == {np.dtype(np.float32)}
    cache = model.new_cache(len(ref["batch_input_ids"]), 40)
    step = model.forward(ref["batch_input_ids"], attention_mask=ref["batch_attention_mask"], cache=cache)
    assert step.dtype == np.float32
    states = [a for s in cache.linear_states if s is not None for a in (s.conv, s.recurrent)]
    assert {a.dtype for a in states} == {np.dtype(np.float32)}


# ---------------------------------------------------------------------------------------------- reference

def test_every_hidden_state_and_the_logits_match_transformers(name):
    model, ref = tiny_model(name), reference(name)
    rows = compare_to_reference(model, ref)
    assert len(rows) == model.config.num_hidden_layers + 2
    assert not [r for r in rows if r.rel_error > RTOL], f"{name}:\n{format_error_table(rows, RTOL)}"


def test_our_float32_error_is_float32_noise_like_transformers_own(name):
    """Against a float64 evaluation (transformers' model cast to float64), minillm's float32 logits are as
    close as transformers' float32 ones: both about 1e-5 here, far below the tolerance."""
    model, ref = tiny_model(name), reference(name)
    ours = rel_error(model.forward(ref["input_ids"])[-16:], ref["logits_float64_tail"])
    theirs = rel_error(ref["logits"][-16:], ref["logits_float64_tail"])
    assert ours < 1e-4 and theirs < 1e-4, (ours, theirs)


def test_left_padded_batch_matches_transformers_on_real_tokens(name):
    model, ref = tiny_model(name), reference(name)
    logits = model.forward(ref["batch_input_ids"], attention_mask=ref["batch_attention_mask"])
    real = ref["batch_attention_mask"].astype(bool)
    assert rel_error(logits[real], ref["batch_logits"][real]) <= RTOL


@pytest.mark.parametrize("prompt, expected, stop", [("greedy_prompt", "greedy_new", None),
                                                    ("greedy_prompt", "greedy_nostop_new", []),
                                                    ("input_ids", "greedy_long_nostop_new", [])])
def test_greedy_generation_reproduces_transformers_token_for_token(name, prompt, expected, stop):
    model, ref = tiny_model(name), reference(name)
    new = minillm.generate(model, ref[prompt], max_new_tokens=16, temperature=0.0, stop_token_ids=stop)
    np.testing.assert_array_equal(new, ref[expected])


def test_left_padded_batch_generation_reproduces_transformers(name):
    model, ref = tiny_model(name), reference(name)
    new = minillm.generate(model, ref["batch_input_ids"], attention_mask=ref["batch_attention_mask"],
                           max_new_tokens=16, temperature=0.0)
    np.testing.assert_array_equal(new, ref["batch_greedy_new"])


# The known mistakes of a hybrid implementation, injected one at a time. Each must move the logits far beyond RTOL, through a
# full pass or through the cache (a conv state off by one only shows once the state is carried between calls).
def _tile_value_heads(a, repeats, axis=None):
    return _np_repeat(a, repeats, axis) if axis is None else np.concatenate([a] * repeats, axis=axis)


def _conv_state_off_by_one(x, weight, state):
    out, _ = _causal_conv1d(x, weight, state)
    extended = np.concatenate([state, x], axis=1)
    return out, extended[:, x.shape[1] - 1:-1]  # the window saved one token too early


def _conv_step_state_off_by_one(x, weight, state):  # the one-token step (the engine's decode path), same mistake
    window = np.concatenate([state, x[:, None]], axis=1)
    out = _causal_conv1d_step(x, weight, state)
    state[...] = window[:, :-1]  # the window saved one token too early
    return out


_np_repeat = np.repeat
from minillm.model import conv as _conv, gated_attention as _ga, gated_deltanet as _gd, hybrid as _hy  # noqa: E402
from minillm.model import transformer as _tr  # noqa: E402
from minillm.model.activations import silu as _silu  # noqa: E402
from minillm.model.norm import rms_norm as _rms_norm  # noqa: E402

_causal_conv1d, _causal_conv1d_step = _conv.causal_conv1d, _conv.causal_conv1d_step
MISTAKES = {
    "zero-centred norms read as plain gains (no 1 + w)": [(_hy, "zero_centred_rms_norm", _rms_norm),
                                                          (_ga, "zero_centred_rms_norm", _rms_norm),
                                                          (_tr, "zero_centred_rms_norm", _rms_norm)],
    "1 + w in the gated norm too": [(_gd, "gated_rms_norm", lambda x, z, w, eps: _rms_norm(x, 1 + w, eps) * _silu(z))],
    "no attention output gate": [(_ga, "sigmoid", np.ones_like)],
    "tile instead of repeat for value heads": [(np, "repeat", _tile_value_heads)],
    "conv taps reversed": [(_gd, "causal_conv1d", lambda x, w, s: _causal_conv1d(x, w[:, ::-1], s)),
                           (_gd, "causal_conv1d_step", lambda x, w, s: _causal_conv1d_step(x, w[:, ::-1], s))],
    "conv state off by one": [(_gd, "causal_conv1d", _conv_state_off_by_one),
                              (_gd, "causal_conv1d_step", _conv_step_state_off_by_one)],
    "conv state off by one in the decode step only": [(_gd, "causal_conv1d_step", _conv_step_state_off_by_one)],
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_known_mistake_moves_the_logits_far_beyond_the_tolerance(name, mistake):
    model, ref = tiny_model(name), reference(name)
    ids = ref["input_ids"]
    with contextlib.ExitStack() as stack:
        for module, attribute, wrong in MISTAKES[mistake]:
            stack.enter_context(mock.patch.object(module, attribute, wrong))
        full = model.forward(ids)
        cache = model.new_cache(1, len(ids))
        steps = [model.forward(ids[:40], cache=cache)] + [model.forward(ids[t:t + 1], cache=cache)
                                                          for t in range(40, len(ids))]
    worst = max((full, np.concatenate(steps)), key=lambda logits: np.abs(logits - ref["logits"]).max())
    assert rel_error(worst, ref["logits"]) > 100 * RTOL and np.abs(worst - ref["logits"]).max() > 1.0, \
        f"{mistake}: logits moved by only {np.abs(worst - ref['logits']).max():.2f}"


# ---------------------------------------------------------------------------------------------- cache, generation

def test_incremental_decoding_equals_the_full_forward(name):
    """Prefill (chunked delta rule) then one token at a time (the recurrence) gives the logits of one pass."""
    model, ref = tiny_model(name), reference(name)
    ids = ref["input_ids"]
    full = model.forward(ids)
    cache = model.new_cache(1, len(ids))
    steps = [model.forward(ids[:5], cache=cache)] + [model.forward(ids[t:t + 1], cache=cache)
                                                     for t in range(5, len(ids))]
    assert rel_error(np.concatenate(steps), full) < 1e-4


def test_a_prefill_shorter_than_the_conv_kernel_then_decoding(name):
    model, ref = tiny_model(name), reference(name)
    ids = ref["input_ids"][:12]
    cache = model.new_cache(1, 12)
    steps = [model.forward(ids[:2], cache=cache)] + [model.forward(ids[t:t + 1], cache=cache) for t in range(2, 12)]
    assert rel_error(np.concatenate(steps), model.forward(ids)) < 1e-4


def test_chunked_prefill_gives_the_same_generation(name):
    model, ref = tiny_model(name), reference(name)
    a = minillm.generate(model, ref["input_ids"], max_new_tokens=6, temperature=0.0, stop_token_ids=[])
    b = minillm.generate(model, ref["input_ids"], max_new_tokens=6, temperature=0.0, stop_token_ids=[],
                         prefill_chunk_size=7)
    np.testing.assert_array_equal(a, b)


def test_only_full_attention_layers_keep_keys_and_values(name):
    model = tiny_model(name)
    cfg = model.config
    cache = model.new_cache(1, 100)
    for i in range(cfg.num_hidden_layers):
        linear = cfg.is_linear_attention(i)
        assert (cache.keys[i] is None) == linear and (cache.linear_states[i] is not None) == linear
    assert cache.nbytes == 100 * kv_bytes_per_token(cfg) + linear_state_bytes(cfg)


def test_the_linear_attention_state_does_not_grow_with_the_context(name):
    model = tiny_model(name)
    sizes = {capacity: model.new_cache(1, capacity).nbytes for capacity in (10, 1000)}
    growth = sizes[1000] - sizes[10]
    assert growth == 990 * kv_bytes_per_token(model.config)  # only the full-attention layers' keys and values
    assert linear_state_bytes(model.config) > 0


def test_a_recurrent_state_cannot_be_rewound_so_truncate_goes_back_to_a_snapshot(name):
    model, ref = tiny_model(name), reference(name)
    ids = ref["input_ids"][:30]
    cache = model.new_cache(1, 40)
    model.forward(ids[:12], cache=cache)
    cache.snapshot()  # the states after 12 tokens
    model.forward(ids[12:20], cache=cache)
    assert cache.truncate(20) == 20  # keeping everything is always possible
    assert cache.truncate(16) == 12  # back to the snapshot, not to 16: the tokens after it must be recomputed
    tail = model.forward(ids[12:], cache=cache)
    assert rel_error(tail, model.forward(ids)[12:]) < 1e-4
    assert cache.truncate(5) == 0  # before any snapshot: back to the start
    assert rel_error(model.forward(ids, cache=cache), model.forward(ids)) < 1e-4


def test_a_prompts_pass_and_a_snapshot_after_generation_steps_see_every_write_they_kept_aside(name):
    """Generation steps keep their delta-rule writes aside for up to WRITES_KEPT tokens (delta_memory.py).
    Whatever reads the memory next (a prompt's pass continuing the cache, a snapshot, a truncate back to it)
    must see those writes: 3 steps (writes still aside), a snapshot, 5 tokens in one pass, then back to the
    snapshot and the same 5 again, each against one pass over all tokens."""
    model, ref = tiny_model(name), reference(name)
    ids = ref["input_ids"][:16]
    assert 3 < WRITES_KEPT
    full = model.forward(ids)
    cache = model.new_cache(1, 16)
    steps = [model.forward(ids[:5], cache=cache)] + [model.forward(ids[t:t + 1], cache=cache) for t in range(5, 8)]
    cache.snapshot()
    tail = model.forward(ids[8:13], cache=cache)  # [5, V]: a prompt's pass reads the memory the steps left
    assert rel_error(np.concatenate(steps + [tail]), full[:13]) < 1e-4
    assert cache.truncate(10) == 8
    assert rel_error(model.forward(ids[8:13], cache=cache), full[8:13]) < 1e-4


def test_truncate_on_a_dense_model_still_keeps_exactly_what_was_asked():
    cache = tiny_model("tiny-qwen3").new_cache(1, 20)
    tiny_model("tiny-qwen3").forward(np.arange(10), cache=cache)
    assert cache.truncate(7) == 7 and cache.length == 7


@pytest.mark.parametrize("thinking", [None, False])
def test_chat_keeps_its_cache_across_turns_and_matches_a_fresh_computation(name, thinking):
    model, tok = tiny_model(name), minillm.load_tokenizer(WEIGHTS / name)
    session = ChatSession(model, tok, system="Be brief.", capacity=512, enable_thinking=thinking)
    reused = []
    for text in ["Hello!", "Tell me about attention.", "Thanks"]:
        reply = "".join(session.send(text, max_new_tokens=8, temperature=0.0))
        reused.append(session.last_turn["reused_tokens"])
        ids = tok.apply_chat_template(session.messages[:-1], add_generation_prompt=True,
                                      enable_thinking=thinking, tokenize=True)
        assert reply == tok.decode(minillm.generate(model, ids, 8, temperature=0.0), skip_special_tokens=True)
    assert reused[0] == 0 and min(reused[1:]) > 0  # later turns came from the cache (a snapshot)
    assert session.cache.length == len(session.cached_ids)


# ---------------------------------------------------------------------------------------------- tokenizer, template

def test_the_tokenizer_keeps_combining_marks_with_their_letters():
    """Qwen3.5's pre-tokenizer regex has \\p{M}: a Devanagari word is one piece (Qwen3's regex cuts it in 4)."""
    tok = minillm.load_tokenizer(WEIGHTS / "tiny-qwen3.5")
    pieces = tok.backend.pre_tokenizer.pre_tokenize_str("नमस्ते दुनिया")
    assert len(pieces) == 2
    old = minillm.load_tokenizer(WEIGHTS / "tiny-qwen3").backend.pre_tokenizer.pre_tokenize_str("नमस्ते दुनिया")
    assert len(old) == 7


def test_token_ids_of_mark_heavy_text_match_transformers(name):
    tok = minillm.load_tokenizer(WEIGHTS / name)
    texts = json.loads((WEIGHTS / name / "reference_text.json").read_text())
    assert [tok.encode(t) for t in texts["mark_texts"]] == texts["mark_ids"]


def test_chat_template_renders_as_transformers_with_thinking_on_by_default(name):
    tok = minillm.load_tokenizer(WEIGHTS / name)
    for case in json.loads((WEIGHTS / name / "reference_text.json").read_text())["chat"]:
        assert tok.apply_chat_template(case["messages"], **case["kwargs"]) == case["rendered"], case["case"]
    hi = [{"role": "user", "content": "Hi"}]
    assert tok.apply_chat_template(hi, add_generation_prompt=True).endswith("<|im_start|>assistant\n<think>\n")
    assert tok.apply_chat_template(hi, add_generation_prompt=True, enable_thinking=False).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n")


# ---------------------------------------------------------------------------------------------- bad input

def qwen35_config(**changes) -> dict:
    raw = json.loads((CONFIGS / "qwen3.5-0.8b.json").read_text())
    return {**raw, "text_config": {**raw["text_config"], **changes}}


@pytest.mark.parametrize("changes, words", [
    ({"layer_types": ["linear_attention"] * 23 + ["sliding_attention"]}, ["layer_types[23]", "sliding_attention"]),
    ({"layer_types": ["full_attention"] * 3}, ["layer_types", "24 entries", "found 3"]),
    ({"linear_num_value_heads": 24}, ["linear_num_value_heads (24)", "multiple of linear_num_key_heads (16)"]),
    ({"rope_parameters": {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e7}}, ["rope_type", "'yarn'"]),
    ({"rope_parameters": {"rope_type": "default", "partial_rotary_factor": 1.5}}, ["partial_rotary_factor", "at most head_dim"]),
    ({"linear_conv_kernel_dim": 0}, ["linear_conv_kernel_dim", "expected an integer >= 1", "found 0"]),
    ({"num_hidden_layers": 10 ** 7}, ["num_hidden_layers", "<= 4,096"]),
    ({"linear_key_head_dim": 2 ** 63}, ["linear_key_head_dim", "found 9223372036854775808"]),
    ({"rms_norm_eps": 0.0}, ["rms_norm_eps", "found 0"]),
    ({"head_dim": "256"}, ["head_dim", "expected int", "str"]),
    ({"rope_parameters": {"rope_type": "default", "rope_theta": float("nan")}}, ["rope_theta", "finite"]),
    ({"hidden_act": "gelu"}, ["hidden_act", "gelu"]),
    ({"model_type": "qwen3_next"}, ["text_config.model_type", "qwen3_next"]),
])
def test_bad_hybrid_configs_are_refused_naming_the_field(changes, words):
    with pytest.raises(minillm.ConfigError) as info:
        parse_config(qwen35_config(**changes))
    for word in words:
        assert word in str(info.value)


def test_a_multimodal_config_without_text_config_is_refused():
    raw = json.loads((CONFIGS / "qwen3.5-0.8b.json").read_text())
    del raw["text_config"]
    with pytest.raises(minillm.ConfigError, match="text_config"):
        parse_config(raw)


def _hub_copy(tmp_path) -> Path:
    return Path(shutil.copytree(WEIGHTS / "tiny-qwen3.5-hub", tmp_path / "ckpt"))


def test_a_missing_linear_attention_tensor_is_named_as_stored(tmp_path):
    path = _hub_copy(tmp_path)
    index = json.loads((path / "model.safetensors.index.json").read_text())
    del index["weight_map"]["model.language_model.layers.1.linear_attn.A_log"]
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(minillm.CheckpointError, match=r"'model.language_model.layers.1.linear_attn.A_log' is missing"):
        minillm.load_model(path)


def test_a_misshapen_linear_attention_tensor_names_the_config_fields(tmp_path):
    path = Path(shutil.copytree(WEIGHTS / "tiny-qwen3.5", tmp_path / "ckpt"))
    rewrite_config(path, linear_conv_kernel_dim=3)
    with pytest.raises(minillm.CheckpointError) as info:
        minillm.load_model(path)
    message = str(info.value)
    assert "model.layers.0.linear_attn.conv1d.weight" in message and "[160, 1, 3]" in message
    assert "found [160, 1, 4]" in message and "linear_conv_kernel_dim" in message


def test_right_padding_is_refused_because_only_left_padding_is_exact(name):
    model = tiny_model(name)
    with pytest.raises(minillm.InputError, match="left padding"):
        model.forward([[5, 6, 7, 0], [5, 6, 7, 8]], attention_mask=[[1, 1, 1, 0], [1, 1, 1, 1]])
    cache = model.new_cache(2, 10)
    model.forward([[0, 6, 7], [5, 6, 7]], attention_mask=[[0, 1, 1], [1, 1, 1]], cache=cache)  # left: fine
    with pytest.raises(minillm.InputError, match="row 0 has padding after real tokens"):
        model.forward([[0, 9], [8, 9]], attention_mask=[[0, 1], [1, 1]], cache=cache)  # a hole after the prefill


# ---------------------------------------------------------------------------------------------- command line

def test_inspect_shows_the_layer_pattern_and_the_state_sizes(capsys):
    from minillm.tools.cli import main

    assert main(["inspect", str(WEIGHTS / "tiny-qwen3.5-hub"), "--tensors", "0"]) == 0
    out = capsys.readouterr().out
    assert "layers [linear, linear, linear, full] x 1: 3 linear attention (Gated DeltaNet), 1 full attention" in out
    assert "Hk=2 key heads, Hv=6 value heads" in out and "R=16 of Dh=64" in out
    cfg = tiny_model("tiny-qwen3.5-hub").config
    assert f"KV cache {kv_bytes_per_token(cfg) / 1024:.1f} KiB per token (full-attention layers only)" in out
    assert f"linear-attention state {linear_state_bytes(cfg) / 2 ** 20:.2f} MiB per sequence" in out
    assert "model.language_model.layers.0.linear_attn.A_log" in out
    assert "model.visual.blocks.0.attn.qkv.weight" in out and out.count("(not used)") == 25  # 21 vision + 4 mtp


def test_verify_passes_on_both_layouts_with_the_hybrid_tolerance(capsys, name):
    from minillm.tools.cli import main

    assert main(["verify", str(WEIGHTS / name), str(WEIGHTS / name / "reference.npz")]) == 0
    out = capsys.readouterr().out
    assert "OK: worst relative error" in out and "(tolerance 0.001)" in out and "layer 2 output" in out


def test_generate_chat_opens_a_think_block_unless_thinking_is_off(capsys):
    from minillm.tools.cli import main

    tok = minillm.load_tokenizer(WEIGHTS / "tiny-qwen3.5")
    for thinking, expected in (([], True), (["--thinking", "off"], False)):
        assert main(["generate", "Hi", "--chat", "--model", str(WEIGHTS / "tiny-qwen3.5"), *thinking,
                     "--max-new-tokens", "2", "--temperature", "0"]) == 0
        ids = tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                      enable_thinking=expected, tokenize=True)
        assert f"[{len(ids)} prompt tokens" in capsys.readouterr().err
        assert tok.decode(ids).endswith("<think>\n") == expected


def test_bench_on_a_hybrid_model_shows_the_per_layer_decode_cost_by_context(tmp_path):
    """A smoke test of `minillm bench` on the tiny hybrid model (nothing timed against a bound)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "minillm", "bench", "--model", str(WEIGHTS / "tiny-qwen3.5"),
                          "--quick", "--no-transformers", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "prefill 512" in run.stdout and "linear attention stays flat" in run.stdout
    result = json.loads((tmp_path / "bench-tiny-qwen3.5.json").read_text())
    assert set(result["minillm"]["decode_ms_per_layer_by_context"]) == {"128", "1024", "8192"}


# ---------------------------------------------------------------------------------------------- with main's
# cache and forward features (merged after Qwen3.5 support was written): token ids in the cache, long inputs
# in pieces, a generation cache that grows, the cache check.

def test_repetition_penalty_continuing_a_hybrid_cache_penalises_the_ids_already_in_it(name):
    model = tiny_model(name)
    rng = np.random.default_rng(1)
    for _ in range(4):
        first, second = rng.integers(0, model.config.vocab_size, 10), rng.integers(0, model.config.vocab_size, 3)
        kw = dict(max_new_tokens=8, temperature=0.0, stop_token_ids=[], repetition_penalty=3.0)
        whole = minillm.generate(model, np.concatenate([first, second]), **kw)
        cache = model.new_cache(1, 32)
        model.forward(first, cache=cache)  # an earlier turn, already in the cache (its linear states too)
        assert [list(ids) for ids in cache.seen_ids()] == [list(first)]
        np.testing.assert_array_equal(minillm.generate(model, second, cache=cache, **kw), whole)


def test_a_hybrid_chat_turn_applies_the_penalty_to_the_whole_conversation(name):
    model, tok = tiny_model(name), minillm.load_tokenizer(WEIGHTS / name)
    kw = dict(max_new_tokens=8, temperature=0.0, repetition_penalty=3.0)
    chat = ChatSession(model, tok, capacity=512, enable_thinking=False)
    "".join(chat.send("hello there, how are you?", **kw))
    second = "".join(chat.send("tell me about the quick brown fox", **kw))
    ids = tok.apply_chat_template(chat.messages[:-1], add_generation_prompt=True, enable_thinking=False,
                                  tokenize=True)
    fresh = minillm.generate(model, ids, stop_token_ids=sorted(chat.stop_ids), **kw)
    reply = fresh[:-1] if len(fresh) and int(fresh[-1]) in chat.stop_ids else fresh
    assert second == tok.decode(reply, skip_special_tokens=True)


def test_a_failed_hybrid_chat_turn_leaves_the_session_as_it_was(name):
    model, tok = tiny_model(name), minillm.load_tokenizer(WEIGHTS / name)
    chat = ChatSession(model, tok, capacity=512, enable_thinking=False)
    "".join(chat.send("hello there", max_new_tokens=4, temperature=0.0))
    messages = list(chat.messages)
    with pytest.raises(minillm.InputError):  # raised by the sampler, after the turn's history was computed
        "".join(chat.send("and now?", max_new_tokens=4, top_k=-1))
    assert chat.messages == messages
    # the cache holds exactly what cached_ids says (here up to the failed turn's snapshot, reused or cut next turn)
    assert chat.cache.length == len(chat.cached_ids)
    assert [list(ids) for ids in chat.cache.seen_ids()] == [chat.cached_ids]
    kw = dict(max_new_tokens=6, temperature=0.0, repetition_penalty=2.0)
    again = "".join(chat.send("something else", **kw))  # and the session still works, as a fresh one would
    fresh = ChatSession(model, tok, capacity=512, enable_thinking=False)
    fresh.messages = messages[:]
    assert again == "".join(fresh.send("something else", **kw))


def test_a_long_hybrid_input_in_pieces_gives_the_same_numbers(name, monkeypatch):
    model = tiny_model(name)
    ids = (np.arange(90) * 11) % model.config.vocab_size
    whole, hidden = model.forward(ids, output_hidden_states=True)
    monkeypatch.setattr(_tr, "QUERY_PIECE_SCORES", model.config.num_attention_heads * 90 * 7)  # ~7 queries a piece
    pieces, hidden_pieces = model.forward(ids, output_hidden_states=True)
    np.testing.assert_allclose(pieces, whole, rtol=1e-4, atol=1e-4)
    for a, b in zip(hidden_pieces, hidden):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.forward(ids, logits_to_keep=10), whole[-10:], rtol=1e-4, atol=1e-4)


def test_a_growing_generation_cache_keeps_the_linear_states(name, monkeypatch):
    from minillm.generation import generate as _gen
    model = tiny_model(name)
    kw = dict(max_new_tokens=20, temperature=0.0, stop_token_ids=[], repetition_penalty=1.5)
    expected = minillm.generate(model, [5, 6, 7], **kw)
    monkeypatch.setattr(_gen, "INITIAL_ROOM", 2)  # the cache starts with room for 2 new tokens, then doubles
    np.testing.assert_array_equal(minillm.generate(model, [5, 6, 7], **kw), expected)


def test_a_cache_of_another_model_is_refused(name):
    hybrid, dense = tiny_model(name), tiny_model("tiny-qwen3")
    with pytest.raises(minillm.InputError, match="another model"):
        hybrid.forward([1, 2], cache=dense.new_cache(1, 8))
    with pytest.raises(minillm.InputError, match="another model"):
        dense.forward([1, 2], cache=hybrid.new_cache(1, 8))


def test_the_one_screen_forward_refuses_a_hybrid_model(name):
    from minillm.plain.forward import plain_forward
    model = tiny_model(name)
    with pytest.raises(minillm.InputError, match="dense Qwen2/Qwen3"):
        plain_forward(model.weights, model.config, [1, 2, 3])
