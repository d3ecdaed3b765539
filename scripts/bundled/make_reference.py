"""transformers' outputs for the bundled model: the fixture that proves transformers loads it and agrees.

    pip install torch==2.13.0 && pip install -e ".[reference]"
    python scripts/bundled/make_reference.py      # writes minillm/bundled/minillm-bilingual/reference.npz

Same keys as the tiny models' reference.npz (scripts/make_tiny_models.py): every hidden state and the
logits of an English + Chinese prompt, a left-padded batch, and greedy continuations, all from transformers
in float32 with eager attention, the model and tokenizer loaded from the directory as shipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

DIR = Path(__file__).resolve().parents[2] / "minillm" / "bundled" / "minillm-bilingual"
PROMPT = "It is a truth universally acknowledged, that a single man 春眠不觉晓，处处闻啼鸟。"
BATCH_PROMPTS = ["To be, or not to be", "明月几时有", "The quick brown fox jumps over the lazy dog"]


def main() -> None:
    tok = AutoTokenizer.from_pretrained(DIR)
    model = AutoModelForCausalLM.from_pretrained(DIR, dtype=torch.float32, attn_implementation="eager").eval()
    eot, im_end = tok.convert_tokens_to_ids("<|endoftext|>"), tok.convert_tokens_to_ids("<|im_end|>")
    ids = tok.encode(PROMPT, add_special_tokens=False)
    result = {"input_ids": np.array(ids, np.int64)}
    with torch.no_grad():
        o = model(torch.tensor([ids]), output_hidden_states=True)
        result["logits"] = o.logits[0].numpy()
        for i, h in enumerate(o.hidden_states):
            result[f"hidden_{i}"] = h[0].numpy()
        rows = [tok.encode(p, add_special_tokens=False) for p in BATCH_PROMPTS]
        width = max(map(len, rows))
        batch = np.full((len(rows), width), eot, np.int64)
        mask = np.zeros((len(rows), width), np.int64)
        for r, row in enumerate(rows):
            batch[r, width - len(row):], mask[r, width - len(row):] = row, 1
        position_ids = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
        ob = model(torch.tensor(batch), attention_mask=torch.tensor(mask), position_ids=torch.tensor(position_ids))
        result.update(batch_input_ids=batch, batch_attention_mask=mask, batch_logits=ob.logits.numpy())
        common = dict(do_sample=False, max_new_tokens=24, pad_token_id=eot, top_k=None, top_p=None,
                      temperature=None, repetition_penalty=1.0, eos_token_id=[im_end, eot])
        short = ids[:8]
        result["greedy_prompt"] = np.array(short, np.int64)
        result["greedy_new"] = model.generate(torch.tensor([short]), **common)[0, len(short):].numpy()
        g = model.generate(torch.tensor(batch), attention_mask=torch.tensor(mask), **common)
        result["batch_greedy_new"] = g[:, width:].numpy()
    np.savez_compressed(DIR / "reference.npz", **result)
    (DIR / "reference_meta.json").write_text(json.dumps(
        {"transformers": transformers.__version__, "torch": torch.__version__, "prompt": PROMPT,
         "batch_prompts": BATCH_PROMPTS}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {DIR / 'reference.npz'}: {len(ids)} tokens, logits std {result['logits'].std():.3f}")


if __name__ == "__main__":
    main()
