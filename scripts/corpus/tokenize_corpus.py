#!/usr/bin/env python3
"""Encode the training corpus into token-id files for minillm's NumPy trainer.

Run from the repository root after build_corpus.py and train_tokenizer.py:

    python scripts/corpus/tokenize_corpus.py

Reads  data/corpus/train/*.txt, data/corpus/chat.jsonl, minillm/bundled/minillm-bilingual/tokenizer.json
Writes data/tokens/train.npy, data/tokens/val.npy  (1-D uint16 arrays; np.load(path, mmap_mode="r"))
       data/tokens/stats.json and a committed copy minillm/bundled/minillm-bilingual/token_stats.json
       (also stored under "tokens" in minillm/bundled/minillm-bilingual/corpus_manifest.json)

Layout: every document is encoded on its own and followed by <|endoftext|>.  A chat example
is rendered with the ChatML template
    <|im_start|>user\\n...<|im_end|>\\n<|im_start|>assistant\\n...<|im_end|>\\n
and then followed by <|endoftext|>.  Documents (chat examples included) are shuffled with a
fixed seed before concatenation so that a training window mixes sources.  The validation set
is a deterministic ~1% of the documents: a document goes to val when
int(sha256(source + "\\0" + text)[:8], 16) % 100 == 0.  The held-out works are not used.

A later training stage may weight the mix by repeating the training documents of some sources
(validation is never repeated), written to another file so the first stages stay reproducible:

    python scripts/corpus/tokenize_corpus.py --name train_stage3 \\
        --repeat classical_zh=4 --repeat sishu=4 --repeat austen=2 --repeat shakespeare=2

writes data/tokens/train_stage3.npy and minillm/bundled/minillm-bilingual/token_stats_train_stage3.json
(val.npy, stats.json and the manifest are left as they are).
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import random
from collections import OrderedDict

import numpy as np
from tokenizers import Tokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "data", "corpus")
TOKENS = os.path.join(ROOT, "data", "tokens")
WEIGHTS = os.path.join(ROOT, "minillm", "bundled", "minillm-bilingual")
DOC_SEP = "<|doc|>"
SEED = 1234
VAL_PERCENT = 1
SPECIAL_STRINGS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")


def read_docs(path):
    text = open(path, encoding="utf-8").read()
    return text[:-1].split("\n%s\n" % DOC_SEP) if text else []


def render_chat(messages):
    return "".join("<|im_start|>%s\n%s<|im_end|>\n" % (m["role"], m["content"]) for m in messages)


def is_val(source, text):
    h = hashlib.sha256((source + "\0" + text).encode("utf-8")).hexdigest()
    return int(h[:8], 16) % 100 < VAL_PERCENT


def file_sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def write_json(paths, obj):
    """The same JSON (UTF-8, indent 1, final newline) to each path."""
    for path in paths:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            json.dump(obj, f, ensure_ascii=False, indent=1)
            f.write("\n")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", default="train", help="output name: data/tokens/NAME.npy (default: train)")
    ap.add_argument("--repeat", action="append", default=[], metavar="SOURCE=N",
                    help="repeat the training documents of SOURCE N times (a later stage's mix)")
    args = ap.parse_args()
    repeats = {}
    for item in args.repeat:
        src, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            ap.error("--repeat expects SOURCE=N with N >= 1, got %r" % item)
        repeats[src] = int(n)
    if repeats and args.name == "train":
        ap.error("a weighted mix needs its own --name (train.npy is the first stages' data)")
    return args.name, repeats


def main():
    name, repeats = parse_args()
    tok = Tokenizer.from_file(os.path.join(WEIGHTS, "tokenizer.json"))
    eot = tok.token_to_id("<|endoftext|>")
    assert eot is not None and tok.get_vocab_size(with_added_tokens=True) <= 65535

    # (source, text, is_chat)
    docs = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "train", "*.txt"))):
        src = os.path.basename(path)[:-4]
        for d in read_docs(path):
            for s in SPECIAL_STRINGS:
                assert s not in d, "special-token string %r inside a training document of %s" % (s, src)
            docs.append((src, d, False))
    with open(os.path.join(CORPUS, "chat.jsonl"), encoding="utf-8") as f:
        for line in f:
            msgs = json.loads(line)["messages"]
            for m in msgs:
                for s in SPECIAL_STRINGS:
                    assert s not in m["content"]
            docs.append(("chat", render_chat(msgs), True))
    unknown = set(repeats) - {src for src, _, _ in docs}
    if unknown:
        raise SystemExit("--repeat: no such source %s" % ", ".join(sorted(unknown)))
    # Repeated copies are made before the shuffle, so they land far apart; a validation
    # document is never repeated (it would count several times in val.npy).
    docs = [d for d in docs for _ in range(1 if is_val(d[0], d[1]) else repeats.get(d[0], 1))]

    order = list(range(len(docs)))
    random.Random(SEED).shuffle(order)
    docs = [docs[i] for i in order]

    arrays = [None] * len(docs)
    B = 4096
    for start in range(0, len(docs), B):
        batch = docs[start:start + B]
        # Raw documents never contain special-token strings (checked above); chat examples
        # are rendered text whose <|im_start|>/<|im_end|> must become the special ids.
        enc = tok.encode_batch([t for _, t, _ in batch], add_special_tokens=False)
        for j, e in enumerate(enc):
            a = np.empty(len(e.ids) + 1, dtype=np.uint16)
            a[:-1] = e.ids
            a[-1] = eot
            arrays[start + j] = a

    stats = OrderedDict()
    train_parts, val_parts = [], []
    for (src, text, chat), a in zip(docs, arrays):
        st = stats.setdefault(src, OrderedDict(documents=0, bytes=0, train_tokens=0, val_tokens=0,
                                               val_documents=0))
        st["documents"] += 1
        st["bytes"] += len(text.encode("utf-8"))
        if is_val(src, text):
            val_parts.append(a)
            st["val_tokens"] += len(a)
            st["val_documents"] += 1
        else:
            train_parts.append(a)
            st["train_tokens"] += len(a)
    train = np.concatenate(train_parts)
    val = np.concatenate(val_parts)
    os.makedirs(TOKENS, exist_ok=True)
    np.save(os.path.join(TOKENS, name + ".npy"), train)
    if repeats:
        out = OrderedDict(dtype="uint16", eot_id=int(eot), shuffle_seed=SEED, repeats=repeats,
                          train=OrderedDict(path="data/tokens/%s.npy" % name, tokens=int(train.size),
                                            sha256=file_sha256(os.path.join(TOKENS, name + ".npy"))),
                          train_tokens_per_source=OrderedDict(
                              sorted((k, v["train_tokens"]) for k, v in stats.items())))
        write_json([os.path.join(TOKENS, name + ".stats.json"), os.path.join(WEIGHTS, "token_stats_%s.json" % name)],
                   out)
        print("%s: %d tokens; %s" % (name, train.size, out["train_tokens_per_source"]))
        return
    np.save(os.path.join(TOKENS, "val.npy"), val)
    for src, st in stats.items():
        st["bytes_per_token"] = round(st["bytes"] / max(1, st["train_tokens"] + st["val_tokens"]), 3)

    out = OrderedDict(
        tokenizer="minillm/bundled/minillm-bilingual/tokenizer.json",
        tokenizer_sha256=file_sha256(os.path.join(WEIGHTS, "tokenizer.json")),
        dtype="uint16", eot_id=int(eot), shuffle_seed=SEED,
        val_rule="int(sha256(source + '\\0' + text)[:8], 16) %% 100 < %d" % VAL_PERCENT,
        train=OrderedDict(path="data/tokens/train.npy", tokens=int(train.size),
                          sha256=file_sha256(os.path.join(TOKENS, "train.npy"))),
        val=OrderedDict(path="data/tokens/val.npy", tokens=int(val.size),
                        sha256=file_sha256(os.path.join(TOKENS, "val.npy"))),
        per_source=OrderedDict(sorted(stats.items())),
    )
    write_json([os.path.join(TOKENS, "stats.json"), os.path.join(WEIGHTS, "token_stats.json")], out)
    mpath = os.path.join(WEIGHTS, "corpus_manifest.json")
    if os.path.exists(mpath):
        man = json.load(open(mpath, encoding="utf-8"), object_pairs_hook=OrderedDict)
        man["tokens"] = OrderedDict(
            see="minillm/bundled/minillm-bilingual/token_stats.json",
            train_tokens=int(train.size), val_tokens=int(val.size),
            per_source={k: v["train_tokens"] + v["val_tokens"] for k, v in sorted(stats.items())})
        write_json([mpath], man)
    print("%-15s %10s %10s %10s %8s" % ("source", "docs", "train_tok", "val_tok", "B/tok"))
    for src, st in sorted(stats.items()):
        print("%-15s %10d %10d %10d %8.3f" % (src, st["documents"], st["train_tokens"], st["val_tokens"],
                                               st["bytes_per_token"]))
    print("train %d tokens, val %d tokens" % (train.size, val.size))


if __name__ == "__main__":
    main()
