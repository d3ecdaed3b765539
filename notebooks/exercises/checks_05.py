"""Notebook 05's exercises: a chat rendered by hand, and the mask of the tokens a chat model learns from."""

from __future__ import annotations

import numpy as np

import minillm

CONVERSATION = [{"role": "system", "content": "You are a poet."},
                {"role": "user", "content": "A line about the moon?"},
                {"role": "assistant", "content": "The moon walks slowly over the sea."},
                {"role": "user", "content": "给我一句格言"},
                {"role": "assistant", "content": "学而不思则罔。"}]


def _tokenizer():
    return minillm.load_tokenizer(minillm.default_model_path())  # the bundled model's: plain ChatML


def check_render_chatml(fn) -> None:
    """fn(messages, add_generation_prompt) -> str: the ChatML text the bundled model's chat template renders."""
    tok = _tokenizer()
    for messages, add in ((CONVERSATION[:2], True), (CONVERSATION, False), (CONVERSATION[1:4], True)):
        got, want = fn(messages, add), tok.apply_chat_template(messages, add_generation_prompt=add)
        assert isinstance(got, str), f"return the text (a str), not {type(got).__name__}"
        assert got == want, (f"with add_generation_prompt={add}:\nyours:    {got!r}\nexpected: {want!r}\n"
                             f"(each message is <|im_start|>role, a newline, the content, <|im_end|>, a newline)")


def check_assistant_mask(fn) -> None:
    """fn(ids, tok) -> [T] bool: True on the tokens a chat model is trained to write: the content of every assistant
    message and its <|im_end|> (not the header '<|im_start|>assistant\\n', not the newline after <|im_end|>)."""
    tok = _tokenizer()
    ids, want = [], []
    for m in CONVERSATION:                                     # the expected mask, message by message
        writes = m["role"] == "assistant"
        for piece, learned in ((f"<|im_start|>{m['role']}\n", False), (m["content"] + "<|im_end|>", writes),
                               ("\n", False)):
            piece_ids = tok.encode(piece)
            ids += piece_ids
            want += [learned] * len(piece_ids)
    assert ids == tok.encode(tok.apply_chat_template(CONVERSATION)), "the pieces must tokenize as the whole text"
    got = np.asarray(fn(np.array(ids), tok))
    want = np.array(want)
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape} (one flag per token)"
    wrong = np.flatnonzero(got != want)
    assert len(wrong) == 0, (f"{len(wrong)} tokens flagged wrongly, the first at position {wrong[0] if len(wrong) else 0}"
                             f" ({tok.decode([int(ids[wrong[0]])]) if len(wrong) else ''!r})")


CHECKS = {"render_chatml": check_render_chatml, "assistant_mask": check_assistant_mask}
