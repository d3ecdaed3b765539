"""The one-row product's choice of path: OpenBLAS's threaded product on a quiet machine, minillm's pool while
another process keeps a core busy (model/other_load.py). Readings are injected, so nothing here depends on the
machine the tests run on."""

from __future__ import annotations

import numpy as np
import pytest

import minillm.model.fast_linear as fast_linear_module
import minillm.model.other_load as other_load
from minillm.model.other_load import BUSY_CORES, INTERVAL, OtherLoad, other_cores


def test_other_cores_is_the_machine_time_minus_our_own_over_the_wall_time():
    # over 2 s the machine used 3 CPU seconds, we used 1.6 of them: others used 1.4 s, 0.7 of a core
    assert other_cores((10.0, 13.0), (5.0, 6.6), 2.0) == pytest.approx(0.7, rel=1e-12)
    assert other_cores((10.0, 11.0), (5.0, 6.2), 1.0) == 0.0  # the clocks tick apart: never below zero


class Readings:
    """A machine whose clocks advance as the test says."""

    def __init__(self):
        self.wall = self.machine = self.own = 0.0

    def advance(self, seconds: float, ours: float, others: float) -> None:
        self.wall += seconds
        self.own += ours * seconds
        self.machine += (ours + others) * seconds


def detector(r: Readings) -> OtherLoad:
    return OtherLoad(clock=lambda: r.wall, machine=lambda: r.machine, own=lambda: r.own)


def test_busy_only_when_other_processes_use_more_than_half_a_core():
    r = Readings()
    d = detector(r)
    assert d.busy() is False  # the first reading: nothing to compare with, quiet
    r.advance(INTERVAL, ours=2.0, others=0.0)  # our own two threads on both cores (OpenBLAS spinning): quiet
    assert d.busy() is False
    r.advance(INTERVAL, ours=1.0, others=BUSY_CORES + 0.2)  # another process on the other core
    assert d.busy() is True
    r.advance(INTERVAL / 10, ours=1.0, others=0.0)  # within the interval: the last verdict stands
    assert d.busy() is True
    r.advance(INTERVAL, ours=1.9, others=BUSY_CORES - 0.2)  # the other job ended
    assert d.busy() is False


def test_no_proc_stat_counts_as_quiet():
    assert OtherLoad(machine=lambda: None).busy() is False


def test_the_one_row_product_takes_the_pool_only_on_a_busy_machine(monkeypatch):
    calls = []
    monkeypatch.setattr(fast_linear_module, "rows_matmul", lambda x, w: calls.append(len(x)) or x @ w.T)
    w = np.random.default_rng(0).standard_normal((1024, 512), dtype=np.float32)  # 2**19 weights: one row may pool
    x = np.ones((1, 512), np.float32)
    for busy, expected in ((False, []), (True, [1])):
        calls.clear()
        monkeypatch.setattr(other_load.OTHER_LOAD, "busy", lambda busy=busy: busy)
        np.testing.assert_array_equal(fast_linear_module.fast_linear(x, w), x @ w.T)
        assert calls == expected
