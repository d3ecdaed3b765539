"""Make the gradient references of the hybrid and mixture-of-experts tiny checkpoints, with transformers' autograd.

    PYTHONPATH=. /work/refvenv/bin/python scripts/make_hybrid_grad_fixtures.py   # after make_qwen35_fixtures.py
    PYTHONPATH=. /work/refvenv/bin/python scripts/make_hybrid_grad_fixtures.py --trained
    PYTHONPATH=. /work/refvenv/bin/python scripts/make_hybrid_grad_fixtures.py --check-trained DIR [DIR ...]

For each of weights/tiny-qwen3.5, tiny-qwen3.5-hub, tiny-qwen3-next, tiny-qwen3-moe, tiny-qwen3.5-moe: load it with
the class its config.json names (the Hub's multimodal class for the -hub and 3.5-moe layouts, so the gradients
carry their ``model.language_model.*`` names; the vision tower gets no gradient and is left out), eager attention
and eager experts, run a fixed batch [2, 80] (80 tokens: the 64-token chunk of the chunked delta rule ends inside
the sequence) with labels holding -100s, call ``loss.backward()`` and write weights/<name>/grad_reference.npz:

  ids, labels [B, T] int64; loss (0-d); every parameter's gradient under its name (float32);
  f64.loss, and f32_vs_f64.<name>: max |g32 - g64| / max |g64| of each tensor, transformers' OWN float32 error
  (the float64 gradients themselves are not stored: they would double the files). transformers casts
  to float32 inside (the delta rule, the norms, RoPE, the attention softmax), so the float64 run uses a copy of
  its modeling file with those casts made float64 (``float64_modeling``): the model's math, all in float64;
  MoE checkpoints also: aux.loss and aux.<name>, the float32 run with output_router_logits=True (the loss then
  adds router_aux_loss_coef times the load-balancing loss), and router_gap: the smallest margin between the
  k-th and (k+1)-th router logits of the batch (a routing decision float32 noise could flip would make a
  gradient comparison meaningless; the seed is chosen so that it is not tiny).

weights/grad_reference_hybrid_meta.json records the versions, the losses and, per checkpoint, the largest
relative difference between transformers' float32 and float64 gradients (max |g32 - g64| / max |g64| per tensor).

``--check-trained DIR``: a checkpoint ``minillm train`` wrote: its logits in transformers (float32) on a fixed
input, written to DIR/transformers_logits.npz for tests/test_train_hybrid.py to compare with minillm's.
``--trained``: first train weights/trained-tiny-{qwen3.5, qwen3-moe, qwen3-next, qwen3.5-moe} with minillm (a few
steps from random weights, the tiny checkpoints' configs (the Hub's multimodal config for Qwen3.5-MoE), the MoE
ones with their load-balancing loss), then check them.
"""

from __future__ import annotations

import importlib
import inspect
import json
import platform
import re
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
MODELS = ["tiny-qwen3.5", "tiny-qwen3.5-hub", "tiny-qwen3-next", "tiny-qwen3-moe", "tiny-qwen3.5-moe"]
BATCH, LENGTH = 2, 80
SEEDS = range(1000, 1100)  # the first seed whose batch routes every token with a margin (MoE only)
MIN_ROUTER_GAP = 1e-3


def make_batch(vocab_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """ids [B, T] and labels = ids with -100s: a prompt at the start of row 0 and one target inside row 1."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(BATCH, LENGTH), dtype=np.int64)  # [B, T]
    labels = ids.copy()
    labels[0, :9] = -100
    labels[1, 70] = -100
    return ids, labels


def float64_modeling(module_name: str):
    """A copy of a transformers modeling module with every float32 cast made float64 (a new module object)."""
    original = importlib.import_module(module_name)
    source = inspect.getsource(original)
    source = source.replace("torch.float32", "torch.float64").replace(".float()", ".double()")
    source = re.sub(r"dtype=torch\.float\b", "dtype=torch.float64", source)
    module = types.ModuleType(module_name + "_float64")
    module.__package__ = original.__package__
    module.__file__ = original.__file__
    sys.modules[module.__name__] = module  # the class machinery looks its annotations up there
    exec(compile(source, original.__file__, "exec"), module.__dict__)
    return module


def model_class(path: Path, transformers, float64: bool):
    config = json.loads((path / "config.json").read_text())
    arch = config["architectures"][0]
    family = {"Qwen3_5": "qwen3_5", "Qwen3_5Moe": "qwen3_5_moe", "Qwen3Next": "qwen3_next",
              "Qwen3Moe": "qwen3_moe"}[re.match(r"(Qwen3_5Moe|Qwen3_5|Qwen3Next|Qwen3Moe)", arch).group(1)]
    name = f"transformers.models.{family}.modeling_{family}"
    if not float64:
        return getattr(importlib.import_module(name), arch)
    cls = getattr(float64_modeling(name), arch)
    cls.config_class = getattr(importlib.import_module(name), arch).config_class  # the same config class
    return cls


def router_gap(model, torch, ids) -> float:
    """The smallest margin between the k-th and (k+1)-th router logits over the batch and every MoE layer."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), output_router_logits=True)
    k = model.config.get_text_config().num_experts_per_tok
    gaps = []
    for logits in out.router_logits:
        top = torch.topk(logits.float(), k + 1, dim=-1).values
        gaps.append(float((top[:, k - 1] - top[:, k]).min()))
    return min(gaps)


def gradients(model, torch, ids, labels, **kwargs) -> tuple[float, dict[str, np.ndarray]]:
    model.zero_grad(set_to_none=True)
    out = model(input_ids=torch.tensor(ids), labels=torch.tensor(labels), **kwargs)
    out.loss.backward()
    grads = {name: p.grad.detach().numpy().copy() for name, p in model.named_parameters() if p.grad is not None}
    return float(out.loss.item()), grads


def make_fixture(name: str, torch, transformers) -> dict:
    path = WEIGHTS / name
    load = dict(attn_implementation="eager", experts_implementation="eager")
    model = model_class(path, transformers, False).from_pretrained(path, dtype=torch.float32, **load).train()
    text = model.config.get_text_config()
    moe = getattr(text, "num_experts", 0) > 0 or getattr(text, "num_local_experts", 0) > 0
    seed, gap = SEEDS[0], None
    for seed in SEEDS:
        ids, labels = make_batch(text.vocab_size, seed)
        if not moe:
            break
        gap = router_gap(model, torch, ids)
        if gap >= MIN_ROUTER_GAP:
            break
    loss, grads = gradients(model, torch, ids, labels)
    result = {"ids": ids, "labels": labels, "loss": np.array(loss, np.float32)}
    result.update({k: g.astype(np.float32) for k, g in grads.items()})
    meta = {"seed": seed, "loss": loss, "tensors": len(grads)}
    if moe:
        aux_loss, aux_grads = gradients(model, torch, ids, labels, output_router_logits=True)
        result["aux.loss"] = np.array(aux_loss, np.float32)
        result.update({"aux." + k: g.astype(np.float32) for k, g in aux_grads.items()})
        result["router_gap"] = np.array(gap, np.float32)
        meta.update(aux_loss=aux_loss, router_gap=gap, router_aux_loss_coef=text.router_aux_loss_coef)

    model64 = model_class(path, transformers, True).from_pretrained(path, dtype=torch.float64, **load).train()
    loss64, grads64 = gradients(model64, torch, ids, labels)
    result["f64.loss"] = np.array(loss64, np.float64)
    own_error = {k: float(np.abs(grads[k] - grads64[k]).max() / (np.abs(grads64[k]).max() or 1.0)) for k in grads}
    result.update({"f32_vs_f64." + k: np.array(e) for k, e in own_error.items()})  # scalars, not the gradients
    worst = max(own_error, key=own_error.get)
    meta.update(loss_float64=loss64, transformers_f32_vs_f64_worst=own_error[worst], worst_tensor=worst)
    np.savez_compressed(path / "grad_reference.npz", **result)
    print(f"{name}: seed {seed}, loss {loss:.6f} (f64 {loss64:.9f}), {len(grads)} gradients, transformers' own "
          f"f32 error up to {own_error[worst]:.2e} ({worst})" + (f", router gap {gap:.2e}" if moe else ""))
    return meta


TRAINED = {"trained-tiny-qwen3.5": ("tiny-qwen3.5", {}),
           "trained-tiny-qwen3-moe": ("tiny-qwen3-moe", {"output_router_logits": True}),
           "trained-tiny-qwen3-next": ("tiny-qwen3-next", {"output_router_logits": True}),
           "trained-tiny-qwen3.5-moe": ("tiny-qwen3.5-moe", {"output_router_logits": True})}


def train_tiny(name: str) -> Path:
    """weights/<name>: a few steps of ``minillm train`` (no torch involved) from random weights, with the config
    of a tiny checkpoint; the checkpoint as the trainer writes it (BF16), without its trainer_state/."""
    import shutil
    import tempfile
    from minillm.training.trainer import TrainConfig, Trainer

    source, extra = TRAINED[name]
    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens.npy"
        config = json.loads((WEIGHTS / source / "config.json").read_text())
        vocab = config.get("text_config", config)["vocab_size"]  # the Hub layout nests the LM config
        np.save(tokens, np.random.default_rng(11).integers(0, vocab, 5000).astype(np.uint16))
        raw = dict(model=config, train_tokens=str(tokens), tokenizer=str(WEIGHTS / source), steps=6, batch_size=2,
                   context=70, lr=3e-3, warmup=1, save_every=6, seed=5, **extra)
        Trainer(TrainConfig.from_dict(raw), Path(tmp) / "run", progress=False).run()
        out = WEIGHTS / name
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(Path(tmp) / "run" / "checkpoint", out, ignore=shutil.ignore_patterns("trainer_state"))
    return out


def check_trained(directory: Path, torch, transformers) -> None:
    """transformers' float32 logits of a minillm-trained checkpoint on fixed ids."""
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32,
                                                              attn_implementation="eager",
                                                              experts_implementation="eager").eval()
    ids = np.random.default_rng(7).integers(0, model.config.vocab_size, size=(1, 70), dtype=np.int64)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(ids)).logits[0].numpy()
    np.savez_compressed(directory / "transformers_logits.npz", ids=ids, logits=logits)
    print(f"{directory}: {type(model).__name__} logits {logits.shape} written")


def main() -> None:
    import torch
    import transformers

    torch.set_num_threads(1)
    if sys.argv[1:2] == ["--trained"]:
        for name in TRAINED:
            check_trained(train_tiny(name), torch, transformers)
        return
    if sys.argv[1:2] == ["--check-trained"]:
        for directory in sys.argv[2:]:
            check_trained(Path(directory), torch, transformers)
        return
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "batch": [BATCH, LENGTH], "models": {}}
    for name in sys.argv[1:] or MODELS:
        meta["models"][name] = make_fixture(name, torch, transformers)
    meta_path = WEIGHTS / "grad_reference_hybrid_meta.json"
    if sys.argv[1:] and meta_path.is_file():
        old = json.loads(meta_path.read_text())
        meta["models"] = {**old["models"], **meta["models"]}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
