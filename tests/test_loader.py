"""Loading safetensors checkpoints: F32 / F16 / BF16, single file and sharded, bit-exact."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import minillm
from minillm.checkpoint.loading import open_checkpoint
from minillm.checkpoint.safetensors_file import SafetensorsFile, bf16_bits_to_float32
from conftest import WEIGHTS, reference, tiny_model
from st_helpers import float32_to_bf16_bits, write_safetensors

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
finite32 = st.floats(width=32, allow_nan=False, allow_infinity=True)


@st.composite
def tensor_sets(draw):
    """name -> (dtype, storage array, expected float32 value)"""
    n = draw(st.integers(1, 5))
    out = {}
    for i in range(n):
        dtype = draw(st.sampled_from(["F32", "F16", "BF16"]))
        shape = draw(shapes)
        if dtype == "F32":
            arr = draw(hnp.arrays(np.float32, shape, elements=finite32))
            out[f"t{i}.weight"] = (dtype, arr, arr)
        elif dtype == "F16":
            arr = draw(hnp.arrays(np.float16, shape, elements=st.floats(width=16, allow_nan=False)))
            out[f"t{i}.weight"] = (dtype, arr, arr.astype(np.float32))
        else:  # any 16-bit pattern that is not a NaN is a valid bfloat16
            bits = draw(hnp.arrays(np.uint16, shape))
            bits = np.where((bits & 0x7F80) == 0x7F80, bits & 0xFF80, bits).astype(np.uint16)  # no NaN/inf
            out[f"t{i}.weight"] = (dtype, bits, bits.astype(np.uint32) << 16)
    return out


def expected_f32(entry):
    dtype, _, value = entry
    return value.view(np.float32) if dtype == "BF16" else value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tensors=tensor_sets(), sharded=st.booleans())
def test_any_supported_tensors_round_trip_bit_exactly(tmp_path_factory, tensors, sharded):
    """Whatever the safetensors library writes (F32, F16, BF16; any shape), we read back exactly."""
    d = tmp_path_factory.mktemp("ckpt")
    if sharded:
        names = sorted(tensors)
        weight_map = {}
        for k, name in enumerate(names):
            shard = f"model-{k + 1:05d}-of-{len(names):05d}.safetensors"
            write_safetensors(d / shard, {name: tensors[name][:2]})
            weight_map[name] = shard
        (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    else:
        write_safetensors(d / "model.safetensors", {n: t[:2] for n, t in tensors.items()})
    files = open_checkpoint(d)
    assert set(files) == set(tensors)
    for name, entry in tensors.items():
        got = files[name].get_float32(name)
        assert got.dtype == np.float32 and got.shape == entry[1].shape
        np.testing.assert_array_equal(got.view(np.uint32), expected_f32(entry).view(np.uint32))


def test_bf16_widening_is_exact_for_every_bit_pattern():
    bits = np.arange(2 ** 16, dtype=np.uint32).astype(np.uint16)
    f32 = bf16_bits_to_float32(bits)
    assert f32.dtype == np.float32
    np.testing.assert_array_equal(f32.view(np.uint32) >> 16, bits)  # high half is the bf16, low half zero
    np.testing.assert_array_equal(f32.view(np.uint32) & 0xFFFF, 0)


def test_file_is_memory_mapped_not_read_into_bytes(tmp_path):
    write_safetensors(tmp_path / "x.safetensors", {"w": ("F32", np.ones((4, 4), np.float32))})
    f = SafetensorsFile(tmp_path / "x.safetensors")
    raw = f.raw("w")
    base = raw
    while getattr(base, "base", None) is not None and not isinstance(base, np.memmap):
        base = base.base
    assert isinstance(base, np.memmap)


def resave(src: Path, dst: Path, dtype: str, shards: int) -> Path:
    """Write a bundled model's tensors again in another dtype / number of shards."""
    dst.mkdir()
    for extra in ("config.json", "generation_config.json"):
        (dst / extra).write_text((src / extra).read_text())
    tensors = {}
    for name, f in open_checkpoint(src).items():
        x = f.get_float32(name)
        tensors[name] = {"F32": ("F32", x), "BF16": ("BF16", float32_to_bf16_bits(x))}[dtype]
    names = sorted(tensors)
    if shards == 1:
        write_safetensors(dst / "model.safetensors", tensors)
    else:
        weight_map = {}
        for k in range(shards):
            part = names[k::shards]
            shard = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
            write_safetensors(dst / shard, {n: tensors[n] for n in part})
            weight_map.update({n: shard for n in part})
        (dst / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return dst


@pytest.mark.parametrize("dtype, shards", [("F32", 1), ("F32", 3), ("BF16", 2)])
def test_same_weights_in_any_format_give_identical_logits(tmp_path, dtype, shards):
    """The bundled BF16 values stored as F32 or re-sharded load to the very same model."""
    base = tiny_model("tiny-qwen2")
    other = minillm.load_model(resave(WEIGHTS / "tiny-qwen2", tmp_path / "m", dtype, shards))
    ids = reference("tiny-qwen2")["input_ids"]
    np.testing.assert_array_equal(other.forward(ids), base.forward(ids))


def test_unexpected_tensors_are_reported_not_silently_ignored(tmp_path):
    d = resave(WEIGHTS / "tiny-qwen2", tmp_path / "m", "F32", 1)
    tensors = {n: ("F32", f.get_float32(n)) for n, f in open_checkpoint(d).items()}
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = ("F32", np.ones(8, np.float32))
    write_safetensors(d / "model.safetensors", tensors)
    with pytest.warns(minillm.CheckpointWarning, match="rotary_emb.inv_freq"):
        model = minillm.load_model(d)
    assert model.unexpected_tensors == ["model.layers.0.self_attn.rotary_emb.inv_freq"]


@pytest.mark.parametrize("equal", [True, False])
def test_stored_lm_head_with_tied_config_follows_transformers5(tmp_path, equal):
    """Qwen3-0.6B stores lm_head.weight although tied: equal -> one copy; different -> the stored head."""
    d = resave(WEIGHTS / "tiny-qwen2", tmp_path / "m", "F32", 1)
    tensors = {n: ("F32", f.get_float32(n)) for n, f in open_checkpoint(d).items()}
    emb = tensors["model.embed_tokens.weight"][1]
    head = emb.copy() if equal else emb[::-1].copy()
    tensors["lm_head.weight"] = ("F32", head)
    write_safetensors(d / "model.safetensors", tensors)
    with pytest.warns(minillm.CheckpointWarning, match="lm_head.weight is stored"):
        model = minillm.load_model(d)
    if equal:
        assert model.weights.lm_head is model.weights.embed_tokens
    else:
        np.testing.assert_array_equal(model.weights.lm_head, head)


def test_paths_with_a_tilde_are_expanded(tmp_path, monkeypatch):
    import shutil
    monkeypatch.setenv("HOME", str(tmp_path))
    shutil.copytree(WEIGHTS / "tiny-qwen2", tmp_path / "m")
    assert minillm.load_model("~/m").config.model_type == "qwen2"
    assert minillm.load_tokenizer("~/m").encode("Hello") == minillm.load_tokenizer(WEIGHTS / "tiny-qwen2").encode("Hello")


def test_a_shard_that_is_a_symlink_to_a_file_outside_the_checkpoint_is_refused(tmp_path):
    """The index names a plain file, but the file links elsewhere: loading must not follow it out."""
    import shutil
    d = shutil.copytree(WEIGHTS / "tiny-qwen3", tmp_path / "m")
    (tmp_path / "elsewhere").mkdir()
    shard = d / "model-00002-of-00003.safetensors"
    shard.rename(tmp_path / "elsewhere" / shard.name)
    shard.symlink_to(Path("..") / "elsewhere" / shard.name)
    with pytest.raises(minillm.CheckpointError,
                       match="model-00002-of-00003.safetensors.*leaves the checkpoint directory"):
        minillm.load_model(d)


def test_a_hub_cache_snapshot_may_link_into_its_own_blobs_but_not_out_of_its_repository(tmp_path):
    import os
    from hub_cache import add_snapshot
    snapshot = add_snapshot(tmp_path / "hub", "org/m", WEIGHTS / "tiny-qwen3")
    assert minillm.load_model(snapshot).config.model_type == "qwen3"  # ../../blobs/<sha> is inside models--org--m
    link = snapshot / "model-00001-of-00003.safetensors"
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes(link.read_bytes())
    link.unlink()
    link.symlink_to(os.path.relpath(outside, snapshot))  # ../../../../outside.safetensors
    with pytest.raises(minillm.CheckpointError, match="leaves the checkpoint directory"):
        minillm.load_model(snapshot)
