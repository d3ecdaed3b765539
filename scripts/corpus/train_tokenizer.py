#!/usr/bin/env python3
"""Train the byte-level BPE tokenizer of minillm's bundled bilingual model.

Run from the repository root after build_corpus.py:

    python scripts/corpus/train_tokenizer.py

Input: the TRAINING text only (data/corpus/train/*.txt, documents split at the '<|doc|>'
separator lines) plus the contents of data/corpus/chat.jsonl.  The held-out works
(data/corpus/heldout/) are never read for training; they are only used at the end to
report bytes per token.

Output (Qwen2/Qwen3 layout, loadable by transformers' AutoTokenizer and by minillm):
  minillm/bundled/minillm-bilingual/tokenizer.json
  minillm/bundled/minillm-bilingual/tokenizer_config.json
  minillm/bundled/minillm-bilingual/tokenizer_stats.json

Vocabulary: 8192 ids in total = 8187 BPE tokens (256 byte symbols + 7931 merges) followed by
the added tokens <|endoftext|>=8187, <|im_start|>=8188, <|im_end|>=8189, <think>=8190,
</think>=8191 (Qwen puts its added tokens right after the BPE vocabulary too).
Normalizer, pre-tokenizer, post-processor and decoder are exactly Qwen2's.
"""
from __future__ import annotations

import glob
import json
import os
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "data", "corpus")
OUT = os.path.join(ROOT, "minillm", "bundled", "minillm-bilingual")
DOC_SEP = "<|doc|>"

VOCAB_SIZE = 8192
SPECIAL = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
           ("<think>", False), ("</think>", False)]  # (content, special) as in Qwen3
BPE_SIZE = VOCAB_SIZE - len(SPECIAL)
MODEL_MAX_LENGTH = 512

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# The exact blocks of Qwen2's tokenizer.json (also those of weights/tiny-qwen3/tokenizer.json).
QWEN2_BLOCKS = {
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
}

# ChatML, like Qwen2.5's template without tools and without a default system prompt.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


def read_docs(path):
    text = open(path, encoding="utf-8").read()
    return text[:-1].split("\n%s\n" % DOC_SEP) if text else []


def training_texts():
    for path in sorted(glob.glob(os.path.join(CORPUS, "train", "*.txt"))):
        yield from read_docs(path)
    with open(os.path.join(CORPUS, "chat.jsonl"), encoding="utf-8") as f:
        for line in f:
            for m in json.loads(line)["messages"]:
                yield m["content"]


def build_tokenizer():
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    from tokenizers import processors
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    return tok


def train():
    tok = build_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=BPE_SIZE, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(training_texts(), trainer=trainer)
    assert tok.get_vocab_size(with_added_tokens=False) == BPE_SIZE, tok.get_vocab_size()
    for content, special in SPECIAL:
        t = AddedToken(content, single_word=False, lstrip=False, rstrip=False, normalized=False,
                       special=special)
        if special:
            tok.add_special_tokens([t])
        else:
            tok.add_tokens([t])
    for i, (content, _) in enumerate(SPECIAL):
        assert tok.token_to_id(content) == BPE_SIZE + i, (content, tok.token_to_id(content))
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB_SIZE
    return tok


def tokenizer_json(tok):
    """tokenizer.json with Qwen2's exact normalizer/pre-tokenizer/post-processor/decoder blocks."""
    data = json.loads(tok.to_str())
    for k, v in QWEN2_BLOCKS.items():
        assert data[k] == v, (k, data[k], v)  # the library wrote exactly Qwen2's blocks
    ref = os.path.join(ROOT, "weights", "tiny-qwen3", "tokenizer.json")
    if os.path.exists(ref):
        r = json.load(open(ref, encoding="utf-8"))
        for k in QWEN2_BLOCKS:
            assert r[k] == data[k], ("layout differs from weights/tiny-qwen3", k)
        assert {k: v for k, v in r["model"].items() if k not in ("vocab", "merges")} == \
            {k: v for k, v in data["model"].items() if k not in ("vocab", "merges")}
    return data


def tokenizer_config():
    added = {}
    for i, (content, special) in enumerate(SPECIAL):
        added[str(BPE_SIZE + i)] = {"content": content, "lstrip": False, "normalized": False,
                                    "rstrip": False, "single_word": False, "special": special}
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def check(out_dir):
    """Load with transformers and minillm; round-trip; chat template vs plain jinja2."""
    import jinja2
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(out_dir)
    assert len(hf) == VOCAB_SIZE, len(hf)
    assert hf.eos_token == "<|im_end|>" and hf.pad_token == "<|endoftext|>" and hf.bos_token is None
    samples = [
        "Full many a glorious morning have I seen\nFlatter the mountain-tops with sovereign eye,",
        "It's 3.14159 -- isn't it?  Tabs\tand  double  spaces,\r\nCRLF and unicode: café, naïve, “quotes”.",
        "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。",
        "寻寻觅觅，冷冷清清，凄凄惨惨戚戚。學而時習之，不亦說乎？",
        "Mixed 中英文 text with emoji 🙂 and rare 𠀋 characters.",
        "<|im_start|>user\nhi<|im_end|>\n<think>\n\n</think>\n\n",
    ]
    import unicodedata
    from tokenizers import Tokenizer as RawTokenizer
    raw = RawTokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    for s in samples:
        ids = hf.encode(s, add_special_tokens=False)
        assert ids == raw.encode(s, add_special_tokens=False).ids
        back = hf.decode(ids)
        assert back == unicodedata.normalize("NFC", s), (s, back)
    # no BOS/EOS added by encode
    assert hf.encode("hello", add_special_tokens=True) == hf.encode("hello", add_special_tokens=False)
    msgs = [{"role": "system", "content": "You are a poet."},
            {"role": "user", "content": "写一首题为《静夜思》的诗（作者：李白）"},
            {"role": "assistant", "content": "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"},
            {"role": "user", "content": "Tell me a fortune."}]
    for gen in (False, True):
        a = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)
        b = jinja2.Environment().from_string(CHAT_TEMPLATE).render(messages=msgs, add_generation_prompt=gen)
        assert a == b, (a, b)
    expect = ("<|im_start|>system\nYou are a poet.<|im_end|>\n<|im_start|>user\n写一首题为《静夜思》的诗（作者：李白）"
              "<|im_end|>\n<|im_start|>assistant\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。<|im_end|>\n"
              "<|im_start|>user\nTell me a fortune.<|im_end|>\n<|im_start|>assistant\n")
    assert hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == expect
    ids = hf.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    assert ids[0] == BPE_SIZE + 1 and hf.decode(ids) == expect
    # minillm's own loader, when importable
    try:
        sys.path.insert(0, ROOT)
        from minillm.text.tokenizer import load_tokenizer
        mt = load_tokenizer(out_dir)
        for s in samples:
            assert mt.encode(s) == hf.encode(s, add_special_tokens=False)
        assert mt.apply_chat_template(msgs, add_generation_prompt=True) == expect
        minillm_ok = True
    except ImportError as e:  # pragma: no cover
        print("minillm not importable:", e)
        minillm_ok = None
    return hf, minillm_ok


def bytes_per_token(tok, text):
    ids = tok.encode(text, add_special_tokens=False).ids
    return len(text.encode("utf-8")) / max(1, len(ids)), len(ids)


def main():
    os.makedirs(OUT, exist_ok=True)
    tok = train()
    data = tokenizer_json(tok)
    with open(os.path.join(OUT, "tokenizer.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.write("\n")
    with open(os.path.join(OUT, "tokenizer_config.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(tokenizer_config(), f, ensure_ascii=False, indent=2)
        f.write("\n")
    hf, minillm_ok = check(OUT)

    raw = Tokenizer.from_file(os.path.join(OUT, "tokenizer.json"))
    stats = {"vocab_size": VOCAB_SIZE, "bpe_tokens": BPE_SIZE,
             "merges": len(data["model"]["merges"]),
             "added_tokens": {c: BPE_SIZE + i for i, (c, _) in enumerate(SPECIAL)},
             "trained_on": "data/corpus/train/*.txt + data/corpus/chat.jsonl (held-out works excluded)",
             "transformers_check": "AutoTokenizer loads; round-trips; apply_chat_template == jinja2 render",
             "minillm_check": minillm_ok, "heldout_bytes_per_token": {}}
    vocab = data["model"]["vocab"]
    han = sum(1 for t in vocab if any(0x4E00 <= ord(c) <= 0x9FFF for c in
                                      bytes([_BYTE_DECODER[ch] for ch in t]).decode("utf-8", "ignore")))
    stats["tokens_containing_han"] = han
    for name in ("persuasion", "tempest", "li_qingzhao_ci", "analects"):
        path = os.path.join(CORPUS, "heldout", name + ".txt")
        text = "\n".join(read_docs(path))
        bpt, n = bytes_per_token(raw, text)
        stats["heldout_bytes_per_token"][name] = {"bytes": len(text.encode("utf-8")), "chars": len(text),
                                                  "tokens": n, "bytes_per_token": round(bpt, 3),
                                                  "chars_per_token": round(len(text) / n, 3)}
    with open(os.path.join(OUT, "tokenizer_stats.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(stats, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(json.dumps(stats, ensure_ascii=False, indent=1))


def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_DECODER = {v: k for k, v in _bytes_to_unicode().items()}

if __name__ == "__main__":
    main()
