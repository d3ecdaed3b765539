"""The boundary of speculative decoding: what a caller passes and what a drafter returns, checked once.

A drafter is the caller's code (drafting.py: ``propose(history, max_tokens) -> draft``), so its output is
untrusted like any argument: None, NaN, a 2-D array, strings, ids past the vocabulary, or ten thousand tokens
when ``max_tokens`` asked for three. ``checked_draft`` turns whatever came back into a list of at most
``max_tokens`` valid ids, or an InputError naming the drafter; speculative.py never sees anything else.
Lengths are capped by what can be used (MAX_DRAFT_TOKENS, max_new_tokens), so no setting sizes an allocation.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

MAX_DRAFT_TOKENS = 256  # the longest draft ever checked: a pass over more rows costs more than it can save


def check_drafter(drafter) -> None:
    """A drafter must have a callable ``propose``; its optional ``num_tokens`` must be an integer >= 1."""
    if not callable(getattr(drafter, "propose", None)):
        raise InputError(f"drafter must have a method propose(history, max_tokens), found {type(drafter).__name__}")
    longest = getattr(drafter, "num_tokens", None)
    if longest is not None and (not isinstance(longest, (int, np.integer)) or isinstance(longest, (bool, np.bool_))
                                or longest < 1):
        raise InputError(f"drafter.num_tokens must be an integer >= 1, found {type(longest).__name__} {longest!r}")
    draft_kind(drafter)


def draft_kind(drafter):
    """The drafter's ``last_ngram_size`` (draft_length.py counts kept rates per kind): None or an integer."""
    kind = getattr(drafter, "last_ngram_size", None)
    if kind is not None and (not isinstance(kind, (int, np.integer)) or isinstance(kind, (bool, np.bool_))):
        raise InputError(f"drafter.last_ngram_size must be None or an integer, found {type(kind).__name__} "
                         f"{kind!r}")
    return None if kind is None else int(kind)


def checked_draft(proposed, max_tokens: int, vocab_size: int) -> list[int]:
    """A drafter's output as at most ``max_tokens`` token ids in [0, vocab_size); anything else: InputError."""
    try:
        draft = np.asarray(proposed)  # [k]
    except (TypeError, ValueError) as e:
        raise InputError(f"drafter.propose returned {type(proposed).__name__}, not a 1-D array of token ids "
                         f"({e})") from None
    if draft.ndim != 1 or not (draft.dtype.kind in "iu" or draft.size == 0):
        raise InputError(f"drafter.propose must return a 1-D array of integer token ids, found "
                         f"{type(proposed).__name__} of shape {list(draft.shape)} and dtype {draft.dtype}")
    draft = draft[:max(0, max_tokens)]  # [<= max_tokens]: a drafter that ignores max_tokens is cut, not trusted
    if draft.size and (int(draft.min()) < 0 or int(draft.max()) >= vocab_size):
        bad = int(draft.min()) if int(draft.min()) < 0 else int(draft.max())
        raise InputError(f"drafter.propose returned token id {bad}, out of range for vocab_size {vocab_size}")
    return [int(d) for d in draft]
