"""LoRA: against PEFT + autograd (weights/lora/*, written by scripts/make_lora_fixtures.py), against finite
differences in float64, the plain one-screen form against the engine, and the adapter files (load, save, merge,
refusals)."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import minillm
from minillm.backward.linear import linear_backward
from minillm.checkpoint.adapter import attach_lora, load_adapter, merge_adapter, save_adapter, save_merged
from minillm.errors import CheckpointError, InputError
from minillm.model.fast_linear import fast_linear as linear  # the engine's product, which carries LoRA
from minillm.model.lora import LoraWeight, dropout_mask
from minillm.plain.lora import lora_linear
from conftest import WEIGHTS

RTOL = 1e-4
LORA = WEIGHTS / "lora"
FIXTURES = sorted(json.loads((LORA / "meta.json").read_text())["fixtures"])


def fixture(name: str) -> tuple[dict, dict[str, np.ndarray]]:
    meta = json.loads((LORA / "meta.json").read_text())["fixtures"][name]
    with np.load(LORA / name / "reference.npz") as f:
        return meta, {k: f[k] for k in f.files}


def load(checkpoint: str, adapter=None) -> minillm.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", minillm.CheckpointWarning)
        return minillm.load_model(WEIGHTS / checkpoint, adapter=adapter)


def rel(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours.astype(np.float64) - ref).max() / (np.abs(ref).max() or 1.0))


# ----------------------------------------------------------------------------------------------------------
# against PEFT
# ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FIXTURES)
def test_adapter_saved_by_peft_gives_peft_logits(name):
    meta, ref = fixture(name)
    model = load(meta["checkpoint"], LORA / name / "adapter")
    err = rel(model.forward(ref["ids"]), ref["logits"])
    assert err <= RTOL, f"{name}: logits differ from PEFT's by {err:.2e} of the largest"


@pytest.mark.parametrize("name", FIXTURES)
def test_every_adapter_gradient_matches_peft_autograd(name):
    meta, ref = fixture(name)
    model = load(meta["checkpoint"], LORA / name / "adapter")
    loss, grads = minillm.loss_and_grads(model, ref["ids"], labels=ref["labels"])
    expected = {k[len("grad."):]: v for k, v in ref.items() if k.startswith("grad.")}
    assert set(grads) == set(expected), set(grads) ^ set(expected)
    assert abs(loss - float(ref["loss"])) <= RTOL * abs(float(ref["loss"]))
    errors = {k: rel(grads[k], expected[k]) for k in expected}
    table = "\n".join(f"{k:<70}{e:>10.2e}" for k, e in errors.items())
    assert max(errors.values()) <= RTOL, f"{name}: adapter gradients drift from PEFT's:\n{table}"


@pytest.mark.parametrize("name", FIXTURES)
def test_adapter_saved_by_minillm_loads_in_peft_with_the_same_logits(name):
    """PEFT's logits with minillm's adapter files (recorded by the fixture script) equal minillm's own."""
    meta, ref = fixture(name)
    assert meta["minillm_adapter_in_peft_max_logit_diff"] <= RTOL * np.abs(ref["minillm_adapter_logits"]).max()
    model = load(meta["checkpoint"], LORA / name / "minillm_adapter")
    assert rel(model.forward(ref["ids"]), ref["minillm_adapter_logits"]) <= RTOL


@pytest.mark.parametrize("name", FIXTURES)
def test_saved_adapter_round_trips_with_the_same_tensors_and_config(name, tmp_path):
    meta, ref = fixture(name)
    model = load(meta["checkpoint"], LORA / name / "adapter")
    save_adapter(model, tmp_path / "again")
    again = load(meta["checkpoint"], tmp_path / "again")
    for key, array in model.adapter.tensors().items():
        np.testing.assert_array_equal(again.adapter.tensors()[key], array)  # float32 written as F32: exact
    assert again.adapter.config == model.adapter.config
    written = json.loads((tmp_path / "again" / "adapter_config.json").read_text())
    assert written["peft_type"] == "LORA" and written["r"] == meta["r"] and written["use_dora"] is False


@pytest.mark.parametrize("name", FIXTURES)
def test_merged_checkpoint_gives_the_logits_of_the_unmerged_model(name, tmp_path):
    meta, ref = fixture(name)
    model = load(meta["checkpoint"], LORA / name / "adapter")
    save_merged(model, tmp_path / "merged")
    merged = load(str(tmp_path / "merged"))
    assert merged.adapter is None
    assert rel(merged.forward(ref["ids"]), model.forward(ref["ids"])) <= RTOL
    assert rel(merge_adapter(model).forward(ref["ids"]), ref["logits"]) <= RTOL


# ----------------------------------------------------------------------------------------------------------
# the new backward pieces, in float64
# ----------------------------------------------------------------------------------------------------------

FD = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FD
@given(seed=st.integers(0, 2 ** 32 - 1), r=st.integers(1, 4), dropout=st.sampled_from([0.0, 0.3]),
       bias=st.booleans())
def test_lora_linear_backward_matches_finite_differences(seed, r, dropout, bias):
    rng = np.random.default_rng(seed)
    N, d_in, d_out = 5, 6, 4
    x = rng.standard_normal((N, d_in))
    w = LoraWeight(rng.standard_normal((d_out, d_in)), rng.standard_normal((r, d_in)),
                   rng.standard_normal((d_out, r)), scaling=1.7, dropout=dropout)
    w.dropout_seed = (seed, 0)  # training: dropout on, the same mask in the forward and the backward
    b = rng.standard_normal(d_out) if bias else None
    probe = rng.standard_normal((N, d_out))  # loss = <probe, y>

    def loss() -> float:
        return float((linear(x, w, b) * probe).sum())

    dx, grads, dbias = linear_backward(probe, x, w, b)
    assert dbias is None  # the base (and its bias) is frozen
    rng_u = np.random.default_rng(seed + 1)
    for p, g in ((x, dx), (w.lora_A, grads.lora_A), (w.lora_B, grads.lora_B)):
        u = rng_u.standard_normal(p.shape)
        h = 1e-6
        p += h * u
        plus = loss()
        p -= 2 * h * u
        minus = loss()
        p += h * u
        numeric = (plus - minus) / (2 * h)
        assert abs(float((g * u).sum()) - numeric) <= 1e-6 * (np.linalg.norm(g) * np.linalg.norm(u) + 1)


def test_dropout_mask_is_the_same_for_the_same_seed_and_off_without_one():
    a = dropout_mask((4, 8), 0.5, (3, 1), np.dtype(np.float32))
    np.testing.assert_array_equal(a, dropout_mask((4, 8), 0.5, (3, 1), np.dtype(np.float32)))
    assert set(np.unique(a)) <= {0.0, 2.0} and 0 < (a == 0).sum() < a.size
    assert dropout_mask((4, 8), 0.5, None, np.dtype(np.float32)) is None


@pytest.mark.parametrize("with_mask", [False, True])
def test_plain_lora_linear_equals_the_engine(with_mask):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 16)).astype(np.float32)
    w = LoraWeight(rng.standard_normal((12, 16)).astype(np.float32), rng.standard_normal((4, 16)).astype(np.float32),
                   rng.standard_normal((12, 4)).astype(np.float32), scaling=2.0, dropout=0.25 if with_mask else 0.0)
    w.dropout_seed = (1, 2) if with_mask else None
    mask = dropout_mask(x.shape, w.dropout, w.dropout_seed, x.dtype)
    dy = rng.standard_normal((6, 12)).astype(np.float32)
    y, dx, dA, dB = lora_linear(x, w.weight, w.lora_A, w.lora_B, w.scaling, dy, mask)
    engine_dx, engine_grads, _ = linear_backward(dy, x, w)
    for ours, engine in ((y, linear(x, w)), (dx, engine_dx), (dA, engine_grads.lora_A), (dB, engine_grads.lora_B)):
        np.testing.assert_allclose(ours, engine, rtol=1e-5, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    meta, ref = fixture("qwen3-attn-r2")
    model = load(meta["checkpoint"], LORA / "qwen3-attn-r2" / "adapter")
    model.adapter.set_dropout_seed(5)  # dropout must redraw the same masks in the recomputation
    for w in model.adapter.modules.values():
        w.dropout = 0.2
    loss, grads = minillm.loss_and_grads(model, ref["ids"], labels=ref["labels"])
    loss2, grads2 = minillm.loss_and_grads(model, ref["ids"], labels=ref["labels"], checkpoint=True)
    assert loss == loss2
    for k in grads:
        np.testing.assert_allclose(grads2[k], grads[k], rtol=1e-5, atol=1e-7)
    full = load("tiny-qwen2")
    loss, grads = minillm.loss_and_grads(full, ref["ids"] % 100)
    loss2, grads2 = minillm.loss_and_grads(full, ref["ids"] % 100, checkpoint=True)
    assert loss == loss2 and all(np.allclose(grads2[k], grads[k], rtol=1e-5, atol=1e-7) for k in grads)


# ----------------------------------------------------------------------------------------------------------
# a new adapter, and the refusals
# ----------------------------------------------------------------------------------------------------------

def test_new_adapter_starts_as_the_base_model_with_peft_init_bounds():
    model = load("tiny-qwen3")
    ids = np.arange(9)
    before = model.forward(ids)
    adapter = attach_lora(model, r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], seed=0)
    np.testing.assert_array_equal(model.forward(ids), before)  # B = 0: exactly the base model
    assert sorted(adapter.modules) == sorted(f"model.layers.{i}.{m}" for i in range(3)
                                             for m in ("self_attn.q_proj", "mlp.down_proj"))
    for w in adapter.modules.values():
        bound = 1 / np.sqrt(w.lora_A.shape[1])  # kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in))
        assert np.abs(w.lora_A).max() <= bound and np.abs(w.lora_A).max() > 0.8 * bound
        assert not w.lora_B.any()


def broken_adapter(tmp_path, change_config=None, change_tensors=None):
    source = LORA / "qwen2-qv-r4" / "adapter"
    target = tmp_path / "adapter"
    shutil.copytree(source, target)
    if change_config:
        config = json.loads((target / "adapter_config.json").read_text())
        change_config(config)
        (target / "adapter_config.json").write_text(json.dumps(config))
    if change_tensors:
        from minillm.checkpoint.safetensors_file import SafetensorsFile
        from minillm.checkpoint.saving import write_safetensors
        f = SafetensorsFile(target / "adapter_model.safetensors")
        tensors = {k: f.get_float32(k) for k in f.tensors}
        change_tensors(tensors)
        write_safetensors(target / "adapter_model.safetensors", tensors)
    return target


@pytest.mark.parametrize("field, value, words", [
    ("use_dora", True, "DoRA"),
    ("bias", "all", "trained biases"),
    ("modules_to_save", ["lm_head"], "modules_to_save"),
    ("rank_pattern", {"q_proj": 2}, "per-module ranks"),
    ("peft_type", "IA3", "peft_type"),
    ("r", 0, "r: expected an integer >= 1"),
    ("target_modules", ["lm_head"], "lm_head"),
    ("target_modules", "nothing.*", "matches none"),
])
def test_unsupported_or_bad_adapter_config_is_refused_naming_the_field(tmp_path, field, value, words):
    adapter = broken_adapter(tmp_path, change_config=lambda c: c.__setitem__(field, value))
    with pytest.raises(CheckpointError, match="adapter_config.json") as info:
        load("tiny-qwen2", adapter)
    assert words in str(info.value)


@pytest.mark.parametrize("dropout", [1.0, -0.1, 1.5])
def test_attach_lora_refuses_a_dropout_outside_0_to_1(dropout):
    """p = 1 drops every input and scales by 1 / (1 - p): a division by zero, refused as any p outside [0, 1)."""
    with pytest.raises(InputError, match="lora_dropout"):
        attach_lora(load("tiny-qwen3"), r=2, lora_alpha=4, lora_dropout=dropout)


def test_an_adapter_config_without_task_type_loads_as_peft_loads_it(tmp_path):
    """PEFT's task_type is optional (a LoraConfig without one is a plain LoraModel): absent, the adapter is the same."""
    adapter = broken_adapter(tmp_path, change_config=lambda c: c.pop("task_type"))
    ids = np.arange(12)
    np.testing.assert_array_equal(load("tiny-qwen2", adapter).forward(ids),
                                  load("tiny-qwen2", LORA / "qwen2-qv-r4" / "adapter").forward(ids))


def test_adapter_tensor_of_the_wrong_shape_is_named(tmp_path):
    name = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"
    adapter = broken_adapter(tmp_path, change_tensors=lambda t: t.__setitem__(name, np.zeros((3, 3), np.float32)))
    with pytest.raises(CheckpointError, match=r"layers\.1\.self_attn\.v_proj\.lora_B\.weight.*expected shape"):
        load("tiny-qwen2", adapter)


def test_missing_and_unexplained_adapter_tensors_are_named(tmp_path):
    name = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"

    def change(t):
        del t[name]
        t["base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"] = np.ones(4, np.float32)
    with pytest.raises(CheckpointError, match=r"q_proj\.lora_A\.weight' is missing.*lora_magnitude_vector"):
        load("tiny-qwen2", broken_adapter(tmp_path, change_tensors=change))


def test_adapter_on_a_mixture_of_experts_is_refused():
    with pytest.raises(InputError, match="dense"):
        attach_lora(load("tiny-qwen3-moe"))


def test_adapter_directory_without_config_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="adapter_config.json"):
        load_adapter(load("tiny-qwen2"), tmp_path)


def test_with_an_adapter_the_base_weights_get_no_gradient_at_all():
    """LoRA skips every frozen weight's gradient: the projections' dy^T x, the head's and the embedding's."""
    from minillm.backward.lora import LoraGrads
    from minillm.backward.transformer import model_backward, model_forward
    from minillm.training.loss import cross_entropy_backward

    meta, ref = fixture("qwen3-attn-r2")  # q, k, v, o adapted; the MLP is not
    model = load(meta["checkpoint"], LORA / "qwen3-attn-r2" / "adapter")
    logits, saved = model_forward(model, ref["ids"])
    grads = model_backward(model, cross_entropy_backward(logits, ref["labels"]), saved)
    assert grads.embed_tokens is None and grads.lm_head is None
    for layer in grads.layers:
        assert isinstance(layer.self_attn.q_proj, LoraGrads) and isinstance(layer.self_attn.o_proj, LoraGrads)
        assert layer.mlp.gate_proj is None and layer.mlp.up_proj is None and layer.mlp.down_proj is None
