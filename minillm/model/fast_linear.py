"""The engine's linear layer: the product of linear.py (y = x W^T + b), computed fast for the shapes it meets.

``fast_linear`` gives the numbers of ``linear.linear`` up to float32 rounding (tests/test_modules.py,
tests/test_speculative.py); every engine module calls it (imported as ``linear``). The math lives in
linear.py; this module holds only what makes it fast, so each can be read alone:

Why the reshape: every position (each token of each row) is multiplied by the same W, so [B, T, in] is
flattened to one matrix [B*T, in] and multiplied once. NumPy's matmul of a stacked [B, T, in] array by a 2-D
matrix loops over B smaller products instead, measured 3-4 x slower here for B = 8 (same numbers).

A few rows (2 <= N <= FEW_ROWS: a speculative verification, a small batch): see ``rows_matmul`` below. One
row (a decode step): OpenBLAS's threaded matrix-vector product on a quiet machine, ``rows_matmul`` while
another process keeps a core busy (other_load.py says which, and why). Many rows (a prompt) go to BLAS as one
product.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading

import numpy as np

from .lora import LoraWeight, lora_delta
from .other_load import OTHER_LOAD

FEW_ROWS = 8  # products with 1 .. FEW_ROWS rows go through rows_matmul (measured at 16: 4.0 x a one-token
#   step on the 0.5B shapes, the plain x @ W.T 3.6 x)
BLOCK_MULTIPLY_ADDS = 1 << 19  # per block product of N >= 2 rows: N * rows * in <= this (see rows_matmul)
ONE_ROW_BLOCK = 1 << 18  # per block product of one row: rows * in <= this (OpenBLAS's gemv stays single-threaded)
ONE_ROW_MIN_WEIGHTS = 1 << 18  # a smaller W times one row is BLAS's plain gemv (single-threaded at that size)
POOL_MIN_WEIGHTS = 1 << 19  # a smaller W (2 MB in float32) is multiplied in the calling thread alone
SHARE_MIN_WEIGHTS = 1 << 20  # a share (what one thread takes at a time) holds at least this many weights ...
SHARES_PER_THREAD = 4  # ... and a product is cut into at most this many shares per thread


def _thread_count() -> int:
    """The cores this process may use, at most what OPENBLAS_NUM_THREADS / OMP_NUM_THREADS allow (an MPI rank,
    a test harness, a user who set one thread: the pool honours it as BLAS does)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) >= 1:
            return min(cores, int(value))
    return cores


THREADS = _thread_count()


def fast_linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """y = x W^T + b (linear.py), flattened to one product.   x [..., in], weight [out, in], bias [out] or None
    -> y [..., out]. A LoraWeight (lora.py) in place of W adds its adapter: y = x W^T + b + s dropout(x) A^T B^T."""
    if isinstance(weight, LoraWeight):
        return fast_linear(x, weight.weight, bias) + lora_delta(x, weight)  # [..., out]: base + low-rank path
    x2 = x.reshape(-1, x.shape[-1])  # [N, in], N = all leading positions
    if 1 < len(x2) <= FEW_ROWS or (len(x2) == 1 and weight.size >= ONE_ROW_MIN_WEIGHTS and OTHER_LOAD.busy()):
        y = rows_matmul(x2, weight)  # [N, out]: the same product, read at the bandwidth limit
    else:
        y = x2 @ weight.T  # [N, in] @ [in, out] -> [N, out]
    y = y.reshape(*x.shape[:-1], weight.shape[0])  # [..., out]
    if bias is not None:
        y += bias  # [..., out] + [out]
    return y


class _Pool:
    """THREADS - 1 helper threads that sleep until a product needs them (never spinning: see rows_matmul)."""

    def __init__(self, helpers: int):
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(helpers):
            threading.Thread(target=self._serve, name=f"minillm-matmul-{i}", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self.jobs.get().help()


_pool: _Pool | None = None


def _forget_pool_after_fork() -> None:
    """A forked child inherits the pool object but not its threads: work sent to it would wait forever."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool_after_fork)


class _Shares:
    """One product cut into shares that threads take one at a time, first come first served.

    The calling thread takes shares too and never waits for a helper that has not started: a helper that
    is late (its core busy with another process) finds the shares gone and does nothing, and the caller
    waits only for shares a helper has actually taken.
    """

    def __init__(self, run, bounds: list[tuple[int, int]]):
        self.run, self.bounds = run, bounds
        self.claims = itertools.count()  # next() on it is atomic under the GIL: each share is taken once
        self.done: queue.SimpleQueue = queue.SimpleQueue()  # one item per share a helper finished (or its error)

    def take(self) -> int:
        """Run shares until none is left (the calling thread); how many it ran."""
        ran = 0
        while (i := next(self.claims)) < len(self.bounds):
            self.run(*self.bounds[i])
            ran += 1
        return ran

    def help(self) -> None:
        """Run shares until none is left (a helper thread), reporting each one."""
        while (i := next(self.claims)) < len(self.bounds):
            try:
                self.run(*self.bounds[i])
                self.done.put(None)
            except BaseException as e:  # noqa: BLE001 - handed to the caller, who raises it
                self.done.put(e)

    def wait(self, ran: int) -> None:
        """The caller ran ``ran`` shares: wait for the helpers' reports on the others."""
        for _ in range(len(self.bounds) - ran):
            error = self.done.get()
            if error is not None:
                raise error


def rows_matmul(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x W^T for one row or a few, in blocks of W's rows shared between threads.   x [N, in], weight [out, in]
    -> [N, out]

    Why: a decode step is bound by memory bandwidth, since each weight is read once for one row. Two to
    eight rows (a speculative verification of k drafted tokens, a batch of B sequences) should cost about the
    same, as the weights are still read once. OpenBLAS's general matrix product does not manage it: it
    copies ("packs") panels of W far larger than the CPU's cache before multiplying, so W crosses the memory
    bus about three times. Measured on Qwen2.5-0.5B's [151936, 896] head (2 cores): 18 ms for 1 row, 55-65 ms
    for 2 to 16. And one row through OpenBLAS's threaded matrix-vector product collapses when another
    process keeps a core busy: OpenBLAS's threads spin (sched_yield) between calls, so the scheduler counts
    them as CPU hogs, and each of a step's ~170 products waits for its helper's next time slice: decode of
    the 0.5B shapes ran 2.7-4x slower than through this pool on a loaded machine (docs/PERFORMANCE.md, "A busy
    machine").

    Four measured choices make these products cheap, and steady on a busy machine:
    1. Blocks of W's rows small enough that OpenBLAS runs each in one thread without packing: for N >= 2,
       N * rows * in <= BLOCK_MULTIPLY_ADDS, its small-matrix path (permitted only up to N * rows * in = 100**3
       on this CPU family, so blocks of 2**20 fall back to the packed, threaded product); for one row,
       rows * in <= ONE_ROW_BLOCK, below the size where OpenBLAS's matrix-vector product starts threads.
    2. One NumPy call per share, not one per block: a share's run of blocks is viewed as a stack
       [blocks, rows, in] (no copy), and matmul of a stack by one matrix loops over the blocks in C, one
       small BLAS product each. (A Python loop over blocks cost about 3 us per block: thousands per step.)
    3. Our own helper threads, which sleep on a queue between products (NumPy releases the GIL inside
       matmul). A sleeping thread that wakes is let onto a busy core at once; a spinning one waits its turn.
    4. Shares taken first come first served (``_Shares``), the calling thread taking them too: a helper
       held up on a busy core costs at most the share it took, and the calling thread does the rest, so
       decode degrades towards one core's speed instead of waiting on the other core's time slices.
    A W under POOL_MIN_WEIGHTS (in cache, or too small to stream) is not worth a hand-off and stays in the
    calling thread. Each block computes W_block x^T into rows of y^T, so the result is y^T viewed as [N, out]
    (no copy). Same numbers as x @ W.T up to float32 rounding (tests/test_speculative.py).
    """
    N, D_in = x.shape
    out = weight.shape[0]
    if N == 1:
        rows = max(8, ONE_ROW_BLOCK // D_in // 8 * 8)  # W rows per block, a multiple of 8
    else:
        rows = max(8, BLOCK_MULTIPLY_ADDS // (N * D_in) // 8 * 8)
    blocks = out // rows  # whole blocks; the last out - blocks * rows rows are one smaller product
    yT = np.empty((out, N), np.result_type(x, weight))  # [out, N]
    xT = x.T  # [in, N] view

    def run(first: int, last: int) -> None:  # blocks first .. last - 1 in one call
        W_run = weight[first * rows:last * rows].reshape(last - first, rows, D_in)  # [blocks, rows, in] view
        y_run = yT[first * rows:last * rows].reshape(last - first, rows, N)  # [blocks, rows, N] view
        np.matmul(W_run, xT, out=y_run)  # [blocks, rows, in] @ [in, N] -> [blocks, rows, N]

    if THREADS == 1 or blocks < 2 or weight.size < POOL_MIN_WEIGHTS:
        if blocks:
            run(0, blocks)
    else:
        global _pool
        if _pool is None:
            _pool = _Pool(THREADS - 1)
        count = min(blocks, THREADS * SHARES_PER_THREAD, max(THREADS, weight.size // SHARE_MIN_WEIGHTS))
        edges = [blocks * s // count for s in range(count + 1)]  # [count + 1]: shares of (almost) equal size
        job = _Shares(run, list(zip(edges[:-1], edges[1:])))
        for _ in range(THREADS - 1):
            _pool.jobs.put(job)
        job.wait(job.take())
    if blocks * rows < out:  # the remainder, [out % rows, in] @ [in, N], with x^T contiguous (4 x faster here)
        np.matmul(weight[blocks * rows:], np.ascontiguousarray(xT), out=yT[blocks * rows:])
    return yT.T  # [N, out] view of [out, N]


few_rows_matmul = rows_matmul  # the name it had when only 2 .. FEW_ROWS rows came here
