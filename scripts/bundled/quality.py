"""How well the bundled model predicts text it never saw: bits per UTF-8 byte on the four held-out works.

    python scripts/bundled/quality.py                      # the bundled model, the corpus built by scripts/corpus
    python scripts/bundled/quality.py --model DIR --json out.json

For each held-out work (data/corpus/heldout/*.txt: Persuasion, The Tempest, Li Qingzhao's ci, the Analects)
it prints bits per byte of:
  * the model, two ways, every token predicted once:
      - "windows": back-to-back windows of the model's context, each starting after an <|endoftext|> token
        (as a document does in training, so its first token is predicted too); a token early in a window
        sees little context, so this is an upper bound;
      - "sliding" (the main figure): windows of the model's context that advance by a stride (default half
        the context) and score only their last stride tokens, so every token after the first window sees at
        least context - stride tokens before it (the strided evaluation of transformers' "Perplexity of
        fixed-length models" guide); the work as a whole is one document after one <|endoftext|>;
  * xz -9e of the same bytes (a strong general-purpose compressor: its size in bits / bytes);
  * a unigram model over the same tokenizer (token frequencies of the training token file, add-one smoothing):
    what the model would score if it learned only which tokens are common;
  * the same architecture with random weights (the initialisation the training started from).
Bits per byte do not depend on the tokenizer, so the four numbers are comparable; the goal is the model at
most 0.75 x xz on each work.
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minillm  # noqa: E402
from minillm.training.loss import cross_entropy  # noqa: E402

WORKS = {"persuasion": "Persuasion (Austen)", "tempest": "The Tempest (Shakespeare)",
         "li_qingzhao_ci": "李清照 ci", "analects": "论语 (Analects)"}


def model_bits(model, ids: np.ndarray, eot: int, context: int, batch: int = 8) -> float:
    """Total bits the model spends on ``ids`` [N]: windows of ``context`` - 1 tokens, each after <|endoftext|>."""
    step = context - 1
    windows = [np.concatenate([[eot], ids[s:s + step]]) for s in range(0, len(ids), step)]  # each [<= context]
    full = [w for w in windows if len(w) == context]
    total_nats = 0.0
    for n in range(0, len(full), batch):
        group = np.stack(full[n:n + batch])  # [B, context]
        total_nats += cross_entropy(model.forward(group), group) * group.shape[0] * (context - 1)
    for w in windows[len(full):]:  # the last, shorter window
        if len(w) > 1:
            total_nats += cross_entropy(model.forward(w)[None], w[None]) * (len(w) - 1)
    return total_nats / math.log(2)


def sliding_bits(model, ids: np.ndarray, eot: int, context: int, stride: int, batch: int = 8) -> float:
    """Total bits the model spends on ``ids`` [N] with windows of ``context`` tokens advancing by ``stride``.

    seq = [<|endoftext|>, *ids]; target j (1 <= j <= N) is predicted by the logits at j - 1. The first window
    seq[0:context] scores targets 1 .. context-1; each later window ends at b = previous end + stride, is
    seq[b - context : b], and scores only the targets it adds (b - stride .. b - 1), each of which sees at
    least context - stride tokens before it.
    """
    seq = np.concatenate([[eot], ids])  # [N + 1]
    ends = [min(context, len(seq))]
    while ends[-1] < len(seq):
        ends.append(min(ends[-1] + stride, len(seq)))
    jobs = [(max(0, b - context), a, b) for a, b in zip([1] + ends[:-1], ends)]  # (window start, first target, end)
    total_nats = 0.0
    for n in range(0, len(jobs), batch):
        group = jobs[n:n + batch]
        width = max(b - s0 for s0, _, b in group)
        same = all(b - s0 == width for s0, _, b in group)
        outs = ([model.forward(np.stack([seq[s0:b] for s0, _, b in group]))] if same  # [B, T, V]
                else [model.forward(seq[s0:b])[None] for s0, _, b in group])  # each [1, T, V]
        for k, (s0, a, b) in enumerate(group):
            logits = (outs[0][k] if same else outs[k][0])[a - 1 - s0:b - 1 - s0].astype(np.float64)  # [n, V]
            top = logits.max(-1, keepdims=True)  # [n, 1]
            logz = top[:, 0] + np.log(np.exp(logits - top).sum(-1))  # [n]
            total_nats += float((logz - logits[np.arange(b - a), seq[a:b]]).sum())
    return total_nats / math.log(2)


def unigram_bits(ids: np.ndarray, counts: np.ndarray) -> float:
    """Bits of ``ids`` under p(token) = (count + 1) / (total + V)."""
    p = (counts + 1.0) / (counts.sum() + len(counts))  # [V] float64
    return float(-np.log2(p[ids]).sum())


def xz_bits(data: bytes) -> float:
    return 8.0 * len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def random_model(model):
    """The same architecture with freshly initialised weights (normal(0, 0.02) matrices, unit norms)."""
    from minillm.training.init import init_weights
    return minillm.Model(model.config, init_weights(model.config, seed=0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the bundled model)")
    ap.add_argument("--heldout", type=Path, default=ROOT / "data" / "corpus" / "heldout")
    ap.add_argument("--train-tokens", type=Path, default=ROOT / "data" / "tokens" / "train.npy")
    ap.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    ap.add_argument("--stride", type=int, default=None, help="sliding-window stride (default: half the context)")
    args = ap.parse_args(argv)

    path = Path(args.model) if args.model else minillm.default_model_path()
    model, tok = minillm.load_model(path), minillm.load_tokenizer(path)
    V, context = model.config.vocab_size, min(model.config.max_position_embeddings, 512)
    eot = tok.token_to_id("<|endoftext|>")
    stride = args.stride or context // 2
    train = np.load(args.train_tokens, mmap_mode="r")
    counts = np.bincount(np.asarray(train), minlength=V).astype(np.float64)  # [V]
    rand = random_model(model)

    rows = []
    print(f"model: {path.name}  ({sum(a.size for a in model.weights.arrays()) / 1e6:.2f} M parameters, "
          f"context {context}, sliding stride {stride})")
    print(f"{'held-out work':28s} {'bytes':>9s} {'tokens':>8s} {'sliding':>8s} {'windows':>8s} {'xz -9e':>7s} "
          f"{'unigram':>8s} {'random':>7s} {'model/xz':>9s}")
    for key, title in WORKS.items():
        text = (args.heldout / f"{key}.txt").read_text(encoding="utf-8")
        data = text.encode("utf-8")
        ids = np.array(tok.encode(text), np.int64)  # [N]
        r = {"work": title, "bytes": len(data), "tokens": len(ids),
             "model": sliding_bits(model, ids, eot, context, stride) / len(data),
             "model_windows": model_bits(model, ids, eot, context) / len(data),
             "xz": xz_bits(data) / len(data),
             "unigram": unigram_bits(ids, counts) / len(data),
             "random": model_bits(rand, ids, eot, context) / len(data)}
        r["model_over_xz"] = r["model"] / r["xz"]
        r["model_windows_over_xz"] = r["model_windows"] / r["xz"]
        rows.append(r)
        print(f"{title:28s} {r['bytes']:9d} {r['tokens']:8d} {r['model']:8.3f} {r['model_windows']:8.3f} "
              f"{r['xz']:7.3f} {r['unigram']:8.3f} {r['random']:7.3f} {r['model_over_xz']:9.3f}")
    print("(bits per UTF-8 byte; lower is better; model/xz uses the sliding figure; goal: <= 0.75 on every work)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
