"""How many drafted tokens to check: only as many as pay for the longer pass.

A pass over 1 + k tokens costs more than a one-token step (model/fast_linear.py: about 1.3 x for k = 1, 2 x for
k = 7 on Qwen2.5-0.5B's shapes; more on a small model, whose step is mostly call overhead), and a draft
nobody keeps buys nothing for it. So checking every drafted token is a loss on text with nothing to copy,
where prompt lookup still finds short matches that the model rarely agrees with. Each pass, this module
picks the k that maximises the expected tokens per unit of time,

    gain(k) = E[tokens emitted by a pass over 1 + k tokens] / cost(1 + k) * cost(1),

and k = 0 (a plain step) whenever no k beats 1. Both factors are learned while decoding:

* keep[i]: the probability that drafted token i is kept given that tokens 1 .. i-1 were, counted over the
  passes so far (a running average that forgets old passes, so it follows the text from copy to free
  writing and back), and pulled towards the rate over all positions where position i has few counts.
  A pass that checks k tokens and keeps them all also learns keep[k + 1] for free: the
  model's own next token either is the draft's next token or is not. With greedy decoding that is exactly
  the check; with sampling the chance that the sampled token equals the draft is p(draft), exactly the
  acceptance probability (speculative.py), so the count has the right mean. So keep[1] is learned even
  while no token is checked at all, and drafting resumes when the text starts repeating.
  Then E[tokens] = 1 + keep[1] + keep[1] keep[2] + ... + keep[1] ... keep[k].
* cost(T): the measured seconds of passes over T tokens, drafting included (the fastest of the last few,
  from the second on: noise only ever adds time). A length never measured is interpolated between
  measured ones, or extrapolated: below along their average slope, above at most at the prior slope (so
  that longer passes get tried). Before any measurement each extra token is assumed to add
  COST_PER_TOKEN of a step, an optimistic guess that the first passes correct.

The schedule changes only how many tokens are checked per pass, never which tokens come out: greedy output
is plain decoding's whatever k is chosen (speculative.py). transformers' assisted generation has a simpler
rule for the same problem (``num_assistant_tokens_schedule="heuristic"``: +2 after a fully kept draft, -1
otherwise); this one also stops drafting when drafting does not pay.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from ..errors import InputError

FORGET = 0.9  # each outcome of a kind multiplies its old counts by this (about the last 10 weigh in)
TIMINGS = 5  # a pass length's cost: the fastest of its last TIMINGS timings ...
MIN_TIMINGS = 2  # ... once it has this many (until then the other lengths, or the prior, stand in)
COST_PER_TOKEN = 0.1  # before measuring: a pass over T tokens costs 1 + 0.1 (T - 1) steps
PRIOR_KEPT, PRIOR_SEEN = 1.0, 2.0  # the pooled rate starts at 1/2, as if one of two drafts had been kept
POOLED_WEIGHT = 2.0  # a position's rate is pulled towards the pooled one as if it were seen this many times


def expected_tokens(keep: np.ndarray) -> np.ndarray:
    """E[tokens a pass emits] for k = 0 .. K checked drafts.   keep [K] -> [K + 1]

    Token i of the draft is emitted only if 1 .. i are all kept; the model's own token always is.
    """
    return 1.0 + np.concatenate([[0.0], np.cumsum(np.cumprod(keep))])  # [K + 1]


def best_draft_length(keep: np.ndarray, cost: np.ndarray) -> int:
    """The k in 0 .. K with the most expected tokens per unit of time.   keep [K], cost [K + 1] (cost[k]: 1 + k tokens)

    Ties go to the shorter pass (np.argmax takes the first maximum).
    """
    return int(np.argmax(expected_tokens(keep) / cost))


def interpolate_costs(measured: dict[int, float], T_max: int) -> np.ndarray:
    """Seconds of a pass over T = 1 .. T_max tokens from the lengths measured so far.   -> [T_max]

    A pass over more tokens never costs less, so a measured length costs at most what any longer measured
    one costs (this removes a length that was timed once during a hiccup and would never be tried again).
    Between measured lengths: linear. Below them: along the average slope from the shortest to the longest
    (at least flat). Above them: the same slope, but at most the prior one. With one length measured (or
    none): the prior slope, COST_PER_TOKEN of a one-token step per token.
    """
    T = np.arange(1, T_max + 1)  # [T_max]
    if not measured:
        return 1.0 + COST_PER_TOKEN * (T - 1)  # [T_max]
    known = np.array(sorted(measured))  # [m]
    seconds = np.minimum.accumulate(np.array([measured[t] for t in known])[::-1])[::-1]  # [m], non-decreasing
    if len(known) == 1:
        step = seconds[0] / (1 + COST_PER_TOKEN * (known[0] - 1))  # a one-token step, under the prior
        return step * (1.0 + COST_PER_TOKEN * (T - 1))  # [T_max]
    slope = max((seconds[-1] - seconds[0]) / (known[-1] - known[0]), 0.0)  # seconds per extra token
    inside = np.interp(T, known, seconds)  # [T_max]
    below = np.maximum(seconds[0] - slope * (known[0] - T), 0.5 * seconds[0])  # [T_max]: kept positive
    # Past the longest pass measured: optimistic, at most the prior slope, so that longer passes get tried
    # and measured (costs rise steeply from 1 to 2 tokens and flatter after; a measured slope would bar them).
    step = below[0] if known[0] > 1 else seconds[0]  # a one-token step
    above = seconds[-1] + min(slope, COST_PER_TOKEN * step) * (T - known[-1])  # [T_max]
    return np.where(T < known[0], below, np.where(T > known[-1], above, inside))  # [T_max]


class DraftLength:
    """Chooses how many of a draft's tokens to check, from the kept rates and pass costs seen so far.

    Kept rates are counted per *kind* of draft: a drafter may say how it found each one (prompt lookup: the
    length of the n-gram it matched, ``last_ngram_size``), and kinds differ a lot. Measured on the bundled
    model: drafts found by a 3-token match are kept at 52-79% per token, those found by a 1-token match at
    2-3%, so the best schedule checks the first whole and skips the second.
    ``max_tokens``: the longest draft considered (a drafter's ``num_tokens`` when it has one).
    ``clock``: the timer passes are measured with (tests give a fake one for a known cost per token).
    """

    def __init__(self, max_tokens: int = 10, clock=time.perf_counter):
        from .speculative_checks import MAX_DRAFT_TOKENS  # its counts are arrays of max_tokens + 1: bounded
        if not isinstance(max_tokens, (int, np.integer)) or isinstance(max_tokens, (bool, np.bool_)) or \
                not 1 <= max_tokens <= MAX_DRAFT_TOKENS:
            raise InputError(f"DraftLength(max_tokens) must be an integer in 1..{MAX_DRAFT_TOKENS}, found "
                             f"{type(max_tokens).__name__} {max_tokens!r}")
        self.max_tokens = int(max_tokens)
        self.kept: dict = {}  # kind -> [K + 1]: kept[i] ~ drafts kept at position i + 1 (forgetting)
        self.seen: dict = {}  # kind -> [K + 1]: ... and checked there (or learned for free)
        self.timings: dict[int, deque] = {}  # pass length T -> its last TIMINGS durations (seconds)
        self.clock = clock
        self._costs_for, self._costs = None, None  # interpolate_costs(...) for these seconds(), kept

    def keep_rates(self, k: int, kind=None) -> np.ndarray:
        """keep[i] for i = 1 .. k, for drafts of this kind.   -> [k]

        Each position's own counts, pulled towards the kind's rate pooled over all positions as if
        POOLED_WEIGHT passes had seen it: a position seldom checked (deep in the draft) takes the rate of
        the ones that are, high while the text copies and low while it does not, instead of a fixed guess
        that would keep long drafts from ever being tried. A kind seldom seen is pulled in the same way
        towards the rate over all kinds.
        """
        zeros = np.zeros(self.max_tokens + 1)  # [K + 1]
        kept, seen = self.kept.get(kind, zeros), self.seen.get(kind, zeros)  # [K + 1] each
        overall = (sum(v.sum() for v in self.kept.values()) + PRIOR_KEPT) / \
                  (sum(v.sum() for v in self.seen.values()) + PRIOR_SEEN)
        pooled = (kept.sum() + POOLED_WEIGHT * overall) / (seen.sum() + POOLED_WEIGHT)
        return (kept[:k] + POOLED_WEIGHT * pooled) / (seen[:k] + POOLED_WEIGHT)  # [k]

    def choose(self, available: int, kind=None) -> int:
        """How many of ``available`` drafted tokens (of this kind) to check in the next pass (0: a plain step)."""
        k = min(available, self.max_tokens)
        if k == 0:
            return 0
        seconds = self.seconds()
        if seconds != self._costs_for:  # the costs move only when a pass length's fastest timing does
            self._costs_for, self._costs = seconds, interpolate_costs(seconds, self.max_tokens + 1)
        return best_draft_length(self.keep_rates(k, kind), self._costs[:k + 1])

    def seconds(self) -> dict[int, float]:
        """Each measured pass length's cost: the fastest of its recent timings (a timing is only ever
        lengthened by noise: another process, a page fault, a first call that sets something up), once it
        has MIN_TIMINGS of them: a single slow first timing would otherwise bar that length for good."""
        return {T: min(times) for T, times in self.timings.items() if len(times) >= MIN_TIMINGS}

    def record(self, T: int, seconds: float | None, known: int, kept: int, kind=None) -> None:
        """A pass over T tokens took ``seconds`` (None: not timed). Drafted positions 1 .. ``known`` of a draft
        of this kind have a known outcome (checked, or learned for free from the model's own token), and the
        first ``kept`` of them were kept."""
        if seconds is not None:
            self.timings.setdefault(T, deque(maxlen=TIMINGS)).append(seconds)
        if known == 0:
            return
        kept_counts = self.kept.setdefault(kind, np.zeros(self.max_tokens + 1))  # [K + 1]
        seen_counts = self.seen.setdefault(kind, np.zeros(self.max_tokens + 1))  # [K + 1]
        kept_counts *= FORGET
        seen_counts *= FORGET
        seen_counts[:known] += 1.0
        kept_counts[:kept] += 1.0
