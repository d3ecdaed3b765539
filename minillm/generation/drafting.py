"""Drafting tokens for speculative decoding: guess the next few tokens cheaply, for the model to check.

A drafter is anything with one method:

    propose(history [N] int64, max_tokens) -> draft [k] int64,  0 <= k <= max_tokens

``history`` is every token so far (the prompt, then what was generated). The draft is only a guess: the
model checks it (speculative.py), so a bad drafter costs speed, never correctness.

Two attributes are optional, read by the adaptive draft length (draft_length.py): ``num_tokens``, the
longest draft it makes, and ``last_ngram_size``, a kind for the last draft (prompt lookup: the length of
the n-gram it matched), under which kept rates are counted separately.

Prompt lookup (Saxena 2023; transformers' ``prompt_lookup_num_tokens``) drafts with no second model: take
the last n tokens, find the same n tokens earlier in the history, and propose what followed them there.

    history   ... def area(r):  return 3.14 * r * r ...  def area(r):  return
                                ^^^^^^^ ~~~~~~~~~~~~~~~~                 ^^^^^^
                                match   proposed                         the last n = 2 tokens

It pays off whenever the answer repeats its input: a rewrite of a piece of code, a summary quoting its
source, an answer quoting the question. As in transformers, n goes from ``max_ngram_size`` down to 1, and
the first (leftmost) match with a continuation wins.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def check_count(name: str, value, low: int, high: int = 2 ** 31 - 1) -> int:
    """A drafting setting: an integer in low..high (32 bits, as a config field), or a clear InputError naming it."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or not low <= value <= high:
        raise InputError(f"{name} must be an integer >= {low} (at most {high}), found {type(value).__name__} {value!r}")
    return int(value)


class PromptLookupDrafter:
    """Propose up to ``num_tokens`` tokens that followed an earlier occurrence of the last n-gram."""

    def __init__(self, num_tokens: int = 10, max_ngram_size: int = 2):
        self.num_tokens = check_count("prompt_lookup_num_tokens", num_tokens, 1)
        self.max_ngram_size = check_count("max_matching_ngram_size", max_ngram_size, 1)
        self.last_ngram_size = 0  # the n of the match behind the last draft (0: none), for draft_length.py

    def __repr__(self) -> str:
        return f"PromptLookupDrafter(num_tokens={self.num_tokens}, max_ngram_size={self.max_ngram_size})"

    def propose(self, history: np.ndarray, max_tokens: int) -> np.ndarray:
        """history [N] -> draft [k], k <= min(num_tokens, max_tokens); empty when nothing matches."""
        history = np.asarray(history, np.int64)  # [N]
        N, k = len(history), min(self.num_tokens, max_tokens)
        self.last_ngram_size = 0
        if k <= 0:
            return history[:0]
        ends = np.flatnonzero(history[:-1] == history[-1])  # [m]: earlier positions holding the last token
        for n in range(min(self.max_ngram_size, N - 1), 0, -1):
            ends_n = ends[ends >= n - 1]  # [m']: where an n-gram can end
            # The n-gram ending at e matches the last n tokens: compare them all at once, one offset at a time.
            match = np.ones(len(ends_n), bool)  # [m']
            for back in range(1, n):
                match &= history[ends_n - back] == history[N - 1 - back]
            if match.any():  # leftmost first; the continuation starts right after the match
                s = int(ends_n[np.argmax(match)]) + 1
                self.last_ngram_size = n  # a longer match makes a better draft (draft_length.py)
                return history[s:min(s + k, N)]  # [k or fewer]
        return history[:0]  # [0]
