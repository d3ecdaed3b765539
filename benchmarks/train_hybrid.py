"""How fast does minillm train a Qwen3.5-shaped and a MoE-shaped model, against transformers' CPU path, and does the
chunked delta rule's backward grow linearly with the sequence?

    PYTHONPATH=. /work/refvenv/bin/python benchmarks/train_hybrid.py             # with the torch comparison
    python benchmarks/train_hybrid.py --threads 1    # steadier on a busy machine (torch gets as many threads)

Models (random weights, built in memory, float32):
  qwen3.5: D=256, L=4 (3 Gated DeltaNet + 1 gated attention), Hk=2, Hv=4, Dk=Dv=64, H=4, K=2, Dh=64 (R=16),
           F=768, V=8192, tied. transformers' Qwen3_5ForCausalLM runs its PyTorch fallbacks (no
           flash-linear-attention, no causal-conv1d on a CPU): torch_chunk_gated_delta_rule, chunks of 64.
  moe:     Qwen3-MoE, D=256, L=4, E=8, k=2, Fe=256, H=4, K=2, Dh=64, V=8192, tied, with the load-balancing loss
           (output_router_logits) on both sides; transformers' eager experts.
Printed per model: ms per step (forward, loss, backward), tokens/s, minillm / transformers time, the activations
kept for the backward and the peak memory of a whole step (tracemalloc), per token. Then the chunked delta
rule (one layer's heads, B=1) forward + backward at 256 .. 2048 tokens: time per token stays flat.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

if "--threads" in sys.argv:  # BLAS reads its thread count when NumPy is first imported: set it before that
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]

import numpy as np  # noqa: E402

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repository, not benchmarks/ (profile.py shadows)

import minillm  # noqa: E402
from minillm.backward.delta_rule import (chunked_gated_delta_rule_backward,  # noqa: E402
                                         chunked_gated_delta_rule_forward)
from minillm.backward.transformer import activation_bytes, model_forward  # noqa: E402
from minillm.checkpoint.config import parse_config  # noqa: E402
from minillm.checkpoint.weights import named_tensors  # noqa: E402
from minillm.training.init import init_weights  # noqa: E402
from benchmarks.train_step import best_time, threads  # noqa: E402  (the same timing as the dense benchmark)

COMMON = {"vocab_size": 8192, "hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4,
          "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "max_position_embeddings": 4096,
          "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "attention_bias": False, "hidden_act": "silu"}
CONFIGS = {
    "qwen3.5": {**COMMON, "model_type": "qwen3_5_text",
                "layer_types": ["linear_attention"] * 3 + ["full_attention"],
                "linear_num_key_heads": 2, "linear_num_value_heads": 4, "linear_key_head_dim": 64,
                "linear_value_head_dim": 64, "linear_conv_kernel_dim": 4,
                "rope_parameters": {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25}},
    "moe": {**COMMON, "model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2,
            "moe_intermediate_size": 256, "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": [],
            "router_aux_loss_coef": 0.001, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}},
}
HF_CLASSES = {"qwen3.5": ("Qwen3_5TextConfig", "Qwen3_5ForCausalLM"), "moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM")}


def torch_step_seconds(kind: str, model: minillm.Model, ids: np.ndarray, repeats: int, moe: bool):
    """transformers' forward + loss (+ aux loss) + backward with minillm's weights; None without torch."""
    try:
        import torch
        import transformers
    except ImportError:
        return None
    torch.set_num_threads(threads())
    config_class, model_class = (getattr(transformers, name) for name in HF_CLASSES[kind])
    hf_config = config_class(**{k: v for k, v in CONFIGS[kind].items() if k != "model_type"})
    hf_config._attn_implementation = "eager"
    hf = model_class(hf_config).float()
    if moe:
        hf.set_experts_implementation("eager") if hasattr(hf, "set_experts_implementation") else None
    state = {name: torch.from_numpy(array.copy()) for name, array in named_tensors(model.weights).items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    x = torch.tensor(ids)
    extra = {"output_router_logits": True} if moe else {}

    def step():
        hf.zero_grad(set_to_none=True)
        out = hf(input_ids=x, labels=x, **extra)
        out.loss.backward()
        return out.loss.item()

    loss = step()  # warm-up
    return best_time(step, repeats), loss


def bench_model(kind: str, B: int, T: int, repeats: int) -> None:
    cfg = parse_config(CONFIGS[kind], f"benchmark {kind}")
    model = minillm.Model(cfg, init_weights(cfg, seed=0))
    moe = cfg.is_moe
    ids = np.random.default_rng(1).integers(0, cfg.vocab_size, (B, T))  # [B, T]
    options = {"output_router_logits": True} if moe else {}
    loss, _ = minillm.loss_and_grads(model, ids, **options)  # warm-up
    step_s = best_time(lambda: minillm.loss_and_grads(model, ids, **options), repeats)
    forward_s = best_time(lambda: model_forward(model, ids), repeats)
    params = sum(a.size for a in model.weights.arrays())
    print(f"\n{kind}: {params / 1e6:.2f}M parameters, batch {B} x {T} tokens, {threads()} BLAS thread(s)")
    print(f"  minillm        {step_s * 1e3:8.0f} ms/step  {B * T / step_s:7.0f} tokens/s   (forward {forward_s * 1e3:.0f} ms)"
          f"   loss {loss:.4f}")
    _, saved = model_forward(model, ids)
    kept = activation_bytes(saved)
    del saved
    tracemalloc.start()
    minillm.loss_and_grads(model, ids, **options)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"  memory         {kept / (B * T) / 1024:8.1f} KiB per token kept for the backward; peak of a step "
          f"{peak / (B * T) / 1024:.1f} KiB per token ({peak / 2 ** 20:.0f} MiB)")
    result = torch_step_seconds(kind, model, ids, repeats, moe)
    if result is None:
        print("  transformers   not installed: no comparison")
        return
    torch_s, torch_loss = result
    print(f"  transformers   {torch_s * 1e3:8.0f} ms/step  {B * T / torch_s:7.0f} tokens/s   loss {torch_loss:.4f}")
    print(f"  minillm speed  {torch_s / step_s:8.2f}x transformers'")


def bench_delta_rule(lengths: list[int], repeats: int) -> None:
    """Forward (keeping the chunk memories) + backward of the chunked delta rule: B=1, Hv=4, Dk=Dv=64."""
    print("\nchunked delta rule, forward + backward (B=1, Hv=4, Dk=Dv=64, chunks of 64):")
    print(f"  {'tokens':>7} {'ms':>9} {'us/token':>9}  {'kept memories (KiB/token)':>26}")
    rng = np.random.default_rng(0)
    for T in lengths:
        k = rng.standard_normal((1, 4, T, 64)).astype(np.float32)
        k /= np.linalg.norm(k, axis=-1, keepdims=True)
        q = (rng.standard_normal((1, 4, T, 64)) / 8).astype(np.float32)
        v = rng.standard_normal((1, 4, T, 64)).astype(np.float32)
        g = -rng.uniform(0.01, 1, (1, 4, T)).astype(np.float32)
        beta = rng.uniform(0.1, 0.9, (1, 4, T)).astype(np.float32)
        S = np.zeros((1, 4, 64, 64), np.float32)
        dout = rng.standard_normal((1, 4, T, 64)).astype(np.float32)

        def step():
            _, _, starts = chunked_gated_delta_rule_forward(q, k, v, g, beta, S)
            chunked_gated_delta_rule_backward(dout, q, k, v, g, beta, starts)
            return starts

        starts = step()
        s = best_time(step, repeats)
        print(f"  {T:>7} {s * 1e3:>9.1f} {s / T * 1e6:>9.1f}  {starts.nbytes / T / 1024:>26.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="BLAS threads for NumPy and torch (default: all cores)")
    p.add_argument("--only", choices=["qwen3.5", "moe", "delta"], default=None)
    args = p.parse_args()
    for kind in ("qwen3.5", "moe"):
        if args.only in (None, kind):
            bench_model(kind, args.batch, args.seq, args.repeats)
    if args.only in (None, "delta"):
        bench_delta_rule([256, 512, 1024, 2048], args.repeats)


if __name__ == "__main__":
    main()
