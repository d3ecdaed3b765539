"""The safetensors header checks at their exact boundaries (hand-written files; the format's definition:
8 bytes of header length N, N bytes of JSON header, then the data buffer the offsets point into)."""

from __future__ import annotations

import json
import struct

import pytest

import minillm
from minillm.checkpoint.safetensors_file import SafetensorsFile


def write(path, header: dict, data: bytes, header_len: int | None = None):
    body = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body) if header_len is None else header_len) + body + data)
    return path


@pytest.mark.parametrize("excess", [1, 4, 8])
def test_a_header_length_past_what_follows_the_length_bytes_is_refused(tmp_path, excess):
    """N must fit in size - 8; a length between size - 8 and size is already too long."""
    header = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    body = json.dumps(header).encode()
    size = 8 + len(body) + 4
    f = write(tmp_path / "x.safetensors", header, b"\0" * 4, header_len=size - 8 + excess)
    assert size - 8 < size - 8 + excess <= size
    with pytest.raises(minillm.CheckpointError, match="header length"):
        SafetensorsFile(f)


@pytest.mark.parametrize("overlap", [1, 2])
@pytest.mark.parametrize("later_first", [False, True])
def test_two_tensors_sharing_even_one_or_two_bytes_are_refused(tmp_path, overlap, later_first):
    a = ("a", {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]})
    b = ("b", {"dtype": "U8", "shape": [4], "data_offsets": [4 - overlap, 8 - overlap]})
    header = dict([b, a] if later_first else [a, b])  # the header's order need not be the data's
    f = write(tmp_path / "x.safetensors", header, b"\0" * 8)
    with pytest.raises(minillm.CheckpointError, match="'a'.*'b'.*overlap"):
        SafetensorsFile(f)


def test_adjacent_tensors_and_a_header_that_fills_the_file_exactly_are_accepted(tmp_path):
    header = {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
              "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]},
              "empty": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]}}
    f = SafetensorsFile(write(tmp_path / "x.safetensors", header, b"\0" * 8))
    assert set(f.tensors) == {"a", "b", "empty"}
    only_header = SafetensorsFile(write(tmp_path / "y.safetensors", {}, b""))  # N == size - 8 exactly
    assert only_header.tensors == {}


def test_offsets_past_the_data_buffer_are_refused_even_when_inside_the_file(tmp_path):
    """Offsets count from the end of the header: [0, 8] with 4 data bytes is past the end, although the
    file is longer than 8 bytes."""
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    with pytest.raises(minillm.CheckpointError, match="outside the data buffer of 4 bytes"):
        SafetensorsFile(write(tmp_path / "x.safetensors", header, b"\0" * 4))
