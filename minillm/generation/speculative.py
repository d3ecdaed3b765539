"""Speculative decoding: check k drafted tokens in one forward pass, keep the longest prefix the model agrees with.

Why it is faster. Decoding one token reads every weight once, and on a CPU that read is the whole cost
(memory bandwidth, not arithmetic, is the limit). A forward pass over k+1 tokens reads the same weights
once and does k+1 times the arithmetic, which is still cheap while k is small (model/fast_linear.py makes sure
a few rows really cost what one row costs). So if a cheap drafter (drafting.py) guesses the next k tokens,
one pass of the model over them gives its own prediction at every one of those positions at once:

    cache holds  ... the story so far                                 (everything up to `token`)
    pass         [token, d1, d2, d3, d4]            one forward, logits_to_keep = k+1
    logits       [  L0,  L1, L2, L3, L4 ]           Li = the model's next-token scores after d1..di
    check        d1 ~ L0 ok, d2 ~ L1 ok, d3 ~ L2 no -> emit d1, d2, then the model's own token from L2
    cache        roll back to  ... token d1 d2       (d3, d4 were computed but are forgotten)

Every pass emits at least one token (the model's own, as plain decoding would), and up to k+1.

Why greedy output is unchanged. L_i is exactly the logits plain decoding would compute after d1..di (the
cache holds the same keys; causality: position i never sees d_{i+1}..). Greedy takes argmax(L_i) at each
position; we keep d_{i+1} only if it *is* that argmax, and stop at the first disagreement with the
argmax itself. So the tokens are the ones plain decoding makes, one by one (up to float32 rounding: a pass
over k+1 rows adds products in another order than a pass over one, as in every batched implementation).

Why the sampled distribution is unchanged (Leviathan et al. 2023; Chen et al. 2023). With a draft
distribution q and the model's p at a position, accept the drafted d with probability min(1, p(d)/q(d)), and
on rejection draw from the residual max(p - q, 0) normalised. Prompt lookup is deterministic, q puts all
its mass on d, so the rule is: accept with probability p(d); else draw from p with d removed, renormalised.
Then P(token = d) = p(d), and for x != d, P(x) = (1 - p(d)) * p(x) / (1 - p(d)) = p(x): exactly p.
p is the distribution plain sampling draws from at that position: the repetition penalty over every id so
far (the accepted drafts included), then temperature, top-k, top-p and min-p (sampling.py).

Rolling back. Keys and values can be cut at any position (``KVCache.truncate``). A Qwen3.5 linear-attention
layer keeps a recurrent state that has absorbed the rejected tokens and cannot un-absorb them; we save the
states before a pass that has a draft, and after a rejection go back to them and recompute the kept tokens
(one more pass over 1 + accepted tokens; counted in the statistics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..model.activations import softmax
from .draft_length import DraftLength
from .sampling import SamplingParams, process_logits, sample
from .speculative_checks import MAX_DRAFT_TOKENS, checked_draft, draft_kind


@dataclass
class SpeculativeStats:
    """What a speculative generation did; ``passes`` keeps each verification for display (notebook 03)."""

    new_tokens: int = 0  # tokens generated (the first comes from the prompt's pass)
    forward_passes: int = 0  # model passes after the prompt's, recomputations included
    drafted: int = 0  # drafted tokens checked by the model
    accepted: int = 0  # of those, kept
    recomputed: int = 0  # passes that recomputed kept tokens after a rollback (Qwen3.5 only)
    plain_steps: int = 0  # passes without a draft (nothing proposed, or not worth checking)
    passes: list = field(default_factory=list)  # (draft [k], accepted count, the model's own token or None)

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else 0.0

    @property
    def tokens_per_pass(self) -> float:
        """Generated tokens per model pass (the prompt's pass and its token left out): 1.0 for plain decoding."""
        return (self.new_tokens - 1) / self.forward_passes if self.forward_passes else 1.0


def residual_distribution(p: np.ndarray, draft: int) -> np.ndarray:
    """max(p - q, 0) normalised, for a point-mass draft q = onehot(draft): p without the draft.   [V] -> [V]"""
    r = p.copy()  # [V]
    r[draft] = 0.0
    return r / r.sum()  # [V]; sum > 0 whenever this is used (a rejection needs p(draft) < 1)


def check_drafted_token(logits: np.ndarray, draft: int, params: SamplingParams, rng: np.random.Generator,
                        seen: np.ndarray | None) -> tuple[bool, int]:
    """Is the drafted token kept at this position? Returns (accepted, token): the draft, or the model's own.

    logits [1, V] at the draft's position; seen [1, V] the ids so far (for the repetition penalty) or None.
    Greedy: kept iff it is the argmax. Sampling: kept with probability p(draft), else drawn from the residual.
    """
    if params.greedy:
        token = int(sample(logits, params, rng, seen)[0])  # the argmax, exactly as plain decoding picks it
        return token == draft, token
    p = softmax(process_logits(logits, params, seen).astype(np.float64))[0]  # [V]: what plain sampling draws from
    if rng.random() < p[draft]:
        return True, draft
    r = residual_distribution(p, draft)  # [V]
    return False, int(min(np.searchsorted(np.cumsum(r), rng.random() * r.sum(), side="right"), len(r) - 1))


def speculative_decode(model, cache, logits: np.ndarray, history: list[int], seen: np.ndarray,
                       params: SamplingParams, rng: np.random.Generator, stops: np.ndarray, max_new_tokens: int,
                       drafter, grows: bool, stats: SpeculativeStats | None = None,
                       schedule: DraftLength | None = None) -> Iterator[int]:
    """Yield new tokens of one sequence (B = 1), checking the drafter's guesses k at a time.

    ``schedule``: how many of each draft to check (draft_length.py: only what pays for the longer pass);
    None checks every drafted token.

    ``logits`` [1, V]: the prompt pass's last position; ``history``: the ids so far (extended in place);
    ``seen`` [1, V]: the ids the repetition penalty sees (updated in place). As in plain decoding, the cache
    ends holding everything but the last yielded token.
    """
    stats = stats if stats is not None else SpeculativeStats()
    penalty = params.repetition_penalty != 1.0
    token = int(sample(logits, params, rng, seen if penalty else None)[0])  # the first token: plain decoding
    made = 0
    while True:
        seen[0, token] = True
        history.append(token)
        made += 1
        stats.new_tokens += 1
        yield token
        if token in stops or made == max_new_tokens:
            return

        # Draft (at most what is left minus the model's own token), and run [token, d1..dk] in one pass.
        started = schedule.clock() if schedule is not None else 0.0  # a pass's cost includes drafting it
        left = min(max_new_tokens - made - 1, MAX_DRAFT_TOKENS)  # what can be used (speculative_checks.py)
        proposed = checked_draft(drafter.propose(np.array(history), left), left, len(seen[0]))  # [K <= left]
        kind = draft_kind(drafter)  # how the drafter found it (draft_length.py)
        draft = proposed[:schedule.choose(len(proposed), kind)] if schedule is not None else proposed  # [k]
        ids = np.array([[token] + draft])  # [1, 1+k]
        start = cache.length
        grew = grows and start + ids.shape[1] > cache.capacity
        if grew:
            cache.grow(max(2 * cache.capacity, start + ids.shape[1]))
        saved = _save_linear_states(cache) if draft else None
        all_logits = model.forward(ids, cache=cache, logits_to_keep=ids.shape[1])  # [1, 1+k, V]
        stats.forward_passes += 1

        # Check the drafts in order; stop at the first one the model does not keep.
        new: list[int] = []  # tokens to emit after `token`
        for i, d in enumerate(draft):
            kept, choice = check_drafted_token(all_logits[:, i], d, params, rng, seen if penalty else None)
            new.append(choice)
            if not kept:
                break
            seen[0, d] = True  # the next position's repetition penalty sees it (as in plain decoding)
        else:  # every draft kept: the model's token after the last one comes free
            new.append(int(sample(all_logits[:, len(draft)], params, rng, seen if penalty else None)[0]))
        accepted = _count_prefix(new, draft)
        stats.drafted += len(draft)
        stats.plain_steps += not draft
        # Drafted positions whose outcome is now known: the checked ones up to the first rejection, and, when
        # every checked draft was kept, the next unchecked one too (the model's own token is or is not it).
        free = accepted == len(draft) < len(proposed)
        known = accepted + (accepted < len(draft) or free)
        known_kept = accepted + (free and new[accepted] == proposed[accepted])
        stats.accepted += accepted
        stats.passes.append((draft, accepted, new[accepted] if accepted < len(new) else None))

        # Cut at a stop id or at max_new_tokens, as plain decoding would stop there.
        for j, t in enumerate(new):
            if t in stops or made + j + 1 == max_new_tokens:
                new = new[:j + 1]
                break
        # The cache keeps `token` and every emitted token but the last (which becomes the next `token`).
        _roll_back(model, cache, start, ids[:, :len(new)], saved, stats)
        if schedule is not None:  # what the pass cost, and what the draft was worth
            seconds = None if grew else schedule.clock() - started  # a pass that grew the cache is not timed
            schedule.record(ids.shape[1], seconds, known, known_kept, kind)
        for t in new[:-1]:
            seen[0, t] = True
            history.append(t)
            made += 1
            stats.new_tokens += 1
            yield t
        token = new[-1]


def _count_prefix(new: list[int], draft: list[int]) -> int:
    """How many drafted tokens were kept: the length of the common prefix of what is emitted and the draft."""
    n = 0
    while n < min(len(new), len(draft)) and new[n] == draft[n]:
        n += 1
    return n


def _save_linear_states(cache) -> dict | None:
    """Qwen3.5: snapshot the linear-attention states here; return the caller's snapshots to restore after.

    None for a dense model, whose cache can be cut anywhere.
    """
    if not cache.has_linear_state:
        return None
    theirs = dict(cache.snapshots)  # a chat keeps its own (at turn ends): ours must not push one out for good
    cache.snapshot()
    return theirs


def _roll_back(model, cache, start: int, kept_ids: np.ndarray, saved, stats: SpeculativeStats) -> None:
    """Make the cache hold exactly its first ``start`` positions plus ``kept_ids`` [1, n]."""
    keep = start + kept_ids.shape[1]
    if saved is None:  # keys and values: cut (causality: the kept ones never saw the rejected tokens)
        if keep < cache.length:
            cache.truncate(keep)
        return
    if keep < cache.length:  # linear attention: back to the states saved at `start`, recompute the kept tokens
        cache.truncate(start)
        model.forward(kept_ids, cache=cache, logits_to_keep=1)
        stats.forward_passes += 1
        stats.recomputed += 1
    cache.snapshots = saved  # the caller's snapshots, as they were
