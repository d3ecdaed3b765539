"""Each sampling filter against its definition (transformers' semantics)."""

from __future__ import annotations

import numpy as np
import pytest

from minillm.generation.sampling import (SamplingParams, apply_repetition_penalty, min_p_filter, process_logits, sample,
                              softmax, top_k_filter, top_p_filter)

logits = np.array([[2.0, -1.0, 0.5, 3.0, 0.0, -3.0]], np.float32)


def kept(x):
    return set(np.flatnonzero(np.isfinite(x[0])).tolist())


def test_temperature_zero_is_argmax():
    rng = np.random.default_rng(0)
    assert sample(logits, SamplingParams(temperature=0.0), rng).tolist() == [3]


def test_top_k_keeps_the_k_largest():
    assert kept(top_k_filter(logits, 2)) == {0, 3}
    assert kept(top_k_filter(logits, 0)) == set(range(6))  # 0 = off


def test_top_p_keeps_the_smallest_set_reaching_p():
    p = softmax(logits.astype(np.float64))[0]  # [0.24, 0.012, 0.054, 0.65, 0.033, 0.0016]
    # sorted descending: 3 (0.65), 0 (0.24) -> 0.89; adding 2 -> 0.94
    assert p[3] + p[0] < 0.9 < p[3] + p[0] + p[2]
    assert kept(top_p_filter(logits, 0.9)) == {3, 0, 2}
    assert kept(top_p_filter(logits, 0.5)) == {3}


def test_min_p_keeps_tokens_above_a_fraction_of_the_top_probability():
    p = softmax(logits.astype(np.float64))[0]
    expected = {i for i in range(6) if p[i] >= 0.1 * p.max()}
    assert kept(min_p_filter(logits, 0.1)) == expected == {0, 3}


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    seen = np.array([[True, True, False, False, False, False]])
    out = apply_repetition_penalty(logits, seen, 2.0)
    np.testing.assert_allclose(out, [[1.0, -2.0, 0.5, 3.0, 0.0, -3.0]])


def test_processors_run_in_transformers_order():
    """penalty -> temperature -> top_k -> top_p -> min_p."""
    seen = np.array([[False, False, False, True, False, False]])
    params = SamplingParams(temperature=0.5, top_k=3, top_p=0.9, min_p=0.05, repetition_penalty=1.5)
    x = apply_repetition_penalty(logits, seen, 1.5) / np.float32(0.5)
    x = min_p_filter(top_p_filter(top_k_filter(x, 3), 0.9), 0.05)
    np.testing.assert_array_equal(process_logits(logits, params, seen), x)


def test_sampling_frequencies_follow_the_filtered_distribution():
    rng = np.random.default_rng(0)
    params = SamplingParams(temperature=1.0, top_k=3)
    draws = np.concatenate([sample(np.repeat(logits, 2000, axis=0), params, rng) for _ in range(5)])
    p = softmax(top_k_filter(logits, 3).astype(np.float64))[0]
    freq = np.bincount(draws, minlength=6) / len(draws)
    assert set(np.flatnonzero(freq)) <= {0, 2, 3}
    np.testing.assert_allclose(freq, p, atol=0.02)


@pytest.mark.parametrize("kw", [dict(temperature=-1), dict(top_p=0.0), dict(top_p=1.5), dict(min_p=2.0),
                                dict(top_k=-1), dict(repetition_penalty=0.0)])
def test_invalid_sampling_settings_are_refused(kw):
    import minillm
    with pytest.raises(minillm.InputError):
        SamplingParams(**kw)
