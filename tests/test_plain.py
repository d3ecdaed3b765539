"""The plain layer (minillm/plain/): each one-screen function computes what the engine computes.

Tolerances (float32 noise, never bit-exact: BLAS may sum in any order):
* forwards, blocks and layers: max |plain - engine| <= tol * max |engine| (tol stated per test);
* gradients: each tensor within 1e-9 of its largest gradient in float64 (the same math), within 1e-4 in
  float32 (its rounding, measured up to 1e-5 on the q/k-norm gains);
* generation: identical token ids; AdamW: parameters within 1e-6 (a thousandth of one lr = 1e-3 step).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import minillm
from minillm.checkpoint.rope_config import RopeConfig
from minillm.checkpoint.weights import named_tensors
from minillm.model.cache import new_linear_state
from minillm.model.gated_deltanet import gated_deltanet
from minillm.model.moe import sparse_moe_block
from minillm.model.norm import rms_norm, zero_centred_rms_norm
from minillm.plain.deltanet import plain_gated_deltanet
from minillm.plain.forward import plain_forward
from minillm.plain.generate import plain_generate
from minillm.plain.hybrid import plain_hybrid_forward
from minillm.plain.moe import plain_moe_block
from minillm.plain.train_step import plain_adamw_step, plain_loss_and_grads
from minillm.training.adamw import AdamWState, adamw_step
from conftest import ROOT, checkpoint_dir, load_quietly, reference, rel_error
from test_backward import float64_copy

DENSE = ["tiny-qwen2", "tiny-qwen3", "minillm-bilingual"]  # Qwen2 biases; Qwen3 q/k-norm, head_dim; the bundled model
HYBRID = ["tiny-qwen3.5", "tiny-qwen3.5-hub", "tiny-qwen3.5-moe", "tiny-qwen3-next"]
MOE = ["tiny-qwen3-moe", "tiny-qwen3.5-moe", "tiny-qwen3-next"]
MAX_LINES = 60  # what one screen holds: no function in minillm/plain/ may be longer (docstring included)


def model(name: str) -> minillm.Model:
    return load_quietly(checkpoint_dir(name))


def layer_inputs(name: str):
    """(layer, what its sub-layer reads) for every layer: the real residual stream, normed as the engine does."""
    m = model(name)
    _, hidden = m.forward(reference(name)["input_ids"], output_hidden_states=True)  # L+1 x [T, D]
    norm = zero_centred_rms_norm if m.config.zero_centred_norms else rms_norm
    return m, [(layer, norm(x, layer.input_layernorm, m.config.rms_norm_eps), x)
               for layer, x in zip(m.weights.layers, hidden)]


# ------------------------------------------------------------------------------------------- the forward pass

@pytest.mark.parametrize("name, forward, tolerance", [(name, plain_forward, 1e-5) for name in DENSE] +
                         [(name, plain_hybrid_forward, 2e-5) for name in HYBRID])
def test_plain_forward_and_plain_hybrid_forward_equal_model_forward(name, forward, tolerance):
    """Dense: Qwen2 biases, Qwen3 q/k-norm, the bundled model. Hybrid: Qwen3.5 (and its Hub layout), Qwen3.5-MoE,
    Qwen3-Next (grouped projections); the engine runs the chunked delta rule, the plain layer the recurrence."""
    m, ids = model(name), reference(name)["input_ids"]
    got = forward(m.weights, m.config, ids)
    assert got.shape == (len(ids), m.config.vocab_size) and got.dtype == np.float32
    assert rel_error(got, m.forward(ids)) < tolerance


@pytest.mark.parametrize("name", DENSE)
def test_plain_forward_matches_transformers(name):
    ref = reference(name)
    assert rel_error(plain_forward(model(name).weights, model(name).config, ref["input_ids"]), ref["logits"]) < 1e-4


@pytest.mark.parametrize("name", DENSE)
def test_plain_forward_through_its_kv_cache_equals_one_pass(name):
    m, ids = model(name), reference(name)["input_ids"]
    c = m.config
    cache = [[np.zeros((c.num_key_value_heads, 0, c.head_dim), np.float32)] * 2 for _ in m.weights.layers]
    pieces = [plain_forward(m.weights, c, ids[:5], cache)] + [plain_forward(m.weights, c, [i], cache) for i in ids[5:]]
    assert cache[0][0].shape == (c.num_key_value_heads, len(ids), c.head_dim)
    assert rel_error(np.concatenate(pieces), plain_forward(m.weights, c, ids)) < 1e-5


def test_plain_forward_refuses_scaled_rope_and_sliding_windows_pointing_to_the_engine():
    m = model("tiny-qwen3-yarn-swa")
    with pytest.raises(minillm.InputError, match="yarn RoPE scaling: use Model.forward"):
        plain_forward(m.weights, m.config, [1, 2, 3])
    windowed = dataclasses.replace(m.config, rope=RopeConfig(theta=m.config.rope.theta))
    with pytest.raises(minillm.InputError, match="sliding-window layers: use Model.forward"):
        plain_forward(m.weights, windowed, [1, 2, 3])
    with pytest.raises(minillm.InputError, match="no linear-attention layer: use plain_forward"):
        plain_hybrid_forward(m.weights, m.config, [1, 2, 3])


# ------------------------------------------------------------------------------------------------- generation

@pytest.mark.parametrize("temperature, top_k, top_p, seed", [(0.0, 0, 1.0, None), (1.0, 0, 1.0, 0),
                                                             (0.7, 20, 0.8, 1), (1.3, 50, 0.95, 2)])
def test_plain_generate_gives_the_token_ids_of_minillm_generate(temperature, top_k, top_p, seed):
    """Greedy, plain sampling, and top-k + top-p at two temperatures: the same ids for the same seed."""
    m = model("minillm-bilingual")
    ids = minillm.load_tokenizer(minillm.default_model_path()).encode("Once upon a time, there was a")
    got = plain_generate(m.weights, m.config, ids, 24, temperature, top_k, top_p, seed)
    want = minillm.generate(m, ids, 24, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed, min_p=0.0,
                            repetition_penalty=1.0, stop_token_ids=[])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------------------- Qwen3.5 and MoE

@pytest.mark.parametrize("name", HYBRID)
def test_plain_gated_deltanet_equals_the_engines_layer_chunked_and_recurrent(name):
    m, inputs = layer_inputs(name)
    c, checked = m.config, 0
    for layer, x, _ in inputs:
        if layer.linear_attn is not None:
            got = plain_gated_deltanet(layer.linear_attn, c, x)  # [T, D]
            for chunked in (True, False):
                want = gated_deltanet(x[None], layer.linear_attn, c.linear_num_key_heads, c.linear_num_value_heads,
                                      c.rms_norm_eps, chunked=chunked)[0]
                assert got.dtype == np.float32 and rel_error(got, want) < 5e-6
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("name", HYBRID)
def test_plain_gated_deltanet_equals_the_engines_generation_steps(name):
    """A prompt of 5 tokens, then one token per call through the layer's state (the engine's fused decode step)."""
    m, inputs = layer_inputs(name)
    c, checked = m.config, 0
    for layer, x, _ in inputs:
        if layer.linear_attn is not None:
            got = plain_gated_deltanet(layer.linear_attn, c, x)  # [T, D]
            state = new_linear_state(c, 1)
            step = lambda part: gated_deltanet(part[None], layer.linear_attn, c.linear_num_key_heads,
                                               c.linear_num_value_heads, c.rms_norm_eps, state)[0]  # [T', D]
            want = np.concatenate([step(x[:5])] + [step(x[t:t + 1]) for t in range(5, len(x))])  # [T, D]
            assert got.dtype == want.dtype == np.float32 and rel_error(got, want) < 5e-6
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("name", MOE)
def test_plain_moe_block_equals_the_engines_block_on_every_moe_layer(name):
    """Real layer inputs (post-attention norm of the residual stream). The plain top-k breaks ties by lowest
    index, the engine as torch.topk: so no token may have a tie at the k-th place here (asserted)."""
    m, inputs = layer_inputs(name)
    c, checked = m.config, 0
    for layer, _, stream in inputs:
        if hasattr(layer.mlp, "experts"):
            x = (zero_centred_rms_norm if c.zero_centred_norms else rms_norm)(
                stream, layer.post_attention_layernorm, c.rms_norm_eps)  # [T, D]
            logits = np.sort(x @ layer.mlp.gate.T, axis=-1)[:, ::-1]  # [T, E] router logits, largest first
            assert (logits[:, c.num_experts_per_tok - 1] > logits[:, c.num_experts_per_tok]).all()  # no tie at k
            want = sparse_moe_block(x, layer.mlp, c.num_experts_per_tok, c.norm_topk_prob)
            got = plain_moe_block(layer.mlp, c, x)
            assert got.dtype == np.float32 and rel_error(got, want) < 5e-6
            checked += 1
    assert checked >= 2


# --------------------------------------------------------------------------------------------------- training

@pytest.mark.parametrize("name", DENSE)
def test_plain_loss_and_grads_equals_minillm_loss_and_grads_in_float64(name):
    """float64 weights: the same math to ~1e-12, each tensor within 1e-9 of its largest gradient."""
    m, ids = float64_copy(model(name)), reference(name)["input_ids"][:16]
    loss, grads = plain_loss_and_grads(m.weights, m.config, ids)
    want_loss, want = minillm.loss_and_grads(m, ids)
    assert loss == pytest.approx(want_loss, rel=1e-12) and sorted(grads) == sorted(want)
    for key in want:
        assert grads[key].shape == want[key].shape and rel_error(grads[key], want[key]) < 1e-9, key


def test_plain_loss_and_grads_equals_minillm_loss_and_grads_on_the_bundled_model_in_float32():
    m, ids = model("minillm-bilingual"), reference("minillm-bilingual")["input_ids"][:16]
    loss, grads = plain_loss_and_grads(m.weights, m.config, ids)
    want_loss, want = minillm.loss_and_grads(m, ids)
    assert loss == pytest.approx(want_loss, rel=1e-6) and sorted(grads) == sorted(want)
    for key in want:
        assert grads[key].dtype == np.float32 and rel_error(grads[key], want[key]) < 1e-4, key


def test_plain_adamw_step_equals_the_trainers_adamw_step():
    """Three steps with weight decay: bias correction, decoupled decay, no decay on 1-D tensors."""
    m = model("tiny-qwen2")  # biases and norms (not decayed) beside matrices (decayed)
    ids = reference("tiny-qwen2")["input_ids"][:12]
    plain = {k: v.copy() for k, v in named_tensors(m.weights).items()}
    engine = {k: v.copy() for k, v in plain.items()}
    _, grads = minillm.loss_and_grads(m, ids)
    m1, v1, state = {}, {}, AdamWState()
    for step in (1, 2, 3):
        plain_adamw_step(plain, grads, m1, v1, step, lr=1e-3, weight_decay=0.1)
        adamw_step(engine, grads, state, lr=1e-3, weight_decay=0.1)
    for key in engine:
        assert plain[key].dtype == np.float32
        np.testing.assert_allclose(plain[key], engine[key], rtol=0, atol=1e-6, err_msg=key)


# ------------------------------------------------------------------------------------- the layer stays plain

PLAIN_FILES = sorted((ROOT / "minillm" / "plain").glob("*.py"))


def test_every_plain_function_fits_on_one_screen():
    long = [f"{p.name}:{node.name} has {node.end_lineno - node.lineno + 1} lines"
            for p in PLAIN_FILES for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert not long, f"longer than {MAX_LINES} lines: {long}"


def test_the_plain_layer_imports_only_numpy_itself_and_the_error_classes():
    """Nothing from the engine: a plain function must not hide its math behind an engine helper (NumPy, Python's
    math module and the plain layer itself only)."""
    found = []
    for p in PLAIN_FILES:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(p.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                found.append((p.name, "." * node.level + (node.module or "")))
    allowed = re.compile(r"(numpy|math|__future__|\.[a-z_]*|\.\.errors|minillm\.plain(\.[a-z_]+)?|minillm\.errors)")
    assert [f for f in found if not allowed.fullmatch(f[1])] == []


def test_the_learning_path_doc_gives_the_line_counts_the_script_measures():
    spec = importlib.util.spec_from_file_location("learning_path", ROOT / "scripts" / "learning_path.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    doc = (ROOT / "docs" / "LEARNING_PATH.md").read_text(encoding="utf-8")
    documented = {where: int(lines) for where, lines in re.findall(r"\| `([\w/.]+:\w+)` \| (\d+) \|", doc)}
    measured = {where: lines for _, where, lines, _ in script.table()}
    assert documented == measured
    assert script.markdown() in doc  # the whole table, as the script prints it
