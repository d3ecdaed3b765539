"""Mixtures of experts: Qwen3-MoE, Qwen3-Next and Qwen3.5-MoE match transformers, in both expert layouts.

The fixtures weights/tiny-qwen3-moe (per-expert tensors, a dense layer from mlp_only_layers), tiny-qwen3-next
(grouped in_proj_qkvz / in_proj_ba, shared expert) and tiny-qwen3.5-moe (the Hub's multimodal layout with
stacked experts) were written by scripts/make_qwen35_fixtures.py with transformers as the reference; their
weights were redrawn until every routing decision of the reference runs has a margin of 1e-3 in router
logit, so float32 noise cannot flip one. Tolerances: 1e-4 of each tensor's scale for Qwen3-MoE, 1e-3 for
the hybrids (whose float32 reference is itself only good to about 1e-4).
"""

from __future__ import annotations

import json
import shutil
import tracemalloc
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

import minillm
from minillm.checkpoint.config import parse_config
from minillm.checkpoint.experts import per_expert_sources, read_stacked
from minillm.checkpoint.loading import language_model_tensors, open_checkpoint
from minillm.checkpoint.weights import expected_shapes, parameter_counts
from minillm.model import gated_deltanet as _gd, moe as _moe, router as _router
from minillm.model.activations import softmax
from minillm.model.moe import MoEWeights
from minillm.model.router import top_k_routing
from minillm.tools.verify import compare_to_reference, format_error_table
from conftest import WEIGHTS, load_quietly, reference, rel_error, tiny_model
from st_helpers import write_safetensors

MOE_MODELS = ["tiny-qwen3-moe", "tiny-qwen3-next", "tiny-qwen3.5-moe"]
RTOL = {"tiny-qwen3-moe": 1e-4, "tiny-qwen3-next": 1e-3, "tiny-qwen3.5-moe": 1e-3}
CONFIGS = WEIGHTS / "configs"
MOE_REFERENCE = json.loads((CONFIGS / "moe_reference.json").read_text())


@pytest.fixture(params=MOE_MODELS)
def name(request) -> str:
    return request.param


# ---------------------------------------------------------------------------------------------- config

def test_qwen3_30b_a3b_hub_config_and_transformers_resave_agree():
    """The Hub file says num_experts; transformers 5 saves it as num_local_experts (and rope_parameters)."""
    hub, v5 = (json.loads((CONFIGS / f"qwen3-30b-a3b{s}.json").read_text()) for s in ("", ".v5"))
    assert "num_experts" in hub and "num_local_experts" in v5 and "num_experts" not in v5
    c = parse_config(hub)
    assert c == parse_config(v5)
    assert (c.model_type, c.num_experts, c.num_experts_per_tok, c.moe_intermediate_size) == \
        ("qwen3_moe", hub["num_experts"], hub["num_experts_per_tok"], hub["moe_intermediate_size"])
    assert c.norm_topk_prob and c.shared_expert_intermediate_size == 0 and not c.is_hybrid


@pytest.mark.parametrize("rule", MOE_REFERENCE["layer_rules"], ids=str)
def test_which_layers_are_moe_follows_transformers(rule):
    raw = {**json.loads((CONFIGS / "qwen3-30b-a3b.json").read_text()), **rule}
    c = parse_config(raw)
    assert [i for i in range(c.num_hidden_layers) if c.is_moe_layer(i)] == rule["moe_layers"]


def test_the_fixtures_moe_layers_are_transformers_moe_layers(name):
    c, ref = tiny_model(name).config, reference(name)
    assert [i for i in range(c.num_hidden_layers) if c.is_moe_layer(i)] == list(ref["moe_layers"])


def test_a_missing_norm_topk_prob_takes_each_familys_default():
    """The tiny Qwen3-MoE and Qwen3-Next configs omit the key, and match transformers (test below) with
    transformers' defaults: false for Qwen3-MoE, true for Qwen3-Next; Qwen3.5-MoE always renormalises,
    although its fixture's text_config says norm_topk_prob: false (a key Qwen3.5-MoE does not have)."""
    for n in ("tiny-qwen3-moe", "tiny-qwen3-next"):
        assert "norm_topk_prob" not in json.loads((WEIGHTS / n / "config.json").read_text())
    text_config = json.loads((WEIGHTS / "tiny-qwen3.5-moe" / "config.json").read_text())["text_config"]
    assert text_config["norm_topk_prob"] is False and text_config["mlp_only_layers"] == [1]
    flags = {n: (tiny_model(n).config.norm_topk_prob, tiny_model(n).config.is_moe_layer(1)) for n in MOE_MODELS}
    assert flags == {"tiny-qwen3-moe": (False, False), "tiny-qwen3-next": (True, True),
                     "tiny-qwen3.5-moe": (True, True)}


def qwen3_moe_config(**changes) -> dict:
    return {**json.loads((CONFIGS / "qwen3-30b-a3b.json").read_text()), **changes}


@pytest.mark.parametrize("changes, words", [
    ({"num_experts_per_tok": 129}, ["num_experts_per_tok (129)", "at most num_experts (128)"]),
    ({"num_local_experts": 64}, ["num_experts (128)", "num_local_experts (64)", "disagree"]),
    ({"num_experts": 10 ** 7}, ["num_experts", "<= 65,536", "found 10000000"]),
    ({"num_experts_per_tok": 0}, ["num_experts_per_tok", ">= 1", "found 0"]),
    ({"moe_intermediate_size": 0}, ["moe_intermediate_size", ">= 1"]),
    ({"decoder_sparse_step": 0}, ["decoder_sparse_step", ">= 1"]),
    ({"mlp_only_layers": [0, "1"]}, ["mlp_only_layers", "layer indices", "'1'"]),
    ({"mlp_only_layers": 3}, ["mlp_only_layers", "expected list"]),
    ({"norm_topk_prob": "yes"}, ["norm_topk_prob", "expected bool"]),
    ({"use_sliding_window": True, "sliding_window": 4096}, ["use_sliding_window", "qwen3_moe"]),
])
def test_bad_moe_configs_are_refused_naming_the_field(changes, words):
    with pytest.raises(minillm.ConfigError) as info:
        parse_config(qwen3_moe_config(**changes))
    for word in words:
        assert word in str(info.value)


def test_a_qwen35_moe_wrapper_must_hold_a_qwen35_moe_text_config():
    raw = json.loads((WEIGHTS / "tiny-qwen3.5-moe" / "config.json").read_text())
    with pytest.raises(minillm.ConfigError, match="text_config.model_type: expected 'qwen3_5_moe_text'"):
        parse_config({**raw, "text_config": {**raw["text_config"], "model_type": "qwen3_5_text"}})
    with pytest.raises(minillm.ConfigError, match="num_experts_per_tok .9. must be at most num_experts .8."):
        parse_config({**raw, "text_config": {**raw["text_config"], "num_experts_per_tok": 9}})


# ---------------------------------------------------------------------------------------------- reference

def test_every_hidden_state_and_the_logits_match_transformers(name):
    model, ref = tiny_model(name), reference(name)
    rows = compare_to_reference(model, ref)
    assert len(rows) == model.config.num_hidden_layers + 2
    assert not [r for r in rows if r.rel_error > RTOL[name]], f"{name}:\n{format_error_table(rows, RTOL[name])}"


def test_every_token_picks_the_experts_transformers_picks(name):
    """Per MoE layer: the router logits, and the k experts (in transformers' order) with their weights."""
    model, ref = tiny_model(name), reference(name)
    k = model.config.num_experts_per_tok
    _, routers = model.forward(ref["input_ids"], output_router_logits=True)
    for i, logits in enumerate(routers):
        if i not in ref["moe_layers"]:
            assert logits is None
            continue
        assert rel_error(logits, ref[f"router_logits_{i}"]) < RTOL[name]
        weights, experts = top_k_routing(logits, k, model.config.norm_topk_prob)
        np.testing.assert_array_equal(experts, ref[f"top_k_index_{i}"])
        np.testing.assert_allclose(weights, ref[f"top_k_weights_{i}"], atol=RTOL[name])


def test_left_padded_batch_matches_transformers_on_real_tokens(name):
    model, ref = tiny_model(name), reference(name)
    logits = model.forward(ref["batch_input_ids"], attention_mask=ref["batch_attention_mask"])
    real = ref["batch_attention_mask"].astype(bool)
    assert rel_error(logits[real], ref["batch_logits"][real]) <= RTOL[name]


# (prompt, its attention mask, transformers' 16 greedy tokens, stop ids: None = the checkpoint's, [] = none)
GREEDY_RUNS = [("greedy_prompt", None, "greedy_new", None), ("greedy_prompt", None, "greedy_nostop_new", []),
               ("input_ids", None, "greedy_long_nostop_new", []),  # a 72-token prompt: the cache's prefill, then steps
               ("batch_input_ids", "batch_attention_mask", "batch_greedy_new", None)]  # left-padded, rows stop early


@pytest.mark.parametrize("prompt, mask, expected, stop", GREEDY_RUNS)
def test_greedy_generation_reproduces_transformers_token_for_token(name, prompt, mask, expected, stop):
    model, ref = tiny_model(name), reference(name)
    new = minillm.generate(model, ref[prompt], attention_mask=ref[mask] if mask else None, max_new_tokens=16,
                           temperature=0.0, stop_token_ids=stop)
    np.testing.assert_array_equal(new, ref[expected])


def test_incremental_decoding_and_pieces_give_the_same_logits_and_routing(name, monkeypatch):
    model, ref = tiny_model(name), reference(name)
    ids = ref["input_ids"]
    full, routers = model.forward(ids, output_router_logits=True)
    cache = model.new_cache(1, len(ids))
    steps = [model.forward(ids[:30], cache=cache)] + [model.forward(ids[t:t + 1], cache=cache)
                                                      for t in range(30, len(ids))]
    assert rel_error(np.concatenate(steps), full) < 1e-4
    from minillm.model import transformer
    monkeypatch.setattr(transformer, "QUERY_PIECE_SCORES", model.config.num_attention_heads * len(ids) * 9)
    pieces, hidden, routers_in_pieces = model.forward(ids, output_hidden_states=True, output_router_logits=True)
    assert rel_error(pieces, full) < 1e-4 and len(hidden) == model.config.num_hidden_layers + 1
    for a, b in zip(routers_in_pieces, routers):
        assert (a is None) == (b is None) and (a is None or rel_error(a, b) < 1e-4)


# The mistakes a MoE implementation makes, injected one at a time; each must move the logits far beyond the
# tolerance on the models it applies to.
_route, _expert_mlp, _top_k = _moe.route, _moe.expert_mlp, _router.top_k


def _least_probable(p, k):
    _, experts = _top_k(-p, k)
    return np.take_along_axis(p, experts, -1), experts


def _softmax_over_chosen_only(x, gate, k, normalize):
    weights, experts, logits = _route(x, gate, k, normalize)
    return softmax(np.take_along_axis(logits, experts, -1)), experts, logits


def _four_contiguous_blocks(qkvz, ba, Hk, Hv, Dk, Dv):
    q, k, v, z = np.split(qkvz, np.cumsum([Hk * Dk, Hk * Dk, Hv * Dv]), axis=-1)
    b, a = np.split(ba, 2, axis=-1)
    return np.concatenate([q, k, v], -1), z.reshape(*z.shape[:2], Hv, Dv), b, a


MISTAKES = {
    "norm_topk_prob read the other way": (_moe, "route", lambda x, g, k, n: _route(x, g, k, not n), MOE_MODELS),
    "softmax over the chosen logits only": (_moe, "route", _softmax_over_chosen_only, ["tiny-qwen3-moe"]),
    "routing weights ignored": (_moe, "route", lambda x, g, k, n: (np.ones_like(_route(x, g, k, n)[0]),
                                                                 *_route(x, g, k, n)[1:]), MOE_MODELS),
    "the k least probable experts": (_router, "top_k", _least_probable, MOE_MODELS),
    "gate and up halves swapped": (_moe, "expert_mlp", lambda x, gu, d: _expert_mlp(x, np.roll(gu, gu.shape[0] // 2,
                                                                                            0), d), MOE_MODELS),
    "shared expert without its sigmoid gate": (_moe, "sigmoid", np.ones_like, ["tiny-qwen3-next", "tiny-qwen3.5-moe"]),
    "in_proj_qkvz cut in four contiguous blocks": (_gd, "grouped_projections", _four_contiguous_blocks,
                                                   ["tiny-qwen3-next"]),
}


@pytest.mark.parametrize("mistake, model_name", [(m, n) for m, spec in MISTAKES.items() for n in spec[3]])
def test_each_known_mistake_moves_the_logits_far_beyond_the_tolerance(mistake, model_name):
    module, attribute, wrong, _ = MISTAKES[mistake]
    model, ref = tiny_model(model_name), reference(model_name)
    with mock.patch.object(module, attribute, wrong):
        logits = model.forward(ref["input_ids"])
    error = rel_error(logits, ref["logits"])
    assert error > 100 * RTOL[model_name] and np.abs(logits - ref["logits"]).max() > 0.5, f"{mistake}: {error:.2e}"


# ---------------------------------------------------------------------------------------------- loading

def rewrite_experts(src: Path, dst: Path, stacked: bool) -> Path:
    """A copy of a checkpoint (the language model in one file) with its experts in the other layout."""
    files, stored, _ = language_model_tensors(open_checkpoint(src))
    tensors = {stored(n): (f.tensors[stored(n)].dtype, f.raw(stored(n))) for n, f in files.items()}
    cfg = tiny_model(src.name).config
    for i in (i for i in range(cfg.num_hidden_layers) if cfg.is_moe_layer(i)):
        p = stored(f"model.layers.{i}.mlp.experts.")
        if stacked:
            part = lambda e, m: tensors.pop(f"{p}{e}.{m}.weight")[1]  # noqa: E731
            experts = range(cfg.num_experts)
            tensors[p + "gate_up_proj"] = ("BF16", np.stack([np.concatenate([part(e, "gate_proj"), part(e, "up_proj")])
                                                             for e in experts]))
            tensors[p + "down_proj"] = ("BF16", np.stack([part(e, "down_proj") for e in experts]))
        else:
            gate_up, down = tensors.pop(p + "gate_up_proj")[1], tensors.pop(p + "down_proj")[1]
            for e in range(cfg.num_experts):
                gate, up = np.split(gate_up[e], 2)
                tensors.update({f"{p}{e}.gate_proj.weight": ("BF16", gate), f"{p}{e}.up_proj.weight": ("BF16", up),
                                f"{p}{e}.down_proj.weight": ("BF16", down[e])})
    dst.mkdir()
    write_safetensors(dst / "model.safetensors", tensors)
    shutil.copy(src / "config.json", dst / "config.json")
    return dst


@pytest.mark.parametrize("name, stacked", [("tiny-qwen3-moe", True), ("tiny-qwen3.5-moe", False)])
def test_the_forward_does_not_depend_on_the_expert_layout(tmp_path, name, stacked):
    other = load_quietly(rewrite_experts(WEIGHTS / name, tmp_path / "other", stacked))
    ids = reference(name)["input_ids"]
    np.testing.assert_array_equal(other.forward(ids), tiny_model(name).forward(ids))


@pytest.mark.parametrize("dtype", ["BF16", "F32"])
def test_per_expert_tensors_are_read_into_the_stacked_array_without_a_second_copy(tmp_path, dtype):
    """Peak memory of stacking = the stacked array itself: no float32 copy of an expert on the way (one part
    is 256 KiB here; NumPy's casting buffer, 32 KiB, is all the extra there may be)."""
    from minillm.checkpoint.safetensors_file import SafetensorsFile
    from st_helpers import float32_to_bf16_bits

    E, Fe, D = 4, 256, 256
    rng = np.random.default_rng(0)
    parts = {f"model.layers.0.mlp.experts.{e}.{m}.weight": rng.standard_normal(shape, dtype=np.float32)
             for e in range(E) for m, shape in (("gate_proj", (Fe, D)), ("up_proj", (Fe, D)), ("down_proj", (D, Fe)))}
    store = (lambda a: ("BF16", float32_to_bf16_bits(a))) if dtype == "BF16" else (lambda a: ("F32", a))
    write_safetensors(tmp_path / "experts.safetensors", {n: store(a) for n, a in parts.items()})
    f = SafetensorsFile(tmp_path / "experts.safetensors")
    files = {n: f for n in f.tensors}
    p = "model.layers.0.mlp.experts."
    expected = {p + "gate_up_proj": (E, 2 * Fe, D), p + "down_proj": (E, D, Fe)}
    sources, problems = per_expert_sources(files, expected, lambda n: n)
    assert not problems and set(sources) == set(expected)
    for name, shape in expected.items():
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            stacked = read_stacked(files, sources[name], shape, lambda n: n)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert stacked.nbytes <= peak < stacked.nbytes + Fe * D * 4 // 2, (name, peak, stacked.nbytes)
        for e in range(E):  # and each expert landed where it belongs: [gate | up] rows, down as is
            modules = ("gate_proj", "up_proj") if "gate_up" in name else ("down_proj",)
            np.testing.assert_array_equal(stacked[e], np.concatenate([f.get_float32(f"{p}{e}.{m}.weight")
                                                                      for m in modules]))


def test_a_moe_checkpoint_loads_without_unused_tensor_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", minillm.CheckpointWarning)
        minillm.load_model(WEIGHTS / "tiny-qwen3-moe")
        minillm.load_model(WEIGHTS / "tiny-qwen3-next")


def test_the_weights_are_float32_and_the_experts_stacked(name):
    model = tiny_model(name)
    assert {a.dtype for a in model.weights.arrays()} == {np.dtype(np.float32)}
    c = model.config
    for i, layer in enumerate(model.weights.layers):
        assert isinstance(layer.mlp, MoEWeights) == c.is_moe_layer(i)
        if c.is_moe_layer(i):
            assert layer.mlp.experts.gate_up_proj.shape == (c.num_experts, 2 * c.moe_intermediate_size, c.hidden_size)
            assert (layer.mlp.shared_expert is None) == (c.shared_expert_intermediate_size == 0)


def test_the_weights_name_themselves_as_the_stacked_layout(name):
    """named_tensors (what saving writes) gives the stacked names the config implies, the loaded arrays themselves."""
    from minillm.checkpoint.weights import named_tensors

    model = tiny_model(name)
    named = named_tensors(model.weights)
    assert set(named) == set(expected_shapes(model.config, with_lm_head=not model.config.tie_word_embeddings))
    layer = next(i for i in range(model.config.num_hidden_layers) if model.config.is_moe_layer(i))
    assert named[f"model.layers.{layer}.mlp.experts.down_proj"] is model.weights.layers[layer].mlp.experts.down_proj


def _without(src: Path, dst: Path, drop: str) -> Path:
    files, stored, _ = language_model_tensors(open_checkpoint(src))
    tensors = {stored(n): (f.tensors[stored(n)].dtype, f.raw(stored(n))) for n, f in files.items() if stored(n) != drop}
    dst.mkdir()
    write_safetensors(dst / "model.safetensors", tensors)
    shutil.copy(src / "config.json", dst / "config.json")
    return dst


def test_a_missing_expert_is_named(tmp_path):
    path = _without(WEIGHTS / "tiny-qwen3-moe", tmp_path / "ckpt", "model.layers.2.mlp.experts.5.up_proj.weight")
    with pytest.raises(minillm.CheckpointError) as info:
        minillm.load_model(path)
    assert "'model.layers.2.mlp.experts.5.up_proj.weight' is missing (expected shape [16, 64]" in str(info.value)


def test_a_missing_stacked_expert_tensor_is_named_with_both_layouts(tmp_path):
    name = "model.language_model.layers.3.mlp.experts.down_proj"
    path = _without(WEIGHTS / "tiny-qwen3.5-moe", tmp_path / "ckpt", name)
    with pytest.raises(minillm.CheckpointError) as info:
        load_quietly(path)
    message = str(info.value)
    assert f"tensor {name!r} is missing (expected shape [8, 64, 16])" in message
    assert "model.language_model.layers.3.mlp.experts.{e}.down_proj.weight, e = 0 .. 7" in message


@pytest.mark.parametrize("name, change, words", [
    ("tiny-qwen3-moe", {"moe_intermediate_size": 24}, ["model.layers.0.mlp.experts.0.gate_proj.weight",
                                                       "expected shape [24, 64]", "found [16, 64]",
                                                       "moe_intermediate_size"]),
    ("tiny-qwen3.5-moe", {"moe_intermediate_size": 24}, ["model.language_model.layers.0.mlp.experts.gate_up_proj",
                                                         "expected shape [8, 48, 64]", "found [8, 32, 64]",
                                                         "moe_intermediate_size"]),
    ("tiny-qwen3-moe", {"num_local_experts": 60000}, ["layer 0 stores 8 experts", "num_experts is 60000"]),
    ("tiny-qwen3.5-moe", {"num_experts": 60000}, ["expected shape [60000, 32, 64]", "found [8, 32, 64]"]),
    ("tiny-qwen3-moe", {"mlp_only_layers": []}, ["'model.layers.1.mlp.gate.weight' is missing",
                                                 "model.layers.1.mlp.experts.{e}.gate_proj / up_proj.weight"]),
    ("tiny-qwen3-next", {"shared_expert_intermediate_size": 16}, ["mlp.shared_expert.gate_proj.weight",
                                                                  "expected shape [16, 64]", "found [32, 64]"]),
])
def test_a_config_that_does_not_fit_the_experts_is_refused_before_anything_is_read(tmp_path, name, change, words):
    path = Path(shutil.copytree(WEIGHTS / name, tmp_path / "ckpt"))
    cfg = json.loads((path / "config.json").read_text())
    (cfg.get("text_config") or cfg).update(change)
    (path / "config.json").write_text(json.dumps(cfg))
    with mock.patch("minillm.checkpoint.safetensors_file.SafetensorsFile.read_into", side_effect=AssertionError):
        with pytest.raises(minillm.CheckpointError) as info:
            load_quietly(path)
    for word in words:
        assert word in str(info.value)


def test_experts_stored_both_ways_are_refused(tmp_path):
    src = WEIGHTS / "tiny-qwen3-moe"
    files, stored, _ = language_model_tensors(open_checkpoint(src))
    tensors = {n: (f.tensors[n].dtype, f.raw(n)) for n, f in files.items()}
    tensors["model.layers.2.mlp.experts.down_proj"] = ("BF16", np.zeros((8, 64, 16), np.uint16))
    path = tmp_path / "ckpt"
    path.mkdir()
    write_safetensors(path / "model.safetensors", tensors)
    shutil.copy(src / "config.json", path / "config.json")
    with pytest.raises(minillm.CheckpointError, match="layer 2 holds its experts twice"):
        minillm.load_model(path)


# ---------------------------------------------------------------------------------------------- parameters, inspect

def test_total_and_active_parameters_of_qwen3_30b_a3b_match_transformers():
    c = minillm.load_config(CONFIGS / "qwen3-30b-a3b.json")
    counts = MOE_REFERENCE["parameters"]["qwen3-30b-a3b"]  # from transformers' model, built on the meta device
    total, active = parameter_counts(c)
    assert total == counts["total"]  # 30.5 B
    # a token uses k of every E experts: the rest of the expert parameters are idle for it
    assert active == counts["total"] - counts["experts"] * (c.num_experts - c.num_experts_per_tok) // c.num_experts


def test_inspect_shows_total_and_active_parameters_and_the_experts(capsys):
    from minillm.tools.cli import main

    assert main(["inspect", str(WEIGHTS / "tiny-qwen3-moe"), "--tensors", "0"]) == 0
    out = capsys.readouterr().out
    total, active = parameter_counts(tiny_model("tiny-qwen3-moe").config)
    assert f"language model {total:,} parameters in all, {active:,} active per token" in out
    assert "mixture of experts in 3 of 4 layers (dense MLP F=96 in layers [1]): E=8 experts of width Fe=16, k=2" in out
    assert "model.layers.0.mlp.experts.7.down_proj.weight" in out and "(not used)" not in out
    assert main(["inspect", str(WEIGHTS / "tiny-qwen3.5-moe"), "--tensors", "0"]) == 0
    out = capsys.readouterr().out
    assert "a shared expert of width Fs=32 behind a sigmoid gate" in out and "weights renormalised" in out
    assert "model.language_model.layers.0.mlp.experts.gate_up_proj" in out


@pytest.mark.parametrize("name", ["tiny-qwen3-moe", "tiny-qwen3-next"])
def test_verify_uses_each_familys_tolerance(capsys, name):
    from minillm.tools.cli import main

    assert main(["verify", str(WEIGHTS / name), str(WEIGHTS / name / "reference.npz")]) == 0
    assert f"(tolerance {RTOL[name]:g})" in capsys.readouterr().out


def test_the_one_screen_forward_refuses_a_moe_model():
    """(Training a MoE model is supported: tests/test_backward_hybrid.py.)"""
    from minillm.plain.forward import plain_forward

    model = tiny_model("tiny-qwen3-moe")
    with pytest.raises(minillm.InputError, match="mixture of experts"):
        plain_forward(model.weights, model.config, [1, 2, 3])
