"""The engine's linear layer: the product of linear.py (y = x W^T + b), computed fast for the shapes it meets.

``fast_linear`` gives the numbers of ``linear.linear`` up to float32 rounding (tests/test_modules.py,
tests/test_speculative.py); every engine module calls it (imported as ``linear``). The math lives in
linear.py; this module holds only what makes it fast, so each can be read alone:

Why the reshape: every position (each token of each row) is multiplied by the same W, so [B, T, in] is
flattened to one matrix [B*T, in] and multiplied once. NumPy's matmul of a stacked [B, T, in] array by a 2-D
matrix loops over B smaller products instead, measured 3-4 x slower here for B = 8 (same numbers).

A few rows at a time (2 <= N <= FEW_ROWS): see ``few_rows_matmul`` below.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .lora import LoraWeight, lora_delta

FEW_ROWS = 8  # products with 2 .. FEW_ROWS rows go through few_rows_matmul (measured at 16: 4.0 x a one-token
#   step on the 0.5B shapes, the plain x @ W.T 3.6 x)
BLOCK_MULTIPLY_ADDS = 1 << 19  # per block product: N * rows * in <= this (see few_rows_matmul)
THREADS = os.cpu_count() or 1
POOL_MIN_WEIGHTS = 1 << 22  # a smaller W (16 MB in float32) is multiplied in the calling thread alone
_pool: ThreadPoolExecutor | None = None


def _forget_pool_after_fork() -> None:
    """A forked child inherits the pool object but not its threads: work sent to it would wait forever."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def fast_linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """y = x W^T + b (linear.py), flattened to one product.   x [..., in], weight [out, in], bias [out] or None
    -> y [..., out]. A LoraWeight (lora.py) in place of W adds its adapter: y = x W^T + b + s dropout(x) A^T B^T."""
    if isinstance(weight, LoraWeight):
        return fast_linear(x, weight.weight, bias) + lora_delta(x, weight)  # [..., out]: base + low-rank path
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
    matrix-vector kernel, on every core, at the bandwidth limit). Two to eight rows (a speculative
    verification of k drafted tokens, a batch of B sequences) should cost about the same, as the weights
    are still read once. OpenBLAS's general matrix product does not manage it: it copies ("packs") panels
    of W far larger than the CPU's cache before multiplying, so W crosses the memory bus about three times.
    Measured on Qwen2.5-0.5B's [151936, 896] head (2 cores): 18 ms for 1 row, 55-65 ms for 2 to 16.

    Three measured choices make the few-rows product cheap:
    1. Blocks of W's rows small enough (N * rows * in <= BLOCK_MULTIPLY_ADDS) that OpenBLAS takes its
       small-matrix path: no packing, one thread, W read once, the block within the core's L2 cache. The
       size bites: OpenBLAS permits that path only up to N * rows * in = 100**3 on this CPU family, so
       blocks of 2**20 multiply-adds (just above) fall back to the packed, threaded product.
    2. One NumPy call per thread, not one per block: W's run of blocks is viewed as a stack
       [blocks, rows, in] (no copy), and matmul of a stack by one matrix loops over the blocks in C, one
       small BLAS product each. (A Python loop over blocks cost about 3 us per block: thousands per step.)
    3. The calling thread computes the first share itself while the pool's threads compute the others
       (NumPy releases the GIL inside matmul), so all cores stream their part of W and only THREADS - 1
       hand-offs are paid per product. A W under POOL_MIN_WEIGHTS (in cache, or too small to stream) is
       not worth a hand-off and stays in the calling thread.
    Whole cached steps on the 0.5B shapes, k tokens / 1 token: 1.32 (k=2), 1.52 (k=4), 2.01 (k=8), against
    1.54, 1.90, 2.89 with a Python loop over blocks and a pool thread per share (benchmarks/speculative.py).
    Each block computes W_block x^T into rows of y^T, so the result is y^T viewed as [N, out] (no copy).
    Same numbers as x @ W.T up to float32 rounding (tests/test_speculative.py).
    """
    N, D_in = x.shape
    out = weight.shape[0]
    rows = max(8, BLOCK_MULTIPLY_ADDS // (N * D_in) // 8 * 8)  # W rows per block, a multiple of 8
    blocks = out // rows  # whole blocks; the last out - blocks * rows rows are one smaller product
    yT = np.empty((out, N), np.result_type(x, weight))  # [out, N]
    xT = x.T  # [in, N] view

    def run(first: int, last: int) -> None:  # blocks first .. last - 1 in one call
        if last > first:
            W_run = weight[first * rows:last * rows].reshape(last - first, rows, D_in)  # [blocks, rows, in] view
            y_run = yT[first * rows:last * rows].reshape(last - first, rows, N)  # [blocks, rows, N] view
            np.matmul(W_run, xT, out=y_run)  # [blocks, rows, in] @ [in, N] -> [blocks, rows, N]

    share = -(-blocks // THREADS)  # blocks per thread, rounded up
    if THREADS == 1 or blocks < 2 or weight.size < POOL_MIN_WEIGHTS:
        run(0, blocks)
    else:
        global _pool
        if _pool is None:
            _pool = ThreadPoolExecutor(THREADS - 1, thread_name_prefix="minillm-matmul")
        others = [_pool.submit(run, t * share, min((t + 1) * share, blocks)) for t in range(1, THREADS)]
        run(0, min(share, blocks))  # this thread's share, while the others run theirs
        for job in others:
            job.result()
    if blocks * rows < out:  # the remainder, [out % rows, in] @ [in, N], with x^T contiguous (4 x faster here)
        np.matmul(weight[blocks * rows:], np.ascontiguousarray(xT), out=yT[blocks * rows:])
    return yT.T  # [N, out] view of [out, N]
