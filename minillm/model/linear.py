"""A linear layer, as PyTorch's ``nn.Linear`` stores it: ``y = x @ W.T + b``.

Checkpoints store every projection weight as ``[out_features, in_features]``. ``W.T`` is a free view (no copy):
NumPy hands the transposed layout straight to BLAS.

Why the reshape: every position (each token of each row) is multiplied by the same W, so [B, T, in] is
flattened to one matrix [B*T, in] and multiplied once. NumPy's matmul of a stacked [B, T, in] array by a 2-D
matrix loops over B smaller products instead, measured 3-4 x slower here for B = 8 (same numbers).

A few rows at a time (2 <= N <= FEW_ROWS): see ``few_rows_matmul`` below.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

FEW_ROWS = 8  # products with 2 .. FEW_ROWS rows go through few_rows_matmul (measured: past 8 it loses)
BLOCK_MULTIPLY_ADDS = 1 << 19  # per block product: N * rows * in <= this (see few_rows_matmul)
THREADS = os.cpu_count() or 1
_pool: ThreadPoolExecutor | None = None


def _forget_pool_after_fork() -> None:
    """A forked child inherits the pool object but not its threads: work sent to it would wait forever."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """y = x W^T + b.   x [..., in], weight [out, in], bias [out] or None -> y [..., out]."""
    x2 = x.reshape(-1, x.shape[-1])  # [N, in], N = all leading positions
    if 1 < len(x2) <= FEW_ROWS:
        y = few_rows_matmul(x2, weight)  # [N, out]: the same product, read at the bandwidth limit
    else:
        y = x2 @ weight.T  # [N, in] @ [in, out] -> [N, out]
    y = y.reshape(*x.shape[:-1], weight.shape[0])  # [..., out]
    if bias is not None:
        y += bias  # [..., out] + [out]
    return y


def few_rows_matmul(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x W^T for a few rows, in blocks of W's rows split across threads.   x [N, in], weight [out, in] -> [N, out]

    Why: a decode step is bound by memory bandwidth, since each weight is read once for one row (BLAS's
    matrix-vector kernel, on every core, at the bandwidth limit). Two to sixteen rows (a speculative
    verification of k drafted tokens, a batch of B sequences) should cost about the same, as the weights
    are still read once. OpenBLAS's general matrix product does not manage it: it copies ("packs") panels
    of W far larger than the CPU's cache before multiplying, so W crosses the memory bus about three times.
    Measured on Qwen2.5-0.5B's [151936, 896] head (2 cores): 18 ms for 1 row, 55-65 ms for 2 to 16.

    Cut W into blocks of rows small enough (N * rows * in <= BLOCK_MULTIPLY_ADDS) that OpenBLAS takes its
    small-matrix path: no packing, one thread, W read once. The size is a measured threshold, and it bites:
    OpenBLAS permits that path only up to N * rows * in = 100**3 on this CPU family, so blocks of 2**20
    multiply-adds (just above) fall back to the packed, threaded product, and two such calls from two
    threads collide (2.2 x a one-token step for k = 2 on the 0.5B shapes, against 1.56 x with 2**19, which
    also keeps a block within the core's L2 cache). The blocks are shared out among THREADS Python
    threads (NumPy releases the GIL inside matmul), so all cores stream their half of W. Each block
    computes W_block x^T into rows of y^T, so the result is y^T viewed as [N, out] (no copy).
    Same numbers as x @ W.T up to float32 rounding (tests/test_modules.py).
    """
    N, D_in = x.shape
    out = weight.shape[0]
    rows = max(8, BLOCK_MULTIPLY_ADDS // (N * D_in) // 8 * 8)  # W rows per block, a multiple of 8
    yT = np.empty((out, N), np.result_type(x, weight))  # [out, N]
    xT = x.T  # [in, N] view
    starts = range(0, out, rows)
    share = -(-len(starts) // THREADS)  # blocks per thread, rounded up

    def run(t: int) -> None:  # thread t: a contiguous run of blocks
        for s in starts[t * share:(t + 1) * share]:
            np.matmul(weight[s:s + rows], xT, out=yT[s:s + rows])  # [rows, in] @ [in, N] -> [rows, N]

    if THREADS == 1 or len(starts) == 1:
        run(0) if THREADS == 1 else np.matmul(weight, xT, out=yT)
    else:
        global _pool
        if _pool is None:
            _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="minillm-matmul")
        list(_pool.map(run, range(THREADS)))
    return yT.T  # [N, out] view of [out, N]
