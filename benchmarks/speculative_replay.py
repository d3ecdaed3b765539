"""Replay prompt lookup against a real model's own greedy answer: exact acceptance, modelled pass costs.

    python benchmarks/speculative_replay.py --model DIR                 # generates the answers (minutes), then replays
    python benchmarks/speculative_replay.py --model DIR --answer a.npz --question-answer q.npz  # saves / reuses them

Greedy verification keeps a drafted token iff it is the model's argmax there, and after the kept ones the
model's argmax is the next token of the plain greedy answer. So a model whose argmax at each position is the
answer's token (``Script``) drafts, keeps and rejects exactly what the real model does, with no forward pass:
the tokens per pass, the acceptance and where the passes go (copied code or prose) are the real ones. Time is
modelled: a pass over T tokens costs COSTS(T) one-token steps on a quiet machine (measured on the Qwen2.5-0.5B
shapes, docs/PERFORMANCE.md: 1.32, 1.52, 2.01 for 2, 4, 8 tokens; from 9 tokens the plain product, about 3.4)
and BUSY_COSTS(T) on a busy one (0.75, 1.32, 1.83 for 2, 4, 8; 15.6, 19.2, 27.3 for 9, 16, 32: OpenBLAS's
threaded product waiting for a busy core), so the speedup printed is the schedule's under those costs, not a
timing. Both requests of benchmarks/speculative.py --model are replayed: the rewrite and the question with
nothing to copy. ``--noise S --seeds N``: what the schedule's clock reads for each pass is its cost times
exp(S z), z standard normal, as a shared machine's clock jitters; the speedup still counts the true costs, so
it says what the schedule's choices are worth when a noisy clock informs them. The median, 10th percentile and
worst over N seeds are printed.
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
from minillm.generation import draft_length  # noqa: E402
from speculative import CODE, MORE_CODE, QUESTION, REWRITE_REQUEST  # noqa: E402


def COSTS(T: int) -> float:
    """A pass over T tokens, in one-token steps (Qwen2.5-0.5B shapes, few-rows product up to 8 rows)."""
    return 1.0 if T == 1 else float(np.interp(T, [2, 4, 8], [1.32, 1.52, 2.01])) if T <= 8 else 3.4


def BUSY_COSTS(T: int) -> float:
    """The same on a loaded machine (specdec's medians of 5 interleaved rounds: from 9 tokens OpenBLAS's threaded
    product, which waits for the busy core)."""
    if T == 1:
        return 1.0
    return float(np.interp(T, [2, 4, 8], [0.75, 1.32, 1.83])) if T <= 8 else float(np.interp(T, [9, 16, 32],
                                                                                            [15.6, 19.2, 27.3]))


class Cache:
    """Just the length bookkeeping speculative_decode does on a dense model's cache."""
    has_linear_state = False

    def __init__(self, length: int):
        self.length, self.capacity, self.snapshots = length, 1 << 30, {}

    def truncate(self, length: int) -> None:
        self.length = length


class Script:
    """A model whose argmax after position p is the answer's next token; its clock advances by costs(T)."""

    def __init__(self, prompt_len: int, answer, vocab_size: int, costs=COSTS, jitter=None):
        self.prompt_len, self.answer, self.V, self.costs = prompt_len, list(answer), vocab_size, costs
        self.now = 0.0  # what the clock reads: the passes' costs, each times jitter() when given
        self.spent = 0.0  # the passes' costs themselves
        self.jitter = jitter

    def __call__(self) -> float:  # the clock
        return self.now

    def forward(self, ids, cache, logits_to_keep):
        T, start = ids.shape[1], cache.length
        cache.length += T
        self.spent += self.costs(T)
        self.now += self.costs(T) * (self.jitter() if self.jitter else 1.0)
        logits = np.zeros((1, T, self.V), np.float32)  # [1, T, V]
        for j in range(T):
            made = start + j + 1 - self.prompt_len  # answer tokens before the one row j predicts
            if 0 <= made < len(self.answer):
                logits[0, j, self.answer[made]] = 1.0
        return logits


def replay(prompt, answer, vocab_size: int, k: int, adaptive: bool, costs=COSTS,
           jitter=None) -> tuple[SpeculativeStats, float]:
    """Prompt lookup (k, n-grams up to 3) on the script; returns the stats and plain time / speculative time
    (in the passes' costs: ``jitter`` moves only what the schedule's clock reads)."""
    model = Script(len(prompt), answer, vocab_size, costs, jitter)
    drafter = PromptLookupDrafter(k, 3)
    schedule = DraftLength(k, clock=model) if adaptive else None
    first = np.zeros((1, vocab_size), np.float32)  # [1, V]: the prompt pass's logits
    first[0, answer[0]] = 1.0
    stats = SpeculativeStats()
    out = list(speculative_decode(model, Cache(len(prompt)), first, list(prompt), np.zeros((1, vocab_size), bool),
                                  SamplingParams(temperature=0.0), np.random.default_rng(0), np.array([], np.int64),
                                  len(answer), drafter, False, stats, schedule))
    assert out == list(answer), "the replay differs from the answer"
    return stats, (len(answer) - 1) / model.spent


def noisy_replay(prompt, answer, vocab_size: int, k: int, costs, sigma: float, seed: int) -> float:
    """replay() (adaptive) with the schedule's clock jittered: each pass reads exp(sigma z) times its cost.
    Returns plain time / speculative time in the passes' true costs: what the schedule's choices are worth
    when a noisy clock informs them (the jitter of the measurement itself left out)."""
    rng = np.random.default_rng(seed)
    return replay(prompt, answer, vocab_size, k, True, costs, lambda: float(np.exp(sigma * rng.standard_normal())))[1]


def own_answer(model_dir, text: str, path: Path | None, max_new_tokens: int, tok) -> tuple[list, list]:
    """The chat request's prompt ids and the model's greedy answer, saved to / read from ``path`` (an .npz)."""
    if path and path.exists():
        saved = np.load(path)
        return saved["prompt"].tolist(), saved["answer"].tolist()
    model = minillm.load_model(model_dir)
    prompt = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True)
    answer = minillm.generate(model, prompt, max_new_tokens, temperature=0.0).tolist()
    if path:
        np.savez(path, prompt=np.array(prompt), answer=np.array(answer))
    return list(prompt), answer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--answer", type=Path, help="an .npz to save the rewrite's prompt and answer to, or reuse from")
    ap.add_argument("--question-answer", type=Path, help="the same for the question with nothing to copy")
    ap.add_argument("--max-new-tokens", type=int, default=400)
    ap.add_argument("--growth", type=float, nargs="*", default=[draft_length.GROWTH],
                    help="draft_length.GROWTH values to compare (inf: no cap on untimed lengths)")
    ap.add_argument("--k", type=int, nargs="*", default=[10, 32], help="draft lengths (prompt_lookup_num_tokens)")
    ap.add_argument("--noise", type=float, default=0.0, help="log-normal jitter of each pass's time (e.g. 0.3)")
    ap.add_argument("--seeds", type=int, default=50, help="with --noise: how many jittered replays")
    args = ap.parse_args()
    tok = minillm.load_tokenizer(args.model)
    requests = {"rewrite request": (REWRITE_REQUEST.format(code=CODE + MORE_CODE), args.answer),
                "question with nothing to copy": (QUESTION, args.question_answer)}
    growth = draft_length.GROWTH
    for label, (text, path) in requests.items():
        prompt, answer = own_answer(args.model, text, path, args.max_new_tokens, tok)
        vocab = len(tok.get_vocab()) if hasattr(tok, "get_vocab") else 151936
        vocab = max(vocab, max(prompt + answer) + 1)
        print(f"{label}: {len(prompt)} prompt tokens, answer {len(answer)} tokens (the model's own, greedy)")
        for machine, costs in (("quiet", COSTS), ("busy", BUSY_COSTS)):
            for k in args.k:
                for g in [None] + list(args.growth):
                    draft_length.GROWTH = g if g is not None else growth
                    stats, speedup = replay(prompt, answer, vocab, k, g is not None, costs)
                    schedule = f"adaptive, growth {g:g}" if g is not None else "constant"
                    print(f"  {machine} k={k:2d} {schedule:<20}: modelled speedup {speedup:.2f}x, "
                          f"accepted {stats.acceptance_rate:.0%}, {stats.tokens_per_pass:.2f} tokens/pass, "
                          f"{stats.plain_steps}/{stats.forward_passes} passes undrafted", flush=True)
                    if args.noise > 0 and g is not None:
                        jittered = np.array([noisy_replay(prompt, answer, vocab, k, costs, args.noise, seed)
                                             for seed in range(args.seeds)])
                        print(f"    clock jitter {args.noise:g}, {args.seeds} seeds: median {np.median(jittered):.2f}x, "
                              f"10th percentile {np.percentile(jittered, 10):.2f}x, worst {jittered.min():.2f}x, "
                              f"{np.mean(jittered < 0.95):.0%} below 0.95x", flush=True)
    draft_length.GROWTH = growth


if __name__ == "__main__":
    main()
