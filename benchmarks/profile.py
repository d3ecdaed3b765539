"""Where the time goes: a per-token breakdown of decode and prefill into matmuls, attention, LM head, rest.

    python benchmarks/profile.py --shape qwen2.5-0.5b        # after `minillm bench --shape ...` built it
    python benchmarks/profile.py --model ~/models/Qwen3-0.6B

It wraps minillm's own functions with timers (in this script only; the library is untouched), runs a
128-token prefill and 64 decode steps, and prints milliseconds per step for each part:
  projections  q/k/v/o and gate/up/down matmuls (linear)
  attention    scores, mask, softmax, weighted values (scaled_dot_product_attention)
  LM head      the final [D] x [D, V] product (lm_head)
  norms, RoPE, SwiGLU activation, cache writes and Python: the rest of forward()
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import minillm
import minillm.model.attention as attention
import minillm.model.block as block
import minillm.model.mlp as mlp
import minillm.model.transformer as model_module
from minillm.tools.bench import ROOT
from minillm.generation.generate import prefill

TIMES: dict[str, float] = defaultdict(float)


def timed(part: str, fn):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        TIMES[part] += time.perf_counter() - t
        return out
    return wrapper


def instrument() -> None:
    attention.linear = timed("projections", attention.linear)
    mlp.linear = timed("projections", mlp.linear)
    attention.scaled_dot_product_attention = timed("attention", attention.scaled_dot_product_attention)
    model_module.lm_head = timed("LM head", model_module.lm_head)
    block.rms_norm = timed("norms", block.rms_norm)
    attention.rms_norm = timed("norms", attention.rms_norm)  # Qwen3 q/k-norm
    mlp.silu = timed("SwiGLU activation", mlp.silu)
    attention.apply_rope = timed("RoPE", attention.apply_rope)


def report(title: str, total: float, steps: int) -> None:
    print(f"\n{title}: {total / steps * 1000:.1f} ms per step")
    rest = total - sum(TIMES.values())
    for part, t in sorted({**TIMES, "other (cache, embedding, Python)": rest}.items(), key=lambda kv: -kv[1]):
        print(f"  {part:<34}{t / steps * 1000:>8.2f} ms  {100 * t / total:5.1f}%")
    TIMES.clear()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="qwen2.5-0.5b")
    p.add_argument("--model", type=Path)
    args = p.parse_args()
    path = args.model or ROOT / "benchmarks" / "out" / args.shape
    model = minillm.load_model(path)
    instrument()
    ids = np.random.default_rng(0).integers(0, 150000, 128)[None]
    valid = np.ones_like(ids, bool)
    prefill(model, ids, valid, model.new_cache(1, 200))  # warm up
    TIMES.clear()
    cache = model.new_cache(1, 200)
    t = time.perf_counter()
    logits = prefill(model, ids, valid, cache)
    report(f"prefill of {ids.shape[1]} tokens", time.perf_counter() - t, 1)
    token = logits.argmax(-1)
    t = time.perf_counter()
    for _ in range(64):
        token = model.forward(token[:, None], cache=cache, logits_to_keep=1)[:, -1].argmax(-1)
    report("decode (one token, 64 steps averaged)", time.perf_counter() - t, 64)


if __name__ == "__main__":
    main()
