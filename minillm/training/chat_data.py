"""Chat data for supervised fine-tuning: JSONL conversations -> token ids and assistant-only labels.

One conversation per line, in the format TRL and most datasets use:

    {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}, ...]}

Each conversation is rendered with the checkpoint's OWN chat template (text/chat_template.py), exactly the
text the model would see at inference, then tokenized. The labels are the ids where the model should learn to
answer and -100 everywhere else, as TRL's assistant-only loss (``assistant_only_loss=True``):

    <|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello!<|im_end|>\\n
    |------------------ -100 ------------------------------||- scored ----||-100|

+--------------------------------------------------------------------------------------------------------+
| WHAT IS SCORED: in every assistant turn, what follows "<|im_start|>assistant\\n" up to and including     |
| the end-of-turn token <|im_end|>. <|im_end|> must be scored: it is how the model learns to STOP (at    |
| inference, generation ends when it is sampled). The role header is not scored (the prompt gives it),   |
| nor the "\\n" after <|im_end|> (the next turn's template text). A Qwen3 reply is scored with its         |
| <think>...</think> block as the template renders it: the last turn keeps its reasoning (or the empty   |
| "<think>\\n\\n</think>\\n\\n"), earlier turns lose it, since Qwen3's template drops old reasoning.        |
+--------------------------------------------------------------------------------------------------------+

The assistant turns are found in the rendered text (ChatML, which every Qwen template writes), and a token is
scored when its first character lies inside one; the tokenizer's character offsets make that exact whatever
the BPE merges. A template that does not render one ChatML assistant turn per assistant message is refused.

Batches: right-padded, not packed. With causal attention a row's real tokens never see the padding after
them, and padding is labelled -100, so a padded batch gives each conversation exactly the loss and gradient it
would have alone (packing several conversations in one row would let later ones attend to earlier ones,
unless the attention mask were block-diagonal; minillm's training forward has no such mask).
Truncation: a conversation longer than ``max_length`` tokens is cut to its first ``max_length`` (one warning
says how many were); one left with no scored token is dropped.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint.jsonfile import parse_json, read_small_file
from ..errors import InputError, MinillmWarning, TokenizerError

IGNORE = -100  # the label of a position that is not scored (PyTorch's ignore_index)
ASSISTANT_TURN = re.compile(r"<\|im_start\|>assistant\n(.*?<\|im_end\|>)", re.DOTALL)  # group 1: what is scored
ROLES = ("system", "user", "assistant", "tool")
MAX_CHAT_BYTES = 1 << 30  # a JSONL file of conversations is read whole: 1 GiB is far more than a NumPy run trains on


class TruncationWarning(MinillmWarning):
    """Conversations were cut to the maximum length (their end is not trained on)."""


@dataclass
class Example:
    """One tokenized conversation."""

    ids: np.ndarray  # [T] int64
    labels: np.ndarray  # [T] int64: the id where scored, IGNORE elsewhere (same positions as ids, not shifted)


def read_conversations(path: str | Path) -> list[list[dict]]:
    """The conversations of a JSONL file, each checked: a list of messages with a known role and text content."""
    path = Path(path)
    # a regular file of bounded size (a FIFO would block the read forever, /dev/zero never end), valid UTF-8
    data = read_small_file(path, InputError, MAX_CHAT_BYTES, "chat data (a JSONL file)")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: cannot read the chat data ({e})") from None
    conversations = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        record = parse_json(line, where, InputError)  # nested 100,000 deep or a 5000-digit int: an InputError too
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list) or not messages:
            raise InputError(f'{where}: expected an object {{"messages": [{{"role": ..., "content": ...}}, ...]}}')
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                raise InputError(f"{where}: message {i}: expected a role among {', '.join(ROLES)}, "
                                 f"found {m.get('role') if isinstance(m, dict) else m!r}")
            if not isinstance(m.get("content"), str) and not m.get("tool_calls"):
                raise InputError(f"{where}: message {i} ({m['role']}): content must be a string")
        if not any(m["role"] == "assistant" for m in messages):
            raise InputError(f"{where}: no assistant message: nothing to learn from this conversation")
        conversations.append(messages)
    if not conversations:
        raise InputError(f"{path}: no conversations (expected one JSON object per line)")
    return conversations


def assistant_spans(text: str) -> list[tuple[int, int]]:
    """The character spans to score in a rendered ChatML conversation: each assistant reply with its <|im_end|>."""
    return [m.span(1) for m in ASSISTANT_TURN.finditer(text)]


def encode_conversation(tokenizer, messages: list[dict]) -> Example:
    """Render with the checkpoint's chat template, tokenize, label the assistant replies (see the module docstring)."""
    text = tokenizer.apply_chat_template(messages)
    spans = assistant_spans(text)
    expected = sum(m["role"] == "assistant" for m in messages)
    if len(spans) != expected:
        raise TokenizerError(f"the chat template rendered {len(spans)} ChatML assistant turns "
                             f"('<|im_start|>assistant\\n' ... '<|im_end|>') for {expected} assistant messages; "
                             f"minillm finds the replies to score that way")
    encoding = tokenizer.backend.encode(text, add_special_tokens=False)
    ids = np.asarray(encoding.ids, np.int64)  # [T]
    starts = np.asarray([start for start, _ in encoding.offsets], np.int64)  # [T] first character of each token
    scored = np.zeros(len(ids), bool)  # [T]
    for a, b in spans:
        scored |= (starts >= a) & (starts < b)
    return Example(ids=ids, labels=np.where(scored, ids, IGNORE))


def encode_conversations(tokenizer, conversations: list[list[dict]], max_length: int,
                         source: str = "chat data") -> list[Example]:
    """Every conversation encoded and cut to ``max_length`` tokens (one warning for all the cut ones)."""
    examples, cut, dropped = [], 0, 0
    for messages in conversations:
        ex = encode_conversation(tokenizer, messages)
        if len(ex.ids) > max_length:
            cut += 1
            ex = Example(ids=ex.ids[:max_length], labels=ex.labels[:max_length])
        if (ex.labels[1:] == IGNORE).all():  # position 0 is never a target (the loss is shifted by one)
            dropped += 1
            continue
        examples.append(ex)
    if cut:
        warnings.warn(f"{source}: {cut} of {len(conversations)} conversations are longer than {max_length} tokens "
                      f"and were truncated to it" + (f"; {dropped} of them kept no assistant token and were dropped"
                                                      if dropped else ""), TruncationWarning, stacklevel=2)
    if not examples:
        raise InputError(f"{source}: no conversation has an assistant token within {max_length} tokens")
    return examples


def pad_batch(examples: list[Example], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest: ids [B, T] (pad_id after the end), labels [B, T] (IGNORE after the end)."""
    T = max(len(ex.ids) for ex in examples)
    ids = np.full((len(examples), T), pad_id, np.int64)  # [B, T]
    labels = np.full((len(examples), T), IGNORE, np.int64)  # [B, T]
    for row, ex in enumerate(examples):
        ids[row, :len(ex.ids)] = ex.ids
        labels[row, :len(ex.labels)] = ex.labels
    return ids, labels
