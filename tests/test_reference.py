"""The reference forward pass: every hidden state and the logits match transformers (float32, eager).

The fixtures in weights/*/reference.npz were written by scripts/make_tiny_models.py with transformers
as the reference. The tolerance is 1e-4 of each tensor's scale (its largest magnitude); float32 gets
about 1e-6, and a wrong convention (interleaved RoPE, tile-for-GQA, a missing bias) gives 1e-2 or more.
"""

from __future__ import annotations

import numpy as np

from minillm.tools.verify import compare_to_reference, format_error_table
from conftest import reference, tiny_model

RTOL = 1e-4


def test_every_hidden_state_and_the_logits_match_transformers(model_name):
    model, ref = tiny_model(model_name), reference(model_name)
    rows = compare_to_reference(model, ref)
    assert len(rows) == model.config.num_hidden_layers + 2  # L+1 hidden states, then the logits
    bad = [r for r in rows if r.rel_error > RTOL]
    assert not bad, f"{model_name} drifts from transformers:\n{format_error_table(rows, RTOL)}"


def test_hidden_states_follow_transformers_convention(model_name):
    """[0] is the embedding output, [L] is the final norm applied to the last layer's output."""
    model, ref = tiny_model(model_name), reference(model_name)
    logits, hidden = model.forward(ref["input_ids"], output_hidden_states=True)
    L = model.config.num_hidden_layers
    assert len(hidden) == L + 1
    np.testing.assert_array_equal(hidden[0], model.weights.embed_tokens[ref["input_ids"]])
    # The logits are the LM head applied to hidden[L] directly: it is already normalised.
    np.testing.assert_allclose(hidden[L] @ model.weights.lm_head.T, logits, rtol=1e-5, atol=1e-5)


def test_left_padded_batch_matches_transformers_on_real_tokens(model_name):
    model, ref = tiny_model(model_name), reference(model_name)
    logits = model.forward(ref["batch_input_ids"], attention_mask=ref["batch_attention_mask"])
    assert logits.shape == ref["batch_logits"].shape and logits.dtype == np.float32
    real = ref["batch_attention_mask"].astype(bool)
    scale = np.abs(ref["batch_logits"][real]).max()
    err = np.abs(logits - ref["batch_logits"])[real].max()
    assert err <= RTOL * scale, f"batch logits differ by {err:.2e} (scale {scale:.2f})"


def test_logits_to_keep_gives_the_last_rows_only(model_name):
    model, ref = tiny_model(model_name), reference(model_name)
    full = model.forward(ref["input_ids"])
    last = model.forward(ref["input_ids"], logits_to_keep=1)
    assert last.shape == (1, model.config.vocab_size)
    np.testing.assert_allclose(last, full[-1:], rtol=1e-6, atol=1e-6)


def test_everything_is_float32_no_float64_creeps_in(model_name):
    model, ref = tiny_model(model_name), reference(model_name)
    assert {a.dtype for a in model.weights.arrays()} == {np.dtype(np.float32)}
    logits, hidden = model.forward(ref["input_ids"], output_hidden_states=True)
    assert {h.dtype for h in hidden} | {logits.dtype} == {np.dtype(np.float32)}
    batch = model.forward(ref["batch_input_ids"], attention_mask=ref["batch_attention_mask"])
    assert batch.dtype == np.float32


def test_tied_head_is_the_embedding_array_not_a_copy():
    model = tiny_model("tiny-qwen2")
    assert model.config.tie_word_embeddings
    assert model.weights.lm_head is model.weights.embed_tokens
    untied = tiny_model("tiny-qwen3")
    assert untied.weights.lm_head is not untied.weights.embed_tokens
