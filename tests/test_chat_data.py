"""Chat data for fine-tuning: assistant-only labels read off the checkpoint's own template, padding, truncation.

The expected scored pieces below are our reading of the Qwen templates (weights/chat_templates/): in each
assistant turn, everything after "<|im_start|>assistant\\n" through <|im_end|>; Qwen3 keeps the reasoning of the
turns after the last user message only (an empty <think> block when there is none) and drops older reasoning.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import minillm
from minillm.errors import InputError, TokenizerError
from minillm.training.chat_data import (IGNORE, TruncationWarning, encode_conversation, encode_conversations,
                                        pad_batch, read_conversations)
from conftest import WEIGHTS, tiny_model


def tokenizer(template: str):
    tok = minillm.load_tokenizer(WEIGHTS / ("tiny-qwen3" if template == "qwen3" else "tiny-qwen2"))
    tok.chat_template = (WEIGHTS / "chat_templates" / f"{template}.jinja").read_text()
    return tok


def scored_pieces(tok, ex) -> list[str]:
    """The decoded runs of consecutive scored tokens."""
    runs, current = [], []
    for token, label in zip(ex.ids, ex.labels):
        if label != IGNORE:
            assert label == token  # labels are the ids themselves where scored (the loss shifts them)
            current.append(int(token))
        elif current:
            runs.append(tok.decode(current))
            current = []
    return runs + ([tok.decode(current)] if current else [])


MULTI_TURN = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "<think>\nold plan\n</think>\n\nHello!"},
    {"role": "user", "content": "Two plus two?"},
    {"role": "assistant", "content": "Four.", "reasoning_content": "add them"},
]


def test_qwen3_scores_each_reply_with_its_end_of_turn_and_only_the_last_reasoning():
    tok = tokenizer("qwen3")
    ex = encode_conversation(tok, MULTI_TURN)
    assert scored_pieces(tok, ex) == ["Hello!<|im_end|>", "<think>\nadd them\n</think>\n\nFour.<|im_end|>"]
    assert tok.decode(ex.ids[ex.labels == IGNORE]).count("<|im_start|>assistant\n") == 2  # headers not scored


def test_qwen3_last_reply_without_reasoning_scores_the_empty_think_block():
    tok = tokenizer("qwen3")
    ex = encode_conversation(tok, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"},
                                   {"role": "user", "content": "Again"}, {"role": "assistant", "content": "Yo yo"}])
    assert scored_pieces(tok, ex) == ["Yo<|im_end|>", "<think>\n\n</think>\n\nYo yo<|im_end|>"]


def test_qwen3_tool_turns_are_not_scored_but_the_tool_call_is():
    tok = tokenizer("qwen3")
    call = {"type": "function", "function": {"name": "add", "arguments": {"a": 2}}}
    ex = encode_conversation(tok, [
        {"role": "user", "content": "Add"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "4"},
        {"role": "assistant", "content": "It is 4."}])
    pieces = scored_pieces(tok, ex)
    # not the last turn and no reasoning: no <think> block; the last turn (after the last real user query) has one
    assert pieces[0] == '<tool_call>\n{"name": "add", "arguments": {"a": 2}}\n</tool_call><|im_end|>'
    assert pieces[1] == "<think>\n\n</think>\n\nIt is 4.<|im_end|>"
    assert len(pieces) == 2  # the tool response (rendered as a user turn) is not scored


def test_qwen25_scores_replies_but_not_the_default_system_prompt():
    tok = tokenizer("qwen2.5")
    ex = encode_conversation(tok, MULTI_TURN[1:])
    text = tok.decode(ex.ids)
    assert text.startswith("<|im_start|>system\nYou are Qwen")  # the template's default system message
    assert scored_pieces(tok, ex) == ["<think>\nold plan\n</think>\n\nHello!<|im_end|>", "Four.<|im_end|>"]


def test_a_template_that_is_not_chatml_is_refused():
    tok = tokenizer("qwen3")
    tok.chat_template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    with pytest.raises(TokenizerError, match="assistant turns"):
        encode_conversation(tok, MULTI_TURN)


def test_truncation_cuts_warns_and_drops_what_keeps_no_reply():
    tok = tokenizer("qwen3")
    short = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    long = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]
    full = encode_conversation(tok, short)
    with pytest.warns(TruncationWarning, match="1 of 2 conversations .* truncated.*dropped"):
        examples = encode_conversations(tok, [short, long], max_length=len(full.ids))
    assert len(examples) == 1 and np.array_equal(examples[0].ids, full.ids)
    with pytest.warns(TruncationWarning), pytest.raises(InputError, match="no conversation"):
        encode_conversations(tok, [long], max_length=8)


def test_right_padding_leaves_every_conversation_its_own_logits():
    tok, model = tokenizer("qwen3"), tiny_model("tiny-qwen3")
    a = encode_conversation(tok, MULTI_TURN)
    b = encode_conversation(tok, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    ids, labels = pad_batch([a, b], pad_id=0)
    assert (labels[1, len(b.ids):] == IGNORE).all() and (ids[1, len(b.ids):] == 0).all()
    logits = model.forward(ids)  # [2, T, V]: causal, so the padding after row 1 changes nothing before it
    np.testing.assert_allclose(logits[1, :len(b.ids)], model.forward(b.ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("line, words", [
    ("not json", "line 2: not valid JSON"),
    ('{"messages": []}', "line 2: expected an object"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "line 2: message 0: expected a role"),
    ('{"messages": [{"role": "user", "content": "x"}]}', "line 2: no assistant message"),
    ('{"messages": [{"role": "assistant", "content": 3}]}', "content must be a string"),
])
def test_bad_chat_data_is_refused_naming_the_line(tmp_path, line, words):
    path = tmp_path / "chats.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(InputError, match=words):
        read_conversations(path)
