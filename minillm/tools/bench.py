"""``minillm bench``: how fast is NumPy inference here, compared with what this machine can possibly do?

Decoding one token reads every float32 weight once, so its floor is  weight bytes / memory bandwidth.
Prefilling a prompt is matrix multiplication, so its floor is  FLOPs / matmul throughput. The benchmark
measures both floors on this machine, in the same run, and prints each figure as a ratio to its floor
(absolute timings drift on shared machines; ratios measured side by side do not).

    minillm bench --shape qwen2.5-0.5b          # builds a random BF16 checkpoint of the real shape, offline
    minillm bench --shape qwen3-0.6b
    minillm bench --shape qwen3.5-0.8b          # hybrid: the Hub's multimodal layout, prefill of 512 tokens
    minillm bench --model ~/models/Qwen2.5-0.5B-Instruct    # or --model Qwen/Qwen2.5-0.5B-Instruct (HF cache)
    minillm bench --shape qwen3-0.6b --out benchmarks/out   # keep the JSON (and the built checkpoint)

Without ``--out`` nothing is kept: the checkpoint is built in a temporary directory, removed at the end
(the installed package is never written to).

For a hybrid model (Qwen3.5) it also times one decode step per layer type at growing context lengths: a
full-attention layer reads a KV cache that grows with the context, a linear-attention layer a fixed state.

Each measurement runs in its own subprocess, so peak memory (ru_maxrss) is that phase's alone and the
transformers comparison (run when transformers is installed) does not share threads or memory with us.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..checkpoint.weights import expected_shapes

ROOT = Path(__file__).resolve().parents[2]
SHAPES = {  # real configs (as the Hub ships them), kept in weights/configs/
    "qwen2.5-0.5b": ROOT / "weights" / "configs" / "qwen2.5-0.5b-instruct.v4.json",
    "qwen3-0.6b": ROOT / "weights" / "configs" / "qwen3-0.6b.v4.json",
    "qwen3.5-0.8b": ROOT / "weights" / "configs" / "qwen3.5-0.8b.json",
}
PROMPT_TOKENS, NEW_TOKENS = 128, 64
SPECULATIVE_K = 8  # draft length of the speculative decoding figures
HYBRID_PROMPT_TOKENS = 512  # enough chunks of the chunked delta rule (64 tokens each) to matter
CONTEXTS = (128, 1024, 8192)  # context lengths at which the per-layer decode cost is timed (hybrid models)


def prompt_tokens(cfg) -> int:
    return HYBRID_PROMPT_TOKENS if cfg.is_hybrid else PROMPT_TOKENS


# ---------------------------------------------------------------------------------------------- checkpoint

def build_random_checkpoint(shape: str, out: Path) -> Path:
    """Write a random-weight checkpoint of a real model's shape, as BF16 safetensors like the real files."""
    from safetensors import TensorSpec, serialize_file

    from ..checkpoint.config import load_config

    out.mkdir(parents=True, exist_ok=True)
    if (out / "model.safetensors").is_file() and (out / "config.json").is_file():
        return out
    raw = json.loads(SHAPES[shape].read_text())
    cfg = load_config(SHAPES[shape])
    rng = np.random.default_rng(0)
    store_head = shape == "qwen3-0.6b"  # Qwen3-0.6B's file holds lm_head.weight although the head is tied
    shapes = expected_shapes(cfg, with_lm_head=store_head or not cfg.tie_word_embeddings)
    arrays, specs = {}, {}
    bf16 = lambda x: (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)  # truncate: fine here
    for name, shp in shapes.items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            bits = arrays["model.embed_tokens.weight"]
        elif name.endswith("linear_attn.norm.weight") or (name.endswith("norm.weight") and not cfg.zero_centred_norms):
            bits = np.full(shp, 0x3F80, np.uint16)  # bf16 1.0: a plain gain of 1
        elif name.endswith("norm.weight"):
            bits = np.zeros(shp, np.uint16)  # zero-centred: a gain of 1 + 0
        elif name.endswith("A_log"):
            bits = bf16(np.log(rng.uniform(0.01, 16, shp)))  # transformers' init: decays from ~0 to ~1
        elif name.endswith("dt_bias"):
            bits = np.full(shp, 0x3F80, np.uint16)  # transformers' init: 1.0
        else:
            bits = bf16(0.02 * rng.standard_normal(shp, dtype=np.float32))
        if cfg.is_hybrid and name.startswith("model."):  # the Hub's multimodal layout
            name = "model.language_model." + name[len("model."):]
        arrays[name] = bits
        specs[name] = TensorSpec(dtype="bfloat16", shape=bits.shape, data_ptr=bits.ctypes.data, data_len=bits.nbytes)
    serialize_file(specs, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(raw, indent=2))
    return out


# ---------------------------------------------------------------------------------------------- floors

def measure_bandwidth(threads: int, gib: float = 1.0, repeats: int = 5) -> float:
    """Read bandwidth in GB/s: `threads` threads each summing its share of a large float32 array."""
    data = np.ones(int(gib * 2 ** 30) // 4, np.float32)
    parts = np.array_split(data, threads)
    best = float("inf")
    for _ in range(repeats):
        workers = [threading.Thread(target=np.add.reduce, args=(p,)) for p in parts]  # releases the GIL
        t = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = min(best, time.perf_counter() - t)
    return data.nbytes / best / 1e9


def measure_matmul(n: int = 2048, repeats: int = 5, clock=time.perf_counter) -> float:
    """float32 matrix-multiply throughput in GFLOP/s (n x n times n x n, all threads), best of ``repeats`` timed
    by ``clock`` (benchmarks/profile.py --cpu-time passes time.thread_time)."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = clock()
        a @ b
        best = min(best, clock() - t)
    return 2 * n ** 3 / best / 1e9


# ---------------------------------------------------------------------------------------------- phases

def phase_floors(quick: bool = False) -> dict:
    gib, n = (0.125, 512) if quick else (1.0, 2048)
    return {"bandwidth_1thread_GBps": measure_bandwidth(1, gib), "bandwidth_2threads_GBps": measure_bandwidth(2, gib),
            "matmul_GFLOPs": measure_matmul(n)}


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def phase_minillm(path: Path) -> dict:
    import warnings

    from ..generation.generate import prefill
    from ..checkpoint.loading import load_model

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "vision tower not used": not news here
        model = load_model(path)
    load_s = time.perf_counter() - t
    cfg = model.config
    n_prompt = prompt_tokens(cfg)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, min(cfg.vocab_size, 150000), n_prompt)[None]  # [1, 128 or 512]
    valid = np.ones_like(ids, bool)

    prefill_s = float("inf")
    for _ in range(3):
        cache = model.new_cache(1, n_prompt + NEW_TOKENS)
        t = time.perf_counter()
        logits = prefill(model, ids, valid, cache)  # [1, V]
        prefill_s = min(prefill_s, time.perf_counter() - t)

    token = logits.argmax(-1)  # [1]
    t = time.perf_counter()
    for _ in range(NEW_TOKENS):
        token = model.forward(token[:, None], cache=cache, logits_to_keep=1)[:, -1].argmax(-1)  # [1]
    decode_s = time.perf_counter() - t
    peak = _peak_rss_bytes()  # before the context sweep below, which allocates caches of its own
    result = {"load_s": load_s, "prefill_s": prefill_s, "decode_s_per_token": decode_s / NEW_TOKENS,
              "peak_rss_bytes": peak, "kv_cache_bytes": cache.nbytes, "weights_float32_bytes": weight_bytes(model)}
    result["speculative"] = speculative_figures(model, ids[0])
    if cfg.is_hybrid:
        result["decode_ms_per_layer_by_context"] = decode_cost_by_layer_type(model)
    return result


def speculative_figures(model, prompt: np.ndarray) -> dict:
    """Speculative decoding (prompt lookup, k = SPECULATIVE_K) on the benchmark's prompt, and the step it rests on.

    * step_ratio: a cached forward over k tokens / over one token (model/linear.py's few-rows product);
    * decode with prompt lookup against plain decoding of the benchmark's prompt of random ids, alternated, best
      of 3 each: nothing to copy, so this measures the drafting and checking overhead; benchmarks/speculative.py
      measures a prompt worth copying.
    """
    from ..generation.generate import stream_generate
    from ..generation.speculative import SpeculativeStats

    rng = np.random.default_rng(1)
    V = min(model.config.vocab_size, 150000)

    def step_s(T: int) -> float:  # best of 3 cached forwards over T new tokens after the prompt
        cache = model.new_cache(1, len(prompt) + 4 * T)
        model.forward(prompt, cache=cache, logits_to_keep=1)
        ids, best = rng.integers(0, V, T), float("inf")
        for _ in range(3):
            t = time.perf_counter()
            model.forward(ids, cache=cache, logits_to_keep=T)
            best = min(best, time.perf_counter() - t)
        return best

    def decode_s(n: int, stats=None) -> float:  # stats given: with prompt lookup; else plain decoding
        """Seconds from the first new token to the n-th (the prompt's pass left out, as in the decode figure)."""
        lookup = dict(prompt_lookup_num_tokens=SPECULATIVE_K, speculative_stats=stats) if stats is not None else {}
        first = None
        for _ in stream_generate(model, prompt, n, temperature=0.0, stop_token_ids=[], **lookup):
            first = time.perf_counter() if first is None else first
        return time.perf_counter() - first

    one = step_s(1)
    plain_s, spec_s = float("inf"), float("inf")
    for _ in range(3):  # alternated, best of each: the two figures come from the same conditions
        plain_s = min(plain_s, decode_s(NEW_TOKENS + 1))
        stats = SpeculativeStats()
        spec_s = min(spec_s, decode_s(NEW_TOKENS + 1, stats))
    return {"k": SPECULATIVE_K, "step_ratio": {T: step_s(T) / one for T in (2, 4, 8)},
            "decode_ratio_vs_plain": plain_s / spec_s,
            "acceptance_rate": stats.acceptance_rate, "tokens_per_pass": stats.tokens_per_pass,
            "schedule": "adaptive", "passes": stats.forward_passes, "plain_steps": stats.plain_steps}


def decode_cost_by_layer_type(model, steps: int = 8) -> dict:
    """Milliseconds per decode step of one linear-attention and one full-attention layer, at each context length.

    The cache is filled synthetically (timing does not depend on the values): a full-attention layer then
    attends over all S cached keys, a linear-attention layer updates its fixed-size state.
    """
    from ..model import transformer

    timings: dict[str, float] = {}
    original = transformer.hybrid_decoder_layer

    def timed(x, w, *args, **kwargs):  # the same layer, with a stopwatch around it
        t = time.perf_counter()
        out = original(x, w, *args, **kwargs)
        kind = "linear_attention" if w.linear_attn is not None else "full_attention"
        timings[kind] = timings.get(kind, 0.0) + time.perf_counter() - t
        return out

    cfg, result = model.config, {}
    layers = {kind: cfg.layer_types.count(kind) for kind in ("linear_attention", "full_attention")}
    transformer.hybrid_decoder_layer = timed
    try:
        for context in CONTEXTS:
            cache = model.new_cache(1, context + steps + 1)
            cache.key_valid[:, :context], cache.next_position[:], cache.length = True, context, context
            token = np.array([[1]])
            model.forward(token, cache=cache, logits_to_keep=1)  # warm-up
            timings.clear()
            for _ in range(steps):
                model.forward(token, cache=cache, logits_to_keep=1)
            result[context] = {kind: 1000 * timings[kind] / steps / layers[kind] for kind in layers}
            del cache
    finally:
        transformer.hybrid_decoder_layer = original
    return result


def phase_transformers(path: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(int(os.environ.get("MINILLM_BENCH_THREADS", os.cpu_count() or 1)))
    t = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    load_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    n_prompt = PROMPT_TOKENS if "qwen3_5" not in model.config.model_type else HYBRID_PROMPT_TOKENS
    ids = torch.tensor(rng.integers(0, min(model.config.vocab_size, 150000), n_prompt)[None])
    with torch.inference_mode():
        prefill_s = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            out = model(ids, use_cache=True, logits_to_keep=1)
            prefill_s = min(prefill_s, time.perf_counter() - t)
        past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        t = time.perf_counter()
        for _ in range(NEW_TOKENS):
            out = model(token, past_key_values=past, use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        decode_s = time.perf_counter() - t
        # What a user of `generate` gets (greedy, no stop): time for 1 + NEW_TOKENS tokens minus time for 1.
        kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None, top_k=None, top_p=None, temperature=None)
        model.generate(ids, max_new_tokens=2, min_new_tokens=2, **kw)
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
        one = time.perf_counter() - t
        t = time.perf_counter()
        model.generate(ids, max_new_tokens=NEW_TOKENS + 1, min_new_tokens=NEW_TOKENS + 1, **kw)
        generate_decode_s = (time.perf_counter() - t - one) / NEW_TOKENS
    import transformers
    return {"load_s": load_s, "prefill_s": prefill_s, "decode_s_per_token": decode_s / NEW_TOKENS,
            "generate_decode_s_per_token": generate_decode_s,
            "peak_rss_bytes": _peak_rss_bytes(), "version": transformers.__version__, "torch": torch.__version__}


def weight_bytes(model) -> int:
    """float32 bytes of every distinct weight array (a tied head counts once)."""
    return sum(a.nbytes for a in model.weights.arrays())


def decode_bytes_per_token(cfg) -> int:
    """Weight bytes one decode step reads: every layer, the final norm, the LM head, one embedding row."""
    sizes = {name: math.prod(shape) for name, shape in expected_shapes(cfg, with_lm_head=True).items()}
    embedding = sizes.pop("model.embed_tokens.weight")  # the table itself is not read, one row is
    return 4 * (sum(sizes.values()) + embedding // cfg.vocab_size)


def prefill_flops(cfg, T: int) -> float:
    """Multiply-adds x 2 of a T-token prefill with logits at the last position only.

    Counted: every projection (q k v o gate up down; Qwen3.5's in_proj_* / out_proj and its conv), softmax
    attention over the causal half, and the delta rule's 4 Dk Dv per token and value head (decay, read,
    write, query: the recurrence's work; the chunked form does a little more, as matrix products).
    """
    shapes = expected_shapes(cfg, with_lm_head=True)
    projections = sum(math.prod(s) for n, s in shapes.items()  # every weight matrix a token goes through
                      if len(s) >= 2 and n not in ("model.embed_tokens.weight", "lm_head.weight"))
    attention_layers = sum(not (cfg.is_hybrid and cfg.is_linear_attention(i)) for i in range(cfg.num_hidden_layers))
    attention = attention_layers * cfg.num_attention_heads * cfg.head_dim * T * (T + 1)  # q k^T, p v: causal half
    delta_rule = (cfg.num_hidden_layers - attention_layers) * cfg.linear_num_value_heads * 4 * \
        cfg.linear_key_head_dim * cfg.linear_value_head_dim * T
    return 2.0 * (projections * T + attention + delta_rule + math.prod(shapes["lm_head.weight"]))


# ----------------------------------------------------------------------------------------------------------
# driver

def _run_phase(name: str, path: Path | None, threads: int | None = None) -> dict:
    from ..errors import MinillmError

    cmd = [sys.executable, "-m", "minillm.tools.bench", "--phase", name, str(path or "")]
    env = dict(os.environ)
    if threads:  # every BLAS / OpenMP pool of the phase, and torch (phase_transformers reads the last one)
        env.update({k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                              "MINILLM_BENCH_THREADS")})
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise MinillmError(f"bench: the {name} phase failed: {last}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def run_benchmark(path: Path, label: str, with_transformers: bool | None, out_dir: Path | None,
                  quick: bool = False, threads: int | None = None) -> dict:
    from ..checkpoint.config import load_config

    cfg = load_config(path)
    load_average = os.getloadavg()[0]  # other work on the machine skews every figure: say how much there was
    floor_phase = "floors-quick" if quick else "floors"
    before = _run_phase(floor_phase, None, threads)
    ours = _run_phase("minillm", path, threads)
    have_tf = with_transformers
    if have_tf is None:
        have_tf = subprocess.run([sys.executable, "-c", "import torch, transformers"], capture_output=True).returncode == 0
    theirs = _run_phase("transformers", path, threads) if have_tf else None
    after = _run_phase(floor_phase, None, threads)
    # A floor is the best the machine can do: take the better of the two measurements around the runs.
    floors = {key: max(before[key], after[key]) for key in before}

    bw = floors["bandwidth_1thread_GBps" if threads == 1 else "bandwidth_2threads_GBps"] * 1e9
    n_prompt = prompt_tokens(cfg)
    decode_floor_s = decode_bytes_per_token(cfg) / bw
    prefill_floor_s = prefill_flops(cfg, n_prompt) / (floors["matmul_GFLOPs"] * 1e9)
    mem_budget = ours["weights_float32_bytes"] + ours["kv_cache_bytes"]
    result = {
        "model": label, "machine": machine_name(), "floors": floors, "threads": threads or os.cpu_count(),
        "load_average_at_start": load_average,
        "decode_bytes_per_token": decode_bytes_per_token(cfg), "prefill_flops": prefill_flops(cfg, n_prompt),
        "prompt_tokens": n_prompt,
        "minillm": ours, "transformers": theirs,
        "ratios": {
            "decode_vs_bandwidth_floor": decode_floor_s / ours["decode_s_per_token"],
            "prefill_vs_matmul_floor": prefill_floor_s / ours["prefill_s"],
            "peak_memory_vs_weights_plus_cache": ours["peak_rss_bytes"] / mem_budget,
        },
    }
    if theirs:
        result["ratios"].update({
            "decode_speedup_vs_transformers": theirs["decode_s_per_token"] / ours["decode_s_per_token"],
            "decode_speedup_vs_transformers_generate": theirs["generate_decode_s_per_token"] / ours["decode_s_per_token"],
            "prefill_speedup_vs_transformers": theirs["prefill_s"] / ours["prefill_s"],
            "load_speedup_vs_transformers": theirs["load_s"] / ours["load_s"],
        })
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"bench-{label}.json").write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    return result


def machine_name() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, NumPy {np.__version__}, Python {platform.python_version()}"


def print_report(r: dict) -> None:
    f, o, t, q = r["floors"], r["minillm"], r["transformers"], r["ratios"]
    n_prompt = r.get("prompt_tokens", PROMPT_TOKENS)
    decode_floor = f["bandwidth_1thread_GBps" if r.get("threads") == 1 else "bandwidth_2threads_GBps"] * 1e9 / \
        r["decode_bytes_per_token"]
    prefill_floor = n_prompt / (r["prefill_flops"] / (f["matmul_GFLOPs"] * 1e9))
    print(f"minillm bench: {r['model']}  ({r['machine']}; {r.get('threads')} threads, load average "
          f"{r.get('load_average_at_start', float('nan')):.1f} at the start)")
    print(f"  floors: read bandwidth {f['bandwidth_1thread_GBps']:.1f} GB/s (1 thread), "
          f"{f['bandwidth_2threads_GBps']:.1f} GB/s (2 threads); float32 matmul {f['matmul_GFLOPs']:.0f} GFLOP/s")
    print(f"  decode reads {r['decode_bytes_per_token'] / 1e9:.2f} GB of float32 weights per token -> floor "
          f"{decode_floor:.1f} tok/s; prefill of {n_prompt} tokens is {r['prefill_flops'] / 1e9:.1f} GFLOP -> "
          f"floor {prefill_floor:.0f} tok/s")
    rows = [("load", f"{o['load_s']:.2f} s", t and f"{t['load_s']:.2f} s", None),
            ("peak memory", f"{o['peak_rss_bytes'] / 1e9:.2f} GB", t and f"{t['peak_rss_bytes'] / 1e9:.2f} GB",
             f"{q['peak_memory_vs_weights_plus_cache']:.2f}x weights+cache"),
            (f"prefill {n_prompt}", f"{n_prompt / o['prefill_s']:.0f} tok/s",
             t and f"{n_prompt / t['prefill_s']:.0f} tok/s", f"{q['prefill_vs_matmul_floor']:.2f} of floor"),
            (f"decode {NEW_TOKENS}", f"{1 / o['decode_s_per_token']:.1f} tok/s",
             t and f"{1 / t['decode_s_per_token']:.1f} tok/s", f"{q['decode_vs_bandwidth_floor']:.2f} of floor")]
    print(f"\n  {'':<14}{'minillm':>14}{'transformers':>16}   minillm vs floor")
    for name, ours, theirs, ratio in rows:
        print(f"  {name:<14}{ours:>14}{theirs or 'n/a':>16}   {ratio or ''}")
    if t:
        print(f"  {'(generate)':<14}{'':>14}{1 / t['generate_decode_s_per_token']:>12.1f} tok/s   "
              f"transformers' generate() loop, same greedy decode")
        print(f"\n  minillm vs transformers {t['version']} (float32, torch {t['torch']}): decode "
              f"{q['decode_speedup_vs_transformers']:.2f}x its forward loop and "
              f"{q['decode_speedup_vs_transformers_generate']:.2f}x its generate(), prefill "
              f"{q['prefill_speedup_vs_transformers']:.2f}x, load {q['load_speedup_vs_transformers']:.2f}x")
    else:
        print("\n  (transformers not installed: no comparison; pip install -e '.[reference]')")
    spec = o.get("speculative")
    if spec:
        steps = ", ".join(f"{T} tokens {ratio:.2f}x" for T, ratio in spec["step_ratio"].items())
        print(f"\n  cached step over k tokens vs one: {steps}")
        print(f"  speculative decoding (prompt lookup, k={spec['k']}, adaptive draft length, on the random prompt: "
              f"nothing to copy): {spec['decode_ratio_vs_plain']:.2f}x plain decode, {spec['acceptance_rate']:.0%} "
              f"of checked drafts accepted, {spec['tokens_per_pass']:.2f} tokens per forward pass, "
              f"{spec.get('plain_steps', 0)} of {spec.get('passes', 0)} passes without a draft")
    by_context = o.get("decode_ms_per_layer_by_context")
    if by_context:
        print("\n  decode time of one layer per token, by context length (cache filled synthetically):")
        print(f"    {'context':>10}{'linear attention':>20}{'full attention':>18}")
        for context, ms in by_context.items():
            print(f"    {context:>10}{ms['linear_attention']:>17.2f} ms{ms['full_attention']:>15.2f} ms")
        first, last = list(by_context.values())[0], list(by_context.values())[-1]
        print(f"    linear attention stays flat ({last['linear_attention'] / first['linear_attention']:.2f}x from "
              f"{list(by_context)[0]} to {list(by_context)[-1]} tokens); full attention grows "
              f"{last['full_attention'] / first['full_attention']:.2f}x with its KV cache")


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", choices=sorted(SHAPES), help="build a random-weight checkpoint of this real shape")
    p.add_argument("--model", help="benchmark this checkpoint directory (or Hub id org/name) instead")
    p.add_argument("--no-transformers", action="store_true", help="skip the transformers comparison")
    p.add_argument("--out", type=Path, help="keep the JSON result and the built checkpoint in this folder "
                                            "(default: keep nothing)")
    p.add_argument("--quick", action="store_true", help="small floor measurements (a smoke test, not a benchmark)")
    p.add_argument("--threads", type=int, help="BLAS and torch threads in every phase (default: all cores). On a "
                   "machine shared with other work, 1 avoids BLAS threads spinning while they wait for a busy core")
    p.set_defaults(run=cmd_bench)


def cmd_bench(args) -> int:
    from ..errors import MinillmError

    if bool(args.shape) == bool(args.model):
        raise MinillmError("bench: give exactly one of --shape NAME or --model PATH")
    with tempfile.TemporaryDirectory(prefix="minillm-bench-") as scratch:
        if args.shape:
            where = (args.out or Path(scratch)) / args.shape
            print(f"building a random {args.shape} checkpoint (BF16) in {where} ...", file=sys.stderr)
            try:
                path, label = build_random_checkpoint(args.shape, where), args.shape
            except OSError as e:
                raise MinillmError(f"bench: cannot write the checkpoint in {where} ({e.strerror or e})") from None
        else:
            from ..checkpoint.hub import resolve_model_path

            path = resolve_model_path(args.model)  # a directory, or a Hub id from the local HF cache
            label = path.name if Path(args.model).expanduser().exists() else str(args.model).split("@")[0].split("/")[-1]
        try:
            run_benchmark(path, label, False if args.no_transformers else None, args.out, args.quick, args.threads)
        except OSError as e:
            raise MinillmError(f"bench: cannot write the result in {args.out} ({e.strerror or e})") from None
    return 0


if __name__ == "__main__":  # one phase, in its own process; prints one JSON line
    phase, arg = sys.argv[sys.argv.index("--phase") + 1], Path(sys.argv[-1])
    result = {"floors": phase_floors, "floors-quick": lambda: phase_floors(quick=True),
              "minillm": lambda: phase_minillm(arg), "transformers": lambda: phase_transformers(arg)}[phase]()
    print(json.dumps(result))
