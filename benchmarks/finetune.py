"""Fine-tuning speed and peak memory on a Qwen2.5-0.5B-shaped model (random weights), one 512-token sequence.

    python benchmarks/finetune.py                      # minillm: LoRA, LoRA + checkpointing, full, full + ckpt
    /work/refvenv/bin/python benchmarks/finetune.py    # ... and torch + PEFT in the same run (when installed)
    python benchmarks/finetune.py --only lora --steps 2 --seq 256

Each configuration runs in a fresh subprocess, so its peak resident memory (ru_maxrss: weights, gradients,
optimizer state, activations, the interpreter) is its own. A step is what a fine-tuning step does: forward,
backward, gradient clipping and AdamW on the trained tensors (LoRA r=16, alpha=32 on q,k,v,o,gate,up,down;
full: every weight). tokens/s = 512 / the median step after one warm-up step. torch runs transformers'
Qwen2ForCausalLM in float32 (its default attention, sdpa) with PEFT's LoRA, the same config and shapes; its
numbers are printed next to minillm's, with the ratios (minillm tokens/s over torch's; minillm peak over torch's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # the repository, not benchmarks/ (its profile.py would shadow the stdlib's, which torch imports)
CONFIG = ROOT / "weights" / "configs" / "qwen2.5-0.5b-instruct.v5.json"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK, ALPHA = 16, 32
THREADS: dict[str, str] = {}  # environment of the runs: set by --threads


def run_minillm(mode: str, seq: int, steps: int) -> dict:
    import numpy as np

    import minillm
    from minillm.checkpoint.config import parse_config
    from minillm.checkpoint.weights import named_tensors
    from minillm.training.adamw import AdamWState, adamw_step, clip_grad_norm
    from minillm.training.init import init_weights

    cfg = parse_config(json.loads(CONFIG.read_text()), str(CONFIG))
    model = minillm.Model(cfg, init_weights(cfg, seed=0))
    full = mode.startswith("full")
    params = named_tensors(model.weights) if full else \
        minillm.attach_lora(model, RANK, ALPHA, TARGETS, seed=0).tensors()
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (1, seq))  # [1, T]
    opt, times = AdamWState(), []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss, grads = minillm.loss_and_grads(model, ids, checkpoint=mode.endswith("ckpt"))
        clip_grad_norm(grads, 1.0)
        adamw_step(params, grads, opt, 1e-5, weight_decay=0.0)
        del grads
        times.append(time.perf_counter() - t0)
    trained = sum(p.size for p in params.values())
    return {"tokens_per_s": seq / statistics.median(times[1:]), "trained": trained, "loss": loss}


def run_torch(mode: str, seq: int, steps: int) -> dict:
    import peft
    import torch
    import transformers

    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    raw = json.loads(CONFIG.read_text())
    config = transformers.Qwen2Config(**{k: v for k, v in raw.items() if k not in ("architectures", "dtype")})
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config).float()
    if mode == "lora":
        model = peft.get_peft_model(model, peft.LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=TARGETS,
                                                           task_type="CAUSAL_LM"))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=1e-5, weight_decay=0.0)
    ids = torch.randint(0, config.vocab_size, (1, seq))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return {"tokens_per_s": seq / statistics.median(times[1:]), "trained": sum(p.numel() for p in trained),
            "loss": loss.item(), "torch_threads": torch.get_num_threads()}


def child(engine: str, mode: str, seq: int, steps: int) -> None:
    result = (run_torch if engine == "torch" else run_minillm)(mode, seq, steps)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    print("RESULT " + json.dumps(result), flush=True)


def measure(engine: str, mode: str, seq: int, steps: int) -> dict | None:
    out = subprocess.run([sys.executable, __file__, "--child", engine, mode, "--seq", str(seq), "--steps", str(steps)],
                         capture_output=True, text=True, env=dict(os.environ, **THREADS))
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    print(f"{engine} {mode} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    p.add_argument("--only", choices=["lora", "full"], help="only this kind of fine-tuning")
    p.add_argument("--threads", type=int, help="BLAS and torch threads in every run (steadier on a busy machine)")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        THREADS.update(OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    if args.child:
        return child(*args.child, args.seq, args.steps)
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"Qwen2.5-0.5B shape ({CONFIG.name}), random weights, float32, 1 x {args.seq} tokens, "
          f"{os.cpu_count()} cores, {args.threads or 'all'} threads; median of {args.steps} steps after a warm-up")
    print(f"{'run':<26}{'trained':>14}{'tokens/s':>10}{'peak MB':>10}{'vs torch tok/s':>16}{'vs torch peak':>15}")
    for kind in [k for k in ("lora", "full") if args.only in (None, k)]:
        theirs = measure("torch", kind, args.seq, args.steps) if have_torch else None
        for mode in (kind, kind + "+ckpt"):
            ours = measure("minillm", mode, args.seq, args.steps)
            if ours is None:
                continue
            ratio = (f"{ours['tokens_per_s'] / theirs['tokens_per_s']:>15.2f}x"
                     f"{ours['peak_rss_mb'] / theirs['peak_rss_mb']:>14.2f}x" if theirs else "")
            print(f"{'minillm ' + mode:<26}{ours['trained']:>14,}{ours['tokens_per_s']:>10.1f}"
                  f"{ours['peak_rss_mb']:>10.0f}{ratio}", flush=True)
        if theirs:
            print(f"{'torch+PEFT ' + kind if kind == 'lora' else 'torch ' + kind:<26}{theirs['trained']:>14,}"
                  f"{theirs['tokens_per_s']:>10.1f}{theirs['peak_rss_mb']:>10.0f}   "
                  f"({theirs['torch_threads']} torch threads)", flush=True)


if __name__ == "__main__":
    main()
