"""The ring allreduce on one screen: N workers end with the sum of their buffers, each sending 2(N-1)/N of one.

    N workers in a ring, each buffer cut into N chunks.
    reduce-scatter, N-1 steps: at step s, worker r sends its chunk (r - s) % N to worker r + 1, which adds it
        to its own. Each chunk travels round the ring gathering every worker's part: after N-1 steps worker r
        holds the complete sum of chunk (r + 1) % N.
    allgather, N-1 steps: worker r passes on the complete chunk it holds (first its own, then the one it just
        received) to worker r + 1, which copies it. After N-1 steps every worker has every summed chunk.

Each worker sends 2 (N-1) chunks of n / N elements: 2 (N-1)/N x n, which hardly grows with N (n for 2 workers,
under 2n for any number), and the links of the ring all work at once. So an allreduce of b bytes takes about
2 (N-1)/N x b / bandwidth (+ 2 (N-1) latencies): the cost model of docs/DISTRIBUTED.md. MPI picks this or
another algorithm by size; the sum is the same (up to float rounding: the order of the additions differs).
"""

from __future__ import annotations

import numpy as np


def ring_allreduce(buffers: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Every worker's buffer [n] -> every worker's copy of their sum [n], and the elements one worker sent."""
    N = len(buffers)
    results = [b.copy() for b in buffers]  # N x [n]: what each worker holds
    chunks = [np.array_split(b, N) for b in results]  # N x N views: chunks[worker][c]
    sent = 0
    for s in range(N - 1):  # reduce-scatter
        outgoing = [chunks[r][(r - s) % N].copy() for r in range(N)]  # every worker sends at once
        for r in range(N):
            chunks[(r + 1) % N][(r - s) % N] += outgoing[r]  # the receiver adds it to its own chunk
        sent += len(outgoing[0])
    for s in range(N - 1):  # allgather
        outgoing = [chunks[r][(r + 1 - s) % N].copy() for r in range(N)]  # a complete chunk
        for r in range(N):
            chunks[(r + 1) % N][(r + 1 - s) % N][...] = outgoing[r]  # the receiver copies it
        sent += len(outgoing[0])
    return results, sent
