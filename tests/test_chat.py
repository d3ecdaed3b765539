"""ChatSession: the KV cache kept across turns gives the same replies as recomputing every turn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import minillm
from minillm.generation.chat import ChatSession
from conftest import WEIGHTS, tiny_model


@pytest.mark.parametrize("name, thinking", [("tiny-qwen2", None), ("tiny-qwen3", False), ("tiny-qwen3", None)])
def test_kept_cache_gives_the_replies_of_a_fresh_computation(name, thinking):
    model, tok = tiny_model(name), minillm.load_tokenizer(WEIGHTS / name)
    session = ChatSession(model, tok, system="Be brief.", capacity=512, enable_thinking=thinking)
    reused = []
    for text in ["Hello!", "Tell me about attention.", "Thanks"]:
        reply = "".join(session.send(text, max_new_tokens=8, temperature=0.0))
        reused.append(session.last_turn["reused_tokens"])
        # the same turn computed from scratch, without any cache
        ids = tok.apply_chat_template(session.messages[:-1], add_generation_prompt=True,
                                      enable_thinking=thinking, tokenize=True)
        fresh = minillm.generate(model, ids, 8, temperature=0.0)
        assert reply == tok.decode(fresh, skip_special_tokens=True)
    assert reused[0] == 0 and min(reused[1:]) > 0  # later turns really came from the cache
    assert session.cache.length == len(session.cached_ids)


def test_reset_forgets_the_conversation():
    model, tok = tiny_model("tiny-qwen2"), minillm.load_tokenizer(WEIGHTS / "tiny-qwen2")
    session = ChatSession(model, tok, capacity=256)
    first = "".join(session.send("Hi", max_new_tokens=4, temperature=0.0))
    session.reset()
    assert session.messages == [] and session.cache.length == 0
    assert "".join(session.send("Hi", max_new_tokens=4, temperature=0.0)) == first


def test_a_conversation_too_long_for_the_cache_is_a_clear_error():
    model, tok = tiny_model("tiny-qwen2"), minillm.load_tokenizer(WEIGHTS / "tiny-qwen2")
    session = ChatSession(model, tok, capacity=40)
    with pytest.raises(minillm.InputError, match="capacity of 40"):
        list(session.send("Hello there, how are you today?", max_new_tokens=30))
    assert session.messages == []  # the refused message was not kept


def test_truncating_the_cache_keeps_the_prefix_exact():
    model = tiny_model("tiny-qwen3")
    ids = np.arange(20) * 7 % 500
    cache = model.new_cache(1, 40)
    model.forward(ids, cache=cache)
    cache.truncate(12)
    tail = model.forward(ids[12:], cache=cache)
    np.testing.assert_allclose(tail, model.forward(ids)[12:], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-qwen3.5"])
def test_a_conversation_outgrowing_the_context_drops_its_oldest_turns_and_keeps_the_system_prompt(name):
    model, tok = tiny_model(name), minillm.load_tokenizer(WEIGHTS / name)
    session = ChatSession(model, tok, system="Be brief.", capacity=90)
    texts = ["Hello!", "Tell me about attention.", "Thanks", "And about caches?", "Bye"]
    dropped = []
    for text in texts:
        reply = "".join(session.send(text, max_new_tokens=10, temperature=0.0, stop_token_ids=[]))
        dropped.append(session.last_turn["dropped_turns"])
        # the cache was rebuilt from the kept turns: the reply is the one computed from scratch from them
        ids = tok.apply_chat_template(session.messages[:-1], add_generation_prompt=True, tokenize=True)
        assert len(ids) + 10 <= 90
        assert reply == tok.decode(minillm.generate(model, ids, 10, temperature=0.0, stop_token_ids=[]),
                                   skip_special_tokens=True)
        assert session.cache.length == len(session.cached_ids)
    assert sum(dropped) > 0 and session.messages[0] == {"role": "system", "content": "Be brief."}
    kept = [m["content"] for m in session.messages if m["role"] == "user"]
    assert kept == texts[len(texts) - len(kept):] and len(kept) < len(texts)  # whole turns, the oldest first
    assert [m["role"] for m in session.messages[1:]] == ["user", "assistant"] * len(kept)


def test_a_session_holds_the_context_the_model_was_trained_for_by_default():
    model, tok = tiny_model("tiny-qwen2"), minillm.load_tokenizer(WEIGHTS / "tiny-qwen2")
    session = ChatSession(model, tok)
    with warnings.catch_warnings():
        warnings.simplefilter("error", minillm.MinillmWarning)  # never "beyond max_position_embeddings"
        for n in range(12):
            list(session.send(f"Message number {n} of a long conversation.", max_new_tokens=16, temperature=0.0,
                              stop_token_ids=[]))
    assert session.last_turn["dropped_turns"] > 0
    assert session.cache.capacity <= model.config.max_position_embeddings
