"""The prompt's pass (many rows at once) made fast: machinery only; the math is attention.py, mlp.py, rope.py.

A prefill multiplies T rows by every weight (T = 128 to thousands), so it is matrix-matrix work, and around the
products it does element-wise work on [T, F]-sized arrays. What this module changes, each measured
(docs/PERFORMANCE.md, benchmarks/profile.py) and tested equal to the readable path (tests/test_prefill.py):

1. **Fused products.** q, k, v read the same normed x, and so do gate and up. At load (``fuse_projections``)
   their weights are laid out as consecutive rows of one array each, [(H + 2K) Dh, D] and [2F, D], and the
   dataclass fields become views of those rows: the checkpoint's names and shapes are unchanged, no memory is
   added (the separate arrays are freed), and a prompt's pass makes one product where it made three (or two).
   ``stacked`` finds the fused array again from the views, and finds nothing once a field has been replaced
   (a LoRA wrapper, an optimiser's new array): the readable path then runs, so nothing can go stale.
2. **Element-wise work in place.** silu(gate) * up is written into gate's columns of the fused product (one
   temporary per row chunk, small enough to stay in the core's cache), RoPE rotates q and k in place in the
   fused product's columns, the attention softmax works in the scores the product made.
3. **Causal attention in blocks of queries.** Without padding, a block of queries scores only the keys up to its
   last query: a T-token prompt computes about half of the T x T scores (and the softmax of those), and a block's
   scores stay small enough for the cache. The scores are laid out keys-down (the softmax reduces down rows) and
   the result in the order merge_heads wants (see causal_attention_in_blocks).
4. **Products as W @ x^T.** OpenBLAS computes ``gate_up_proj @ x.T`` ([2F, N]) faster than
   ``x @ gate_up_proj.T`` ([N, 2F]) for N = 9 .. 128 rows on this machine, and about as fast at 256-512 (the same
   sums in another order: it streams the weight in panels used at once instead of packing large blocks of it
   first; measured in docs/PERFORMANCE.md, ``benchmarks/profile.py --gemm-orders``). The result is the
   transposed layout, which the MLP uses as it is: gate^T and up^T are the two contiguous halves of the rows for silu * up, h^T is down_proj's operand as it stands, and only the
   MLP's output [D, N] is read transposed, by the residual add. That add costs 0.14 ms instead of 0.02 at 128
   rows, 0.9 instead of 0.13 at 512 (NumPy's transposed read), so from DOWN_ROWS_AS_X_FIRST rows on down_proj is
   x @ W^T on h^T's transposed view (measured with the add: W @ x^T 10% faster at 128 rows, 5% slower at 256).
   q/k/v too, for models without q/k-norm: RoPE then rotates contiguous runs of the transposed layout.
5. **Two threads for the element-wise work.** NumPy runs a ufunc on one core, while the products use both (BLAS
   threads); NumPy releases the GIL inside ufuncs on large arrays, so halves of the rows go to two threads.
6. **RMSNorm in three passes** (``rms_norm_rows``, which block.py takes for a prompt's rows): the sum of squares
   without a squared temporary. (The other saving of a prompt's pass is in transformer.py: when only the last
   logits are wanted, the last layer computes the last positions' outputs only.)

Decoding (one row) and the few-rows products of speculative decoding keep their own paths (fast_linear.py).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .fast_linear import FEW_ROWS, fast_linear
from .lora import LoraWeight, lora_delta

ROW_CHUNK = 16  # rows per element-wise chunk: [16, 4864] float32 = 311 KB, inside a core's L2 cache
ATTENTION_BLOCK = 32  # queries per block of causal attention (T = 128: 10/16 of the T x T scores; T = 512: 17/32)
THREADS = min(2, os.cpu_count() or 1)  # element-wise work split in two: the products already use every core
PARALLEL_MIN = 1 << 18  # elements: a smaller array is done in one thread (a hand-off costs tens of microseconds)
WEIGHT_FIRST = True  # q/k/v and the MLP's products as W @ x^T (results [out, N], point 4 above); False: x @ W^T
DOWN_ROWS_AS_X_FIRST = 256  # from this many rows on, down_proj is x @ W^T (its output then needs no transposed add)
MASKED = np.finfo(np.float32).min  # attention.py's score for a masked key
_pool: ThreadPoolExecutor | None = None


def _forget_pool_after_fork() -> None:
    """A forked child inherits the pool object but not its thread: work sent to it would wait forever."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def many_rows(x: np.ndarray) -> bool:
    """A product over more rows than the few-rows path takes (fast_linear.py): a prompt's pass."""
    return x.size // x.shape[-1] > FEW_ROWS


# ------------------------------------------------------------------------------------------ fused weights

def fuse_projections(layers) -> None:
    """Lay q/k/v (weights and biases) and gate/up out as consecutive rows of one array each, in place.

    ``layers``: the dense decoder layers' LayerWeights (block.py). Each field becomes a view of the fused array
    (same shape and values), so the memory stays what it was. Layers of other kinds are left alone.
    """
    from .attention import AttentionWeights
    from .mlp import MLPWeights

    for layer in layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if isinstance(attn, AttentionWeights):
            _fuse_fields(attn, ("q_proj", "k_proj", "v_proj"))
            _fuse_fields(attn, ("q_proj_bias", "k_proj_bias", "v_proj_bias"))
        if isinstance(mlp, MLPWeights):
            _fuse_fields(mlp, ("gate_proj", "up_proj"))


def _fuse_fields(weights, names: tuple[str, ...]) -> None:
    parts = [getattr(weights, n) for n in names]
    if not all(isinstance(p, np.ndarray) and p.dtype == np.float32 for p in parts) or \
            len({p.shape[1:] for p in parts}) != 1 or stacked(*parts) is not None:
        return  # absent (no bias), not plain float32 arrays, or already fused
    fused = np.concatenate(parts, axis=0)  # [sum of rows, ...]
    start = 0
    for name, part in zip(names, parts):
        setattr(weights, name, fused[start:start + len(part)])  # a view: the same rows, now inside `fused`
        start += len(part)


def fused_weight(*parts) -> np.ndarray | None:
    """The fused array of these projections (LoRA-wrapped ones by their base weight), or None (see ``stacked``)."""
    return stacked(*(base_weight(p) for p in parts))


def fused_product(x: np.ndarray, fused: np.ndarray, parts, bias: np.ndarray | None = None) -> np.ndarray:
    """x [N, in] @ fused^T (+ bias), plus each LoRA-wrapped part's low-rank term in its columns.   -> [N, out]

    The same order of operations as fast_linear (base + bias, then + the adapter's term).
    """
    y = x @ fused.T  # [N, in] @ [in, out] -> [N, out]
    if bias is not None:
        y += bias
    start = 0
    for part in parts:
        rows = part.shape[0]
        if isinstance(part, LoraWeight):
            y[:, start:start + rows] += lora_delta(x, part)  # [N, rows]
        start += rows
    return y


def base_weight(part) -> np.ndarray:
    """A projection's own array (a LoRA-wrapped one's base weight)."""
    return part.weight if isinstance(part, LoraWeight) else part


def fused_product_t(x: np.ndarray, fused: np.ndarray, parts, bias: np.ndarray | None = None) -> np.ndarray:
    """fused_product's result transposed, computed as fused @ x^T.   x [N, in] -> [out, N]

    The same sums with the weight as BLAS's first operand (point 4 above); the bias, then each LoRA-wrapped
    part's term in its rows, added after the base product, as fast_linear adds them.
    """
    yT = fused @ x.T  # [out, in] @ [in, N] -> [out, N]
    if bias is not None:
        yT += bias[:, None]  # [out, N] + [out, 1]
    start = 0
    for part in parts:
        rows = part.shape[0]
        if isinstance(part, LoraWeight):
            yT[start:start + rows] += lora_delta(x, part).T  # [rows, N]
        start += rows
    return yT


def stacked(*parts) -> np.ndarray | None:
    """The array whose consecutive row blocks ``parts`` are (as fuse_projections lays them out), else None."""
    base = getattr(parts[0], "base", None)
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous:
        return None
    address = base.ctypes.data
    for part in parts:
        if not isinstance(part, np.ndarray) or part.base is not base or part.ctypes.data != address or \
                not part.flags.c_contiguous:
            return None
        address += part.nbytes
    return base if address == base.ctypes.data + base.nbytes else None


# ------------------------------------------------------------------------------------------ element-wise

def _in_two(fn, rows: int, size: int) -> None:
    """fn(first, last) over rows 0 .. rows - 1: the first half in this thread, the second in a pool thread.

    ``size``: the elements the work touches; under PARALLEL_MIN it all runs in this thread."""
    global _pool
    if THREADS < 2 or rows < 2 * ROW_CHUNK or size < PARALLEL_MIN:
        fn(0, rows)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(1, thread_name_prefix="minillm-prefill")
    half = rows // 2
    other = _pool.submit(fn, half, rows)
    fn(0, half)
    other.result()


def silu_times_up_in_place(gate_up: np.ndarray, F: int) -> np.ndarray:
    """gate <- silu(gate) * up, in the gate columns of the fused product.   gate_up [N, 2F] -> view [N, F]

    The same operations as mlp.py's ``silu(gate) * up`` (u / (1 + exp(-u)), then * up), so the same numbers,
    done a chunk of rows at a time into one small temporary instead of four [N, F] arrays.
    """
    def run(first: int, last: int) -> None:
        tmp = np.empty((ROW_CHUNK, F), np.float32)  # [chunk, F]
        for r in range(first, last, ROW_CHUNK):
            gate, up = gate_up[r:min(r + ROW_CHUNK, last), :F], gate_up[r:min(r + ROW_CHUNK, last), F:]
            _silu_times_up(gate, up, tmp[:len(gate)])
    _in_two(run, len(gate_up), gate_up.size // 2)
    return gate_up[:, :F]  # [N, F] view (rows 2F apart), which BLAS reads as it is


def _silu_times_up(gate: np.ndarray, up: np.ndarray, t: np.ndarray) -> None:
    """gate <- silu(gate) * up in place, as u / (1 + exp(-u)) * up; ``t`` a scratch array of gate's shape."""
    np.negative(gate, out=t)
    with np.errstate(over="ignore"):  # exp(-u) = inf for u < -88: u / inf = -0.0, silu's limit
        np.exp(t, out=t)
    t += np.float32(1.0)
    np.divide(gate, t, out=gate)  # silu(gate)
    gate *= up


def silu_times_up_in_place_t(gate_upT: np.ndarray, F: int) -> np.ndarray:
    """silu_times_up_in_place on the transposed product.   gate_upT [2F, N] -> gate rows, now silu(gate) * up [F, N]

    gate^T and up^T are the two contiguous halves of the rows; the same operations (so the same numbers),
    ROW_CHUNK * F elements at a time.
    """
    N = gate_upT.shape[1]
    chunk = max(1, ROW_CHUNK * F // N)  # rows of gate^T per chunk: as many elements as ROW_CHUNK rows of [N, F]

    def run(first: int, last: int) -> None:
        tmp = np.empty((chunk, N), np.float32)  # [chunk, N]
        for r in range(first, last, chunk):
            gate, up = gate_upT[r:min(r + chunk, last)], gate_upT[F + r:F + min(r + chunk, last)]
            _silu_times_up(gate, up, tmp[:len(gate)])
    _in_two(run, F, F * N)
    return gate_upT[:F]  # [F, N]


def rope_in_place(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> None:
    """x <- x * cos + rotate_half(x) * sin, in place.   x [N, heads, Dh], cos/sin [N, 1, Dh]

    Written per half (x1, x2 = the two halves): x1 cos - x2 sin and x2 cos + x1 sin, the same roundings as
    rope.py's apply_rope (rotate_half negates exactly), without its concatenated copy.
    """
    half = x.shape[-1] // 2

    def run(first: int, last: int) -> None:
        xs, c, s = x[first:last], cos[first:last], sin[first:last]
        x1, x2 = xs[..., :half], xs[..., half:]
        t1 = x2 * s[..., :half]  # [rows, heads, Dh/2]
        t2 = x1 * s[..., half:]
        xs *= c
        x1 -= t1
        x2 += t2
    _in_two(run, len(x), x.size)


def rope_in_place_t(xT: np.ndarray, cosT: np.ndarray, sinT: np.ndarray) -> None:
    """rope_in_place on the transposed layout.   xT [heads, Dh, N], cosT/sinT [Dh, N]

    The halves are rows 0 .. Dh/2 - 1 and Dh/2 .. Dh - 1 of each head: the same operations as rope_in_place
    (so apply_rope's numbers), on contiguous runs of N. One thread: on this layout it is a few hundred
    microseconds per layer for 128 tokens, less than a hand-off gains.
    """
    half = xT.shape[1] // 2
    x1, x2 = xT[:, :half], xT[:, half:]  # [heads, Dh/2, N] each
    t1 = x2 * sinT[:half]  # [heads, Dh/2, N]
    t2 = x1 * sinT[half:]
    xT *= cosT
    x1 -= t1
    x2 += t2


def rms_norm_rows(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """norm.py's rms_norm for a prompt's rows, in three passes over x where it makes five.   x [..., N] -> [..., N]

    The sum of squares is one pass (einsum: no squared [..., N] temporary), then x * inv_rms into the result and
    * weight in place. The same operations as rms_norm except the sum, whose additions run in another order
    (rounding differences of ~1e-7 relative): 0.19 -> 0.06 ms for [128, 896] (docs/PERFORMANCE.md).
    """
    inv_rms = np.einsum("...i,...i->...", x, x)[..., None]  # [..., 1] sum of x^2
    inv_rms /= np.float32(x.shape[-1])  # mean of x^2
    inv_rms += np.float32(eps)
    np.sqrt(inv_rms, out=inv_rms)
    np.divide(np.float32(1.0), inv_rms, out=inv_rms)  # [..., 1]: 1 / rms
    y = x * inv_rms  # [..., N]
    y *= weight  # weight * (x * inv_rms), as rms_norm (a product commutes exactly)
    return y


# ------------------------------------------------------------------------------------------ the sub-layers

def project_qkv_fused(x: np.ndarray, qkv_proj: np.ndarray, qkv_bias: np.ndarray | None, w, num_heads: int,
                      num_kv_heads: int, eps: float, cos: np.ndarray, sin: np.ndarray):
    """attention.py's project_qkv as one product.   x [B, T, D] -> q [B, H, T, Dh], k, v [B, K, T, Dh]"""
    from .norm import rms_norm

    B, T, _ = x.shape
    H, K = num_heads, num_kv_heads
    Dh = qkv_proj.shape[0] // (H + 2 * K)
    if WEIGHT_FIRST and w.q_norm is None:  # Qwen2/2.5: W @ x^T, and RoPE on the transposed layout
        qkvT = fused_product_t(x.reshape(B * T, -1), qkv_proj, (w.q_proj, w.k_proj, w.v_proj),
                               qkv_bias)  # [(H+2K) Dh, D] @ [D, N] -> [(H+2K) Dh, N]
        cosT, sinT = (np.ascontiguousarray(a.reshape(B * T, Dh).T) for a in (cos, sin))  # [Dh, N] each
        rope_in_place_t(qkvT[:(H + K) * Dh].reshape(H + K, Dh, B * T), cosT, sinT)  # q and k: H + K heads
        # [n Dh, N] -> [B, n, T, Dh] views (T and Dh strided: the cache write and attention copy what they need)
        heads = lambda a: a.reshape(-1, Dh, B, T).transpose(2, 0, 3, 1)
        return heads(qkvT[:H * Dh]), heads(qkvT[H * Dh:(H + K) * Dh]), heads(qkvT[(H + K) * Dh:])
    qkv = fused_product(x.reshape(B * T, -1), qkv_proj, (w.q_proj, w.k_proj, w.v_proj),
                        qkv_bias)  # [N, D] @ [D, (H+2K) Dh] -> [N, (H+2K) Dh]
    cos, sin = cos.reshape(B * T, 1, Dh), sin.reshape(B * T, 1, Dh)  # [N, 1, Dh]: the same for every head
    if w.q_norm is not None:  # Qwen3: per-head RMSNorm before RoPE, one weight for q and another for k
        q = rms_norm(qkv[:, :H * Dh].reshape(B * T, H, Dh), w.q_norm, eps)  # [N, H, Dh]
        k = rms_norm(qkv[:, H * Dh:(H + K) * Dh].reshape(B * T, K, Dh), w.k_norm, eps)  # [N, K, Dh]
        rope_in_place(q, cos, sin)
        rope_in_place(k, cos, sin)
    else:  # q and k side by side: one rotation of H + K heads
        rope_in_place(qkv[:, :(H + K) * Dh].reshape(B * T, H + K, Dh), cos, sin)
        q = qkv[:, :H * Dh].reshape(B * T, H, Dh)  # [N, H, Dh] view
        k = qkv[:, H * Dh:(H + K) * Dh].reshape(B * T, K, Dh)  # [N, K, Dh] view
    v = qkv[:, (H + K) * Dh:].reshape(B * T, K, Dh)  # [N, K, Dh] view
    heads = lambda a: a.reshape(B, T, a.shape[1], Dh).transpose(0, 2, 1, 3)  # [N, n, Dh] -> [B, n, T, Dh] view
    return heads(q), heads(k), heads(v)


def swiglu_fused(x: np.ndarray, gate_up_proj: np.ndarray, w) -> np.ndarray:
    """mlp.py's swiglu_mlp with gate and up as one product.   x [..., D] -> [..., D]"""
    F = gate_up_proj.shape[0] // 2
    if WEIGHT_FIRST:
        x2 = x.reshape(-1, x.shape[-1])  # [N, D]
        gate_upT = fused_product_t(x2, gate_up_proj, (w.gate_proj, w.up_proj))  # [2F, D] @ [D, N] -> [2F, N]
        hT = silu_times_up_in_place_t(gate_upT, F)  # [F, N]
        if len(x2) >= DOWN_ROWS_AS_X_FIRST:  # the residual add would read a large [D, N] transposed: see above
            return fast_linear(hT.T, w.down_proj).reshape(x.shape)  # [N, F] view @ [F, D] -> [..., D]
        yT = fused_product_t(hT.T, base_weight(w.down_proj), (w.down_proj,))  # [D, F] @ [F, N] -> [D, N]
        return yT.T.reshape(x.shape)  # [N, D] view of [D, N] -> [..., D]
    gate_up = fused_product(x.reshape(-1, x.shape[-1]), gate_up_proj,
                            (w.gate_proj, w.up_proj))  # [N, D] @ [D, 2F] -> [N, 2F]
    h = silu_times_up_in_place(gate_up, F)  # [N, F]
    return fast_linear(h, w.down_proj).reshape(x.shape)  # [N, F] @ [F, D] -> [..., D] (down_proj may carry LoRA)


def causal_attention_in_blocks(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """attention.py's scaled_dot_product_attention for a causal mask without padding, a block of queries at a time.

    q [B, H, T, Dh], k/v [B, K, S, Dh] (the T new keys last), mask [1, 1, T, S] -> [B, H, T, Dh]
    A block of queries t0 .. t1-1 sees no key after S - T + t1 - 1, so only those keys are scored: the masked
    scores it leaves out would have had probability exactly 0 (exp(MASKED - max) underflows to 0). Every query
    sees at least itself, so no row is left without a key (padding is what makes such rows: not taken here).

    Two layouts differ from attention.py's, for speed, not for the math:
    * the scores are computed transposed, keys down and queries across ([end, H/K*rows] per key head): the
      softmax's max and sum over the keys then run down the rows, one vectorised pass over contiguous rows
      each, instead of a short reduction per query (the max alone took a fifth of the attention time);
    * the result is written in [B, T, H, Dh] order and returned as a [B, H, T, Dh] view of it, so the
      merge of the heads before o_proj (attention.merge_heads) is a view, not a copy.
    The sum over the keys adds in another order than attention.py's (rounding differences of ~1e-7).
    """
    B, H, T, Dh = q.shape
    K, S = k.shape[1], k.shape[2]
    G = H // K
    q = q.reshape(B, K, G, T, Dh)  # [B, K, H/K, T, Dh]
    merged = np.empty((B, T, K, G, Dh), np.float32)  # [B, T, K, H/K, Dh]: what merge_heads lays out
    out = merged.transpose(0, 2, 3, 1, 4)  # [B, K, H/K, T, Dh] view
    for t0 in range(0, T, ATTENTION_BLOCK):
        t1 = min(t0 + ATTENTION_BLOCK, T)
        end, rows = S - T + t1, t1 - t0  # keys 0 .. end - 1 are all this block may see
        qbT = q[:, :, :, t0:t1].transpose(0, 1, 4, 2, 3).reshape(B, K, Dh, G * rows)  # [B, K, Dh, H/K*rows] copy
        scores_t = k[:, :, :end] @ qbT  # [B, K, end, Dh] @ [B, K, Dh, H/K*rows] -> [B, K, end, H/K*rows]
        scores_t *= Dh ** -0.5
        seen = mask[0, 0, t0:t1, :end]  # [rows, end]: may query t0 + i see key j
        hidden = np.flatnonzero(~seen.all(axis=0))  # keys some query of the block may not see (its diagonal part)
        if len(hidden):  # MASKED into those keys' rows only (keys seen by every query are left alone)
            lo = hidden[0]
            np.copyto(scores_t[:, :, lo:].reshape(B, K, end - lo, G, rows), MASKED,
                      where=~seen[:, lo:].T[:, None])  # mask^T [end - lo, 1, rows]
        scores_t -= scores_t.max(axis=-2, keepdims=True)  # softmax over the keys (axis -2 here), in place
        np.exp(scores_t, out=scores_t)
        scores_t /= scores_t.sum(axis=-2, keepdims=True)
        out[:, :, :, t0:t1] = (scores_t.swapaxes(-1, -2) @ v[:, :, :end]).reshape(B, K, G, rows, Dh)  # probs v
    return out.reshape(B, H, T, Dh)  # [B, H, T, Dh] view of [B, T, H, Dh]
