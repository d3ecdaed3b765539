"""How fast is one training step (loss_and_grads) in NumPy, compared with this machine's matmul floor and torch?

    python benchmarks/train_step.py              # the default: a ~7M-parameter Qwen3, B=8, T=256
    python benchmarks/train_step.py --batch 4 --seq 128
    python benchmarks/train_step.py --threads 1  # steadier on a busy machine: floor and torch on one thread too

The model: D=256, L=6, H=4, K=2, Dh=64, F=768, V=8192, tied embeddings, q/k-norm (Qwen3), random weights built
in memory. A training step is matrix multiplication plus element-wise work, so its floor is FLOPs / matmul
throughput, both measured in this run (absolute timings drift on a shared machine; ratios measured side by
side do not). FLOPs = 6 x parameters x tokens (forward 2, backward 4 per weight and token; the tied matrix
counts once, as the LM head, since the embedding lookup is free) + attention: 12 x B x H x Dh x T(T+1)/2
for q k^T and p v, forward and backward, over the causal triangle (the query-key pairs a causal mask lets
through). That is the work a step needs; minillm's training attention computes whole blocks of 128 query
rows (3/4 of the T x T square at T = 256, 10/16 at T = 512), eager transformers the whole square.

Printed: tokens/s, achieved GFLOP/s, the float32 matmul floor and the ratio; torch's forward+backward of the
same model with the same weights (transformers Qwen3ForCausalLM, float32, eager attention, all threads) when
torch is installed; and the activation memory kept for the backward, per token.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import tracemalloc
from pathlib import Path

if "--threads" in sys.argv:  # BLAS reads its thread count when NumPy is first imported: set it before that
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]

import numpy as np  # noqa: E402

# Replace this script's folder on the path by the repository: benchmarks/profile.py would otherwise shadow the
# standard library's `profile` module, which torch imports.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import minillm  # noqa: E402
from minillm.backward.transformer import activation_bytes, minimum_activation_bytes, model_forward  # noqa: E402
from minillm.checkpoint.config import parse_config  # noqa: E402
from minillm.checkpoint.weights import build_weights, expected_shapes, named_tensors  # noqa: E402
from minillm.tools.bench import measure_matmul  # noqa: E402

CONFIG = {
    "model_type": "qwen3", "vocab_size": 8192, "hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 6,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "attention_bias": False, "rope_theta": 10000.0,
}


def random_model(seed: int = 0) -> minillm.Model:
    cfg = parse_config(CONFIG, "benchmark config")
    rng = np.random.default_rng(seed)
    shapes = expected_shapes(cfg)

    def tensor(name: str) -> np.ndarray:
        if name.endswith("norm.weight"):
            return np.ones(shapes[name], np.float32)
        return (0.02 * rng.standard_normal(shapes[name])).astype(np.float32)

    return minillm.Model(cfg, build_weights(cfg, tensor))


def threads() -> int:
    """The BLAS threads NumPy uses (--threads, else every core): torch gets as many."""
    return int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count() or 1))


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def step_flops(model: minillm.Model, B: int, T: int) -> tuple[float, int]:
    cfg = model.config
    params = sum(math.prod(s) for s in expected_shapes(cfg).values())  # a tied matrix once
    attention = 12 * B * cfg.num_attention_heads * (T * (T + 1) // 2) * cfg.head_dim * cfg.num_hidden_layers
    return 6.0 * params * B * T + attention, params


def torch_step_seconds(model: minillm.Model, ids: np.ndarray, repeats: int) -> tuple[float, float, int] | None:
    """Forward + loss + backward of transformers' Qwen3ForCausalLM with our weights; None without torch."""
    try:
        import torch
        import transformers
    except ImportError:
        return None
    torch.set_num_threads(threads())
    hf_config = transformers.Qwen3Config(**{k: v for k, v in CONFIG.items() if k not in ("model_type", "rope_theta")},
                                         rope_parameters={"rope_type": "default", "rope_theta": CONFIG["rope_theta"]},
                                         attn_implementation="eager")
    hf = transformers.Qwen3ForCausalLM(hf_config).float()
    state = {name: torch.from_numpy(array.copy()) for name, array in named_tensors(model.weights).items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    x = torch.tensor(ids)

    def step():
        hf.zero_grad(set_to_none=True)
        out = hf(input_ids=x, labels=x)
        out.loss.backward()
        return out.loss.item()

    loss = step()  # warm-up
    return best_time(step, repeats), loss, torch.get_num_threads()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="BLAS threads for NumPy and torch (default: all cores; "
                   "1 gives steadier ratios on a busy machine)")
    args = p.parse_args()
    B, T = args.batch, args.seq

    model = random_model()
    ids = np.random.default_rng(1).integers(0, model.config.vocab_size, (B, T))  # [B, T]
    flops, params = step_flops(model, B, T)
    print(f"model: {model}\n       {params / 1e6:.2f}M parameters (tied head counted once), batch {B} x {T} tokens, "
          f"{threads()} BLAS thread(s)")

    floor = measure_matmul(2048, repeats=3) * 1e9  # FLOP/s
    loss, _ = minillm.loss_and_grads(model, ids)  # warm-up
    step_s = best_time(lambda: minillm.loss_and_grads(model, ids), args.repeats)
    forward_s = best_time(lambda: model_forward(model, ids), args.repeats)
    print(f"\nminillm loss_and_grads   {step_s * 1e3:8.0f} ms/step   (forward with saved activations "
          f"{forward_s * 1e3:.0f} ms, loss + backward {(step_s - forward_s) * 1e3:.0f} ms)   loss {loss:.4f}")
    print(f"  tokens/s               {B * T / step_s:8.0f}")
    print(f"  achieved               {flops / step_s / 1e9:8.1f} GFLOP/s   ({flops / 1e9:.1f} GFLOP per step)")
    print(f"  float32 matmul floor   {floor / 1e9:8.1f} GFLOP/s   (2048 x 2048 @ 2048 x 2048, this run)")
    print(f"  ratio to the floor     {flops / step_s / floor:8.2f}")

    _, saved = model_forward(model, ids)
    kept, minimum = activation_bytes(saved), minimum_activation_bytes(model.config, B, T)
    print(f"\nactivations kept for the backward: {kept / (B * T) / 1024:.1f} KiB per token "
          f"({kept / 2 ** 20:.0f} MiB for the batch); the strict minimum {minimum / (B * T) / 1024:.1f} KiB per token "
          f"(ratio {kept / minimum:.2f})")
    print(f"  plus, during the backward, the [B, T, V] logits gradient: {B * T * model.config.vocab_size * 4 / (B * T) / 1024:.1f} "
          f"KiB per token")
    del saved
    tracemalloc.start()  # NumPy reports its array memory to tracemalloc: the peak of one whole step, weights excluded
    minillm.loss_and_grads(model, ids)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"  peak memory of a whole step (tracemalloc: activations, logits and their gradient, temporaries, the "
          f"gradients): {peak / (B * T) / 1024:.1f} KiB per token ({peak / 2 ** 20:.0f} MiB)")

    torch_result = torch_step_seconds(model, ids, args.repeats)
    if torch_result is None:
        print("\ntorch not installed: no comparison")
        return
    torch_s, torch_loss, torch_threads = torch_result
    print(f"\ntorch forward+backward   {torch_s * 1e3:8.0f} ms/step   (transformers Qwen3ForCausalLM, float32, eager, "
          f"{torch_threads} thread(s))   loss {torch_loss:.4f}")
    print(f"  achieved               {flops / torch_s / 1e9:8.1f} GFLOP/s")
    print(f"  minillm / torch time   {step_s / torch_s:8.2f}")


if __name__ == "__main__":
    main()
