"""Training data: a token file (one long 1-D array of ids), read through a memory map, cut into windows.

    tokens = np.load("train.npy", mmap_mode="r")      # [N] uint16/uint32: the corpus, tokenized and concatenated
    batch  = tokens[s : s + T] for B random starts s  # [B, T]: each window is one training sequence

The memory map means only the windows actually drawn are read from disk, so a corpus larger than RAM works.
Windows start anywhere (not at document boundaries): documents are separated by <|endoftext|> inside the
stream, and the model learns to start afresh after it.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import numpy as np

from ..checkpoint.jsonfile import file_type
from ..errors import InputError


def how_to_make(path: Path) -> str:
    """Where token files come from: the bundled model's corpus scripts (scripts/corpus/README.md)."""
    name = path.stem if path.suffix == ".npy" else "NAME"
    if name in ("train", "val"):  # the plain split writes both
        made = "`python scripts/corpus/tokenize_corpus.py` writes data/tokens/train.npy and val.npy"
    else:
        made = (f"`python scripts/corpus/tokenize_corpus.py --name {name} --repeat SOURCE=N ...` writes "
                f"data/tokens/{name}.npy")
    return (f"Token files are made by scripts/corpus/tokenize_corpus.py, after build_corpus.py and "
            f"train_tokenizer.py: {made} (each stage's command is in scripts/corpus/README.md)")


class TokenFile:
    """A 1-D array of token ids in a ``.npy`` file, checked once against the vocabulary."""

    def __init__(self, path: str | Path, vocab_size: int, chunk: int = 1 << 24):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: the token file does not exist. {how_to_make(self.path)}")
        check_npy_header(self.path)  # before np.load: a FIFO would block it, a huge shape overflow it
        try:
            self.tokens = np.load(self.path, mmap_mode="r", allow_pickle=False)  # [N], not read yet
        except (OSError, ValueError, EOFError) as e:
            raise InputError(f"{self.path}: not a readable .npy token file ({e})") from None
        if not isinstance(self.tokens, np.ndarray):  # np.load gives an NpzFile for an .npz archive
            raise InputError(f"{self.path}: expected a .npy file holding one array, found an .npz archive")
        # dtype.kind, not np.integer: NumPy counts timedelta64 as a signed integer type
        if self.tokens.ndim != 1 or self.tokens.dtype.kind not in "iu":
            raise InputError(f"{self.path}: expected a 1-D array of integer token ids, found shape "
                             f"{list(self.tokens.shape)} of {self.tokens.dtype}")
        if len(self.tokens) < 2:
            raise InputError(f"{self.path}: holds {len(self.tokens)} tokens; need at least 2")
        for start in range(0, len(self.tokens), chunk):  # a pass in pieces: bounded memory
            piece = np.asarray(self.tokens[start:start + chunk])  # [<= chunk]
            low, high = int(piece.min()), int(piece.max())
            if low < 0 or high >= vocab_size:
                bad = low if low < 0 else high
                raise InputError(f"{self.path}: token id {bad} is out of range for the model's vocab_size "
                                 f"{vocab_size} (valid ids 0..{vocab_size - 1})")

    def __len__(self) -> int:
        return len(self.tokens)

    def random_windows(self, rng: np.random.Generator, batch_size: int, length: int,
                       rows: slice | None = None) -> np.ndarray:
        """``batch_size`` windows of ``length`` consecutive ids at random starts.   -> [B, T] int64

        ``rows``: read only these windows of the batch ([rows, T]). Data parallelism (distributed.py): every
        process draws all B starts from the same generator, so each reads its own rows of the very batch one
        process would have drawn, and the generators stay in step.
        """
        if length > len(self.tokens):
            raise InputError(f"{self.path}: {len(self.tokens)} tokens, shorter than one window of {length}")
        starts = rng.integers(0, len(self.tokens) - length + 1, size=batch_size)  # [B]
        if rows is not None:
            starts = starts[rows]  # [rows]
        return np.stack([self.tokens[s:s + length] for s in starts]).astype(np.int64)  # [B, T]

    def fixed_windows(self, count: int, length: int) -> np.ndarray:
        """``count`` evenly spaced windows (the same every call: for evaluation).   -> [count, T] int64"""
        if length > len(self.tokens):  # as random_windows: a shorter window would be evaluated silently
            raise InputError(f"{self.path}: {len(self.tokens)} tokens, shorter than one window of {length}")
        last = max(0, len(self.tokens) - length)
        if count > last + 1:
            raise InputError(f"{self.path}: {count} evaluation windows asked for, but {len(self.tokens)} tokens hold "
                             f"only {last + 1} distinct windows of {length}")
        starts = np.linspace(0, last, num=count).astype(np.int64)  # [count]
        return np.stack([self.tokens[s:s + length] for s in starts]).astype(np.int64)  # [count, T]


def check_npy_header(path: Path) -> None:
    """Refuse what ``np.load`` would hang or overflow on: anything but a regular file (a FIFO blocks ``open``),
    and a header whose shape claims more bytes than the file holds (2**62 ids: OverflowError in np.memmap)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path}: expected a .npy token file, found {file_type(info.st_mode)}")
        with open(path, "rb") as f:
            if f.read(6) != b"\x93NUMPY":
                return  # not a .npy file (an .npz archive, ...): np.load says what it is
            f.seek(0)
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read:
                return  # np.load says what is wrong with it
            shape, _, dtype = read[version](f, max_header_size=10000)
            data_bytes = info.st_size - f.tell()
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npy token file ({e})") from None
    claimed = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if claimed > data_bytes:
        raise InputError(f"{path}: its header claims shape {list(shape)} of {dtype} ({claimed:,} bytes), but the "
                         f"file holds {data_bytes:,} bytes of data: truncated or not a token file")
