"""Reading one .safetensors file into float32 NumPy arrays, through a memory map.

The format (huggingface/safetensors) is simple enough to read by hand, and doing so lets us read BF16,
which NumPy has no dtype for:

    [ 8 bytes: N, little-endian u64 ][ N bytes: JSON header ][ data buffer ...................... ]
    header = {"model.norm.weight": {"dtype": "BF16", "shape": [896], "data_offsets": [begin, end]}, ...,
              "__metadata__": {...}}      # offsets are relative to the start of the data buffer (byte 8 + N)

BF16 is the top half of a float32: same sign bit, same 8 exponent bits, 7 of the 23 mantissa bits. So
shifting the 16 stored bits left by 16 gives the float32 of exactly the same value (no rounding at all).

A header is untrusted input: every length and offset is checked against the real file size *before*
anything is allocated, so a lying header cannot make us allocate terabytes or read past the end; every
field's type is checked before it is used, and the JSON itself is read by ``parse_json`` (jsonfile.py),
which turns a 5000-digit integer or nesting 100,000 deep into a CheckpointError.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .fields import show
from .jsonfile import file_type, parse_json

# Every dtype the safetensors format defines, with its size in bytes (so any header can be validated).
DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
# The dtypes a model weight may have; each is widened to float32 exactly.
FLOAT_DTYPES = ("F32", "F16", "BF16")
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
MAX_ELEMENTS = 2 ** 56  # no tensor may claim more elements (even with a zero dimension): NumPy could not make it


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: its dtype name, shape and byte span inside the data buffer."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen raw bfloat16 bit patterns (uint16) to float32, exactly: the 16 bits become the high half."""
    wide = np.left_shift(bits, 16, dtype=np.uint32)  # [...] uint16 -> uint32, widened and shifted in one pass
    return wide.view(np.float32)  # [...] float32: the same bits, read as floats


class SafetensorsFile:
    """One safetensors file: its validated header, and float32 copies of its tensors on request.

    >>> f = SafetensorsFile("model.safetensors")
    >>> f.tensors["model.norm.weight"].shape        # from the header, nothing read yet
    >>> w = f.get_float32("model.norm.weight")      # [D] float32, read through the memory map
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tensors, self.metadata, self.data_start = _read_header(self.path)

    def raw(self, name: str) -> np.ndarray:
        """The tensor as stored (uint16 bit patterns for BF16): a read-only memory map of its bytes only.

        Each tensor gets its own small map, dropped once converted, so the file's pages do not pile up in
        memory while a large checkpoint loads (peak memory stays near the float32 model itself).
        """
        info = self._info(name)
        if info.dtype not in FLOAT_DTYPES:
            raise CheckpointError(f"{self.path}: tensor {name!r} has dtype {info.dtype}; "
                                  f"minillm reads only {', '.join(FLOAT_DTYPES)}")
        storage = np.dtype({"F32": "<f4", "F16": "<f2", "BF16": "<u2"}[info.dtype])
        if info.end == info.begin:  # nothing to map (a zero-size tensor)
            return np.empty(info.shape, storage)
        try:
            mapped = np.memmap(self.path, dtype=np.uint8, mode="r", offset=self.data_start + info.begin,
                               shape=(info.end - info.begin,))  # [nbytes] uint8, nothing read yet
        except (OSError, ValueError) as e:  # e.g. the file shrank after its header was read
            raise CheckpointError(f"{self.path}: cannot map tensor {name!r} ({e})") from None
        # np.asarray: a plain ndarray view of the map (np.memmap subclasses misbehave in reshape / astype)
        return np.asarray(mapped).view(storage).reshape(info.shape)  # [*shape] stored dtype, no copy

    def get_float32(self, name: str) -> np.ndarray:
        """A float32 copy of the tensor in its own memory (the only copy minillm keeps), in one pass."""
        out = np.empty(self._info(name).shape, np.float32)  # [*shape] float32, a fresh aligned array
        self.read_into(name, out)
        return out

    def read_into(self, name: str, out: np.ndarray) -> None:
        """Widen the tensor to float32 straight into ``out`` (a float32 array or slice of its shape), in one pass.

        This is how per-expert tensors land in their slice of a stacked expert array (experts.py) without a
        temporary copy of each.
        """
        stored = self.raw(name)
        if self.tensors[name].dtype == "BF16":
            # the 16 bits become the high half of each float32 (see bf16_bits_to_float32), written into out's bits
            np.left_shift(stored, 16, dtype=np.uint32, out=out.view(np.uint32))  # [*shape]
        else:
            np.copyto(out, stored)  # [*shape] F16 / F32 -> float32

    def _info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise CheckpointError(f"{self.path}: no tensor named {name!r}") from None


def _read_header(path: Path) -> tuple[dict[str, TensorInfo], dict, int]:
    """Parse and validate the header; returns (tensors by name, __metadata__, byte offset of the data)."""
    try:
        # O_NONBLOCK: a FIFO would block open() forever; fstat then refuses anything but a regular file (a FIFO,
        # /dev/zero, a directory), as jsonfile.read_small_file does for JSON files
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CheckpointError(f"{path}: expected a safetensors file, found {file_type(info.st_mode)}")
            size = info.st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"{path}: truncated safetensors file: {size} bytes, "
                                      f"expected at least the 8-byte header length")
            n = int.from_bytes(prefix, "little")
            if n > size - 8 or n > MAX_HEADER_BYTES:
                raise CheckpointError(f"{path}: header length {n} bytes is larger than "
                                      f"{'the file allows' if n > size - 8 else 'the 100 MiB limit'} "
                                      f"(file is {size} bytes): truncated or not a safetensors file")
            header_bytes = f.read(n)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    header = parse_json(header_bytes, f"{path}: header", CheckpointError)
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header must be a JSON object, found {type(header).__name__}")

    data_start = 8 + n
    data_len = size - data_start
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: __metadata__ must be an object, found {type(metadata).__name__}")
    tensors = {name: _tensor_info(path, name, entry, data_len) for name, entry in header.items()}

    # Spans must not overlap (two tensors sharing bytes is a corrupt or malicious file).
    spans = sorted((t.begin, t.end, t.name) for t in tensors.values() if t.end > t.begin)
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise CheckpointError(f"{path}: tensors {n0!r} [{b0}, {e0}) and {n1!r} [{b1}, {e1}) overlap")
    return tensors, metadata, data_start


def _tensor_info(path: Path, name: str, entry, data_len: int) -> TensorInfo:
    """Validate one header entry against the file: known dtype, shape, offsets inside the data buffer."""
    where = f"{path}: tensor {show(name)}"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{where}: header entry must be an object, found {type(entry).__name__}")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise CheckpointError(f"{where}: unknown dtype {show(dtype)} (known: {', '.join(DTYPE_SIZES)})")
    if not (isinstance(shape, list) and len(shape) <= 64 and all(type(d) is int and 0 <= d <= MAX_ELEMENTS
                                                                 for d in shape)):
        raise CheckpointError(f"{where}: shape must be a list of non-negative integers, found {show(shape)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise CheckpointError(f"{where}: data_offsets must be [begin, end], found {show(offsets)}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_len:
        raise CheckpointError(f"{where}: data_offsets [{begin}, {end}] lie outside the data buffer "
                              f"of {data_len} bytes (truncated file?)")
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - begin != expected:
        raise CheckpointError(f"{where}: shape {show(shape)} of {dtype} needs {expected} bytes, "
                              f"but data_offsets span {end - begin}")
    if math.prod(d for d in shape if d) > MAX_ELEMENTS:  # only an empty tensor can get here with such a shape
        raise CheckpointError(f"{where}: shape {show(shape)} is larger than any array can be, even empty")
    return TensorInfo(name, dtype, tuple(shape), begin, end)
