"""Tokenizer: no BOS, special tokens, streaming decode of split characters, chat templates vs transformers."""

from __future__ import annotations

import json

import pytest

import minillm
from conftest import WEIGHTS

RENDERINGS = json.loads((WEIGHTS / "chat_templates" / "renderings.json").read_text())


@pytest.fixture(scope="module")
def tok():
    return minillm.load_tokenizer(WEIGHTS / "tiny-qwen2")


@pytest.fixture(scope="module")
def tok3():
    return minillm.load_tokenizer(WEIGHTS / "tiny-qwen3")


def test_no_bos_or_eos_is_added(tok):
    ids = tok.encode("Hello world")
    assert tok.decode(ids) == "Hello world"
    assert tok.token_to_id("<|endoftext|>") not in ids and tok.token_to_id("<|im_end|>") not in ids


def test_special_token_text_becomes_one_special_id(tok):
    ids = tok.encode("<|im_start|>user\nhi<|im_end|>\n")
    assert ids[0] == tok.token_to_id("<|im_start|>") and tok.token_to_id("<|im_end|>") in ids


def test_decode_keeps_special_tokens_unless_asked(tok):
    ids = tok.encode("hi<|im_end|>")
    assert tok.decode(ids) == "hi<|im_end|>"
    assert tok.decode(ids, skip_special_tokens=True) == "hi"


def test_think_is_added_but_not_special_so_it_survives_skipping(tok3):
    ids = tok3.encode("<think>ok</think><|im_end|>")
    assert tok3.decode(ids, skip_special_tokens=True) == "<think>ok</think>"


def test_a_chinese_character_split_over_tokens_streams_whole_and_once(tok):
    ids = tok.encode("鱻")
    assert len(ids) > 1  # the tiny vocabulary splits it (Qwen's splits it in two)
    assert all("\ufffd" in tok.decode([i]) for i in ids[:1])  # alone, the first piece is not a character
    d = tok.stream_decoder()
    pieces = [d.step(i) for i in ids] + [d.flush()]
    assert pieces[-2] == "鱻" and "".join(pieces) == "鱻"
    assert all(p == "" for p in pieces[:-2])


def test_streaming_a_mixed_text_concatenates_to_the_full_decode(tok):
    text = "The quick brown fox 你好，世界！鱻 🫠 ok"
    ids = tok.encode(text)
    d = tok.stream_decoder()
    pieces = [d.step(i) for i in ids] + [d.flush()]
    assert "".join(pieces) == tok.decode(ids) == text
    assert not any("\ufffd" in p for p in pieces)


@pytest.mark.parametrize("case", RENDERINGS, ids=lambda c: f"{c['template']}-{c['case']}")
def test_chat_template_renders_exactly_as_transformers(case):
    tok = minillm.load_tokenizer(WEIGHTS / "tiny-qwen2")
    tok.chat_template = (WEIGHTS / "chat_templates" / f"{case['template']}.jinja").read_text()
    rendered = tok.apply_chat_template(case["messages"], **case["kwargs"])
    assert rendered == case["rendered"]
    assert tok.encode(rendered) == case["input_ids"]


def test_qwen25_template_adds_the_default_system_prompt():
    case = next(c for c in RENDERINGS if c["case"] == "user_only")
    assert case["rendered"].startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")
    assert case["rendered"].endswith("<|im_start|>assistant\n")


def test_qwen3_thinking_switch_adds_the_empty_think_block(tok3):
    on = tok3.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    off = tok3.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                   enable_thinking=False)
    assert on == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert off == on + "<think>\n\n</think>\n\n"


def test_qwen3_drops_reasoning_of_earlier_turns():
    case = next(c for c in RENDERINGS if c["case"] == "earlier_reasoning_dropped")
    assert "add them" not in case["rendered"] and "3 plus 3" in case["rendered"]


def test_bundled_tokenizer_config_carries_a_chatml_template(tok):
    assert "<|im_start|>" in tok.chat_template
    assert tok.eos_token_id == tok.token_to_id("<|im_end|>")


MALICIOUS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}",
    "{{ joiner.__init__.__globals__.os.system('touch PWNED') }}",
    "{{ messages.__class__ }}{% set x = namespace(_y=1) %}",
    "{% set ns = namespace(a=1) %}{% set ns.__class__ = 1 %}",
    "{{ messages.append({'role': 'x'}) }}",
    "{{ messages[0].update({'role': 'x'}) }}",
    "{{ self.__init__.__globals__ }}",
    "{{ raise_exception('no') }}",
]


@pytest.mark.parametrize("template", MALICIOUS)
def test_a_malicious_chat_template_is_stopped_and_runs_nothing(tmp_path, monkeypatch, template):
    monkeypatch.chdir(tmp_path)
    tok = minillm.load_tokenizer(WEIGHTS / "tiny-qwen2")
    tok.chat_template = template
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(minillm.TokenizerError, match="chat template"):
        tok.apply_chat_template(messages)
    assert not (tmp_path / "PWNED").exists()
    assert messages == [{"role": "user", "content": "hi"}]  # the caller's data is untouched


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(minillm.TokenizerError, match="no tokenizer.json"):
        minillm.load_tokenizer(tmp_path)
