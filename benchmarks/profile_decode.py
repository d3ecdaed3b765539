"""Where the time goes: a per-token breakdown of decode and prefill into matmuls, attention, LM head, rest.

    python benchmarks/profile_decode.py --shape qwen2.5-0.5b        # after `minillm bench --shape ...` built it
    python benchmarks/profile_decode.py --shape qwen3.5-0.8b        # the hybrid: linear-attention parts shown apart
    python benchmarks/profile_decode.py --model ~/models/Qwen3-0.6B

It wraps minillm's own functions with timers (in this script only; the library is untouched), runs a
128-token prefill and 64 decode steps, and prints milliseconds per step and calls per step for each part.
A wrapped function's time excludes the wrapped functions it calls (each millisecond is counted once):
  projections  q/k/v/o and gate/up/down matmuls (linear); for Qwen3.5 also in_proj_* / out_proj
  attention    scores, mask, softmax, weighted values (scaled_dot_product_attention)
  LM head      the final [D] x [D, V] product (lm_head)
  norms, RoPE, SwiGLU activation, cache writes and Python: the rest of forward()
Qwen3.5's linear-attention layers add: the delta-rule state update, the short conv, and their gates and norms
(the L2 norms of q and k, beta and g, the gated RMSNorm, SiLU).

For a hybrid model (or with --floor) it then times, in interleaved rounds in the same process (medians), the
decode step, the machine's two-thread read bandwidth (as `minillm bench` measures it) and the bare chain of
matrix-vector products a decode step makes (every weight it reads, x @ W.T, no Python in between): the
bandwidth floor, what OpenBLAS's matrix-vector product alone reaches, and what the whole step reaches.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import minillm
import minillm.model.attention as attention
import minillm.model.block as block
import minillm.model.gated_attention as gated_attention
import minillm.model.gated_deltanet as gated_deltanet
import minillm.model.hybrid as hybrid
import minillm.model.mlp as mlp
import minillm.model.transformer as model_module
from minillm.model import delta_memory, fused_linear, prefill as prefill_module
from minillm.tools.bench import ROOT, decode_bytes_per_token, measure_bandwidth
from minillm.generation.generate import prefill

TIMES: dict[str, float] = defaultdict(float)  # part -> seconds, exclusive of the wrapped functions it calls
CALLS: dict[str, int] = defaultdict(int)
_stack: list[float] = []  # per active wrapped call: time spent in the wrapped calls it made


def timed(part: str, fn):
    def wrapper(*args, **kwargs):
        _stack.append(0.0)
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent = time.perf_counter() - t
            inner = _stack.pop()
            TIMES[part] += spent - inner
            CALLS[part] += 1
            if _stack:
                _stack[-1] += spent
    wrapper.__wrapped__ = fn
    return wrapper


def wrap(module, name: str, part: str) -> None:
    if hasattr(module, name):  # a name a later version may not have is skipped, so old and new code both profile
        setattr(module, name, timed(part, getattr(module, name)))


def instrument() -> None:
    wrap(attention, "linear", "projections")
    wrap(mlp, "linear", "projections")
    wrap(attention, "projections", "projections")  # q/k/v as one product for a few rows (fused at load)
    wrap(mlp, "projections", "projections")  # gate/up as one product for a few rows
    wrap(prefill_module, "swiglu_fused", "MLP of a prompt (gate/up product, silu * up, down)")
    wrap(attention, "scaled_dot_product_attention", "attention")
    wrap(model_module, "lm_head", "LM head")
    wrap(block, "rms_norm", "norms")
    wrap(attention, "rms_norm", "norms")  # Qwen3 q/k-norm
    wrap(mlp, "silu", "SwiGLU activation")
    wrap(attention, "apply_rope", "RoPE")
    # Qwen3.5: the full-attention layers (gated_attention.py) ...
    wrap(gated_attention, "linear", "projections")
    wrap(gated_attention, "projections", "projections")  # q/k/v as one product (fused at load)
    wrap(gated_attention, "scaled_dot_product_attention", "attention")
    wrap(gated_attention, "zero_centred_rms_norm", "norms")  # q/k-norm
    wrap(gated_attention, "apply_partial_rope", "RoPE")
    wrap(gated_attention, "sigmoid", "attention output gate")
    wrap(hybrid, "zero_centred_rms_norm", "norms")
    wrap(model_module, "zero_centred_rms_norm", "norms")  # the final norm
    # ... and the linear-attention layers (gated_deltanet.py, conv.py, delta_rule.py)
    wrap(gated_deltanet, "linear", "linear-attn projections")
    wrap(gated_deltanet, "projections", "linear-attn projections")  # in_proj_qkv/z/b/a as one product
    wrap(gated_deltanet, "causal_conv1d", "linear-attn conv")
    wrap(gated_deltanet, "recurrent_gated_delta_rule", "linear-attn delta rule (state update)")
    wrap(gated_deltanet, "chunked_gated_delta_rule", "linear-attn delta rule (state update)")
    for name in ("silu", "l2_normalize", "write_strength_and_log_decay", "gated_rms_norm"):
        wrap(gated_deltanet, name, "linear-attn gates and norms")
    # the engine's one-token step of the linear-attention layer (gated_deltanet_decode_step), where it exists
    wrap(gated_deltanet, "causal_conv1d_step", "linear-attn conv")
    wrap(gated_deltanet, "delta_rule_decode_step", "linear-attn delta rule (state update)")  # (older versions)
    wrap(delta_memory.DeltaMemory, "step", "linear-attn delta rule (state update)")
    wrap(delta_memory.DeltaMemory, "applied", "linear-attn delta rule (state update)")


def report(title: str, total: float, steps: int) -> None:
    print(f"\n{title}: {total / steps * 1000:.1f} ms per step")
    rest = total - sum(TIMES.values())
    print(f"  {'part':<42}{'ms':>8}{'share':>8}{'calls':>8}")
    for part, t in sorted({**TIMES, "other (cache, embedding, Python)": rest}.items(), key=lambda kv: -kv[1]):
        calls = f"{CALLS[part] / steps:>8.0f}" if part in CALLS else ""
        print(f"  {part:<42}{t / steps * 1000:>8.2f}{100 * t / total:>7.1f}%{calls}")
    TIMES.clear()
    CALLS.clear()


def decode_weights(model) -> list[np.ndarray]:
    """Every matrix one decode step multiplies by, in order (a bare matvec each: no Python math in between).
    Projections the step makes as one product (fused_linear.py: fused at load) are one matrix here too."""
    found = []
    for layer in model.weights.layers:
        for part in (getattr(layer, name, None) for name in ("linear_attn", "self_attn", "mlp")):
            if part is None:
                continue
            arrays = {n: a for n, a in vars(part).items() if isinstance(a, np.ndarray) and a.ndim == 2}
            for group in (fused_linear.LINEAR_ATTENTION_GROUP, fused_linear.FULL_ATTENTION_GROUP):
                held = all(n in arrays for n in group)
                fused = prefill_module.stacked(*(arrays[n] for n in group)) if held else None
                if fused is not None:  # one product for the group, where its first part was
                    arrays = {**{n: a for n, a in arrays.items() if n == group[0] or n not in group},
                              group[0]: fused}
            found += list(arrays.values())  # (a mixture of experts' stacked [E, ...] weights are left out)
    return found + [model.weights.lm_head]


def floor_rounds(model, rounds: int, steps: int) -> None:
    """Interleaved rounds: bandwidth, the bare matvec chain, decode steps. Medians; fractions of the floor."""
    weights = decode_weights(model)
    xs = [np.random.default_rng(0).standard_normal((1, w.shape[1]), dtype=np.float32) for w in weights]
    floor_bytes = decode_bytes_per_token(model.config)
    ids = np.random.default_rng(0).integers(0, min(150000, model.config.vocab_size), 128)[None]
    cache = model.new_cache(1, 128 + rounds * steps + 8)
    token = prefill(model, ids, np.ones_like(ids, bool), cache).argmax(-1)
    bandwidth, chain, step = [], [], []
    for _ in range(rounds):
        bandwidth.append(measure_bandwidth(2, 1.0, repeats=3) * 1e9)
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            for x, w in zip(xs, weights):
                x @ w.T
            best = min(best, time.perf_counter() - t)
        chain.append(best)
        t = time.perf_counter()
        for _ in range(steps):
            token = model.forward(token[:, None], cache=cache, logits_to_keep=1)[:, -1].argmax(-1)
        step.append((time.perf_counter() - t) / steps)
    bw, c, s = statistics.median(bandwidth), statistics.median(chain), statistics.median(step)
    floor = floor_bytes / bw
    print(f"\ndecode against its bandwidth floor, {rounds} interleaved rounds (medians):")
    print(f"  floor: {floor_bytes / 1e9:.3f} GB of float32 weights per token / {bw / 1e9:.1f} GB/s (2 threads) "
          f"= {floor * 1000:.1f} ms")
    print(f"  bare matvec chain (x @ W.T for every weight, no Python): {c * 1000:.1f} ms "
          f"= {floor / c:.2f} of the floor")
    print(f"  decode step: {s * 1000:.1f} ms = {1 / s:.2f} tok/s = {floor / s:.2f} of the floor "
          f"(the step spends {1000 * (s - c):.1f} ms beyond the chain)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="qwen2.5-0.5b")
    p.add_argument("--model", type=Path)
    p.add_argument("--steps", type=int, default=64, help="decode steps profiled")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the floor comparison")
    p.add_argument("--floor", action="store_true", help="also compare decode with the floor (always for hybrids)")
    args = p.parse_args()
    path = args.model or ROOT / "benchmarks" / "out" / args.shape
    model = minillm.load_model(path)
    if args.floor or model.config.is_hybrid:
        floor_rounds(model, args.rounds, 8)
    instrument()
    ids = np.random.default_rng(0).integers(0, min(150000, model.config.vocab_size), 128)[None]
    valid = np.ones_like(ids, bool)
    prefill(model, ids, valid, model.new_cache(1, 200))  # warm up
    TIMES.clear()
    CALLS.clear()
    cache = model.new_cache(1, 128 + args.steps + 1)
    t = time.perf_counter()
    logits = prefill(model, ids, valid, cache)
    report(f"prefill of {ids.shape[1]} tokens", time.perf_counter() - t, 1)
    token = logits.argmax(-1)
    t = time.perf_counter()
    for _ in range(args.steps):
        token = model.forward(token[:, None], cache=cache, logits_to_keep=1)[:, -1].argmax(-1)
    report(f"decode (one token, {args.steps} steps averaged)", time.perf_counter() - t, args.steps)


if __name__ == "__main__":
    main()
