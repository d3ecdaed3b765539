"""Replay prompt lookup against a real model's own greedy answer: exact acceptance, modelled pass costs.

    python benchmarks/speculative_replay.py --model DIR                 # generates the answer (minutes), then replays
    python benchmarks/speculative_replay.py --model DIR --answer a.npz  # saves / reuses the answer there

Greedy verification keeps a drafted token iff it is the model's argmax there, and after the kept ones the
model's argmax is the next token of the plain greedy answer. So a model whose argmax at each position is the
answer's token (``Script``) drafts, keeps and rejects exactly what the real model does, with no forward pass:
the tokens per pass, the acceptance and where the passes go (copied code or prose) are the real ones. Time is
modelled: a pass over T tokens costs COSTS(T) one-token steps (measured on the Qwen2.5-0.5B shapes,
docs/PERFORMANCE.md: 1.32, 1.52, 2.01 for 2, 4, 8 tokens; from 9 tokens the plain product, about 3.4), so the
speedup printed is the schedule's under those costs, not a timing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minillm  # noqa: E402
from minillm.generation.draft_length import DraftLength  # noqa: E402
from minillm.generation.drafting import PromptLookupDrafter  # noqa: E402
from minillm.generation.sampling import SamplingParams  # noqa: E402
from minillm.generation.speculative import SpeculativeStats, speculative_decode  # noqa: E402
from speculative import CODE, MORE_CODE, REWRITE_REQUEST  # noqa: E402


def COSTS(T: int) -> float:
    """A pass over T tokens, in one-token steps (Qwen2.5-0.5B shapes, few-rows product up to 8 rows)."""
    return 1.0 if T == 1 else float(np.interp(T, [2, 4, 8], [1.32, 1.52, 2.01])) if T <= 8 else 3.4


class Cache:
    """Just the length bookkeeping speculative_decode does on a dense model's cache."""
    has_linear_state = False

    def __init__(self, length: int):
        self.length, self.capacity, self.snapshots = length, 1 << 30, {}

    def truncate(self, length: int) -> None:
        self.length = length


class Script:
    """A model whose argmax after position p is the answer's next token; its clock advances by COSTS(T)."""

    def __init__(self, prompt_len: int, answer, vocab_size: int):
        self.prompt_len, self.answer, self.V, self.now = prompt_len, list(answer), vocab_size, 0.0

    def __call__(self) -> float:  # the clock
        return self.now

    def forward(self, ids, cache, logits_to_keep):
        T, start = ids.shape[1], cache.length
        cache.length += T
        self.now += COSTS(T)
        logits = np.zeros((1, T, self.V), np.float32)  # [1, T, V]
        for j in range(T):
            made = start + j + 1 - self.prompt_len  # answer tokens before the one row j predicts
            if 0 <= made < len(self.answer):
                logits[0, j, self.answer[made]] = 1.0
        return logits


def replay(prompt, answer, vocab_size: int, k: int, adaptive: bool) -> tuple[SpeculativeStats, float]:
    """Prompt lookup (k, n-grams up to 3) on the script; returns the stats and plain time / speculative time."""
    model = Script(len(prompt), answer, vocab_size)
    drafter = PromptLookupDrafter(k, 3)
    schedule = DraftLength(k, clock=model) if adaptive else None
    first = np.zeros((1, vocab_size), np.float32)  # [1, V]: the prompt pass's logits
    first[0, answer[0]] = 1.0
    stats = SpeculativeStats()
    out = list(speculative_decode(model, Cache(len(prompt)), first, list(prompt), np.zeros((1, vocab_size), bool),
                                  SamplingParams(temperature=0.0), np.random.default_rng(0), np.array([], np.int64),
                                  len(answer), drafter, False, stats, schedule))
    assert out == list(answer), "the replay differs from the answer"
    return stats, (len(answer) - 1) / model.now


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--answer", type=Path, help="an .npz to save the prompt and answer to, or reuse from")
    ap.add_argument("--max-new-tokens", type=int, default=400)
    args = ap.parse_args()
    tok = minillm.load_tokenizer(args.model)
    if args.answer and args.answer.exists():
        saved = np.load(args.answer)
        prompt, answer = saved["prompt"].tolist(), saved["answer"].tolist()
    else:
        model = minillm.load_model(args.model)
        prompt = tok.apply_chat_template([{"role": "user", "content": REWRITE_REQUEST.format(code=CODE + MORE_CODE)}],
                                         add_generation_prompt=True, tokenize=True)
        answer = minillm.generate(model, prompt, args.max_new_tokens, temperature=0.0).tolist()
        if args.answer:
            np.savez(args.answer, prompt=np.array(prompt), answer=np.array(answer))
    vocab = len(tok.get_vocab()) if hasattr(tok, "get_vocab") else 151936
    vocab = max(vocab, max(prompt + answer) + 1)
    print(f"rewrite request: {len(prompt)} prompt tokens, answer {len(answer)} tokens (the model's own, greedy)")
    for k in (10, 32):
        for adaptive in (False, True):
            stats, speedup = replay(prompt, answer, vocab, k, adaptive)
            print(f"  k={k:2d} {'adaptive' if adaptive else 'constant'}: modelled speedup {speedup:.2f}x, "
                  f"accepted {stats.acceptance_rate:.0%}, {stats.tokens_per_pass:.2f} tokens/pass, "
                  f"{stats.plain_steps}/{stats.forward_passes} passes undrafted")


if __name__ == "__main__":
    main()
