"""Training throughput: `mpiexec -n 2 minillm train` (one BLAS thread per rank) against one process with two threads.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/mpi_train.py            # 3 rounds of 4 steps
    python benchmarks/mpi_train.py --rounds 5 --steps 6 --ranks 2 --zero1 --bind none

The shape is the bundled model's recipe (scripts/bundled/recipe.json: a 6-layer Qwen3, D=384, V=8192, global batch
8 x 512 tokens); its corpus when data/tokens/ holds it, else random tokens (the speed does not depend on them).
Every run is a fresh `minillm train` from the command line, exactly as a user starts it, with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE removed from its environment (so OpenBLAS picks its kernels itself); the two configurations
alternate, round after round, so a load that comes and goes on a shared machine hits both alike, and the medians
are reported. Each run's first step (warm-up: page faults, first allocations) is left out.

The ranks are started with `mpiexec -bind-to core` (each rank pinned to its own core, as docs/DISTRIBUTED.md
recommends: no migrations, each rank's cache its own); --bind none leaves the placement to the kernel.

Printed: tokens/s of each configuration (median over runs of each run's median step), the ratio, the share of a
two-rank step spent in the gradients' allreduce (comm_s in the log) and waiting for the slower rank (wait_s),
with the bandwidth the allreduce reached (2(N-1)/N x gradient bytes / its time), and a rank's step in phases:
forward + backward (the rest of the step), wait, allreduce, clip + AdamW (optimizer_s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
UNSET = ["env", "-u", "OPENBLAS_CORETYPE", "-u", "OPENBLAS_L2_SIZE"]  # the kernels OpenBLAS would pick itself


def make_recipe(folder: Path) -> tuple[Path, int, int]:
    """The bundled recipe with its corpus, or random tokens of the same vocabulary.
    -> (path, parameters, tokens per step)"""
    raw = json.loads((ROOT / "scripts" / "bundled" / "recipe.json").read_text())
    corpus = ROOT / raw["train_tokens"]
    if not corpus.is_file():
        corpus = folder / "tokens.npy"
        np.save(corpus, np.random.default_rng(0).integers(0, raw["model"]["vocab_size"], 2_000_000).astype(np.uint16))
    raw.update(train_tokens=str(corpus), val_tokens=None, tokenizer=None, steps=10_000, decay_steps=300,
               save_every=10_000)  # no evaluation, one save at the end (after the timed steps)
    path = folder / "recipe.json"
    path.write_text(json.dumps(raw))
    sys.path.insert(0, str(ROOT))
    from minillm.checkpoint.config import parse_config
    from minillm.checkpoint.weights import expected_shapes
    shapes = expected_shapes(parse_config(raw["model"], "recipe model"))
    return path, sum(int(np.prod(s)) for s in shapes.values()), raw["batch_size"] * raw["context"] * raw["accumulation"]


def run(recipe: Path, out: Path, steps: int, ranks: int, threads: int, zero1: bool, bind: str) -> list[dict]:
    """One fresh `minillm train` for ``steps`` steps; its log records (the first, warm-up step dropped)."""
    shutil.rmtree(out, ignore_errors=True)
    minillm = [sys.executable, "-m", "minillm", "train", "--config", str(recipe), "--out", str(out),
               "--max-steps", str(steps)] + (["--zero1"] if zero1 else [])
    launcher = [str(Path(sys.executable).parent / "mpiexec"), "-bind-to", bind, "-n", str(ranks)] if ranks > 1 else []
    command = UNSET + [f"OPENBLAS_NUM_THREADS={threads}", f"OMP_NUM_THREADS={threads}"] + launcher + minillm
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if done.returncode:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()][1:]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4, help="steps per run (the first is not timed)")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--zero1", action="store_true", help="the ranks shard AdamW's moments")
    p.add_argument("--bind", default="core", choices=["core", "none"], help="mpiexec -bind-to (default: core)")
    args = p.parse_args()
    configs = {"one process, 2 threads": (1, 2), f"mpiexec -n {args.ranks}, 1 thread each": (args.ranks, 1)}
    rates = {name: [] for name in configs}
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        recipe, params, tokens = make_recipe(Path(tmp))
        print(f"bundled recipe shape: {params / 1e6:.2f} M parameters, gradients {4 * params / 2**20:.1f} MB, "
              f"global batch 8 x 512 tokens; {args.rounds} rounds of {args.steps} steps; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start")
        for r in range(args.rounds):
            order = list(configs) if r % 2 == 0 else list(configs)[::-1]  # alternate who goes first
            for name in order:
                ranks, threads = configs[name]
                lines = run(recipe, Path(tmp) / "run", args.steps, ranks, threads, args.zero1 and ranks > 1, args.bind)
                rates[name].append(statistics.median(x["tokens_per_s"] for x in lines))
                if ranks > 1:
                    records += lines
                print(f"  round {r + 1}: {name:<28} {rates[name][-1]:7.0f} tokens/s", flush=True)
    (one, rates1), (many, rates2) = rates.items()
    a, b = statistics.median(rates1), statistics.median(rates2)
    step = statistics.median(tokens / x["tokens_per_s"] for x in records)
    comm = statistics.median(x["comm_s"] for x in records)
    wait = statistics.median(x["wait_s"] for x in records)
    optimizer = statistics.median(x["optimizer_s"] for x in records)
    n = args.ranks
    moved = 2 * (n - 1) / n * 4 * params  # bytes each rank sends (and receives) in a ring allreduce
    print(f"\n{one:<30} {a:7.0f} tokens/s (median of {len(rates1)} runs)")
    print(f"{many:<30} {b:7.0f} tokens/s (median of {len(rates2)} runs)   ratio {b / a:.2f}x  (expected >= 1.25x)")
    print(f"a {n}-rank step: {step:.2f} s; allreduce {comm * 1e3:.0f} ms ({comm / step:.1%} of the step, "
          f"{moved / comm / 1e9:.2f} GB/s of 2(N-1)/N x {4 * params / 2**20:.0f} MB), waiting for the slower rank "
          f"{wait * 1e3:.0f} ms ({wait / step:.1%})")
    print(f"a {n}-rank step in phases (medians): forward + backward {(step - comm - wait - optimizer) * 1e3:.0f} ms, "
          f"waiting {wait * 1e3:.0f} ms, allreduce {comm * 1e3:.0f} ms, clip + AdamW"
          f"{' (ZeRO-1: its shard)' if args.zero1 else ''} {optimizer * 1e3:.0f} ms; one process's step "
          f"{tokens / a:.2f} s")
    print(f"load average {os.getloadavg()[0]:.1f} at the end: figures from a busy, shared machine if that is above "
          f"{os.cpu_count()}")


if __name__ == "__main__":
    main()
