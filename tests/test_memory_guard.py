"""loss_and_grads refuses a batch whose activations cannot fit, before allocating them (issue 31, class 7)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minillm
import minillm.backward.memory as memory
from minillm.errors import InputError
from conftest import tiny_model


def test_a_batch_too_large_for_the_memory_left_is_refused_naming_its_shape_before_allocating(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 4 * 2 ** 30)  # what the fuzz campaign's child has
    with pytest.raises(InputError, match=r"\[3000, 256\].*GiB"):
        minillm.loss_and_grads(tiny_model("tiny-qwen3"), np.zeros((3000, 256), np.int64))


def test_a_batch_that_fits_is_not_refused(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 4 * 2 ** 30)
    loss, grads = minillm.loss_and_grads(tiny_model("tiny-qwen3"), np.zeros((2, 16), np.int64))
    assert np.isfinite(loss) and grads


def test_the_memory_left_counts_the_address_space_limit_of_the_process():
    code = textwrap.dedent("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2 ** 30, resource.getrlimit(resource.RLIMIT_AS)[1]))
        from minillm.backward.memory import available_bytes
        print(available_bytes() <= 3 * 2 ** 30)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr


def test_the_memory_left_is_counted_in_bytes():
    # /proc/meminfo gives kB: the budget is at least the free physical memory (MemAvailable counts it and more),
    # which sysconf gives in pages. Read as bytes, the budget would be 1024 times too small.
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert memory.available_bytes() >= free // 2
