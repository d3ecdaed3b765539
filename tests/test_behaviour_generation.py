"""Generation and sampling at their edges, against transformers (weights/behaviour/, made by
scripts/make_behaviour_fixtures.py) or against a definition written out here.

generation_config.json precedence as transformers' generate resolves it; a batch in which one row stops early;
the repetition penalty beside left padding; stop ids; the sampling filters at their boundaries; seeds.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import minillm
from minillm.checkpoint.generation_config import GenerationConfig, load_generation_config
from minillm.generation.generate import resolve_sampling, stream_generate
from minillm.generation.sampling import SamplingParams, min_p_filter, process_logits, top_k_filter, top_p_filter
from conftest import WEIGHTS, reference, tiny_model

BEHAVIOUR = WEIGHTS / "behaviour"
GENERATION_CONFIGS = json.loads((BEHAVIOUR / "generation.json").read_text())
SAMPLING_CASES = json.loads((BEHAVIOUR / "sampling.json").read_text())


@pytest.fixture(scope="module")
def fixture():
    with np.load(BEHAVIOUR / "generation.npz") as f:
        return {k: f[k] for k in f.files}


def with_configs(model: minillm.Model, config_eos: tuple[int, ...], **generation) -> minillm.Model:
    """The same weights under another config.json eos_token_id and another generation_config.json."""
    config = dataclasses.replace(model.config, eos_token_ids=config_eos)
    return minillm.Model(config, model.weights, generation_config=GenerationConfig(**generation))


# ------------------------------------------------------------------------------------ generation_config.json

@pytest.mark.parametrize("case", sorted(GENERATION_CONFIGS))
def test_generation_config_resolves_as_in_transformers_generate(case, tmp_path):
    """Greedy unless the file says do_sample (a temperature alone does not), top_k 50 when the file has none,
    a scalar eos_token_id is a list of one, the pad id is the file's own."""
    spec, expected = GENERATION_CONFIGS[case]["file"], GENERATION_CONFIGS[case]["transformers"]
    (tmp_path / "generation_config.json").write_text(json.dumps(spec))
    gen = load_generation_config(tmp_path)
    params = resolve_sampling(gen)
    assert params.greedy == (not expected["do_sample"])
    if expected["do_sample"]:
        assert params.temperature == expected["temperature"]
        assert params.top_k == expected["top_k"]
        assert params.top_p == expected["top_p"]
        assert params.min_p == (expected["min_p"] or 0.0)  # transformers' None: no min-p warper
    assert params.repetition_penalty == expected["repetition_penalty"]
    assert gen.eos_token_ids == tuple(expected["eos_token_ids"])
    assert gen.pad_token_id == expected["pad_token_id"]


# ------------------------------------------------------------------------------------ batches and stop ids

def test_a_row_that_stops_early_yields_generation_configs_pad_id_as_in_transformers(fixture):
    """Row 0 stops at step 3; it then yields the pad id (3, not a stop id) while row 1 runs on to the end."""
    stop, pad = int(fixture["early_stop_ids"][0]), int(fixture["early_stop_pad"])
    model = with_configs(tiny_model("tiny-qwen2"), config_eos=(), eos_token_ids=(stop,), pad_token_id=pad)
    new = minillm.generate(model, fixture["early_stop_input_ids"], 12, temperature=0.0,
                           attention_mask=fixture["early_stop_attention_mask"])
    np.testing.assert_array_equal(new, fixture["early_stop_new"])
    assert pad != stop and (new[0] == pad).sum() > 1  # the test means something: padded for several steps


def test_generation_stops_on_config_jsons_eos_even_when_generation_config_does_not_list_it():
    """Stop ids are generation_config's list plus config.json's eos_token_id, as transformers merges them."""
    ref = reference("tiny-qwen2")
    full = ref["greedy_nostop_new"]  # transformers' greedy continuation, never stopping
    config_eos = int(full[3])
    listed = next(i for i in range(500) if i not in full)  # a stop id greedy decoding never produces
    model = with_configs(tiny_model("tiny-qwen2"), config_eos=(config_eos,), eos_token_ids=(listed,))
    new = minillm.generate(model, ref["greedy_prompt"], 16, temperature=0.0)
    first = int(np.flatnonzero(full == config_eos)[0])
    np.testing.assert_array_equal(new, full[:first + 1])


def test_the_repetition_penalty_never_counts_left_padding_as_seen(fixture):
    """Row 0 is left-padded with the very token it generates first; transformers ignores padding, so that
    token is not penalised and the row generates what it generates alone."""
    new = minillm.generate(tiny_model("tiny-qwen2"), fixture["penalty_input_ids"], 8, temperature=0.0,
                           attention_mask=fixture["penalty_attention_mask"], repetition_penalty=3.0,
                           stop_token_ids=[])
    np.testing.assert_array_equal(new, fixture["penalty_new"])
    np.testing.assert_array_equal(new[0], fixture["penalty_row0_alone_new"])
    assert fixture["penalty_input_ids"][0, 0] == new[0, 0]  # the padding is made of that first token


def test_a_given_cache_without_room_for_the_new_tokens_is_refused_before_any_token():
    model, ids = tiny_model("tiny-qwen2"), reference("tiny-qwen2")["greedy_prompt"]
    tokens = stream_generate(model, ids, 8, cache=model.new_cache(1, len(ids) + 2), temperature=0.0)
    with pytest.raises(minillm.InputError, match="no room"):
        next(tokens)


def test_prefill_chunk_size_runs_the_prompt_in_pieces_of_that_many_tokens():
    """Chunked prefill bounds the attention scores' memory: the model sees at most chunk_size tokens at once."""
    base = tiny_model("tiny-qwen2")
    model = minillm.Model(base.config, base.weights, generation_config=base.generation_config)
    seen = []
    forward = model.forward
    model.forward = lambda ids, **kw: (seen.append(np.shape(ids)[-1]), forward(ids, **kw))[1]
    minillm.generate(model, np.arange(10) + 3, 2, temperature=0.0, stop_token_ids=[], prefill_chunk_size=4)
    assert seen == [4, 4, 2, 1]  # three prefill pieces, then one decode step


# ------------------------------------------------------------------------------------ sampling boundaries

FILTERS = {"top_p": top_p_filter, "min_p": min_p_filter, "top_k": top_k_filter}


@pytest.mark.parametrize("case", SAMPLING_CASES, ids=lambda c: f"{c['filter']}={c['value']}-{c['logits']}")
def test_sampling_filters_at_their_boundaries_keep_what_transformers_keeps(case):
    """Ties at the top-p cut, a top-p so small that 1 - p rounds to 1, min-p scaled by the top probability,
    tokens exactly at the min-p threshold, top-k of 1 with ties."""
    logits = np.array([case["logits"]], np.float32)
    out = FILTERS[case["filter"]](logits, case["value"])
    assert np.flatnonzero(np.isfinite(out[0])).tolist() == case["kept"]


@pytest.mark.parametrize("case", SAMPLING_CASES, ids=lambda c: f"{c['filter']}={c['value']}-{c['logits']}")
def test_sampling_applies_each_filter_it_is_given(case):
    """The same boundaries through process_logits (what sample() uses), each filter alone at temperature 1."""
    params = SamplingParams(temperature=1.0, **{case["filter"]: case["value"]})
    out = process_logits(np.array([case["logits"]], np.float32), params)
    assert np.flatnonzero(np.isfinite(out[0])).tolist() == case["kept"]


def test_unseeded_sampling_draws_differently_each_time():
    model, ids = tiny_model("tiny-qwen2"), reference("tiny-qwen2")["greedy_prompt"]
    runs = {tuple(minillm.generate(model, ids, 12, temperature=1.5, top_k=0, top_p=1.0, stop_token_ids=[]))
            for _ in range(4)}
    assert len(runs) > 1
