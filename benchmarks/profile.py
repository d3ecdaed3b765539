"""Where the time goes: per-op prefill profiles (128 and 512 tokens), the matmul floor at the same shapes, decode.

    python benchmarks/profile.py --model /work/data/q25-shape          # any checkpoint directory
    python benchmarks/profile.py --shape qwen2.5-0.5b                  # builds benchmarks/out/qwen2.5-0.5b if missing
    python benchmarks/profile.py --model PATH --tokens 128 512 --repeats 5 --decode 0
    python benchmarks/profile.py --model PATH --readable          # the path before model/prefill.py, profiled
    python benchmarks/profile.py --model PATH --ab 10             # readable path vs engine, interleaved rounds
    python benchmarks/profile.py --model PATH --ab-order 10       # engine: x @ W^T, blocks of 128 vs its defaults
    python benchmarks/profile.py --model PATH --gemm-orders       # every projection as x @ W^T and as W @ x^T
    python benchmarks/profile.py --model PATH --ab-last 30        # engine: all rows in the last layer vs kept ones

It wraps minillm's own functions with timers (in this script only; the library is untouched) and charges each
op its exclusive time (a wrapped function's time minus that of the wrapped functions it calls):
  projections    every linear product, by weight (q/k/v, o, gate/up, down; a fused one by its fused name)
  attention      scores, mask, softmax, weighted values (scaled_dot_product_attention)
  SwiGLU         silu(gate) * up: the MLP minus its projections
  norms, RoPE    rms_norm (input / post-attention / final), apply_rope
  heads, cache   the attention sub-layer minus the above: split / merge heads, the KV cache writes
  residual adds  the decoder layer minus its two sub-layers
  LM head        the last position only ([1, D] x [D, V]), as generation asks for
  other          embedding, mask, RoPE tables, Python: the rest of forward()

The floor, measured in the same run, next to the profile:
  * the matmul floor: a large float32 product (2048 x 2048 x 2048, all threads), FLOP/s. The prefill's FLOPs (every
    projection, the LM head on one position, the attention products over the causal triangle) over that rate is the
    time the prefill would take at the floor; ``fraction of the floor`` = that time / the measured prefill time.
  * the same GEMMs alone: each projection product the prefill made, at its exact shape ([128, 896] x [896, 4864], ...)
    with the model's own weights, timed by itself (best of several), summed over the calls. It says how much of the
    gap is OpenBLAS at these shapes and how much is everything around the products.
Medians over ``--repeats`` prefills, the floors measured before and after (the better kept).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repository, not benchmarks/ (profile.py would shadow)

import numpy as np  # noqa: E402

import minillm  # noqa: E402
import minillm.model.attention as attention  # noqa: E402
import minillm.model.block as block  # noqa: E402
import minillm.model.mlp as mlp  # noqa: E402
import minillm.model.moe as moe  # noqa: E402
import minillm.model.prefill as engine  # noqa: E402
import minillm.model.transformer as model_module  # noqa: E402
from minillm.generation.generate import prefill  # noqa: E402
from minillm.model.fast_linear import FEW_ROWS  # noqa: E402
from minillm.model.norm import rms_norm  # noqa: E402
from minillm.tools.bench import ROOT, build_random_checkpoint, measure_matmul as bench_matmul  # noqa: E402

CLOCK = time.perf_counter  # --cpu-time: time.thread_time (this thread's CPU seconds, whatever else the machine runs)
TIMES: dict[str, float] = defaultdict(float)
CALLS: list[tuple[str, int, np.ndarray, bool]] = []  # (label, rows, weight, as W @ x^T) of every projection product
_stack: list[float] = []  # time spent in wrapped children of each open wrapped call
LABELS: dict[int, str] = {}  # id(weight array) -> its name


def timed(part, fn):
    """fn, charging its exclusive time to ``part`` (a name, or a function of the arguments giving one)."""
    def wrapper(*args, **kwargs):
        _stack.append(0.0)
        t = CLOCK()
        out = fn(*args, **kwargs)
        elapsed = CLOCK() - t
        children = _stack.pop()
        if _stack:
            _stack[-1] += elapsed
        TIMES[part(*args) if callable(part) else part] += elapsed - children
        return out
    return wrapper


def projection_label(x, weight, *rest, weight_first: bool = False) -> str:
    label = LABELS.get(id(weight), f"other product {list(weight.shape)}")
    CALLS.append((label, int(np.prod(x.shape[:-1])), weight, weight_first))
    return "projection " + label


def projection_label_t(x, weight, *rest) -> str:
    """A product computed as W @ x^T (model/prefill.py's fused_product_t)."""
    return projection_label(x, weight, weight_first=True)


def instrument(model) -> None:
    for layer in model.weights.layers:
        for part in (layer.self_attn, layer.mlp):
            for name, value in vars(part).items():
                if isinstance(value, np.ndarray) and value.ndim == 2:
                    LABELS[id(value)] = name
    LABELS[id(model.weights.lm_head)] = "lm_head"
    for layer in model.weights.layers:  # the engine's fused arrays (model/prefill.py), when the loader made them
        for name, parts in (("q/k/v fused", ("q_proj", "k_proj", "v_proj")), ("gate/up fused", ("gate_proj", "up_proj"))):
            part = layer.self_attn if name.startswith("q") else layer.mlp
            fused = engine.fused_weight(*(getattr(part, n) for n in parts))
            if fused is not None:
                LABELS[id(fused)] = name
    engine.fused_product = timed(projection_label, engine.fused_product)
    engine.fused_product_t = timed(projection_label_t, engine.fused_product_t)  # W @ x^T: gate/up, down_proj
    engine.fast_linear = timed(projection_label, engine.fast_linear)  # down_proj after the fused gate/up
    engine.silu_times_up_in_place = timed("SwiGLU (silu(gate) * up)", engine.silu_times_up_in_place)
    engine.silu_times_up_in_place_t = timed("SwiGLU (silu(gate) * up)", engine.silu_times_up_in_place_t)
    engine.rope_in_place = timed("RoPE", engine.rope_in_place)
    engine.rope_in_place_t = timed("RoPE", engine.rope_in_place_t)
    attention.linear = timed(projection_label, attention.linear)
    mlp.linear = timed(projection_label, mlp.linear)
    model_module.linear = timed(projection_label, model_module.linear)  # the LM head's product
    attention.apply_rope = timed("RoPE", attention.apply_rope)
    attention.rms_norm = timed("norms", attention.rms_norm)  # Qwen3's q/k-norm
    attention.scaled_dot_product_attention = timed("attention (scores, softmax, values)",
                                                   attention.scaled_dot_product_attention)
    attention.project_qkv = timed("heads, cache writes", attention.project_qkv)
    block.self_attention = timed("heads, cache writes", block.self_attention)
    block.rms_norm = timed("norms", block.rms_norm)
    engine.rms_norm_rows = timed("norms", engine.rms_norm_rows)  # a prompt's rows (block.py takes it from prefill)
    mlp.silu = timed("SwiGLU (silu(gate) * up)", mlp.silu)
    moe.swiglu_mlp = timed("SwiGLU (silu(gate) * up)", moe.swiglu_mlp)
    model_module.decoder_layer = timed("residual adds", model_module.decoder_layer)
    model_module.lm_head = timed("LM head", model_module.lm_head)
    model_module.Model.final_norm = timed("norms", model_module.Model.final_norm)


def measure_matmul(n: int = 2048, repeats: int = 5) -> float:
    """float32 matmul throughput, GFLOP/s (bench.py's measurement, timed by CLOCK)."""
    return bench_matmul(n, repeats, CLOCK)


def prefill_flops(cfg, T: int) -> float:
    """FLOPs a T-token prefill needs: every projection on T rows, the LM head on one, attention over the triangle;
    in the last layer, attention, o_proj and the MLP on the last FEW_ROWS + 1 rows only (what the model computes
    when only the last logits are wanted, transformer.py; q/k/v still on every row, for the cache)."""
    D, F, H, K, Dh, L = (cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.num_key_value_heads,
                         cfg.head_dim, cfg.num_hidden_layers)
    qkv = 2 * (D * H * Dh + 2 * D * K * Dh)  # per row: q, k, v
    rest = 2 * (H * Dh * D + 3 * D * F)  # per row: o, gate, up, down
    causal_pairs = T * (T + 1) / 2  # (query, key) pairs a causal prefill scores
    attention_flops = 2 * 2 * H * Dh * causal_pairs  # q k^T and probs v
    kept = min(T, FEW_ROWS + 1)  # rows the last layer computes after its q/k/v
    last_layer = T * qkv + kept * rest + 2 * 2 * H * Dh * kept * T
    return (L - 1) * (T * (qkv + rest) + attention_flops) + last_layer + 2 * D * cfg.vocab_size


def gemm_alone_seconds(calls, repeats: int = 7) -> float:
    """Each distinct (weight, rows) product of ``calls`` timed alone (best of ``repeats``), summed over the calls."""
    rng = np.random.default_rng(0)
    total, seen = 0.0, {}
    for label, rows, weight, weight_first in calls:
        key = (label, rows, weight.shape, weight_first)
        if key not in seen:
            x = rng.standard_normal((rows, weight.shape[1]), dtype=np.float32)  # [rows, in]
            best = float("inf")
            for _ in range(repeats + 1):
                t = CLOCK()
                if weight_first:
                    weight @ x.T  # [out, in] @ [in, rows], as the engine computes it
                else:
                    x @ weight.T  # [rows, in] @ [in, out]
                best = min(best, CLOCK() - t)
            seen[key] = best
        total += seen[key]
    return total


def profile_prefill(model, T: int, repeats: int, floor_gflops: float) -> dict:
    ids = np.random.default_rng(0).integers(0, min(model.config.vocab_size, 150000), T)[None]  # [1, T]
    valid = np.ones_like(ids, bool)
    prefill(model, ids, valid, model.new_cache(1, T + 8))  # warm up
    runs, totals = defaultdict(list), []
    for _ in range(repeats):
        TIMES.clear()
        CALLS.clear()
        cache = model.new_cache(1, T + 8)
        t = CLOCK()
        prefill(model, ids, valid, cache)
        total = CLOCK() - t
        totals.append(total)
        for part, s in {**TIMES, "other (embedding, mask, RoPE tables, Python)": total - sum(TIMES.values())}.items():
            runs[part].append(s)
    calls = list(CALLS)
    total = float(np.median(totals))
    parts = {part: float(np.median(s)) for part, s in runs.items()}
    flops = prefill_flops(model.config, T)
    gemm = gemm_alone_seconds([c for c in calls if c[0] != "lm_head"])
    projections = sum(s for p, s in parts.items() if p.startswith("projection ") and "lm_head" not in p)
    print(f"\nprefill of {T} tokens: {total * 1000:.1f} ms (median of {repeats}), {T / total:.0f} tok/s, "
          f"{flops / total / 1e9:.0f} GFLOP/s = {flops / total / 1e9 / floor_gflops:.2f} of the matmul floor "
          f"({floor_gflops:.0f} GFLOP/s: {T / (flops / floor_gflops / 1e9):.0f} tok/s)")
    for part, s in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {part:<46}{s * 1000:>9.2f} ms  {100 * s / total:5.1f}%")
    print(f"  projections together: {projections * 1000:.1f} ms; the same GEMMs alone: {gemm * 1000:.1f} ms "
          f"({projections / gemm:.2f}x); at the matmul floor they would take "
          f"{sum(2 * r * w.shape[0] * w.shape[1] for lbl, r, w, _ in calls if lbl != 'lm_head') / floor_gflops / 1e6:.1f} ms")
    return {"tokens": T, "total_s": total, "parts_s": parts, "gemm_alone_s": gemm, "flops": flops}


def readable_path(model):
    """The same model run the way it was before the prefill engine (model/prefill.py): every projection its own
    array (so no fused product), and attention over the whole T x T square. For A/B rounds and a 'before' profile."""
    for layer in model.weights.layers:
        for part in (layer.self_attn, layer.mlp):
            for name, value in vars(part).items():
                if isinstance(value, np.ndarray) and value.base is not None:
                    setattr(part, name, value.copy())  # its own array: prefill.stacked finds no fused weight
    engine.ATTENTION_BLOCK = 1 << 30  # never more queries than that: one block, the whole square
    return model


def ab_rounds(path: Path, tokens: list[int], rounds: int) -> None:
    """Interleaved rounds in one process: the readable path (A) and the engine (B), one prefill each per round."""
    block = engine.ATTENTION_BLOCK
    a, b = readable_path(minillm.load_model(path)), minillm.load_model(path)
    engine.ATTENTION_BLOCK = block
    for T in tokens:
        ids = np.random.default_rng(0).integers(0, min(b.config.vocab_size, 150000), T)[None]  # [1, T]
        valid = np.ones_like(ids, bool)
        times = {"A": [], "B": []}
        for r in range(rounds + 1):
            for name, model in (("A", a), ("B", b)):
                engine.ATTENTION_BLOCK = (1 << 30) if name == "A" else block
                cache = model.new_cache(1, T + 8)
                t = CLOCK()
                prefill(model, ids, valid, cache)
                if r:  # round 0 warms up
                    times[name].append(CLOCK() - t)
        engine.ATTENTION_BLOCK = block
        A, B = np.array(times["A"]), np.array(times["B"])
        print(f"prefill of {T} tokens, {rounds} interleaved rounds: readable path {T / np.median(A):.0f} tok/s, "
              f"engine {T / np.median(B):.0f} tok/s (medians); engine / readable speed per round: median "
              f"{np.median(A / B):.2f}x, range {np.min(A / B):.2f}-{np.max(A / B):.2f}x")


def ab_prefills(model, T: int, rounds: int, use_a, use_b) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of a T-token prefill with setting A (``use_a()`` called first) and with setting B, in interleaved
    rounds in one process (A first in odd rounds, B first in even ones; round 0 warms up): [rounds] each."""
    ids = np.random.default_rng(0).integers(0, min(model.config.vocab_size, 150000), T)[None]  # [1, T]
    valid = np.ones_like(ids, bool)
    times = {"A": [], "B": []}
    for r in range(rounds + 1):
        for name in ("A", "B") if r % 2 else ("B", "A"):
            (use_a if name == "A" else use_b)()
            cache = model.new_cache(1, T + 8)
            t = CLOCK()
            prefill(model, ids, valid, cache)
            if r:
                times[name].append(CLOCK() - t)
    return np.array(times["A"]), np.array(times["B"])


def print_ab(T: int, rounds: int, a: str, b: str, A: np.ndarray, B: np.ndarray) -> None:
    print(f"prefill of {T} tokens, {rounds} interleaved rounds: {a}: {T / np.median(A):.1f} tok/s; {b}: "
          f"{T / np.median(B):.1f} tok/s (medians); B / A speed per round: median {np.median(A / B):.3f}x, "
          f"range {np.min(A / B):.3f}-{np.max(A / B):.3f}x")


def order_rounds(path: Path, tokens: list[int], rounds: int) -> None:
    """Interleaved rounds in one process: the engine with x @ W^T products and attention blocks of 128 queries
    (A: the settings before W @ x^T) and with its defaults (B), one prefill each per round."""
    model = minillm.load_model(path)
    defaults = engine.WEIGHT_FIRST, engine.ATTENTION_BLOCK

    def use(settings):
        def set_them():
            engine.WEIGHT_FIRST, engine.ATTENTION_BLOCK = settings
        return set_them

    for T in tokens:
        A, B = ab_prefills(model, T, rounds, use((False, 128)), use(defaults))
        use(defaults)()
        print_ab(T, rounds, "x @ W^T, blocks of 128", f"W @ x^T, blocks of {defaults[1]}", A, B)


def last_rows_rounds(path: Path, tokens: list[int], rounds: int) -> None:
    """Interleaved rounds in one process: the engine with every row through the last layer and the readable
    RMSNorm (A: the third round's starting point) and with its defaults (B: the last layer on the kept rows only,
    prefill.rms_norm_rows), one prefill each per round."""
    model = minillm.load_model(path)
    norm, layer = engine.rms_norm_rows, model_module.decoder_layer
    every_row = lambda *args: layer(*args[:12])  # transformer.forward's call without its ``last`` argument

    def use(settings):
        def set_them():
            engine.rms_norm_rows, model_module.decoder_layer = settings
        return set_them

    for T in tokens:
        A, B = ab_prefills(model, T, rounds, use((rms_norm, every_row)), use((norm, layer)))
        use((norm, layer))()
        print_ab(T, rounds, "every row through the last layer, readable RMSNorm", "the engine's defaults", A, B)


def gemm_orders(path: Path, tokens: list[int], rounds: int = 7) -> None:
    """Each projection shape of the model as x @ W^T and as W @ x^T, every layer's own weight in turn (as a prefill
    reads them), interleaved rounds, medians: the measurement behind model/prefill.py's WEIGHT_FIRST."""
    model = minillm.load_model(path)
    rng = np.random.default_rng(0)
    layers = model.weights.layers
    shapes = {"q/k/v fused": [engine.fused_weight(l.self_attn.q_proj, l.self_attn.k_proj, l.self_attn.v_proj)
                              for l in layers],
              "o_proj": [l.self_attn.o_proj for l in layers],
              "gate/up fused": [engine.fused_weight(l.mlp.gate_proj, l.mlp.up_proj) for l in layers],
              "down_proj": [l.mlp.down_proj for l in layers]}
    for T in tokens:
        times: dict = defaultdict(list)
        xs = {name: rng.standard_normal((T, ws[0].shape[1]), dtype=np.float32) for name, ws in shapes.items()}
        for r in range(rounds + 1):
            for order in ("x @ W^T", "W @ x^T"):
                for name, ws in shapes.items():
                    x = xs[name]  # [T, in]
                    t = CLOCK()
                    for w in ws:
                        (x @ w.T) if order == "x @ W^T" else (w @ x.T)  # [T, out] or [out, T]
                    if r:
                        times[name, order].append(CLOCK() - t)
        print(f"\nthe products of a {T}-token prefill, all {len(layers)} layers, ms (median of {rounds}):")
        for name, ws in shapes.items():
            a, b = (float(np.median(times[name, o])) for o in ("x @ W^T", "W @ x^T"))
            flops = 2 * T * ws[0].size * len(ws)
            print(f"  {name:<14} [{T}, {ws[0].shape[1]}] x [{ws[0].shape[1]}, {ws[0].shape[0]}]:  x @ W^T {a * 1e3:7.1f} "
                  f"({flops / a / 1e9:.0f} GFLOP/s)   W @ x^T {b * 1e3:7.1f} ({flops / b / 1e9:.0f} GFLOP/s)   {a / b:.3f}x")
        # down_proj with the residual add after it: W @ h^T gives [D, T], which the add reads transposed
        hT = rng.standard_normal((shapes["down_proj"][0].shape[1], T), dtype=np.float32)  # [F, T]
        residual = rng.standard_normal((T, shapes["down_proj"][0].shape[0]), dtype=np.float32)  # [T, D]
        add = defaultdict(list)
        for r in range(rounds + 1):
            for order in ("h @ W^T", "W @ h^T"):
                t = CLOCK()
                for w in shapes["down_proj"]:
                    (residual + hT.T @ w.T) if order == "h @ W^T" else (residual + (w @ hT).T)  # [T, D]
                if r:
                    add[order].append(CLOCK() - t)
        a, b = (float(np.median(add[o])) for o in ("h @ W^T", "W @ h^T"))
        print(f"  down_proj + the residual add (h^T [F, {T}] as the MLP leaves it): h @ W^T then add {a * 1e3:.1f} ms, "
              f"W @ h^T then add its transpose {b * 1e3:.1f} ms   {a / b:.3f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", default="qwen2.5-0.5b", help="a shape of minillm bench (built if --model is not given)")
    p.add_argument("--model", type=Path, help="a checkpoint directory")
    p.add_argument("--tokens", type=int, nargs="+", default=[128, 512], help="prompt lengths to profile")
    p.add_argument("--repeats", type=int, default=5, help="prefills per length (medians)")
    p.add_argument("--decode", type=int, default=16, help="decode steps to profile after the prefill (0: none)")
    p.add_argument("--readable", action="store_true",
                   help="profile the path before the prefill engine (separate q/k/v, gate/up; the whole square)")
    p.add_argument("--ab", type=int, metavar="ROUNDS",
                   help="only time the readable path against the engine, in this many interleaved rounds")
    p.add_argument("--cpu-time", action="store_true",
                   help="count this thread's CPU time, not wall time: a busy machine's measure of work. Runs all in "
                        "one thread: set OPENBLAS_NUM_THREADS=1 too (the engine's element-wise threads are turned off)")
    p.add_argument("--ab-order", type=int, metavar="ROUNDS",
                   help="only time the engine with x @ W^T products and attention blocks of 128 against its defaults "
                        "(W @ x^T, blocks of 32), in this many interleaved rounds")
    p.add_argument("--ab-last", type=int, metavar="ROUNDS",
                   help="only time the engine with every row through the last layer and the readable RMSNorm "
                        "against its defaults (the kept rows only, prefill.rms_norm_rows), interleaved rounds")
    p.add_argument("--gemm-orders", action="store_true",
                   help="only time every projection shape as x @ W^T and as W @ x^T (all layers' weights in turn)")
    args = p.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK, engine.THREADS = time.thread_time, 1
    path = args.model or build_random_checkpoint(args.shape, ROOT / "benchmarks" / "out" / args.shape)
    if args.ab:
        ab_rounds(path, args.tokens, args.ab)
        return
    if args.ab_order:
        order_rounds(path, args.tokens, args.ab_order)
        return
    if args.ab_last:
        last_rows_rounds(path, args.tokens, args.ab_last)
        return
    if args.gemm_orders:
        gemm_orders(path, args.tokens)
        return
    model = minillm.load_model(path)
    if args.readable:
        readable_path(model)
    instrument(model)
    floor = measure_matmul()
    for T in args.tokens:
        profile_prefill(model, T, args.repeats, floor)
    floor = max(floor, measure_matmul())
    print(f"\nmatmul floor (2048^3 float32, all threads, best of before/after): {floor:.0f} GFLOP/s")
    if args.decode:
        ids = np.random.default_rng(0).integers(0, min(model.config.vocab_size, 150000), 128)[None]
        cache = model.new_cache(1, 128 + args.decode + 1)
        token = prefill(model, ids, np.ones_like(ids, bool), cache).argmax(-1)  # [1]
        TIMES.clear()
        t = CLOCK()
        for _ in range(args.decode):
            token = model.forward(token[:, None], cache=cache, logits_to_keep=1)[:, -1].argmax(-1)
        total = CLOCK() - t
        print(f"\ndecode (one token after 128, {args.decode} steps averaged): {total / args.decode * 1000:.1f} ms per step")
        for part, s in sorted({**TIMES, "other": total - sum(TIMES.values())}.items(), key=lambda kv: -kv[1]):
            print(f"  {part:<46}{s / args.decode * 1000:>9.2f} ms  {100 * s / total:5.1f}%")


if __name__ == "__main__":
    main()
