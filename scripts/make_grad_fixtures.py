"""Make the gradient references in weights/<name>/grad_reference.npz, with transformers' autograd as the reference.

    pip install -e ".[reference]"        # torch + transformers: needed by this script only
    python scripts/make_grad_fixtures.py # after scripts/make_tiny_models.py wrote weights/

For each tiny model: load it with transformers (float32, eager attention), run a fixed batch with labels,
call ``out.loss.backward()`` and save, in weights/<name>/grad_reference.npz:
  ids [B, T] int64, labels [B, T] int64 (some -100), loss (a 0-d float32 array),
  and every parameter's .grad under its checkpoint tensor name (float32, the parameter's shape).
Tied embeddings are ONE parameter in transformers (lm_head.weight is model.embed_tokens.weight), so its
gradient, which already sums both uses, is written once, as model.embed_tokens.weight.

The loss is transformers' causal-LM loss (``ForCausalLMLoss`` with num_items_in_batch=None): labels are padded
with -100 on the right and shifted by one, so the logits at position t are scored against labels[:, t+1],
-100 is ignored, and the mean is over every scored target of the batch.
weights/grad_reference_meta.json records the versions used.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
MODELS = ["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa"]

SEED = 4321
BATCH, LENGTH = 2, 16  # 16 > the yarn-swa model's sliding window (6) and its YaRN original context (16 - 1)


def make_batch(vocab_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ids [B, T] and labels = ids with a few -100s: the first tokens of row 0 (a "prompt") and one
    scattered target in row 1, so both the shift and the ignore index matter."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(BATCH, LENGTH), dtype=np.int64)  # [B, T]
    labels = ids.copy()  # [B, T]
    labels[0, :5] = -100  # a prompt that is not scored
    labels[1, 9] = -100  # one target in the middle of a row
    return ids, labels


def make_fixture(name: str, torch, transformers) -> dict:
    path = WEIGHTS / name
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                              attn_implementation="eager")
    model.eval()  # no dropout in Qwen anyway (attention_dropout = 0); eval makes that explicit
    ids, labels = make_batch(model.config.vocab_size, SEED)
    out = model(input_ids=torch.tensor(ids), labels=torch.tensor(labels))
    out.loss.backward()

    result = {"ids": ids, "labels": labels, "loss": np.array(out.loss.item(), np.float32)}
    for param_name, p in model.named_parameters():  # tied weights appear once, as model.embed_tokens.weight
        result[param_name] = p.grad.detach().float().numpy()
    np.savez_compressed(path / "grad_reference.npz", **result)
    print(f"{name}: loss {out.loss.item():.6f}, {len(result) - 3} gradients, "
          f"tied={model.config.tie_word_embeddings}")
    return {"loss": out.loss.item(), "tensors": len(result) - 3}


def main() -> None:
    import torch
    import transformers

    torch.set_num_threads(1)
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "seed": SEED, "batch": [BATCH, LENGTH], "models": {}}
    for name in MODELS:
        meta["models"][name] = make_fixture(name, torch, transformers)
    (WEIGHTS / "grad_reference_meta.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
