"""The bundled model (minillm/bundled/minillm-bilingual, trained by minillm itself) is the offline default, and
transformers loads it and computes the same numbers (fixture: scripts/bundled/make_reference.py)."""

from __future__ import annotations

import numpy as np

import minillm
from minillm.tools.verify import compare_to_reference, format_error_table
from conftest import ROOT

BUNDLED = ROOT / "minillm" / "bundled" / "minillm-bilingual"  # in the package: it ships in the wheel


def bundled():
    return minillm.load_model(BUNDLED), dict(np.load(BUNDLED / "reference.npz"))


def test_the_offline_default_is_the_bundled_trained_model():
    assert minillm.default_model_path() == BUNDLED


def test_every_hidden_state_and_the_logits_match_transformers_on_the_bundled_model():
    model, ref = bundled()
    rows = compare_to_reference(model, ref)
    bad = [r for r in rows if r.rel_error > 1e-4]
    assert not bad, format_error_table(rows, 1e-4)


def test_left_padded_batch_and_greedy_continuations_match_transformers_on_the_bundled_model():
    model, ref = bundled()
    logits = model.forward(ref["batch_input_ids"], attention_mask=ref["batch_attention_mask"])
    real = ref["batch_attention_mask"].astype(bool)
    assert np.abs(logits - ref["batch_logits"])[real].max() <= 1e-4 * np.abs(ref["batch_logits"][real]).max()
    new = minillm.generate(model, ref["greedy_prompt"], max_new_tokens=24, temperature=0.0, repetition_penalty=1.0)
    np.testing.assert_array_equal(new, ref["greedy_new"])
    batch = minillm.generate(model, ref["batch_input_ids"], attention_mask=ref["batch_attention_mask"],
                             max_new_tokens=24, temperature=0.0, repetition_penalty=1.0)
    np.testing.assert_array_equal(batch, ref["batch_greedy_new"])


def test_the_bundled_tokenizer_round_trips_english_and_chinese_and_renders_chatml():
    tok = minillm.load_tokenizer(BUNDLED)
    for text in ["The quick brown fox, 1234!", "春眠不觉晓，处处闻啼鸟。", "mixed 中英 text\n\nwith lines"]:
        assert tok.decode(tok.encode(text)) == text
    prompt = tok.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n")
