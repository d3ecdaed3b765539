"""Bad input gets a clear minillm error naming the file / tensor / field, never a raw traceback.

Nothing hangs, nothing is half-loaded, and no size claimed by a header is ever allocated before it is
checked against the real file.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import minillm
from minillm.checkpoint.safetensors_file import SafetensorsFile
from conftest import WEIGHTS, tiny_model
from st_helpers import rewrite_config, write_safetensors


@pytest.fixture
def ckpt(tmp_path) -> Path:
    """A writable copy of the bundled Qwen2 checkpoint."""
    return Path(shutil.copytree(WEIGHTS / "tiny-qwen2", tmp_path / "ckpt"))


@pytest.fixture
def sharded(tmp_path) -> Path:
    return Path(shutil.copytree(WEIGHTS / "tiny-qwen3", tmp_path / "sharded"))


def raw_file(path: Path, header, data: bytes = b"", header_len: int | None = None) -> Path:
    body = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(body) if header_len is None else header_len) + body + data)
    return path


def expect(exc, *words):
    """pytest.raises(exc) whose message must contain every word."""
    class Checker:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *a):
            result = self.ctx.__exit__(*a)
            for w in words:
                assert w in str(self.info.value), f"{w!r} not in: {self.info.value}"
            return result
    return Checker()


# --------------------------------------------------------------------------------------------- config

def test_directory_without_config_json(tmp_path):
    with expect(minillm.ConfigError, "config.json"):
        minillm.load_model(tmp_path)


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_path_that_is_not_a_directory(tmp_path, kind):
    path = tmp_path / "nothing"
    if kind == "a file":  # exists, but is no checkpoint directory
        path.write_text("{}")
    with expect(minillm.CheckpointError, "not a directory", "nothing"):
        minillm.load_model(path)


def test_config_json_that_is_not_json(ckpt):
    (ckpt / "config.json").write_text("{ not json")
    with expect(minillm.ConfigError, "config.json", "not valid JSON"):
        minillm.load_model(ckpt)


def test_config_json_that_is_not_an_object(ckpt):
    (ckpt / "config.json").write_text("[1, 2]")
    with expect(minillm.ConfigError, "expected a JSON object", "list"):
        minillm.load_model(ckpt)


@pytest.mark.parametrize("change, words", [
    ({"num_hidden_layers": None}, ["num_hidden_layers", "missing"]),
    ({"num_attention_heads": 4.5}, ["num_attention_heads", "expected int", "float"]),
    ({"model_type": "llama"}, ["llama", "qwen2, qwen3"]),
    ({"num_key_value_heads": 3}, ["num_key_value_heads (3)"]),
    ({"rope_scaling": {"type": "su", "factor": 2}}, ["rope_type", "'su'"]),
])
def test_bad_config_fields_via_load_model(ckpt, change, words):
    rewrite_config(ckpt, **change)
    with expect(minillm.ConfigError, *words):
        minillm.load_model(ckpt)


def test_bad_generation_config(ckpt):
    (ckpt / "generation_config.json").write_text('{"temperature": "hot"}')
    with expect(minillm.ConfigError, "generation_config.json", "temperature"):
        minillm.load_model(ckpt)


# --------------------------------------------------------------------------------------------- weights files

def test_no_weights_file(ckpt):
    (ckpt / "model.safetensors").unlink()
    with expect(minillm.CheckpointError, "no weights", "model.safetensors"):
        minillm.load_model(ckpt)


@pytest.mark.parametrize("keep", [0, 5, 100, 3000])
def test_truncated_safetensors_file(ckpt, keep):
    f = ckpt / "model.safetensors"
    f.write_bytes(f.read_bytes()[:keep])
    with expect(minillm.CheckpointError, "model.safetensors"):
        minillm.load_model(ckpt)


def test_file_cut_inside_the_data(ckpt):
    f = ckpt / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 1000])
    with expect(minillm.CheckpointError, "outside the data buffer", "truncated"):
        minillm.load_model(ckpt)


@pytest.mark.parametrize("claimed", [10_000, 2 ** 40, 2 ** 64 - 1])
def test_header_length_larger_than_the_file_allocates_nothing(tmp_path, claimed):
    f = raw_file(tmp_path / "x.safetensors", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                 b"\0" * 4, header_len=claimed)
    with expect(minillm.CheckpointError, "header length", str(claimed)):
        SafetensorsFile(f)


def test_header_that_is_not_json(tmp_path):
    f = raw_file(tmp_path / "x.safetensors", b'{"a": {"dtype": "F32",', b"\0" * 8)
    with expect(minillm.CheckpointError, "x.safetensors", "not valid JSON"):
        SafetensorsFile(f)


@pytest.mark.parametrize("entry, words", [
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, ["outside the data buffer"]),
    ({"dtype": "F32", "shape": [4], "data_offsets": [-4, 12]}, ["outside the data buffer"]),
    ({"dtype": "F32", "shape": [4], "data_offsets": [8, 4]}, ["outside the data buffer"]),
    ({"dtype": "Q4_K", "shape": [2], "data_offsets": [0, 8]}, ["unknown dtype", "Q4_K"]),
    ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, ["needs 12 bytes", "span 8"]),
    ({"dtype": "F32", "shape": [2 ** 40, 2 ** 40], "data_offsets": [0, 8]}, ["needs", "span 8"]),
    ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, ["shape"]),
    ({"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}, ["shape"]),
    ({"dtype": "F32", "shape": [2], "data_offsets": [0]}, ["data_offsets"]),
    ("oops", ["header entry must be an object"]),
])
def test_malformed_header_entries_name_the_tensor(tmp_path, entry, words):
    f = raw_file(tmp_path / "x.safetensors", {"model.norm.weight": entry}, b"\0" * 8)
    with expect(minillm.CheckpointError, "model.norm.weight", *words):
        SafetensorsFile(f)


def test_overlapping_tensors_are_refused(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    f = raw_file(tmp_path / "x.safetensors", header, b"\0" * 12)
    with expect(minillm.CheckpointError, "overlap", "'a'", "'b'"):
        SafetensorsFile(f)


def _tensors(directory: Path) -> dict:
    from minillm.checkpoint.loading import open_checkpoint
    return {n: ("F32", f.get_float32(n)) for n, f in open_checkpoint(directory).items()}


def test_required_tensor_missing_is_named(ckpt):
    t = _tensors(ckpt)
    del t["model.layers.1.self_attn.k_proj.bias"]
    write_safetensors(ckpt / "model.safetensors", t)
    with expect(minillm.CheckpointError, "model.layers.1.self_attn.k_proj.bias", "missing"):
        minillm.load_model(ckpt)


def test_tensor_shape_contradicting_the_config_is_named(ckpt):
    t = _tensors(ckpt)
    t["model.layers.0.mlp.up_proj.weight"] = ("F32", np.zeros((100, 64), np.float32))
    write_safetensors(ckpt / "model.safetensors", t)
    with expect(minillm.CheckpointError, "model.layers.0.mlp.up_proj.weight", "[160, 64]", "[100, 64]",
                "intermediate_size"):
        minillm.load_model(ckpt)


def test_vocab_size_disagreeing_with_the_embedding(ckpt):
    rewrite_config(ckpt, vocab_size=600)
    with expect(minillm.CheckpointError, "model.embed_tokens.weight", "[600, 64]", "[512, 64]", "vocab_size"):
        minillm.load_model(ckpt)


def test_non_float_weight_dtype_is_refused(ckpt):
    t = _tensors(ckpt)
    t["model.norm.weight"] = ("F32", np.zeros(64, np.float32))
    write_safetensors(ckpt / "model.safetensors", t)
    data = (ckpt / "model.safetensors").read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header["model.norm.weight"]["dtype"] = "I32"
    body = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    (ckpt / "model.safetensors").write_bytes(data[:8] + body + data[8 + n:])
    with expect(minillm.CheckpointError, "model.norm.weight", "I32"):
        minillm.load_model(ckpt)


# --------------------------------------------------------------------------------------------- shards

def _index(d: Path) -> dict:
    return json.loads((d / "model.safetensors.index.json").read_text())


def test_index_naming_a_missing_shard(sharded):
    (sharded / "model-00002-of-00003.safetensors").unlink()
    with expect(minillm.CheckpointError, "model-00002-of-00003.safetensors", "does not exist"):
        minillm.load_model(sharded)


@pytest.mark.parametrize("evil", ["../outside.safetensors", "/etc/passwd", "sub/../../outside.safetensors"])
def test_shard_path_leaving_the_checkpoint_directory_is_refused(sharded, evil):
    outside = sharded.parent / "outside.safetensors"
    shutil.copy(sharded / "model-00001-of-00003.safetensors", outside)
    index = _index(sharded)
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = evil
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    with expect(minillm.CheckpointError, "leaves the checkpoint directory", evil):
        minillm.load_model(sharded)


def test_an_absolute_shard_name_is_refused_even_when_it_points_inside_the_checkpoint(sharded):
    """paths.py's rule: a name from a file must be relative; an absolute one is refused by name, wherever it leads."""
    index = _index(sharded)
    name, shard = next(iter(index["weight_map"].items()))
    absolute = str((sharded / shard).resolve())
    index["weight_map"] = {n: absolute if s == shard else s for n, s in index["weight_map"].items()}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    with expect(minillm.CheckpointError, "shard path", "leaves the checkpoint directory; refused"):
        minillm.load_model(sharded)


def test_a_shard_that_is_a_fifo_is_refused_without_opening_it(sharded):
    """A FIFO blocks whoever opens it: it is refused by its type. (If the loader did open it, the writer below
    feeds it bytes that are no safetensors file, so a broken check fails this test instead of hanging it.)"""
    import errno
    import os
    import threading
    import time
    shard = sharded / "model-00002-of-00003.safetensors"
    shard.unlink()
    os.mkfifo(shard)
    done = threading.Event()

    def writer():  # opens the FIFO only if a reader has: O_NONBLOCK fails with ENXIO until then
        while not done.is_set():
            try:
                fd = os.open(shard, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    return
                time.sleep(0.01)
                continue
            os.write(fd, b"not a safetensors file")
            os.close(fd)
            return

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        with expect(minillm.CheckpointError, "model-00002-of-00003.safetensors", "FIFO"):
            minillm.load_model(sharded)
    finally:
        done.set()
        thread.join()


@pytest.mark.parametrize("shard", [["model-00001-of-00003.safetensors"], {"a": 1}])
def test_an_index_whose_shard_names_are_not_text_is_refused_naming_the_weight_map(sharded, shard):
    index = _index(sharded)
    index["weight_map"][next(iter(index["weight_map"]))] = shard
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    with expect(minillm.CheckpointError, "model.safetensors.index.json", "weight_map"):
        minillm.load_model(sharded)


def test_index_that_is_not_json(sharded):
    (sharded / "model.safetensors.index.json").write_text("nope")
    with expect(minillm.CheckpointError, "model.safetensors.index.json"):
        minillm.load_model(sharded)


def test_index_pointing_a_tensor_at_the_wrong_shard(sharded):
    index = _index(sharded)
    name, shard = next((n, s) for n, s in index["weight_map"].items() if s.startswith("model-00001"))
    index["weight_map"][name] = "model-00002-of-00003.safetensors"
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    with expect(minillm.CheckpointError, name, "does not contain it"):
        minillm.load_model(sharded)


# --------------------------------------------------------------------------------------------- token ids, lengths

@pytest.mark.parametrize("ids, words", [
    ([-1, 2, 3], ["token id -1", "out of range"]),
    ([1, 512], ["token id 512", "vocab_size is 512"]),
    ([1.0, 2.0], ["integers", "float"]),
    (["a", "b"], ["integers"]),
    ([], ["empty"]),
    ([[1, 2], [3]], ["rectangular"]),
    (np.zeros((1, 2, 3), np.int64), ["shaped"]),
    ([True, False], ["integers", "bool"]),
])
def test_bad_token_ids(ids, words):
    model = tiny_model("tiny-qwen2")
    with expect(minillm.InputError, *words):
        model.forward(ids)
    with expect(minillm.InputError, *words):
        minillm.generate(model, ids, max_new_tokens=2)


@pytest.mark.parametrize("text", ["hello", b"hello", ["hello", "world"], [["hello"]]])
def test_text_instead_of_token_ids_is_told_to_go_through_the_tokenizer(text):
    model = tiny_model("tiny-qwen2")
    calls = {"forward": lambda: model.forward(text), "generate": lambda: minillm.generate(model, text, 2),
             "stream_generate": lambda: next(minillm.stream_generate(model, text, 2)),
             "loss_and_grads": lambda: minillm.loss_and_grads(model, text)}
    for call in calls.values():
        with expect(minillm.InputError, "text", "minillm.load_tokenizer(", ").encode("):
            call()


@pytest.mark.parametrize("mask, words", [
    ([[1, 1, 1]], ["shape"]),
    ([[0, 1, 2, 1]], ["only 0"]),
    ([[0, 0, 0, 0]], ["no real token"]),
])
def test_bad_attention_masks(mask, words):
    with expect(minillm.InputError, *words):
        tiny_model("tiny-qwen2").forward([[1, 2, 3, 4]], attention_mask=mask)


def test_right_padding_is_refused_for_generation():
    with expect(minillm.InputError, "left padding"):
        minillm.generate(tiny_model("tiny-qwen2"), [[1, 2, 3]], attention_mask=[[1, 1, 0]], max_new_tokens=2)


@pytest.mark.parametrize("n", [-1, 2.5, "3", True])
def test_bad_max_new_tokens(n):
    with expect(minillm.InputError, "max_new_tokens"):
        minillm.generate(tiny_model("tiny-qwen2"), [1, 2], max_new_tokens=n)


def test_prompt_plus_new_tokens_beyond_the_cache():
    model = tiny_model("tiny-qwen2")
    cache = model.new_cache(1, 8)
    with expect(minillm.InputError, "capacity 8", "5 prompt tokens", "+ 4 new"):
        minillm.generate(model, [1, 2, 3, 4, 5], max_new_tokens=4, cache=cache)


def test_positions_beyond_max_position_embeddings_are_allowed_as_in_transformers():
    """RoPE is computed on the fly, so max_position_embeddings is not a hard limit (documented)."""
    model = tiny_model("tiny-qwen3")
    n = model.config.max_position_embeddings + 4
    logits = model.forward(np.arange(n) % 500, logits_to_keep=1)
    assert np.isfinite(logits).all()


# --------------------------------------------------------------------------------------------- fuzzing

def _fuzz_source(tmp: Path) -> bytes:
    rng = np.random.default_rng(0)
    f = tmp / "src.safetensors"
    write_safetensors(f, {"a.weight": ("F32", rng.standard_normal((3, 4)).astype(np.float32)),
                          "b.weight": ("F16", rng.standard_normal(5).astype(np.float16)),
                          "c.weight": ("BF16", rng.integers(0, 2 ** 15, (2, 3)).astype(np.uint16))},
                      metadata={"format": "pt"})
    return f.read_bytes()


def _independent_decode(data: bytes, name: str, info) -> np.ndarray:
    """What the bytes say, read a second, independent way (struct + frombuffer)."""
    n = struct.unpack("<Q", data[:8])[0]
    raw = data[8 + n + info.begin: 8 + n + info.end]
    if info.dtype == "BF16":
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(info.shape)
    return np.frombuffer(raw, {"F32": "<f4", "F16": "<f2"}[info.dtype]).astype(np.float32).reshape(info.shape)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_safetensors_load_correctly_or_raise_the_loaders_error(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("fuzz")
    original = _fuzz_source(tmp)
    header_end = 8 + struct.unpack("<Q", original[:8])[0]
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        pos = data.draw(st.integers(0, len(mutated) - 1), label="position")
        mutated[pos] = data.draw(st.integers(0, 255), label="byte")
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(mutated))), label="truncate at")
    if cut is not None:
        del mutated[cut:]
    path = tmp / "m.safetensors"
    path.write_bytes(bytes(mutated))
    try:
        f = SafetensorsFile(path)
        loaded = {name: f.get_float32(name) for name, info in f.tensors.items() if info.dtype in ("F32", "F16", "BF16")}
    except minillm.CheckpointError:
        return  # a clean refusal is fine
    for name, array in loaded.items():  # whatever loads is exactly what the bytes say
        np.testing.assert_array_equal(array.view(np.uint32),
                                      _independent_decode(bytes(mutated), name, f.tensors[name]).view(np.uint32))
    if bytes(mutated[:header_end]) == original[:header_end] and len(mutated) == len(original):
        assert set(loaded) == {"a.weight", "b.weight", "c.weight"}  # only data bytes changed: all load


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_the_path_rule_itself_refuses_a_file_that_is_not_regular(tmp_path, kind):
    """checkpoint_file is the one gate every loader opens a checkpoint's files through (paths.py), and its rule
    says "a regular file": a FIFO would block whoever opens it, a socket cannot be read. Each reader today also
    checks the type after opening (so load_model's errors above hold either way); the rule must not rely on
    that, for a reader that hands the path to a library (tokenizers, Jinja) would hang on the FIFO instead."""
    import os
    import socket
    from minillm.checkpoint.paths import checkpoint_file
    name = "chat_template.jinja"
    if kind == "fifo":
        os.mkfifo(tmp_path / name)
    else:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(tmp_path / name))
    try:
        with expect(minillm.CheckpointError, "FIFO" if kind == "fifo" else "socket", "not a regular file"):
            checkpoint_file(tmp_path, name, minillm.CheckpointError)
    finally:
        if kind == "socket":
            server.close()
