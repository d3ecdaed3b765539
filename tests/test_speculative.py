"""Speculative decoding (prompt lookup): the same greedy tokens as plain decoding, the same sampled distribution."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minillm
from minillm.errors import InputError
from minillm.generation.draft_length import (DraftLength, best_draft_length, expected_tokens,
                                             interpolate_costs)
from minillm.generation.drafting import PromptLookupDrafter
from minillm.generation.sampling import SamplingParams, process_logits
from minillm.generation.speculative import SpeculativeStats, check_drafted_token, residual_distribution
from minillm.model.activations import softmax
from minillm.model.fast_linear import fast_linear, few_rows_matmul
from conftest import WEIGHTS, tiny_model

MODELS = ["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa", "tiny-qwen3.5"]


def model(name):
    if name == "tiny-qwen3.5":
        return hybrid()
    return tiny_model(name)


_hybrid = []


def hybrid():
    if not _hybrid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _hybrid.append(minillm.load_model(WEIGHTS / "tiny-qwen3.5"))
    return _hybrid[0]


class ClockedModel:
    """A model whose forward passes take modelled time on its own clock: 1 + per_token (T - 1) per T tokens.

    Given to DraftLength as its clock, it makes the adaptive schedule's choices the same on every machine.
    """

    def __init__(self, model, per_token):
        self.model, self.per_token, self.now = model, per_token, 0.0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self):  # the clock
        return self.now

    def forward(self, ids, **kw):
        self.now += 1.0 + self.per_token * (np.shape(ids)[-1] - 1)
        return self.model.forward(ids, **kw)


class ExactOracle:
    """A drafter that knows plain decoding's tokens and drafts the next k of them: every draft is right."""
    def __init__(self, truth, prompt_len, k):
        self.truth, self.prompt_len, self.k = list(truth), prompt_len, k
        self.num_tokens = k

    def propose(self, history, max_tokens):
        done = len(history) - self.prompt_len
        return np.array(self.truth[done:done + min(self.k, max_tokens)], np.int64)


class NoisyOracle:
    """A drafter that knows the right continuation and gets it wrong at a random point (or not at all).

    Prompt lookup on a random model rarely drafts what the model says; this one makes every case happen:
    all drafts kept, some kept, none kept, and drafts running past a stop id or max_new_tokens.
    """

    def __init__(self, truth, seed, k):
        self.truth, self.rng, self.k = list(truth), np.random.default_rng(seed), k

    def propose(self, history, max_tokens):
        done = len(history) - self.prompt_len
        draft = np.array(self.truth[done:done + min(self.k, max_tokens)] + [0] * self.rng.integers(0, 2), np.int64)
        if len(draft) and self.rng.random() < 0.6:  # corrupt one position
            i = self.rng.integers(0, len(draft))
            draft[i] = (draft[i] + 1 + self.rng.integers(0, 5)) % 300
        return draft[:max_tokens]


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(MODELS), seed=st.integers(0, 2 ** 31), k=st.integers(1, 6), ngram=st.integers(1, 3),
       penalty=st.sampled_from([1.0, 1.3]), oracle=st.booleans(), schedule=st.sampled_from(["constant", "fake"]))
def test_greedy_speculative_decoding_gives_plain_decodings_tokens(name, seed, k, ngram, penalty, oracle, schedule):
    """Token for token, with prompt lookup or a drafter that is right up to a point, for every model kind, and
    whether every draft is checked or only what the adaptive schedule picks (its clock: a pass over T tokens
    costs 1 + 0.3 (T - 1) steps, so it checks some drafts and skips others as their kept rate moves)."""
    m = model(name)
    if schedule == "fake":
        m = ClockedModel(m, 0.3)
    rng = np.random.default_rng(seed)
    piece = rng.integers(0, m.config.vocab_size, rng.integers(2, 8))
    prompt = np.concatenate([piece, rng.integers(0, m.config.vocab_size, 3), piece, piece[:2]])  # something to copy
    n = int(rng.integers(1, 24))
    stops = [] if rng.random() < 0.5 else [int(rng.integers(0, m.config.vocab_size))]
    kw = dict(temperature=0.0, repetition_penalty=penalty, stop_token_ids=stops)
    plain = minillm.generate(m, prompt, n, **kw)
    stats = SpeculativeStats()
    kw["draft_schedule"] = DraftLength(k, clock=m) if schedule == "fake" else schedule
    if oracle:
        drafter = NoisyOracle(plain, seed, k)
        drafter.prompt_len = len(prompt)
        fast = minillm.generate(m, prompt, n, drafter=drafter, speculative_stats=stats, **kw)
    else:
        fast = minillm.generate(m, prompt, n, prompt_lookup_num_tokens=k, max_matching_ngram_size=ngram,
                                speculative_stats=stats, **kw)
    assert fast.tolist() == plain.tolist()
    assert stats.new_tokens == len(plain) and stats.accepted <= stats.drafted


def test_a_kept_draft_saves_passes_and_the_cache_holds_what_plain_decoding_holds():
    """All drafts right: fewer passes; the cache ends with the same positions (the last token not yet in it)."""
    m = tiny_model("tiny-qwen3")
    prompt = np.array([5, 6, 7, 8, 9, 10])
    plain_cache, fast_cache = m.new_cache(1, 64), m.new_cache(1, 64)
    plain = minillm.generate(m, prompt, 20, temperature=0.0, stop_token_ids=[], cache=plain_cache)
    oracle = ExactOracle(plain, len(prompt), 4)
    stats = SpeculativeStats()
    fast = minillm.generate(m, prompt, 20, temperature=0.0, stop_token_ids=[], cache=fast_cache, drafter=oracle,
                            speculative_stats=stats, draft_schedule="constant")
    assert fast.tolist() == plain.tolist()
    assert stats.acceptance_rate == 1.0 and stats.forward_passes == 4  # 1 + 5 + 5 + 5 + 4 tokens
    assert fast_cache.length == plain_cache.length == len(prompt) + 19
    np.testing.assert_allclose(fast_cache.keys[0][:, :, :fast_cache.length],
                               plain_cache.keys[0][:, :, :plain_cache.length], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-qwen3"])
def test_the_repetition_penalty_sees_the_drafts_kept_earlier_in_the_same_pass(name):
    """A strong penalty: plain decoding never repeats a token, and neither may the checked drafts."""
    m = tiny_model(name)
    prompt = np.array([7, 8, 9])
    kw = dict(temperature=0.0, stop_token_ids=[], repetition_penalty=1000.0)
    plain = minillm.generate(m, prompt, 24, **kw)
    exact = ExactOracle(plain, len(prompt), 6)
    assert minillm.generate(m, prompt, 24, drafter=exact, **kw).tolist() == plain.tolist()


def test_a_rejected_draft_is_rolled_back_out_of_a_hybrid_cache():
    """Qwen3.5: after rejections, the linear-attention states are those of the kept tokens only."""
    m = hybrid()
    prompt = np.array([3, 4, 5, 6])
    plain_cache, fast_cache = m.new_cache(1, 64), m.new_cache(1, 64)
    plain = minillm.generate(m, prompt, 12, temperature=0.0, stop_token_ids=[], cache=plain_cache)
    drafter = NoisyOracle(plain, 3, 3)
    drafter.prompt_len = len(prompt)
    stats = SpeculativeStats()
    fast = minillm.generate(m, prompt, 12, temperature=0.0, stop_token_ids=[], cache=fast_cache, drafter=drafter,
                            speculative_stats=stats)
    assert fast.tolist() == plain.tolist() and stats.recomputed > 0
    assert fast_cache.length == plain_cache.length
    for a, b in zip(fast_cache.linear_states, plain_cache.linear_states):
        if a is not None:
            np.testing.assert_allclose(a.recurrent, b.recurrent, rtol=1e-4, atol=1e-5)
    assert fast_cache.snapshots == {}  # ours removed again


def test_prompt_lookup_proposes_what_followed_the_last_ngram_leftmost_first():
    d = PromptLookupDrafter(num_tokens=3, max_ngram_size=2)
    #                   0  1  2  3  4  5  6  7  8  9
    history = np.array([1, 2, 3, 4, 9, 2, 3, 7, 8, 2, 3])
    assert d.propose(history, 10).tolist() == [4, 9, 2]  # "2 3" first at 1..2, then 4 9 2
    assert d.propose(history, 2).tolist() == [4, 9]  # at most max_tokens
    assert d.propose(np.array([1, 2, 3, 5]), 10).tolist() == []  # nothing to copy
    assert PromptLookupDrafter(3, 2).propose(np.array([5, 1, 6, 1]), 10).tolist() == [6, 1]  # falls back to n = 1
    assert d.propose(np.array([4, 4]), 10).tolist() == [4]


@pytest.mark.parametrize("setting, value, words", [
    ("prompt_lookup_num_tokens", -1, ["prompt_lookup_num_tokens", ">= 1", "-1"]),
    ("prompt_lookup_num_tokens", 2.5, ["prompt_lookup_num_tokens", "float"]),
    ("max_matching_ngram_size", 0, ["max_matching_ngram_size", ">= 1", "0"]),
])
def test_bad_draft_settings_name_the_setting(setting, value, words):
    with pytest.raises(InputError) as e:
        minillm.generate(tiny_model("tiny-qwen2"), [1, 2, 3], 4, **{setting: value})
    assert all(w in str(e.value) for w in words)


def test_a_bad_draft_schedule_names_the_setting():
    with pytest.raises(InputError) as e:
        minillm.generate(tiny_model("tiny-qwen2"), [1, 2, 3], 4, prompt_lookup_num_tokens=3, draft_schedule="fast")
    assert all(w in str(e.value) for w in ["draft_schedule", "adaptive", "constant", "'fast'"])


def test_a_matching_ngram_size_alone_does_not_switch_drafting_on():
    """As transformers: prompt lookup drafts only when prompt_lookup_num_tokens is given; the n-gram size alone
    leaves sampling as it is (the same draws for a seed), with a warning that it does nothing."""
    model = tiny_model("tiny-qwen2")
    ids = np.tile(np.arange(1, 9), 4)  # [32]: a text that repeats itself, where prompt lookup finds drafts
    plain = minillm.generate(model, ids, 20, temperature=1.0, seed=5, stop_token_ids=[])
    stats = SpeculativeStats()
    with pytest.warns(minillm.MinillmWarning, match="max_matching_ngram_size.*prompt_lookup_num_tokens"):
        alone = minillm.generate(model, ids, 20, temperature=1.0, seed=5, stop_token_ids=[],
                                 max_matching_ngram_size=3, speculative_stats=stats)
    np.testing.assert_array_equal(alone, plain)
    assert stats.forward_passes == 0  # no speculative pass ran


def test_speculative_decoding_of_a_batch_is_refused_clearly():
    with pytest.raises(InputError, match="one sequence"):
        minillm.generate(tiny_model("tiny-qwen2"), [[1, 2, 3], [4, 5, 6]], 4, prompt_lookup_num_tokens=3)


# ---------------------------------------------------------------------------------------------- sampling

def test_the_residual_is_p_without_the_draft():
    p = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(residual_distribution(p, 0), [0.0, 0.6, 0.4])


def test_the_acceptance_rule_draws_from_the_processed_distribution():
    """Kept or resampled, the token is distributed as plain sampling's p: after the repetition penalty,
    temperature and top-k (which here removes the draft's own competitor 1, and not the draft)."""
    logits = np.array([[2.0, 1.5, 0.3, -0.5, 1.0, 0.0]], np.float32)
    seen = np.zeros((1, 6), bool)
    seen[0, 0] = True  # penalised
    params = SamplingParams(temperature=0.8, top_k=4, repetition_penalty=1.5)
    p = softmax(process_logits(logits, params, seen).astype(np.float64))[0]  # [V]
    rng = np.random.default_rng(1234)
    n = 20000
    counts = np.zeros(6)
    kept = 0
    for _ in range(n):
        accepted, token = check_drafted_token(logits, 4, params, rng, seen)
        counts[token] += 1
        kept += accepted
    assert abs(kept / n - p[4]) < 4 * np.sqrt(p[4] * (1 - p[4]) / n)
    assert counts[p == 0].sum() == 0  # what top-k removed is never drawn
    chi2 = (((counts - n * p) ** 2) / np.where(p > 0, n * p, 1))[p > 0].sum()
    assert chi2 < 20.5  # 3 degrees of freedom (4 kept tokens): p-value ~1.3e-4


def test_speculative_sampling_keeps_the_joint_distribution_of_two_tokens():
    """A whole generation on a tiny model: P(t1, t2) with drafts equals the model's, computed exactly."""
    m = tiny_model("tiny-qwen2")
    prompt = np.array([11, 12, 13, 14])
    params = dict(temperature=1.0, top_k=3, top_p=1.0, min_p=0.0, repetition_penalty=1.2, stop_token_ids=[])
    sp = SamplingParams(temperature=1.0, top_k=3, repetition_penalty=1.2)
    # exact: p(t1) from the prompt, p(t2 | t1) for each of the 3 possible t1
    seen = np.zeros((1, m.config.vocab_size), bool)
    seen[0, prompt] = True
    p1 = softmax(process_logits(m.forward(prompt)[-1:], sp, seen).astype(np.float64))[0]
    exact = {}
    for t1 in np.flatnonzero(p1):
        s2 = seen.copy()
        s2[0, t1] = True
        p2 = softmax(process_logits(m.forward(np.append(prompt, t1))[-1:], sp, s2).astype(np.float64))[0]
        for t2 in np.flatnonzero(p2):
            exact[(int(t1), int(t2))] = p1[t1] * p2[t2]
    likely = max(exact, key=exact.get)

    class Fixed:  # always drafts the most likely second token: kept often, rejected often
        def propose(self, history, max_tokens):
            return np.array([likely[1]] * min(1, max_tokens), np.int64)

    n = 600
    counts = {}
    for seed in range(n):
        out = tuple(minillm.generate(m, prompt, 3, seed=seed, drafter=Fixed(), **params)[:2].tolist())
        counts[out] = counts.get(out, 0) + 1
    assert set(counts) <= set(exact)
    chi2 = sum((counts.get(o, 0) - n * q) ** 2 / (n * q) for o, q in exact.items())
    assert chi2 < 27.9  # 8 degrees of freedom (9 outcomes): p-value ~5e-4


# ---------------------------------------------------------------------------------------------- a few rows

@pytest.mark.parametrize("N, out", [(2, 1000), (3, 1000), (8, 1000), (2, 12001), (5, 9000), (8, 7777), (1, 12001),
                                    (1, 30000)])
def test_a_few_rows_give_the_plain_product(N, out):
    """One block (out 1000), and many blocks shared between threads plus a remainder smaller than a block."""
    rng = np.random.default_rng(N)
    x = rng.standard_normal((N, 96)).astype(np.float32)
    w = rng.standard_normal((out, 96)).astype(np.float32)
    np.testing.assert_allclose(few_rows_matmul(x, w), x @ w.T, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(fast_linear(x[None], w, np.ones(out, np.float32))[0], x @ w.T + 1, rtol=1e-5, atol=1e-4)


def test_a_product_finishes_without_the_helper_threads_when_they_never_come(monkeypatch):
    """Shares go first come first served: the calling thread takes every share a helper has not taken, so a
    helper held up on a busy core (here: never running at all) cannot keep a decode step waiting."""
    import threading
    from minillm.model import fast_linear as linear_module

    class Absent:  # a pool whose helpers never pick up the work
        jobs = type("Queue", (), {"put": lambda self, job: None})()

    monkeypatch.setattr(linear_module, "_pool", Absent())
    monkeypatch.setattr(linear_module, "THREADS", 2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 256)).astype(np.float32)  # [1, in]
    w = rng.standard_normal((20000, 256)).astype(np.float32)  # [out, in]: 5 M weights, many shares
    result = []
    worker = threading.Thread(target=lambda: result.append(few_rows_matmul(x, w)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert result, "the product waited for a helper that never ran"
    np.testing.assert_allclose(result[0], x @ w.T, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------------------------- draft length

def test_the_draft_length_maximises_expected_tokens_per_unit_of_time():
    # keep 1/2, 1/2: E[tokens] = 1, 1.5, 1.75 for k = 0, 1, 2; per cost 1, 1.3, 1.6: 1, 1.154, 1.094 -> k = 1
    keep, cost = np.array([0.5, 0.5]), np.array([1.0, 1.3, 1.6])
    np.testing.assert_allclose(expected_tokens(keep), [1.0, 1.5, 1.75])
    assert best_draft_length(keep, cost) == 1
    assert best_draft_length(np.full(8, 0.99), 1 + 0.1 * np.arange(9)) == 8  # copying: check everything
    assert best_draft_length(np.full(8, 0.2), 1 + 0.3 * np.arange(9)) == 0  # nothing to copy: plain steps
    assert best_draft_length(np.array([0.3]), np.array([1.0, 1.3])) == 0  # 1.3 / 1.3: a tie goes to the plain step


def test_pass_costs_are_interpolated_between_measured_lengths_and_extrapolated_past_them():
    np.testing.assert_allclose(interpolate_costs({}, 3), [1.0, 1.1, 1.2])  # the prior, in one-token steps
    np.testing.assert_allclose(interpolate_costs({1: 2.0}, 3), [2.0, 2.2, 2.4])
    np.testing.assert_allclose(interpolate_costs({1: 1.0, 3: 2.0}, 5), [1.0, 1.5, 2.0, 2.1, 2.2])  # optimistic above
    np.testing.assert_allclose(interpolate_costs({2: 1.3, 5: 2.2}, 6), [1.0, 1.3, 1.6, 1.9, 2.2, 2.3])  # both ends
    np.testing.assert_allclose(interpolate_costs({1: 1.0, 2: 67.0, 3: 1.3}, 4), [1.0, 1.3, 1.3, 1.4])  # a hiccup
    np.testing.assert_allclose(interpolate_costs({2: 1.0, 3: 0.9}, 4), [0.9, 0.9, 0.9, 0.9])  # never falling


def test_the_schedule_stops_drafting_when_drafts_are_rejected_and_resumes_when_they_are_kept():
    schedule = DraftLength(6)
    for _ in range(30):  # passes over 1 + 2 tokens cost 1.6 steps and the first draft is always rejected
        schedule.record(1, 1.0, known=1, kept=0)
        schedule.record(3, 1.6, known=1, kept=0)
    assert schedule.choose(6) == 0
    for _ in range(30):  # plain steps whose own token matched the (unchecked) first draft: learned for free
        schedule.record(1, 1.0, known=1, kept=1)
    assert schedule.choose(6) >= 1
    for _ in range(30):  # then whole drafts kept
        schedule.record(7, 1.6, known=6, kept=6)
    assert schedule.choose(6) == 6


def test_kept_rates_are_counted_per_kind_of_draft():
    """Prompt lookup's drafts from a 3-token match are kept, those from a 1-token match are not: check the
    first whole, skip the second; a kind never seen takes the rate over all kinds."""
    schedule = DraftLength(8)
    for _ in range(20):
        schedule.record(1, 1.0, known=0, kept=0)
        schedule.record(9, 1.8, known=8, kept=8, kind=3)
        schedule.record(2, 1.3, known=1, kept=0, kind=1)
    assert schedule.choose(8, 3) == 8 and schedule.choose(8, 1) == 0
    assert 0 < schedule.keep_rates(1, 2)[0] < 1 and schedule.choose(8, 2) > 0  # 8 of 9 counted positions kept
    d = PromptLookupDrafter(num_tokens=3, max_ngram_size=3)
    d.propose(np.array([1, 2, 3, 4, 9, 2, 3]), 10)
    assert d.last_ngram_size == 2
    d.propose(np.array([1, 2, 3]), 10)
    assert d.last_ngram_size == 0


class WrongDrafter:
    """Proposes the same four tokens every time: a random model almost never says them."""
    num_tokens = 4

    def propose(self, history, max_tokens):
        return np.array([1, 2, 3, 4][:max_tokens], np.int64)


@pytest.mark.parametrize("name", ["tiny-qwen3", "tiny-qwen3.5"])
def test_the_adaptive_schedule_costs_less_than_checking_every_draft_and_keeps_the_tokens(name):
    """Passes cost 1 + 0.3 (T - 1) steps on the model's clock. Drafts never kept: the adaptive schedule soon
    makes plain steps; drafts always kept: it checks them all, as the constant schedule does."""
    times, tokens = {}, {}
    prompt = np.arange(10, 30)
    for drafter in ("wrong", "oracle"):
        for schedule in ("constant", "adaptive"):
            m = ClockedModel(model(name), 0.3)
            plain = minillm.generate(m.model, prompt, 40, temperature=0.0, stop_token_ids=[])
            d = WrongDrafter() if drafter == "wrong" else ExactOracle(plain, len(prompt), 4)
            stats = SpeculativeStats()
            fast = minillm.generate(m, prompt, 40, temperature=0.0, stop_token_ids=[], drafter=d,
                                    speculative_stats=stats,
                                    draft_schedule=DraftLength(4, clock=m) if schedule == "adaptive" else schedule)
            assert fast.tolist() == plain.tolist()
            times[drafter, schedule], tokens[drafter, schedule] = m.now, stats
    wrong_constant, wrong_adaptive = times["wrong", "constant"], times["wrong", "adaptive"]
    assert wrong_adaptive < 0.75 * wrong_constant and tokens["wrong", "adaptive"].plain_steps > 30
    assert times["oracle", "adaptive"] <= 1.1 * times["oracle", "constant"]


def test_the_adaptive_schedule_resumes_drafting_when_the_text_starts_repeating():
    """Drafts wrong for the first 30 new tokens, right after. The plain steps of the first part still learn,
    for free, whether the drafter's first token was right (the model's own token is or is not it), so they
    stop drafting early and start again right after the switch: a draft is checked again by token 34, and
    the last 50 tokens take at most 16 passes (5 tokens per pass at best: 10). Without that free learning,
    drafting resumes only as old counts fade: at token 36, and 17 passes (measured)."""
    m = ClockedModel(tiny_model("tiny-qwen3"), 0.3)
    prompt = np.arange(10, 30)
    plain = minillm.generate(m.model, prompt, 80, temperature=0.0, stop_token_ids=[])
    exact = ExactOracle(plain, len(prompt), 4)
    plain_time = 1.0 + 0.3 * (len(prompt) - 1) + 79  # the prompt's pass, then 79 one-token steps

    def propose(history, max_tokens):
        right = exact.propose(history, max_tokens)
        return right if len(history) - len(prompt) >= 30 else np.array([1, 2, 3, 4][:len(right)], np.int64)

    d = WrongDrafter()
    d.propose = propose
    stats = SpeculativeStats()
    fast = minillm.generate(m, prompt, 80, temperature=0.0, stop_token_ids=[], drafter=d, speculative_stats=stats,
                            draft_schedule=DraftLength(4, clock=m))
    assert fast.tolist() == plain.tolist()
    made, passes_after, resumed = 1, 0, None  # tokens made before each pass; passes once 30 are made
    for draft, accepted, _ in stats.passes:
        if made >= 30:
            passes_after += 1
            resumed = made if resumed is None and draft else resumed
        made += accepted + 1
    assert resumed <= 34 and passes_after <= 16 and m.now < 0.75 * plain_time


def test_the_adaptive_schedule_checks_good_kinds_of_draft_and_skips_bad_ones():
    """A drafter whose drafts alternate between two kinds: kind 3 always right, kind 1 always wrong (as prompt
    lookup's long and short matches tend to be). Counted per kind, the wrong drafts soon go unchecked while
    the right ones are checked whole: at most 8 drafted tokens wasted in 60 new tokens (measured: 5; with
    the kinds ignored, 39)."""
    m = ClockedModel(tiny_model("tiny-qwen3"), 0.3)
    prompt = np.arange(10, 30)
    plain = minillm.generate(m.model, prompt, 60, temperature=0.0, stop_token_ids=[])
    exact = ExactOracle(plain, len(prompt), 4)

    class Alternating:
        num_tokens, calls, last_ngram_size = 4, 0, 0

        def propose(self, history, max_tokens):
            self.calls += 1
            right = exact.propose(history, max_tokens)
            self.last_ngram_size = 3 if self.calls % 2 else 1
            return right if self.last_ngram_size == 3 else np.array([1, 2, 3, 4][:len(right)], np.int64)

    stats = SpeculativeStats()
    fast = minillm.generate(m, prompt, 60, temperature=0.0, stop_token_ids=[], drafter=Alternating(),
                            speculative_stats=stats, draft_schedule=DraftLength(4, clock=m))
    assert fast.tolist() == plain.tolist()
    wasted = sum(len(draft) - accepted for draft, accepted, _ in stats.passes)
    assert wasted <= 8


def lookup_by_definition(history, num_tokens, max_ngram_size):
    """Prompt lookup spelled out: the largest n whose last-n-gram occurs earlier with something after it;
    the leftmost such occurrence; what follows it, up to num_tokens."""
    h = list(history)
    for n in range(min(max_ngram_size, len(h) - 1), 0, -1):
        for s in range(len(h) - n):
            if h[s:s + n] == h[-n:]:
                return h[s + n:s + n + num_tokens], n
    return [], 0


@settings(max_examples=300, deadline=None)
@given(history=st.lists(st.integers(0, 4), min_size=1, max_size=40), k=st.integers(1, 6), n=st.integers(1, 4))
def test_prompt_lookup_finds_what_its_definition_finds(history, k, n):
    d = PromptLookupDrafter(num_tokens=k, max_ngram_size=n)
    draft = d.propose(np.array(history), 100).tolist()
    assert (draft, d.last_ngram_size) == lookup_by_definition(history, k, n)


# ---------------------------------------------------------------------------------------------- a noisy clock

def test_one_quick_one_token_step_does_not_make_every_draft_look_expensive():
    """Pass costs are medians relative to the one-token steps timed lately: one step timed in a quiet moment
    (0.2 of the others) leaves a 5-token pass at 1.5 steps. (The fastest of the last few, as before, made it
    7.5 steps, and drafting of well-kept drafts stopped.)"""
    schedule = DraftLength(4)
    for seconds in (1.0, 1.0, 0.2, 1.0, 1.0):
        schedule.record(1, seconds, known=1, kept=1)
        schedule.record(5, 1.5, known=4, kept=4)
    assert schedule.costs()[4] == pytest.approx(1.5)
    assert schedule.choose(4) == 4


def drive(schedule, cost, passes, rng, keep=0.75):
    """Run the schedule for ``passes`` passes on a modelled clock: a pass over T tokens takes cost(T) seconds,
    each drafted token is kept with probability ``keep`` (until the first rejection). Returns each pass's k."""
    chosen = []
    for _ in range(passes):
        k = schedule.choose(4)
        kept = 0
        while kept < k and rng.random() < keep:
            kept += 1
        schedule.record(k + 1, cost(k + 1), known=min(kept + 1, k), kept=kept)
        chosen.append(k)
    return np.array(chosen)


def test_the_schedule_falls_back_to_plain_steps_when_drafted_passes_get_expensive_and_probes_again_later():
    """Drafts kept 3 times in 4 throughout. Passes over several tokens cost 1 + 0.1 (T - 1) steps, then (another
    process takes a core: the few-rows product waits on it) 6 steps for a while, then 1 + 0.1 (T - 1) again.
    The schedule drafts, falls back to plain steps within a few passes of the change, and drafts again once
    the expensive timings have expired (EXPIRE passes): the re-probe."""
    rng = np.random.default_rng(0)
    schedule = DraftLength(4)
    cheap = drive(schedule, lambda T: 1 + 0.1 * (T - 1), 100, rng)
    expensive = drive(schedule, lambda T: 1.0 if T == 1 else 6.0, 200, rng)
    again = drive(schedule, lambda T: 1 + 0.1 * (T - 1), 500, rng)
    assert (cheap[20:] > 0).mean() > 0.9  # drafting while it pays
    assert (expensive[20:] > 0).mean() < 0.05  # plain steps while a pass over several tokens costs 6
    assert (again[-200:] > 0).mean() > 0.9  # probed again, and drafting once more


def test_the_guard_stops_drafting_that_makes_fewer_tokens_than_its_time_would_and_tries_again_later():
    """Passes over 5 tokens at 1.5 steps that emit one token each, their drafts' outcomes unknown to the kept
    rates (known = 0): only the guard sees drafting lose. After GUARD_WINDOW such passes: BACKOFF plain steps,
    then a draft again; after the next GUARD_WINDOW losing passes twice as many plain steps."""
    from minillm.generation.draft_length import BACKOFF, GUARD_WINDOW
    schedule = DraftLength(4)
    schedule.record(1, 1.0, known=0, kept=0)
    schedule.record(1, 1.0, known=0, kept=0)
    runs = []  # lengths of the runs of plain steps between drafted passes
    for _ in range(3 * GUARD_WINDOW + 3 * BACKOFF + 2 * BACKOFF):
        k = schedule.choose(4)
        if k == 0:
            runs[-1:] = [runs[-1] + 1] if runs and runs[-1] > 0 else [1]
        elif runs and runs[-1] > 0:
            runs.append(0)
        schedule.record(k + 1, 1.0 if k == 0 else 1.5, known=0, kept=0)
    plain_runs = [r for r in runs if r > 0]
    assert plain_runs[:2] == [BACKOFF, 2 * BACKOFF]


def test_a_length_that_is_very_dear_is_probed_once_and_then_avoided_until_its_timing_expires():
    """On a busy core a pass over 9+ tokens (OpenBLAS's threaded product, not the few-rows one) cost 15-27
    one-token steps (measured). Drafts kept 19 times in 20: the schedule tries a long pass once, then keeps to
    8 tokens or fewer until that timing expires (EXPIRE passes), then probes once more."""
    from minillm.generation.draft_length import EXPIRE
    rng = np.random.default_rng(0)
    schedule = DraftLength(32)
    dear = lambda T: 1 + 0.12 * (T - 1) if T <= 8 else 27.0  # noqa: E731
    chosen = []
    for _ in range(EXPIRE + 100):
        k = schedule.choose(32)
        kept = 0
        while kept < k and rng.random() < 0.95:
            kept += 1
        schedule.record(k + 1, dear(k + 1), known=min(kept + 1, k), kept=kept)
        chosen.append(k)
    long_passes = np.flatnonzero(np.array(chosen) >= 8)
    assert len(long_passes[long_passes < EXPIRE]) == 1 and len(long_passes) <= 3


def test_lengths_not_timed_yet_are_tried_in_doublings_so_a_wrong_guess_costs_little():
    """A pass is at most GROWTH (2) times as long as the longest length timed lately: drafts kept whole every
    time climb 2, 4, 8, 16, 32 tokens, then stay at the full 33. Without the cap the kept rates of the first
    pass send the second straight to 33 tokens, a length whose cost is still a guess (on a busy machine a pass
    over 9+ tokens cost 15-27 one-token steps, measured; the first drafts of an answer, n-grams of the chat
    template, are seldom kept)."""
    schedule = DraftLength(32)
    schedule.record(1, 1.0, known=0, kept=0)  # one timed one-token step: the reference
    chosen = []
    for _ in range(7):
        k = schedule.choose(32)
        schedule.record(k + 1, 1 + 0.1 * k, known=min(k + 1, 32), kept=min(k + 1, 32))
        chosen.append(k)
    assert chosen == [1, 3, 7, 15, 31, 32, 32]


def test_the_climb_to_long_passes_starts_again_once_their_timings_expire():
    """Lengths whose samples expired (EXPIRE passes without them) count as untimed again: after a long run of
    plain steps, the first drafted pass is short (2 tokens), whatever the kept rates say."""
    from minillm.generation.draft_length import EXPIRE
    schedule = DraftLength(32)
    schedule.record(1, 1.0, known=0, kept=0)
    for _ in range(6):
        k = schedule.choose(32)
        schedule.record(k + 1, 1 + 0.1 * k, known=min(k + 1, 32), kept=min(k + 1, 32))
    assert schedule.choose(32) == 32
    for _ in range(EXPIRE):  # plain steps (nothing drafted), each timed
        schedule.record(1, 1.0, known=0, kept=0)
    assert schedule.choose(32) == 1


# ------------------------------------------------------------------- what the statistics count (issue 31)

@pytest.mark.parametrize("right", [True, False])
def test_drafted_counts_the_tokens_the_model_checked_not_what_the_drafter_proposed(right):
    """`minillm generate --speculative` prints "X% of N drafted tokens accepted": N is what the model checked.
    Under the adaptive schedule a proposal is often checked in part or not at all (a one-token step timed as
    the reference, drafts that do not pay); those unchecked tokens were neither accepted nor rejected. So a
    drafter that is always right shows 100%, and N is the sum of the checked drafts' lengths."""
    m = ClockedModel(tiny_model("tiny-qwen3"), 0.3)
    prompt = np.arange(10, 30)
    plain = minillm.generate(m.model, prompt, 40, temperature=0.0, stop_token_ids=[])
    inner = ExactOracle(plain, len(prompt), 4) if right else WrongDrafter()
    proposed = []

    class Counting:
        num_tokens = 4

        def propose(self, history, max_tokens):
            draft = inner.propose(history, max_tokens)
            proposed.append(len(draft))
            return draft

    stats = SpeculativeStats()
    fast = minillm.generate(m, prompt, 40, temperature=0.0, stop_token_ids=[], drafter=Counting(),
                            speculative_stats=stats, draft_schedule=DraftLength(4, clock=m))
    assert fast.tolist() == plain.tolist()
    checked = sum(len(draft) for draft, _, _ in stats.passes)
    assert sum(proposed) > checked  # the schedule left some proposed tokens unchecked (else nothing to count)
    assert stats.drafted == checked
    assert stats.accepted == sum(accepted for _, accepted, _ in stats.passes)
    if right:
        assert stats.acceptance_rate == 1.0


@pytest.mark.parametrize("hiccup_at", [0, -1])
def test_one_slow_timing_first_or_last_does_not_set_a_pass_lengths_cost(hiccup_at):
    """A pass held up by another process (9 one-token steps instead of 1.4) among normal ones: the length's cost
    is the median of its samples, 1.4, whether the slow one came first (the first probe of a length) or last,
    and drafts kept throughout are still checked whole."""
    schedule = DraftLength(4)
    samples = [1.4, 1.4, 1.4]
    samples[hiccup_at] = 9.0
    for seconds in samples:
        schedule.record(1, 1.0, known=1, kept=1)
        schedule.record(5, seconds, known=4, kept=4)
    assert schedule.costs()[4] == pytest.approx(1.4)
    assert schedule.choose(4) == 4
