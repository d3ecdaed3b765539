"""The k largest values of each row, in the order ``torch.topk`` returns them on a CPU, ties included.

    values, indices = top_k(p, k)        p [N, E] -> [N, k] each: the k largest per row, largest first

When the values of a row are all different there is one right answer, and NumPy's argsort gives it. When
some are equal (two experts with exactly the same router probability), which one comes first, and which
one is kept at the boundary (the k-th and the (k+1)-th equal), is whatever the sorting algorithm does:

+--------------------------------------------------------------------------------------------------------+
| torch.topk IS NOT "LOWEST INDEX FIRST". On a CPU it pairs each value with its index and calls the C++  |
| standard library: std::partial_sort when 64 k <= E, else std::nth_element then std::sort of the first  |
| k - 1. Neither is stable: of four equal probabilities, torch's top 2 are experts 2 and 3, not 0 and 1. |
| To route exactly as transformers does, rows with a tie among their k + 1 largest values are redone     |
| here by the same steps as GCC's libstdc++ (the library of PyTorch's Linux wheels), checked against     |
| torch.topk on hundreds of tie-heavy rows (weights/moe_topk_reference.npz, test_moe_properties.py).     |
+--------------------------------------------------------------------------------------------------------+

Ties are rare with real router logits (float32 probabilities of different logits are seldom equal), but
an all-zero input or two identical router rows makes them certain. The emulation is plain Python, slow,
and runs only on tied rows; every other row takes the vectorised path. (On a GPU, torch.topk uses another
algorithm with other tie orders: "as transformers does" means on a CPU here.)
"""

from __future__ import annotations

import numpy as np


def top_k(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """torch.topk(values, k, largest=True, sorted=True) on a CPU.   values [N, E] -> values, indices [N, k]"""
    order = np.argsort(-values, axis=-1, kind="stable")[:, :min(k + 1, values.shape[-1])]  # [N, k+1] largest first
    largest = np.take_along_axis(values, order, axis=-1)  # [N, k+1] (k when k = E)
    indices = order[:, :k]  # [N, k]: right for every row whose k + 1 largest values are all different
    for row in np.flatnonzero((largest[:, 1:] == largest[:, :-1]).any(axis=-1)):  # rows with a tie among them
        indices[row] = torch_cpu_topk_indices(values[row].tolist(), k)
    return np.take_along_axis(values, indices, axis=-1), indices  # [N, k], [N, k]


def torch_cpu_topk_indices(row: list[float], k: int) -> list[int]:
    """The indices torch.topk returns for one row (aten/src/ATen/native/TopKImpl.h, largest=True, sorted=True)."""
    queue = [(value, j) for j, value in enumerate(row)]  # std::pair<value, index>
    if k * 64 <= len(queue):
        _partial_sort(queue, 0, k, len(queue))
    else:
        _nth_element(queue, 0, k - 1, len(queue))
        _sort(queue, 0, k - 1)  # the first k - 1 only: nth_element already put the k-th in place
    return [j for _, j in queue[:k]]


# What follows is libstdc++'s <bits/stl_algo.h> and <bits/stl_heap.h>, step for step, on a Python list ``a`` of
# (value, index) pairs; ``first`` / ``last`` are positions, as the C++ iterators. ``_before(x, y)`` is
# torch's comparator for largest=True: x goes before y when its value is larger (NaN never occurs here).

def _before(x: tuple, y: tuple) -> bool:
    return x[0] > y[0]


def _lg(n: int) -> int:
    return n.bit_length() - 1  # floor(log2(n))


def _adjust_heap(a: list, first: int, hole: int, length: int, value: tuple) -> None:
    top, child = hole, hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if _before(a[first + child], a[first + child - 1]):
            child -= 1
        a[first + hole] = a[first + child]
        hole = child
    if length % 2 == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        a[first + hole] = a[first + child - 1]
        hole = child - 1
    parent = (hole - 1) // 2  # __push_heap
    while hole > top and _before(a[first + parent], value):
        a[first + hole] = a[first + parent]
        hole, parent = parent, (parent - 1) // 2
    a[first + hole] = value


def _pop_heap(a: list, first: int, last: int, result: int) -> None:
    value, a[result] = a[result], a[first]
    _adjust_heap(a, first, 0, last - first, value)


def _heap_select(a: list, first: int, middle: int, last: int) -> None:
    length = middle - first
    for parent in range((length - 2) // 2, -1, -1) if length >= 2 else ():  # __make_heap
        _adjust_heap(a, first, parent, length, a[first + parent])
    for i in range(middle, last):
        if _before(a[i], a[first]):
            _pop_heap(a, first, middle, i)


def _partial_sort(a: list, first: int, middle: int, last: int) -> None:
    _heap_select(a, first, middle, last)
    while middle - first > 1:  # __sort_heap
        middle -= 1
        _pop_heap(a, first, middle, middle)


def _partition_pivot(a: list, first: int, last: int) -> int:
    """__unguarded_partition_pivot: the median of three moved to ``first``, then a Hoare partition."""
    x, y, z = first + 1, first + (last - first) // 2, last - 1
    if _before(a[x], a[y]):
        median = y if _before(a[y], a[z]) else z if _before(a[x], a[z]) else x
    else:
        median = x if _before(a[x], a[z]) else z if _before(a[y], a[z]) else y
    a[first], a[median] = a[median], a[first]
    lo, hi = first + 1, last
    while True:
        while _before(a[lo], a[first]):
            lo += 1
        hi -= 1
        while _before(a[first], a[hi]):
            hi -= 1
        if not lo < hi:
            return lo
        a[lo], a[hi] = a[hi], a[lo]
        lo += 1


def _linear_insert(a: list, last: int) -> None:
    value, previous = a[last], last - 1
    while _before(value, a[previous]):
        a[last] = a[previous]
        last, previous = previous, previous - 1
    a[last] = value


def _insertion_sort(a: list, first: int, last: int) -> None:
    for i in range(first + 1, last):
        if _before(a[i], a[first]):
            a[first:i + 1] = [a[i]] + a[first:i]
        else:
            _linear_insert(a, i)


def _nth_element(a: list, first: int, nth: int, last: int) -> None:
    """__introselect: partition until the block holding ``nth`` is at most 3 long (or too deep: heap select)."""
    depth = 2 * _lg(last - first)
    while last - first > 3:
        if depth == 0:
            _heap_select(a, first, nth + 1, last)
            a[first], a[nth] = a[nth], a[first]
            return
        depth -= 1
        cut = _partition_pivot(a, first, last)
        first, last = (cut, last) if cut <= nth else (first, cut)
    _insertion_sort(a, first, last)


def _sort(a: list, first: int, last: int) -> None:
    """std::sort: __introsort_loop down to blocks of 16, then __final_insertion_sort."""
    if last - first < 2:
        return
    _introsort_loop(a, first, last, 2 * _lg(last - first))
    if last - first > 16:
        _insertion_sort(a, first, first + 16)
        for i in range(first + 16, last):
            _linear_insert(a, i)
    else:
        _insertion_sort(a, first, last)


def _introsort_loop(a: list, first: int, last: int, depth: int) -> None:
    while last - first > 16:
        if depth == 0:
            _partial_sort(a, first, last, last)
            return
        depth -= 1
        cut = _partition_pivot(a, first, last)
        _introsort_loop(a, cut, last, depth)
        last = cut
