"""Make the LoRA references in weights/lora/<fixture>/, with transformers + PEFT (+ autograd) as the reference.

    PYTHONPATH=. /work/refvenv/bin/python scripts/make_lora_fixtures.py     # torch, transformers, peft; and minillm

For each fixture (a tiny dense checkpoint, a target-module set, r, alpha, rsLoRA or not):
  1. PEFT's LoRA on the transformers model (float32, eager attention), A from PEFT's own init and B made
     random and nonzero (at PEFT's init B = 0, so the adapter would do nothing and test nothing);
     ``save_pretrained`` writes it to weights/lora/<fixture>/adapter/ (PEFT's own files);
  2. a fixed batch with labels (some -100): PEFT's logits, loss, and the gradient of every adapter tensor
     (``loss.backward()``), under its name in adapter_model.safetensors, into reference.npz;
  3. minillm's side of "a saved adapter loads in PEFT": minillm.attach_lora + random B, saved by
     minillm.save_adapter to weights/lora/<fixture>/minillm_adapter/, loaded back by PeftModel.from_pretrained;
     PEFT's logits with it go into reference.npz ("minillm_adapter_logits") and the largest difference from
     minillm's own logits into weights/lora/meta.json.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
OUT = WEIGHTS / "lora"

# name: (checkpoint, target_modules, r, lora_alpha, use_rslora)
FIXTURES = {
    "qwen2-qv-r4": ("tiny-qwen2", ["q_proj", "v_proj"], 4, 8, False),
    "qwen2-all-r8-rslora": ("tiny-qwen2", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"], 8, 16, True),
    "qwen3-attn-r2": ("tiny-qwen3", ["q_proj", "k_proj", "v_proj", "o_proj"], 2, 5, False),
    "qwen3-all-linear-r3": ("tiny-qwen3", "all-linear", 3, 7, False),
}
SEED = 2027
BATCH, LENGTH = 2, 12


def make_batch(vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    ids = rng.integers(0, vocab_size, size=(BATCH, LENGTH), dtype=np.int64)  # [B, T]
    labels = ids.copy()
    labels[0, :4] = -100  # a prompt that is not scored
    labels[1, 7] = -100
    return ids, labels


def make_fixture(name, spec, torch, transformers, peft, minillm) -> dict:
    checkpoint, targets, r, alpha, rslora = spec
    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    base_path = WEIGHTS / checkpoint

    def base():
        return transformers.AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32,
                                                                 attn_implementation="eager")

    torch.manual_seed(SEED)
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, use_rslora=rslora,
                             task_type="CAUSAL_LM")
    model = peft.get_peft_model(base(), config)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "lora_B" in pname:
                p.copy_(torch.randn_like(p) * 0.1)  # nonzero: the adapter must change the logits
    model.eval()
    model.save_pretrained(out / "adapter")
    (out / "adapter" / "README.md").unlink(missing_ok=True)  # PEFT's model card template: not needed here

    ids, labels = make_batch(model.config.vocab_size)
    res = model(input_ids=torch.tensor(ids), labels=torch.tensor(labels))
    res.loss.backward()
    result = {"ids": ids, "labels": labels, "loss": np.array(res.loss.item(), np.float32),
              "logits": res.logits.detach().float().numpy()}
    grads = {}
    for pname, p in model.named_parameters():
        if p.requires_grad:
            grads[pname.replace(".default", "")] = p.grad.detach().float().numpy()
    result.update({"grad." + k: v for k, v in grads.items()})

    # minillm writes an adapter; PEFT must read it and compute the same logits
    ours = minillm.load_model(base_path)
    adapter = minillm.attach_lora(ours, r=r, lora_alpha=alpha,
                                  target_modules=targets if isinstance(targets, list) else None,
                                  use_rslora=rslora, seed=SEED)
    rng = np.random.default_rng(SEED + 1)
    for w in adapter.modules.values():
        w.lora_B[...] = rng.normal(0.0, 0.1, w.lora_B.shape)
    minillm.save_adapter(ours, out / "minillm_adapter")
    our_logits = ours.forward(ids)
    theirs = peft.PeftModel.from_pretrained(base(), out / "minillm_adapter")
    theirs.eval()
    with torch.no_grad():
        peft_logits = theirs(input_ids=torch.tensor(ids)).logits.float().numpy()
    result["minillm_adapter_logits"] = peft_logits
    np.savez_compressed(out / "reference.npz", **result)
    for folder in ("adapter", "minillm_adapter"):  # not this machine's absolute path
        config_file = out / folder / "adapter_config.json"
        config_json = json.loads(config_file.read_text())
        config_json["base_model_name_or_path"] = f"weights/{checkpoint}"
        config_file.write_text(json.dumps(config_json, indent=2) + "\n")
    diff = float(np.abs(peft_logits - our_logits).max())
    print(f"{name}: loss {res.loss.item():.6f}, {len(grads)} adapter tensors; minillm-written adapter in PEFT: "
          f"max |logits diff| {diff:.2e}")
    return {"checkpoint": checkpoint, "target_modules": targets, "r": r, "lora_alpha": alpha, "use_rslora": rslora,
            "loss": res.loss.item(), "adapter_tensors": len(grads),
            "minillm_adapter_in_peft_max_logit_diff": diff}


def main() -> None:
    import peft
    import torch
    import transformers

    import minillm

    torch.set_num_threads(1)
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "peft": peft.__version__,
            "numpy": np.__version__, "python": platform.python_version(), "seed": SEED, "batch": [BATCH, LENGTH],
            "fixtures": {}}
    for name, spec in FIXTURES.items():
        meta["fixtures"][name] = make_fixture(name, spec, torch, transformers, peft, minillm)
    (OUT / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
