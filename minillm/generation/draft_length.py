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
* cost(T): what a pass over T tokens costs relative to a one-token step, drafting included. Each timed pass
  over T > 1 tokens gives one sample, its seconds divided by the median of the last REFERENCE one-token steps
  (so a sample compares times taken close together, and a machine that gets busier or calmer as a whole
  moves both); cost(T) is the median of T's last TIMINGS samples. Medians,
  because a wall clock on a shared machine has spikes both ways: one pass held up by another process, one
  one-token step timed in a quiet moment, must not move the estimate (the fastest of the last few, used
  before, let one quick one-token step make every draft look expensive, and one slow one make drafting look
  free for as long as no plain step came to correct it). The reference is kept fresh: when no plain step
  was timed in the last REFERENCE_EVERY passes, the next pass is one. Samples expire after EXPIRE passes,
  so a length measured during a busy spell is measured again later (the re-probe). A length never measured
  is interpolated between measured ones, or extrapolated: below along their average slope, above at most at
  the prior slope (so that longer passes get tried). Before any measurement each extra token is assumed to
  add COST_PER_TOKEN of a step, an optimistic guess that the first passes correct.

A length not timed yet is a guess, and a pass is at most GROWTH (2) times as long as the longest length
timed lately (``longest_pass``): lengths are climbed to in doublings, so the first drafts of an answer (often
n-grams of the chat template the model does not keep) cost about a step, and a wrong guess about a long pass
(9+ tokens leave the few-rows product: 3.4 one-token steps on a quiet machine, 15-27 on a busy one) costs at
most one pass twice as long as a length known to pay.

And a guard on what drafting delivered, not what it was expected to: over the last GUARD_WINDOW passes that
checked a draft, the tokens they emitted against what they cost (cost(T) above, in one-token steps). Below
one (drafting made fewer tokens per unit of time than plain steps would), drafting stops for a while
(BACKOFF passes, doubled each time it fails again, up to MAX_BACKOFF) and is then tried again; the kept
rates keep learning in the meantime (below), so it starts again at once where the text begins to repeat.

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
REFERENCE = 5  # a one-token step's cost: the median of the last REFERENCE timed one-token steps
REFERENCE_EVERY = 64  # ... at least one of them within the last this many passes (else the next pass is one)
TIMINGS = 7  # a pass length's cost: the median of its last TIMINGS samples (relative to the reference) ...
MIN_TIMINGS = 1  # ... once it has this many (until then the other lengths, or the prior, stand in): one is
#   enough, as a sample expires: a slow first timing bars its length for EXPIRE passes, not for good, while a
#   length that really is dear (a pass over 9+ tokens through OpenBLAS's threaded product on a busy core:
#   15-27 one-token steps, measured) costs one probe, not two
EXPIRE = 256  # a sample older than this many passes is forgotten (the length is measured again)
GUARD_WINDOW = 8  # the guard: tokens per unit of time over the last this many passes that checked a draft
BACKOFF, MAX_BACKOFF = 8, 256  # plain steps after the guard trips (doubling each time it trips again)
GROWTH = 2  # a pass is at most this many times as long as the longest length timed lately (a one-token step,
#   or none yet: 1): an untimed length's cost is a guess, so a wrong guess must cost little (see choose)
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
        self.passes = 0  # passes recorded so far (the clock samples expire by)
        self.steps: deque = deque(maxlen=REFERENCE)  # (pass, seconds) of the last timed one-token steps
        self.timings: dict[int, deque] = {}  # pass length T > 1 -> (pass, seconds / reference) of its last passes
        self.recent: deque = deque(maxlen=GUARD_WINDOW)  # (T, tokens emitted) of the last passes with a draft
        self.resume_at, self.backoff = 0, BACKOFF  # the guard: plain steps until this pass; the next backoff
        self.clock = clock
        self._costs_for, self._costs = None, None  # interpolate_costs(...) for these ratios(), kept

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
        if self.passes < self.resume_at:  # the guard tripped: plain steps for a while
            return 0
        if self.passes and (not self.steps or self.passes - self.steps[-1][0] >= REFERENCE_EVERY):
            return 0  # a one-token step to time: the reference the other lengths are measured against
        k = min(k, self.longest_pass() - 1)
        return best_draft_length(self.keep_rates(k, kind), self.costs()[:k + 1])

    def longest_pass(self) -> int:
        """The longest pass worth trying now: GROWTH times the longest length timed lately (1 when none is).

        A length not timed yet costs what interpolate_costs guesses, optimistically, so that it gets tried;
        but the guess can be far off: on the real Qwen2.5-Coder-0.5B a pass over 9+ tokens leaves the few-rows
        product for OpenBLAS's threaded one, 3.4 one-token steps on a quiet machine and 15-27 on a busy one
        (docs/PERFORMANCE.md), and the first drafts of an answer come from n-grams of the chat template that the
        model rarely keeps. So lengths are tried in doublings, 2, 4, 8, 16, ... tokens, each after a shorter one
        was timed: a wrong guess costs at most one pass twice as long as one known to pay, and a long copy
        reaches its full length within a few passes (each of them kept whole). After the samples of the long
        lengths expire (EXPIRE passes without them), they are climbed to again.
        """
        return int(min(GROWTH * max(self.ratios(), default=1), self.max_tokens + 1))

    def costs(self) -> np.ndarray:
        """cost(T) for T = 1 .. max_tokens + 1, in one-token steps (interpolate_costs of ratios()).   -> [K + 1]"""
        ratios = self.ratios()
        if ratios != self._costs_for:  # the costs move only when a length's median does
            self._costs_for, self._costs = ratios, interpolate_costs(ratios, self.max_tokens + 1)
        return self._costs

    def ratios(self) -> dict[int, float]:
        """Each measured pass length's cost in one-token steps: the median of its samples from the last EXPIRE
        passes, once it has MIN_TIMINGS of them; the one-token step itself costs 1."""
        ratios = {1: 1.0} if self.steps else {}
        for T, samples in self.timings.items():
            fresh = [r for at, r in samples if self.passes - at < EXPIRE]
            if len(fresh) >= MIN_TIMINGS:
                ratios[T] = float(np.median(fresh))
        return ratios

    def record(self, T: int, seconds: float | None, known: int, kept: int, kind=None) -> None:
        """A pass over T tokens took ``seconds`` (None: not timed). Drafted positions 1 .. ``known`` of a draft
        of this kind have a known outcome (checked, or learned for free from the model's own token), and the
        first ``kept`` of them were kept."""
        self.passes += 1
        if seconds is not None and T == 1:
            self.steps.append((self.passes, seconds))
        elif seconds is not None and self.steps:  # relative to the one-token steps timed lately
            reference = float(np.median([s for _, s in self.steps]))
            self.timings.setdefault(T, deque(maxlen=TIMINGS)).append((self.passes, seconds / reference))
        if T > 1:
            self._guard(T, 1 + min(kept, T - 1))
        if known == 0:
            return
        kept_counts = self.kept.setdefault(kind, np.zeros(self.max_tokens + 1))  # [K + 1]
        seen_counts = self.seen.setdefault(kind, np.zeros(self.max_tokens + 1))  # [K + 1]
        kept_counts *= FORGET
        seen_counts *= FORGET
        seen_counts[:known] += 1.0
        kept_counts[:kept] += 1.0

    def _guard(self, T: int, tokens: int) -> None:
        """After a pass that checked a draft: if the last GUARD_WINDOW such passes made fewer tokens than plain
        steps would have in their time, make plain steps for a while (and longer each time in a row)."""
        self.recent.append((T, tokens))
        if len(self.recent) < GUARD_WINDOW:
            return
        cost = self.costs()
        spent = sum(cost[min(t, len(cost)) - 1] for t, _ in self.recent)  # in one-token steps
        if sum(n for _, n in self.recent) >= spent:
            self.backoff = BACKOFF  # drafting pays: the next trip starts from the shortest backoff
            return
        self.resume_at, self.backoff = self.passes + self.backoff, min(2 * self.backoff, MAX_BACKOFF)
        self.recent.clear()
