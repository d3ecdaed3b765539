"""Generation: greedy continuations equal transformers', and the KV cache equals a full forward pass."""

from __future__ import annotations

import numpy as np
import pytest

import minillm
from minillm.generation.generate import default_stop_ids, resolve_sampling
from minillm.checkpoint.generation_config import GenerationConfig
from conftest import WEIGHTS as WEIGHTS_DIR, reference, tiny_model


def test_greedy_generation_reproduces_transformers_token_for_token(model_name):
    model, ref = tiny_model(model_name), reference(model_name)
    new = minillm.generate(model, ref["greedy_prompt"], max_new_tokens=16, temperature=0.0)
    np.testing.assert_array_equal(new, ref["greedy_new"])


def test_greedy_without_stop_ids_runs_the_full_length(model_name):
    model, ref = tiny_model(model_name), reference(model_name)
    new = minillm.generate(model, ref["greedy_prompt"], max_new_tokens=16, temperature=0.0, stop_token_ids=[])
    np.testing.assert_array_equal(new, ref["greedy_nostop_new"])


def test_repetition_penalty_matches_transformers_in_greedy_mode(model_name):
    model, ref = tiny_model(model_name), reference(model_name)
    new = minillm.generate(model, ref["greedy_prompt"], max_new_tokens=16, temperature=0.0, stop_token_ids=[],
                           repetition_penalty=3.0)
    np.testing.assert_array_equal(new, ref["greedy_nostop_penalty_3_new"])
    assert not np.array_equal(new, ref["greedy_nostop_new"])  # the penalty really changed something


def test_left_padded_batch_generation_reproduces_transformers(model_name):
    model, ref = tiny_model(model_name), reference(model_name)
    new = minillm.generate(model, ref["batch_input_ids"], attention_mask=ref["batch_attention_mask"],
                           max_new_tokens=16, temperature=0.0)
    np.testing.assert_array_equal(new, ref["batch_greedy_new"])


def test_stop_id_is_included_and_ends_generation():
    model, ref = tiny_model("tiny-qwen2"), reference("tiny-qwen2")
    full = ref["greedy_nostop_new"]
    stop = int(full[3])
    new = minillm.generate(model, ref["greedy_prompt"], max_new_tokens=16, temperature=0.0, stop_token_ids=[stop])
    first = int(np.flatnonzero(full == stop)[0])
    np.testing.assert_array_equal(new, full[: first + 1])


def test_default_stop_ids_are_the_union_of_generation_config_and_config():
    model = tiny_model("tiny-qwen2")
    assert default_stop_ids(model) == sorted(set(model.generation_config.eos_token_ids)
                                             | set(model.config.eos_token_ids))
    assert len(default_stop_ids(model)) == 2  # <|im_end|> and <|endoftext|>


def test_defaults_come_from_generation_config_when_the_caller_gives_none():
    gen = GenerationConfig(do_sample=True, temperature=0.7, top_k=20, top_p=0.8, repetition_penalty=1.1)
    p = resolve_sampling(gen)
    assert (p.temperature, p.top_k, p.top_p, p.repetition_penalty) == (0.7, 20, 0.8, 1.1)
    assert resolve_sampling(gen, temperature=0.0).greedy
    assert resolve_sampling(GenerationConfig()).greedy  # no do_sample in the file: greedy, as transformers


def test_incremental_decoding_equals_the_full_forward(model_name):
    """Prefill then one token at a time through the cache gives the logits of one full pass."""
    model, ref = tiny_model(model_name), reference(model_name)
    ids = ref["input_ids"]
    full = model.forward(ids)  # [T, V]
    cache = model.new_cache(1, len(ids))
    steps = [model.forward(ids[:5], cache=cache)]
    for t in range(5, len(ids)):
        steps.append(model.forward(ids[t:t + 1], cache=cache))
    np.testing.assert_allclose(np.concatenate(steps), full, rtol=1e-5, atol=1e-5 * np.abs(full).max())


def test_chunked_prefill_gives_the_same_generation(model_name):
    model, ref = tiny_model(model_name), reference(model_name)
    a = minillm.generate(model, ref["input_ids"], max_new_tokens=6, temperature=0.0, stop_token_ids=[])
    b = minillm.generate(model, ref["input_ids"], max_new_tokens=6, temperature=0.0, stop_token_ids=[],
                         prefill_chunk_size=4)
    np.testing.assert_array_equal(a, b)


def test_streaming_yields_the_same_tokens_as_generate():
    model, ref = tiny_model("tiny-qwen3"), reference("tiny-qwen3")
    streamed = [int(t[0]) for t in minillm.stream_generate(model, ref["greedy_prompt"], 10, temperature=0.0)]
    assert streamed == minillm.generate(model, ref["greedy_prompt"], 10, temperature=0.0).tolist()


def test_sampling_with_a_seed_is_reproducible_and_seeds_differ():
    model, ref = tiny_model("tiny-qwen2"), reference("tiny-qwen2")
    kw = dict(max_new_tokens=12, temperature=1.5, top_k=0, top_p=1.0, stop_token_ids=[])
    a = minillm.generate(model, ref["greedy_prompt"], seed=7, **kw)
    b = minillm.generate(model, ref["greedy_prompt"], seed=7, **kw)
    c = minillm.generate(model, ref["greedy_prompt"], seed=8, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cache_capacity_is_enforced_with_a_clear_error():
    model = tiny_model("tiny-qwen2")
    cache = model.new_cache(1, 4)
    with pytest.raises(minillm.InputError, match="capacity 4"):
        model.forward(np.arange(5), cache=cache)


def test_max_new_tokens_zero_gives_nothing():
    model = tiny_model("tiny-qwen2")
    assert minillm.generate(model, [1, 2, 3], max_new_tokens=0).shape == (0,)


def test_chunked_prefill_handles_a_chunk_that_is_only_padding_for_a_row(model_name):
    """Row 0's padding (5 tokens) is longer than a chunk (4): its first chunk has no real token at all."""
    model = tiny_model(model_name)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, model.config.vocab_size, size=(2, 8))
    mask = np.array([[0, 0, 0, 0, 0, 1, 1, 1], [1] * 8])
    kw = dict(attention_mask=mask, max_new_tokens=6, temperature=0.0, stop_token_ids=[])
    one_pass = minillm.generate(model, ids, **kw)
    for chunk in (1, 3, 4):
        np.testing.assert_array_equal(minillm.generate(model, ids, prefill_chunk_size=chunk, **kw), one_pass)


def test_repetition_penalty_continuing_a_cache_penalises_the_ids_already_in_it(model_name):
    """transformers penalises every id of input_ids: a run that continues a cache must equal a run on the
    whole prompt, not penalise only the ids of its own call."""
    model = tiny_model(model_name)
    rng = np.random.default_rng(1)
    differs = 0
    for _ in range(6):
        first, second = rng.integers(0, model.config.vocab_size, 10), rng.integers(0, model.config.vocab_size, 3)
        kw = dict(max_new_tokens=8, temperature=0.0, stop_token_ids=[], repetition_penalty=3.0)
        whole = minillm.generate(model, np.concatenate([first, second]), **kw)
        cache = model.new_cache(1, 32)
        model.forward(first, cache=cache)  # an earlier turn, already in the cache
        continued = minillm.generate(model, second, cache=cache, **kw)
        np.testing.assert_array_equal(continued, whole)
        plain = minillm.generate(model, second, **kw)  # only the new ids penalised: what the bug did
        differs += not np.array_equal(plain, whole)
    assert differs > 0  # the earlier ids really matter for these prompts


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-qwen3"])
def test_chat_turns_apply_the_repetition_penalty_to_the_whole_conversation(name):
    """A second chat turn (continuing the cache) replies exactly as a fresh run on the whole conversation."""
    from minillm.generation.chat import ChatSession
    model, tok = tiny_model(name), minillm.load_tokenizer(WEIGHTS_DIR / name)
    kw = dict(max_new_tokens=8, temperature=0.0, repetition_penalty=3.0)
    for first, then in [("hello there, how are you?", "tell me about the quick brown fox"),
                        ("the the the fox fox", "the"),
                        ("Attention lets every token look at the tokens before it.", "and?")]:
        chat = ChatSession(model, tok, capacity=512)
        "".join(chat.send(first, **kw))
        second = "".join(chat.send(then, **kw))
        ids = tok.apply_chat_template(chat.messages[:-1], add_generation_prompt=True, tokenize=True)
        fresh = minillm.generate(model, ids, stop_token_ids=sorted(chat.stop_ids), **kw)
        reply = fresh[:-1] if len(fresh) and int(fresh[-1]) in chat.stop_ids else fresh
        assert second == tok.decode(reply, skip_special_tokens=True), (first, then)
