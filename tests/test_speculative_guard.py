"""Speculative decoding's arguments and drafters are checked at the boundary (issue 31, class 4): a drafter's
output is validated and cut to what can be used, every argument gets an InputError naming it, and a drafter
that ignores ``max_tokens`` still ends in max_new_tokens tokens, the same as plain greedy decoding."""

from __future__ import annotations

import numpy as np
import pytest

import minillm
from minillm.errors import InputError
from minillm.generation.draft_length import DraftLength
from conftest import tiny_model


class Returns:
    def __init__(self, value, **attrs):
        self.value = value
        self.__dict__.update(attrs)

    def propose(self, history, max_tokens):
        return self.value(history) if callable(self.value) else self.value


def generate(drafter=None, max_new_tokens=6, **kw):
    model = tiny_model("tiny-qwen3")
    return list(minillm.generate(model, np.array([[1, 2, 3, 1, 2]]), max_new_tokens, drafter=drafter, temperature=0, **kw)[0])


@pytest.mark.parametrize("output", [None, np.array([np.nan, 1.0]), np.array([[1, 2]]), ["a", "b"], 1.5,
                                    np.array([-1]), np.array([10 ** 9]), {"x": 1}])
def test_a_drafter_whose_output_is_not_a_list_of_token_ids_gets_an_input_error(output):
    with pytest.raises(InputError, match="drafter"):
        generate(Returns(output))


@pytest.mark.parametrize("drafter", [object(), Returns([], num_tokens=-1), Returns([], num_tokens=1.5),
                                     Returns([], last_ngram_size=[])])
def test_a_drafter_with_bad_attributes_gets_an_input_error(drafter):
    with pytest.raises(InputError):
        generate(drafter)


@pytest.mark.parametrize("settings", [{"prompt_lookup_num_tokens": -1}, {"prompt_lookup_num_tokens": 1.5},
                                      {"prompt_lookup_num_tokens": 2 ** 70}, {"speculative_stats": {}},
                                      {"prompt_lookup_num_tokens": 2, "draft_schedule": "sometimes"}])
def test_bad_speculative_settings_get_an_input_error(settings):
    with pytest.raises(InputError):
        generate(**settings)


def test_draft_length_refuses_a_negative_or_huge_maximum():
    for bad in (-1, 0, 1.5, 2 ** 70):
        with pytest.raises(InputError):
            DraftLength(bad)


def test_a_huge_prompt_lookup_num_tokens_is_capped_and_gives_plain_greedy_tokens():
    assert generate(prompt_lookup_num_tokens=2 ** 31 - 1) == generate()


@pytest.mark.parametrize("schedule", ["constant", "adaptive"])
def test_a_drafter_that_ignores_max_tokens_stops_at_max_new_tokens_with_plain_greedy_tokens(schedule):
    plain = generate(max_new_tokens=5)
    flood = Returns(lambda history: np.ones(100_000, np.int64))
    assert generate(flood, max_new_tokens=5, draft_schedule=schedule) == plain


def test_a_drafter_is_asked_for_no_more_tokens_than_can_be_used():
    """After each emitted token, what is left is max_new_tokens - made, one of which is the model's own: so a
    drafter is asked for at most max_new_tokens - made - 1 (the last pass asks for none it could not use)."""
    asked = []

    class Recording:
        def propose(self, history, max_tokens):
            asked.append((len(history), max_tokens))
            return np.array([], np.int64)  # nothing proposed: every pass is a plain step

    generate(Recording(), max_new_tokens=4)
    prompt = 5
    assert asked == [(prompt + made, 4 - made - 1) for made in (1, 2, 3)]


def test_a_drafted_id_equal_to_the_vocab_size_and_a_num_tokens_of_0_are_refused():
    vocab = tiny_model("tiny-qwen3").config.vocab_size
    with pytest.raises(InputError, match=f"token id {vocab}, out of range"):
        generate(Returns(np.array([vocab])))
    with pytest.raises(InputError, match="num_tokens must be an integer >= 1"):
        generate(Returns(np.array([1]), num_tokens=0))
