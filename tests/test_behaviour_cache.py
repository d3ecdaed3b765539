"""The KV cache at its edges: cut back inside a left-padded batch, hidden states beside logits_to_keep, and a chat
reply regenerated from the cache. Expected values are transformers' (reference.npz) or a fresh computation."""

from __future__ import annotations

import numpy as np
import pytest

import minillm
from minillm.generation.chat import ChatSession
from conftest import WEIGHTS, reference, tiny_model


def assert_close_to(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("keep", [11, 13])
def test_truncating_a_left_padded_batch_cache_and_continuing_matches_transformers(model_name, keep):
    """Row 0 has 10 padding slots: after the cut its next position is (real tokens kept), not the slot count."""
    model, ref = tiny_model(model_name), reference(model_name)
    ids, mask = ref["batch_input_ids"], ref["batch_attention_mask"]
    assert (mask[0] == 0).sum() == 10 and mask[1].all()
    cache = model.new_cache(2, ids.shape[1])
    model.forward(ids, attention_mask=mask, cache=cache)
    cache.truncate(keep)
    assert cache.next_position.tolist() == [keep - 10, keep]
    tail = model.forward(ids[:, keep:], attention_mask=mask[:, keep:], cache=cache)  # [2, T - keep, V]
    assert_close_to(tail, ref["batch_logits"][:, keep:])


def test_hidden_states_with_logits_to_keep_are_still_every_position_as_in_transformers(model_name):
    model, ref = tiny_model(model_name), reference(model_name)
    logits, hidden = model.forward(ref["input_ids"], output_hidden_states=True, logits_to_keep=1)
    assert_close_to(logits, ref["logits"][-1:])
    assert len(hidden) == model.config.num_hidden_layers + 1
    for i, h in enumerate(hidden):
        assert h.shape == ref[f"hidden_{i}"].shape, f"hidden state {i}"
        assert_close_to(h, ref[f"hidden_{i}"])


@pytest.mark.parametrize("name, thinking", [("tiny-qwen2", None), ("tiny-qwen3", False)])
def test_regenerating_a_reply_reuses_the_cache_and_gives_the_fresh_reply(name, thinking):
    """Drop the last exchange and send the same text again: everything but the last prompt token comes from the
    cache, and the reply is the one a computation from scratch gives (greedy: the same reply as before)."""
    model, tok = tiny_model(name), minillm.load_tokenizer(WEIGHTS / name)
    session = ChatSession(model, tok, system="Be brief.", capacity=512, enable_thinking=thinking)
    "".join(session.send("Hello!", max_new_tokens=6, temperature=0.0))
    first = "".join(session.send("Tell me about attention.", max_new_tokens=8, temperature=0.0))
    del session.messages[-2:]  # forget the last exchange
    again = "".join(session.send("Tell me about attention.", max_new_tokens=8, temperature=0.0))
    turn = session.last_turn
    assert turn["reused_tokens"] == turn["prompt_tokens"] - 1  # the same prompt: all but one token reused
    ids = tok.apply_chat_template(session.messages[:-1], add_generation_prompt=True, enable_thinking=thinking,
                                  tokenize=True)
    fresh = minillm.generate(model, ids, 8, temperature=0.0)
    assert again == first == tok.decode(fresh, skip_special_tokens=True)
    assert session.cache.length == len(session.cached_ids)


def test_a_chat_turn_whose_prompt_fits_but_whose_reply_would_not_is_refused_before_anything_changes():
    model, tok = tiny_model("tiny-qwen2"), minillm.load_tokenizer(WEIGHTS / "tiny-qwen2")
    n = len(tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=True))
    session = ChatSession(model, tok, capacity=n + 4)
    with pytest.raises(minillm.InputError, match=f"max_new_tokens \\(8\\) does not fit the KV cache capacity of {n + 4}"):
        list(session.send("Hi", max_new_tokens=8))
    assert session.messages == [] and session.cache.length == 0 and session.cached_ids == []
