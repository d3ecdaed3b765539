"""Speculative decoding (prompt lookup): what a step over k tokens costs, and what decoding gains. Ratios in one run.

    python benchmarks/speculative.py                       # bundled model + a random Qwen2.5-0.5B-shaped checkpoint
    python benchmarks/speculative.py --shape-dir DIR       # where to build / find that checkpoint (default: a temp dir)
    python benchmarks/speculative.py --skip-shape          # bundled model only (seconds, not minutes)

1. A cached forward over k new tokens (and over a batch of B rows, one token each) against a one-token step,
   on the real shapes, with minillm's few-rows product (model/fast_linear.py) and with the plain ``x @ W.T``.
2. Greedy decoding with prompt lookup against plain greedy decoding, same model, same run, same tokens
   (checked): on a prompt that asks to repeat a passage with one change (something to copy) and on one with
   nothing to copy; the acceptance rate and the tokens per forward pass. Each with both draft schedules:
   "constant" checks every drafted token, "adaptive" only as many as pay for the longer pass
   (generation/draft_length.py), none at all where the drafts are not kept.
   * the bundled model (a small trained Qwen3): real drafts, real acceptance;
   * the Qwen2.5-0.5B shape with random weights: a random model copies nothing, so prompt lookup is measured
     on the nothing-to-copy side only, and the copy side uses an *oracle* drafter that proposes the tokens
     plain decoding made (known from the plain run): every draft is kept, so it measures the mechanism alone
     (k+1 tokens per read of the weights), the ceiling of what any drafter can reach at that draft length.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minillm  # noqa: E402
from minillm.generation.speculative import SpeculativeStats  # noqa: E402
from minillm.model import fast_linear as linear_module  # noqa: E402
from minillm.tools.bench import build_random_checkpoint  # noqa: E402

PASSAGE = (
    "The old lighthouse stood at the end of the harbour for more than a hundred years. Every night the keeper "
    "climbed the narrow stairs, lit the great lamp and watched the ships come home through the fog. When the "
    "town built a new light on the hill, the keeper stayed on, because the fishermen still looked for the old "
    "lamp before they looked for the new one."
)
COPY_PROMPT = f"{PASSAGE}\n\nThe same story, with lighthouse changed to tower:\n\n" + PASSAGE.split(" lighthouse")[0]
FREE_PROMPT = "Once upon a time, in a small village by the sea, there lived a girl who"


def step_ratios(model, sizes=(2, 4, 8, 16), reps: int = 5) -> dict:
    """ms of a cached forward over 1 token, and (k-token step) / (1-token step) and (B-row step) / (1-row step)."""
    rng = np.random.default_rng(0)
    V = min(model.config.vocab_size, 150000)
    ctx = rng.integers(0, V, 128)

    def best_ms(T: int, B: int = 1) -> float:
        cache = model.new_cache(B, 128 + (reps + 1) * T)
        model.forward(np.tile(ctx, (B, 1)), cache=cache, logits_to_keep=1)
        ids = rng.integers(0, V, (B, T))
        best = float("inf")
        for _ in range(reps + 1):
            t = time.perf_counter()
            model.forward(ids, cache=cache, logits_to_keep=T)
            best = min(best, time.perf_counter() - t)
        return 1000 * best

    one = best_ms(1)
    return {"one_token_ms": one, "k": {k: best_ms(k) / one for k in sizes},
            "B": {B: best_ms(1, B) / one for B in sizes}}


CODE = """def moving_average(values, window=7):
    \"\"\"The mean of each run of `window` consecutive values.\"\"\"
    if window <= 0:
        raise ValueError(f"window must be positive, found {window}")
    if len(values) < window:
        return []
    total = sum(values[:window])
    averages = [total / window]
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        averages.append(total / window)
    return averages


def read_numbers(path):
    \"\"\"One number per line; blank lines and comments are skipped.\"\"\"
    numbers = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                numbers.append(float(line))
    return numbers
"""
CODE_REQUEST = "Rewrite this code with the default window changed from 7 to 14:\n\n"
SCHEDULES = ("constant", "adaptive")  # every drafted token checked; only what pays (generation/draft_length.py)


class ScriptedModel:
    """The model's own forward pass (so every pass costs what it costs), with its argmax set to a script.

    A random-weight model writes noise, so it cannot show what decoding a rewrite costs. This one computes
    every pass in full and then raises, at each position, the logit of the token the script says comes next:
    greedy decoding writes the script, as a real model asked for the rewrite would, and prompt lookup drafts
    from the real prompt and checks its drafts against those argmaxes, position by position.
    """

    def __init__(self, model, prompt_len: int, script):
        self.model, self.prompt_len, self.script = model, prompt_len, np.asarray(script)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def forward(self, ids, cache=None, logits_to_keep=0, **kw):
        start = cache.length if cache is not None else 0
        logits = self.model.forward(ids, cache=cache, logits_to_keep=logits_to_keep, **kw)  # [1, n, V]
        n, T = logits.shape[1], np.shape(ids)[-1]
        for j in range(n):  # row j predicts the token after position start + T - n + j
            made = start + T - n + j + 1 - self.prompt_len  # how many new tokens precede it
            if 0 <= made < len(self.script):
                logits[0, j, self.script[made]] = logits[0, j].max() + 100.0
        return logits


class Oracle:
    """Drafts the tokens plain decoding made (a ceiling: every draft is right)."""

    def __init__(self, truth, prompt_len: int, k: int):
        self.truth, self.prompt_len, self.k = np.asarray(truth), prompt_len, k

    def propose(self, history, max_tokens):
        done = len(history) - self.prompt_len
        return self.truth[done:done + min(self.k, max_tokens)]


def timed_generate(model, ids, n, **kw):
    stats = SpeculativeStats()
    t = time.perf_counter()
    out = minillm.generate(model, ids, n, temperature=0.0, stop_token_ids=[], speculative_stats=stats, **kw)
    return time.perf_counter() - t, out, stats


def compare(model, ids, n: int, label: str, repeats: int = 3, oracle_k: int | None = None, **kw) -> dict:
    """Plain greedy decoding vs speculative with each draft schedule, alternated ``repeats`` times, best of
    each; the same tokens checked. ``oracle_k``: draft with the Oracle (the plain run's own tokens, k at a
    time) instead of ``kw``'s settings. Returns {schedule: figures}.
    """
    plain_s, fast_s, stats = float("inf"), {}, {}
    for _ in range(repeats):
        s, plain, _ = timed_generate(model, ids, n)
        plain_s = min(plain_s, s)
        drafting = dict(drafter=Oracle(plain, len(ids), oracle_k)) if oracle_k else kw
        for schedule in SCHEDULES:
            s, fast, stats[schedule] = timed_generate(model, ids, n, draft_schedule=schedule, **drafting)
            fast_s[schedule] = min(fast_s.get(schedule, float("inf")), s)
            assert fast.tolist() == plain.tolist(), f"{label}: speculative greedy output differs from plain decoding"
    results = {}
    for schedule in SCHEDULES:
        st = stats[schedule]
        r = results[schedule] = {
            "label": label, "schedule": schedule, "new_tokens": len(plain), "plain_tok_s": len(plain) / plain_s,
            "speculative_tok_s": len(plain) / fast_s[schedule], "ratio": plain_s / fast_s[schedule],
            "acceptance": st.acceptance_rate, "tokens_per_pass": st.tokens_per_pass,
            "plain_steps": st.plain_steps, "passes": st.forward_passes}
        print(f"  {label:<46} {schedule:<8} plain {r['plain_tok_s']:7.1f} tok/s  speculative "
              f"{r['speculative_tok_s']:7.1f} tok/s  = {r['ratio']:.2f}x   accepted {r['acceptance']:4.0%}, "
              f"{r['tokens_per_pass']:.2f} tokens/pass, {r['plain_steps']}/{r['passes']} passes undrafted",
              flush=True)
    return results


def print_steps(label: str, plain: dict, few: dict) -> None:
    print(f"  {label}: one-token step {few['one_token_ms']:.1f} ms (plain product {plain['one_token_ms']:.1f} ms)")
    for kind, name in (("k", "k tokens, 1 row "), ("B", "1 token, B rows ")):
        print(f"    {name}" + "  ".join(f"{kind}={n}: {few[kind][n]:.2f} (plain {plain[kind][n]:.2f})"
                                        for n in few[kind]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape-dir", type=Path, help="build / reuse the random Qwen2.5-0.5B-shaped checkpoint here")
    ap.add_argument("--skip-shape", action="store_true", help="bundled model only")
    ap.add_argument("--k", type=int, default=8, help="draft length (prompt_lookup_num_tokens)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    path = minillm.default_model_path()
    model, tok = minillm.load_model(path), minillm.load_tokenizer(path)
    print(f"bundled model ({path.name}), greedy, prompt lookup k={args.k}, n-grams up to 3:")
    copy_ids, free_ids = tok.encode(COPY_PROMPT), tok.encode(FREE_PROMPT)
    lookup = dict(prompt_lookup_num_tokens=args.k, max_matching_ngram_size=3)
    compare(model, copy_ids, 120, f"copy prompt ({len(copy_ids)} tokens, 120 new)", **lookup)
    compare(model, free_ids, 120, f"nothing to copy ({len(free_ids)} tokens, 120 new)", **lookup)
    linear_module.FEW_ROWS, few = 0, linear_module.FEW_ROWS
    plain_steps = step_ratios(model)
    linear_module.FEW_ROWS = few
    print_steps("cached step over k tokens / one token", plain_steps, step_ratios(model))

    if args.skip_shape:
        return
    with tempfile.TemporaryDirectory(prefix="minillm-spec-") as scratch:
        where = args.shape_dir or Path(scratch) / "qwen2.5-0.5b"
        print(f"\nQwen2.5-0.5B shape, random weights (built in {where}):", flush=True)
        big = minillm.load_model(build_random_checkpoint("qwen2.5-0.5b", where))
        linear_module.FEW_ROWS = 0
        plain_steps = step_ratios(big)
        linear_module.FEW_ROWS = few
        print_steps("cached step over k tokens / one token", plain_steps, step_ratios(big))
        rng = np.random.default_rng(1)
        piece = rng.integers(0, 150000, 150)
        free = rng.integers(0, 150000, 150)
        for k in (4, args.k):
            compare(big, piece, 48, f"oracle drafter, k={k} (the mechanism's ceiling)", repeats=1, oracle_k=k)
        code_prompt = tok.encode(CODE_REQUEST + CODE + "\n")
        rewrite = tok.encode(CODE.replace("window=7", "window=14")) + [tok.eos_token_id]
        scripted = ScriptedModel(big, len(code_prompt), rewrite)
        compare(scripted, code_prompt, len(rewrite), f"code rewrite, scripted ({len(code_prompt)} + {len(rewrite)} "
                f"tokens)", repeats=1, **lookup)
        compare(big, free, 48, "prompt lookup, nothing to copy", repeats=1, **lookup)
        del big


if __name__ == "__main__":
    main()
