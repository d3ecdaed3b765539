"""minillm against llama.cpp (and transformers) on a real checkpoint: decode and prefill, side by side in one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/vs_llamacpp.py \\
        --llama-bench /work/data/llama.cpp-build/bin/llama-bench \\
        --gguf /work/data/qwen2.5-coder-0.5b-instruct-f32.gguf --rounds 5
    ... --busy                       # the same with a single-threaded NumPy job loading the other core
    ... --reference-python /work/refvenv/bin/python    # transformers from another environment
    ... --model Qwen/Qwen2.5-0.5B-Instruct              # any Qwen checkpoint dir, or a Hub id in the HF cache

The checkpoint (default /work/data/qwen2.5-coder-0.5b-instruct) comes from scripts/fetch_real_checkpoint.py,
llama-bench and the float32 GGUF of the same checkpoint from scripts/build_llama_cpp.sh. Unset OPENBLAS_CORETYPE
and OPENBLAS_L2_SIZE (as above) so OpenBLAS picks its kernels for the CPU, as on a user's machine.

What is measured, each round, for each engine in turn (the order rotates every round):
* decode: tokens per second of 64 greedy tokens after a one-token prompt (llama-bench's tg64 starts from
  an empty context: the same work);
* prefill of 128 and of 512 random token ids: prompt tokens per second, logits at the last position only
  (llama-bench's pp128 / pp512).
Ratios are taken within each round (minillm / the other engine, measured minutes apart at most) and the
report gives the median over rounds, with the medians of the speeds. Timings on a shared machine move by
10-20%: interleaving and medians make the ratios steadier than any one figure.

How each engine runs (what is fair):
* minillm: one worker subprocess, loaded once, through the user-facing path (minillm.stream_generate): decode
  is the time from the first generated token to the 65th, prefill the time to the first token. A separate
  process keeps its BLAS threads and memory apart from the other engines'. Its threads are NumPy's own
  (OpenBLAS: one per core) unless --threads is given.
* llama.cpp: a fresh llama-bench process per round (``-p 128,512 -n 64 -r 1 -t THREADS``; its own warm-up
  run is not timed; the GGUF is memory-mapped, so after the first round it loads from the page cache).
* transformers (when ``import torch, transformers`` works in --reference-python, default this Python): one
  worker subprocess, float32, torch.set_num_threads(THREADS), its forward loop with past_key_values.
Every worker runs one untimed warm-up of each measurement before the first round.

The floors come from minillm/tools/bench.py, measured in the same run under the same conditions (so with
--busy, with the background job running): decode reads every float32 weight once (bytes / read bandwidth),
prefill is matrix products (FLOPs / float32 matmul throughput); each engine's speed is printed as a fraction
of them. THREADS defaults to the machine's core count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/ holds a profile.py that would shadow the standard library's (which torch imports)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
DEFAULT_MODEL = "/work/data/qwen2.5-coder-0.5b-instruct"
HUB_FALLBACKS = ("Qwen/Qwen2.5-Coder-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct")  # if DEFAULT_MODEL is missing
DECODE_TOKENS = 64
PREFILL_TOKENS = (128, 512)
BUSY_JOB = """
import numpy as np
a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
b = a.copy()
while True:
    b = a @ b
    b *= 1e-3
"""


# ---------------------------------------------------------------------------------------------- workers

def _random_ids(n: int, vocab: int, seed: int):
    import numpy as np
    return np.random.default_rng(seed).integers(0, min(vocab, 150000), n)  # [n]


def worker_minillm(model_path: str) -> None:
    """Serve 'decode N' / 'prefill N' requests on stdin, one JSON line of seconds per request on stdout."""
    import warnings

    sys.path.insert(0, str(ROOT))
    import minillm

    warnings.simplefilter("ignore")  # e.g. a tiny model's "beyond max_position_embeddings": not news here
    model = minillm.load_model(model_path)
    vocab = model.config.vocab_size
    print(json.dumps({"ready": True, "version": getattr(minillm, "__version__", "?")}), flush=True)
    for seed, line in enumerate(sys.stdin):
        op, n = line.split()
        n = int(n)
        if op == "decode":
            prompt = _random_ids(1, vocab, seed)  # [1]
            first = None
            for _ in minillm.stream_generate(model, prompt, n + 1, temperature=0.0, stop_token_ids=[]):
                first = time.perf_counter() if first is None else first
            seconds = time.perf_counter() - first  # n decode steps after the first token
        else:
            prompt = _random_ids(n, vocab, seed)  # [n]
            t = time.perf_counter()
            next(iter(minillm.stream_generate(model, prompt, 1, temperature=0.0, stop_token_ids=[])))
            seconds = time.perf_counter() - t
        print(json.dumps({"seconds": seconds}), flush=True)


def worker_transformers(model_path: str, threads: int) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    import warnings

    warnings.simplefilter("ignore")  # the past_key_values deprecation notice of newer releases
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    print(json.dumps({"ready": True, "version": f"transformers {transformers.__version__}, torch "
                                               f"{torch.__version__}"}), flush=True)
    for seed, line in enumerate(sys.stdin):
        op, n = line.split()
        n = int(n)
        with torch.inference_mode():
            if op == "decode":
                out = model(torch.tensor(_random_ids(1, vocab, seed)[None]), use_cache=True)
                past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
                t = time.perf_counter()
                for _ in range(n):
                    out = model(token, past_key_values=past, use_cache=True)
                    past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
                seconds = time.perf_counter() - t
            else:
                ids = torch.tensor(_random_ids(n, vocab, seed)[None])
                t = time.perf_counter()
                model(ids, use_cache=True, logits_to_keep=1).logits.argmax(-1)
                seconds = time.perf_counter() - t
        print(json.dumps({"seconds": seconds}), flush=True)


class Worker:
    """An engine loaded once in its own process, answering timed requests."""

    def __init__(self, name: str, cmd: list[str], env: dict):
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        hello = self._reply()
        self.version = hello.get("version", "?")

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"vs_llamacpp: the {self.name} worker stopped (exit code {self.proc.wait()}); "
                             f"its error is above")
        return json.loads(line)

    def seconds(self, op: str, n: int) -> float:
        self.proc.stdin.write(f"{op} {n}\n")
        self.proc.stdin.flush()
        return self._reply()["seconds"]

    def measure(self) -> dict[str, float]:
        """tok/s of decode and of each prefill, as {"decode": ..., "prefill 128": ..., ...}."""
        out = {"decode": DECODE_TOKENS / self.seconds("decode", DECODE_TOKENS)}
        for n in PREFILL_TOKENS:
            out[f"prefill {n}"] = n / self.seconds("prefill", n)
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class LlamaBench:
    """A fresh llama-bench process per round."""

    name = "llama.cpp"

    def __init__(self, binary: Path, gguf: Path, threads: int):
        self.cmd = [str(binary), "-m", str(gguf), "-p", ",".join(map(str, PREFILL_TOKENS)),
                    "-n", str(DECODE_TOKENS), "-r", "1", "-t", str(threads), "-o", "json"]
        commit = Path(binary).resolve().parents[1] / "COMMIT"  # scripts/build_llama_cpp.sh writes it
        self.commit = commit.read_text().strip()[:7] if commit.is_file() else None
        self.version = "?"

    def measure(self) -> dict[str, float]:
        run = subprocess.run(self.cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"vs_llamacpp: {' '.join(self.cmd)} failed:\n{run.stderr[-2000:]}")
        return parse_llama_bench(run.stdout, self)

    def close(self) -> None:
        pass


def parse_llama_bench(stdout: str, bench=None) -> dict[str, float]:
    """llama-bench's JSON records -> {"decode": tok/s of tg, "prefill N": tok/s of ppN}."""
    out = {}
    for rec in json.loads(stdout):
        if bench is not None:
            commit = rec.get("build_commit", "unknown")
            if commit == "unknown" and bench.commit:  # built outside a git checkout: the sdist's record
                commit = bench.commit
            bench.version = f"llama.cpp commit {commit}, {rec.get('backends', '?')}, {rec.get('cpu_info', '')}"
        if rec["n_gen"] > 0 and rec["n_prompt"] == 0:
            out["decode"] = float(rec["avg_ts"])
        elif rec["n_prompt"] > 0 and rec["n_gen"] == 0:
            out[f"prefill {rec['n_prompt']}"] = float(rec["avg_ts"])
    return out


# ---------------------------------------------------------------------------------------------- the run

def measure_floors(env: dict) -> dict:
    """minillm/tools/bench.py's floor measurements (bandwidth, matmul), in their own process as bench does."""
    run = subprocess.run([sys.executable, "-m", "minillm.tools.bench", "--phase", "floors", ""],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(f"vs_llamacpp: measuring the floors failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def start_busy_job() -> subprocess.Popen:
    """A single-threaded NumPy loop of matmuls: the other core busy, as when a user runs something else."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", BUSY_JOB], env=env)


def median_ratios(rounds_a: list[dict], rounds_b: list[dict]) -> dict[str, float]:
    """Per metric, the median over rounds of a/b taken within each round."""
    return {key: statistics.median(a[key] / b[key] for a, b in zip(rounds_a, rounds_b, strict=True))
            for key in rounds_a[0] if all(key in b for b in rounds_b)}


def medians(rounds: list[dict]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def default_model() -> str:
    """DEFAULT_MODEL if it is there, else the first of HUB_FALLBACKS already in the Hugging Face cache."""
    if Path(DEFAULT_MODEL).is_dir():
        return DEFAULT_MODEL
    from minillm.checkpoint.hub import cached_snapshot, hub_cache_dir

    for hub_id in HUB_FALLBACKS:
        if cached_snapshot(hub_cache_dir(), hub_id) is not None:
            return hub_id
    raise SystemExit(f"vs_llamacpp: no checkpoint: {DEFAULT_MODEL} is missing (make it with "
                     f"scripts/fetch_real_checkpoint.py) and none of {', '.join(HUB_FALLBACKS)} is in the Hugging "
                     f"Face cache; pass --model DIR or a Hub id")


def has_transformers(python: str) -> bool:
    return subprocess.run([python, "-c", "import torch, transformers"], capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help=f"checkpoint directory or Hub id (HF cache) (default {DEFAULT_MODEL}, else "
                                   f"{' or '.join(HUB_FALLBACKS)} if in the Hugging Face cache)")
    p.add_argument("--llama-bench", type=Path, help="llama-bench binary (scripts/build_llama_cpp.sh builds one)")
    p.add_argument("--gguf", type=Path, help="the GGUF llama-bench runs: the float32 one of the same checkpoint")
    p.add_argument("--reference-python", default=sys.executable,
                   help="a Python with torch + transformers for the transformers comparison (default: this one)")
    p.add_argument("--no-transformers", action="store_true", help="skip transformers even if installed")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5); medians are reported")
    p.add_argument("--threads", type=int, help="threads of every engine (default: the core count; minillm's "
                   "BLAS is then left to pick its own, as for a user)")
    p.add_argument("--busy", action="store_true", help="run a single-threaded NumPy matmul loop in the background "
                   "during the whole measurement (floors included), stopped at the end")
    p.add_argument("--out", type=Path, help="also write the per-round figures as JSON here")
    p.add_argument("--worker", choices=["minillm", "transformers"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    threads = args.threads or os.cpu_count() or 1
    if args.worker == "minillm":
        worker_minillm(args.model)
        return 0
    if args.worker == "transformers":
        worker_transformers(args.model, threads)
        return 0
    if args.llama_bench and not args.gguf:
        p.error("--llama-bench needs --gguf (the float32 GGUF made by scripts/build_llama_cpp.sh)")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")

    sys.path.insert(0, str(ROOT))
    from minillm.checkpoint.config import load_config
    from minillm.checkpoint.hub import resolve_model_path
    from minillm.tools.bench import decode_bytes_per_token, machine_name, prefill_flops

    path = resolve_model_path(args.model or default_model())
    cfg = load_config(path)
    env = dict(os.environ)
    if args.threads:
        env.update({k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"note: {var}={os.environ[var]} is set: OpenBLAS does not pick its kernels as on a user's "
                  f"machine (run with env -u {var})")

    engines, busy = [], None
    me = [sys.executable, str(Path(__file__).resolve()), "--model", str(path), "--threads", str(threads)]
    try:
        busy = start_busy_job() if args.busy else None
        load_average = os.getloadavg()[0]
        print(f"loading minillm{' and transformers' if not args.no_transformers else ''} workers ...", flush=True)
        engines.append(Worker("minillm", me + ["--worker", "minillm"], env))
        if args.llama_bench:
            engines.append(LlamaBench(args.llama_bench, args.gguf, threads))
        if not args.no_transformers and has_transformers(args.reference_python):
            cmd = [args.reference_python] + me[1:] + ["--worker", "transformers"]
            engines.append(Worker("transformers", cmd, env))
        for e in engines:  # warm-up, untimed (llama-bench warms up on its own every run)
            if isinstance(e, Worker):
                e.measure()
        floors_before = measure_floors(env)
        per_round: dict[str, list[dict]] = {e.name: [] for e in engines}
        for r in range(args.rounds):
            order = engines[r % len(engines):] + engines[:r % len(engines)]
            for e in order:
                per_round[e.name].append(e.measure())
            line = "  ".join(f"{e.name}: " + ", ".join(f"{k} {v:.1f}" for k, v in per_round[e.name][-1].items())
                             for e in engines)
            print(f"round {r + 1}/{args.rounds} (tok/s)  {line}", flush=True)
        floors_after = measure_floors(env)
    finally:
        for e in engines:
            e.close()
        if busy is not None:
            busy.terminate()
            busy.wait()

    floors = {k: max(floors_before[k], floors_after[k]) for k in floors_before}
    report = {"model": str(path), "machine": machine_name(), "threads": threads, "busy": args.busy,
              "rounds": args.rounds, "load_average_at_start": load_average, "floors": floors,
              "versions": {e.name: e.version for e in engines}, "per_round": per_round}
    print_report(report, cfg, decode_bytes_per_token(cfg), {n: prefill_flops(cfg, n) for n in PREFILL_TOKENS})
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def print_report(r: dict, cfg, decode_bytes: int, flops: dict[int, float]) -> None:
    f, runs = r["floors"], r["per_round"]
    bw = f["bandwidth_2threads_GBps" if r["threads"] > 1 else "bandwidth_1thread_GBps"] * 1e9
    floor = {"decode": bw / decode_bytes, **{f"prefill {n}": n * f["matmul_GFLOPs"] * 1e9 / flops[n] for n in flops}}
    print(f"\nvs_llamacpp: {r['model']}  ({r['machine']}; {r['threads']} threads; "
          f"{'BUSY: a single-threaded NumPy job on the other core' if r['busy'] else 'no background job'}; "
          f"load average {r['load_average_at_start']:.1f} at the start; {r['rounds']} rounds, medians)")
    for name, version in r["versions"].items():
        print(f"  {name}: {version}")
    print(f"  floors (this run): read bandwidth {f['bandwidth_1thread_GBps']:.1f} GB/s (1 thread), "
          f"{f['bandwidth_2threads_GBps']:.1f} GB/s (2 threads); float32 matmul {f['matmul_GFLOPs']:.0f} GFLOP/s")
    print(f"  decode reads {decode_bytes / 1e9:.2f} GB of float32 weights per token -> floor {floor['decode']:.1f} "
          f"tok/s; " + "; ".join(f"prefill {n} is {flops[n] / 1e9:.0f} GFLOP -> floor {floor[f'prefill {n}']:.0f} tok/s"
                                  for n in flops))
    names = list(runs)
    med = {name: medians(runs[name]) for name in names}
    header = f"\n  {'tok/s (median)':<16}" + "".join(f"{name:>14}" for name in names) + \
        "".join(f"{'minillm/' + name:>22}" for name in names[1:]) + f"{'minillm vs floor':>18}"
    print(header)
    ratios = {name: median_ratios(runs["minillm"], runs[name]) for name in names[1:]}
    for key in med["minillm"]:
        cells = "".join(f"{med[name].get(key, float('nan')):>14.1f}" for name in names)
        cells += "".join(f"{ratios[name].get(key, float('nan')):>21.2f}x" for name in names[1:])
        print(f"  {key:<16}{cells}{med['minillm'][key] / floor[key]:>18.2f}")
    others = [n for n in names[1:] if all(k in med[n] for k in floor)]
    for name in others:
        print(f"  {name} vs floor: " + ", ".join(f"{k} {med[name][k] / floor[k]:.2f}" for k in floor))
    print("  (ratios: the median over rounds of minillm's speed / the other engine's, measured in the same round)")


if __name__ == "__main__":
    sys.exit(main())
