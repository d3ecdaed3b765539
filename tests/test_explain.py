"""minillm explain: the page's numbers are the model's (checked against transformers' reference hidden states and
routing on the bundled checkpoints, and against the definitions), the page decodes to them within one quantisation
step, it is self-contained and light, and the command writes it. The browser side is tests/test_explain_browser.py.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

import minillm
from minillm.explain import explain
from minillm.explain.data import BYTE_DECODER, MAX_TOKENS, explain_data
from minillm.explain.page import render_page
from minillm.model.activations import sigmoid
from minillm.model.attention import merge_heads, split_heads
from minillm.model.linear import linear
from minillm.model.moe import feed_forward
from minillm.model.norm import rms_norm, zero_centred_rms_norm
from minillm.tools.cli import main

from conftest import rel_error
from explain_helpers import PROMPT, checkpoint, decode_page, page_json
from explain_helpers import checkpoint_model as tiny_model, checkpoint_reference as reference
from explain_helpers import checkpoint_tokenizer as tokenizer

ALL_BUNDLED = ["minillm-bilingual", "tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa", "tiny-qwen3-moe",
               "tiny-qwen3-next", "tiny-qwen3.5", "tiny-qwen3.5-hub", "tiny-qwen3.5-moe"]
WITH_ATTENTION = ["minillm-bilingual", "tiny-qwen3-yarn-swa", "tiny-qwen3-moe", "tiny-qwen3.5-hub", "tiny-qwen3-next"]
RTOL = {"minillm-bilingual": 1e-4, "tiny-qwen3-yarn-swa": 1e-4, "tiny-qwen3-moe": 1e-4}  # hybrids: 1e-3 (verify's)


def reference_data(name):
    """The explainer's numbers for the reference prompt of the checkpoint's fixture."""
    ref = reference(name)
    return explain_data(tiny_model(name), tokenizer(name), ref["input_ids"]), ref


def layer_output_from_attention(model, i: int, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Decoder layer i, with its attention weights taken from ``probs`` [H, T, T] and values, gate and MLP
    computed here from the definitions.   x [T, D] -> [T, D]"""
    cfg, layer = model.config, model.weights.layers[i]
    H, K, eps, T = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.rms_norm_eps, len(x)
    norm = zero_centred_rms_norm if cfg.is_hybrid else rms_norm
    a = layer.self_attn
    normed = norm(x[None], layer.input_layernorm, eps)  # [1, T, D]
    v = split_heads(linear(normed, a.v_proj, getattr(a, "v_proj_bias", None)), K)  # [1, K, T, Dh]
    v = np.repeat(v, H // K, axis=1)  # [1, H, T, Dh]: query head h reads key/value head h // (H/K)
    out = merge_heads(probs[None].astype(np.float32) @ v)  # [1, T, H*Dh]
    if cfg.is_hybrid:  # gated attention: per head, q_proj's rows are [query (Dh) | gate (Dh)]
        Dh = v.shape[-1]
        gate = linear(normed, a.q_proj).reshape(1, T, H, 2 * Dh)[..., Dh:].reshape(1, T, H * Dh)
        out = out * sigmoid(gate)
    h = x[None] + linear(out, a.o_proj, getattr(a, "o_proj_bias", None))  # [1, T, D]
    return (h + feed_forward(norm(h, layer.post_attention_layernorm, eps), layer.mlp, cfg.num_experts_per_tok,
                             cfg.norm_topk_prob))[0]  # [T, D]


@pytest.mark.parametrize("name", WITH_ATTENTION)
def test_each_heads_attention_weights_reproduce_the_reference_hidden_state_after_the_layer(name):
    """Weights [H, T, T] of every attention layer, times the values, through o_proj (and the gate) and the MLP,
    give transformers' hidden state after that layer: they are the weights the model used, head by head."""
    data, ref = reference_data(name)
    model = tiny_model(name)
    L = model.config.num_hidden_layers
    checked = 0
    for i, probs in enumerate(data.attention):
        if probs is None:
            continue
        T = len(ref["input_ids"])
        assert probs.shape == (model.config.num_attention_heads, T, T)
        np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)
        assert not np.triu(probs, 1).any(), "a query attends to a later key"
        out = layer_output_from_attention(model, i, ref[f"hidden_{i}"], probs)
        if i == L - 1:
            out = model.final_norm(out)  # hidden_L is the final norm's output
        assert rel_error(out, ref[f"hidden_{i + 1}"]) < RTOL.get(name, 1e-3), f"layer {i}"
        checked += 1
    assert checked == sum(p is not None for p in data.attention) > 0


def test_a_sliding_window_layer_attends_only_inside_its_window():
    data, ref = reference_data("tiny-qwen3-yarn-swa")
    cfg = tiny_model("tiny-qwen3-yarn-swa").config
    T, W = len(ref["input_ids"]), cfg.sliding_window
    sliding = [i for i in range(cfg.num_hidden_layers) if cfg.uses_sliding_window(i)]
    assert sliding and W < T
    for i in sliding:
        t, s = np.indices((T, T))
        assert not data.attention[i][:, s <= t - W].any()  # [H, n]: nothing at or beyond W tokens back


@pytest.mark.parametrize("name", ["tiny-qwen3.5-hub", "tiny-qwen3-next", "tiny-qwen3.5-moe"])
def test_the_layer_run_with_the_pages_decay_and_write_strength_gives_the_reference_hidden_states(name, monkeypatch):
    """Every linear-attention layer recomputed with the page's (dequantised) exp(g) and beta in place of its own
    gives transformers' hidden states: they are the layer's decay and write strength, head by head, token by token."""
    import minillm.model.gated_deltanet as gdn

    model, ref = tiny_model(name), reference(name)
    page = explain(model, tokenizer(name), ref["input_ids"].tolist())
    decoded = decode_page(page.html)
    assert sorted(decoded["decay"]) == [i for i in range(model.config.num_hidden_layers)
                                        if model.config.is_linear_attention(i)]
    by_weights = {id(model.weights.layers[i].linear_attn): i for i in decoded["decay"]}
    used = []

    def from_the_page(b, a, w):
        i = by_weights[id(w)]
        used.append(i)
        decay, beta = decoded["decay"][i], decoded["write"][i]  # [T, Hv] each
        assert decay.min() > 0 and decay.max() <= 1 and beta.min() > 0 and beta.max() < 1
        return beta[None].astype(np.float32), np.log(np.maximum(decay, 1e-30))[None].astype(np.float32)

    monkeypatch.setattr(gdn, "write_strength_and_log_decay", from_the_page)
    _, hidden = model.forward(ref["input_ids"], output_hidden_states=True)
    assert sorted(used) == sorted(decoded["decay"])
    for i in range(1, len(hidden)):
        assert rel_error(hidden[i], ref[f"hidden_{i}"]) < 2e-3, f"hidden {i}"


@pytest.mark.parametrize("name", ["tiny-qwen3-moe", "tiny-qwen3-next", "tiny-qwen3.5-moe"])
def test_the_pages_experts_and_weights_are_the_ones_transformers_routes_to(name):
    model, ref = tiny_model(name), reference(name)
    page = explain(model, tokenizer(name), ref["input_ids"].tolist())
    decoded = decode_page(page.html)
    assert sorted(decoded["experts"]) == list(ref["moe_layers"])
    for i in ref["moe_layers"]:
        np.testing.assert_array_equal(decoded["experts"][i], ref[f"top_k_index_{i}"])
        np.testing.assert_allclose(decoded["expert_weights"][i], ref[f"top_k_weights_{i}"], atol=1e-4)
        logits = ref[f"router_logits_{i}"].astype(np.float64)  # [T, E]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        np.testing.assert_allclose(decoded["router_probs"][i], probs / probs.sum(-1, keepdims=True), atol=0.6 / 255)


def _definition_rms_norm(x, w, eps, zero_centred):
    x = x.astype(np.float64)
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * ((1 + w) if zero_centred else w)


@pytest.mark.parametrize("name", ["minillm-bilingual", "tiny-qwen3.5-hub", "tiny-qwen3-moe"])
def test_the_logit_lens_is_each_reference_hidden_state_through_the_final_norm_and_the_lm_head(name):
    model, ref = tiny_model(name), reference(name)
    cfg, w = model.config, model.weights
    L = cfg.num_hidden_layers
    decoded = decode_page(explain(model, tokenizer(name), ref["input_ids"].tolist()).html)
    final_top = ref["logits"].argmax(-1)  # [T]
    for depth in range(L + 1):
        h = ref[f"hidden_{depth}"]
        normed = h if depth == L else _definition_rms_norm(h, w.norm, cfg.rms_norm_eps, cfg.zero_centred_norms)
        logits = normed @ w.lm_head.T.astype(np.float64)  # [T, V]
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        ids, probs = decoded["lens_ids"][depth], decoded["lens_probs"][depth]  # [T, 5]
        np.testing.assert_allclose(probs, np.take_along_axis(p, ids.astype(np.int64), -1), atol=2e-5)
        sixth = -np.sort(-p, -1)[:, 5]  # [T]: nothing outside the page's five is more probable
        assert (probs[:, -1] >= sixth - 2e-5).all(), f"depth {depth}"
        np.testing.assert_allclose(decoded["lens_final"][depth], p[np.arange(len(p)), final_top], atol=2e-5)


def test_the_page_decodes_to_the_computed_numbers_within_one_quantisation_step():
    model, tok = tiny_model("tiny-qwen3.5-moe"), tokenizer("tiny-qwen3.5-moe")
    ids = tok.encode(PROMPT)[:40]
    data = explain_data(model, tok, ids)
    decoded = decode_page(render_page(data))
    for i, probs in enumerate(data.attention):
        if probs is not None:
            np.testing.assert_allclose(decoded["attention"][i], probs, atol=0.5 / 255 + 1e-7)
    for i, decay in enumerate(data.decay):
        if decay is not None:
            np.testing.assert_allclose(decoded["decay"][i], decay, atol=0.5 / 65535 + 1e-9)
            np.testing.assert_allclose(decoded["write"][i], data.write[i], atol=0.5 / 65535 + 1e-9)
    np.testing.assert_allclose(decoded["lens_probs"], data.lens_probs, atol=0.5 / 65535 + 1e-9)
    np.testing.assert_array_equal(decoded["lens_ids"], data.lens_ids)
    np.testing.assert_array_equal(decoded["next_ids"], data.next_ids)
    np.testing.assert_array_equal(decoded["next_logits"], data.next_logits)
    assert [t[0] for t in decoded["json"]["tokens"]] == ids


def test_the_next_token_view_carries_the_largest_logits_and_the_rest_as_a_histogram():
    model, tok = tiny_model("minillm-bilingual"), tokenizer("minillm-bilingual")
    ids = tok.encode(PROMPT)[:64]
    logits = model.forward(ids)  # [T, V]
    decoded = decode_page(explain(model, tok, ids).html)
    n, V = decoded["next_ids"].shape[1], logits.shape[1]
    np.testing.assert_array_equal(decoded["next_logits"], -np.sort(-logits, -1)[:, :n])
    np.testing.assert_array_equal(np.take_along_axis(logits, decoded["next_ids"].astype(np.int64), -1),
                                  decoded["next_logits"])
    assert (decoded["tail_counts"].sum(-1) == V - n).all()
    for temperature in (0.5, 1.0, 2.0):  # the tail's mass, as the page estimates it from the histogram
        m = logits.max(-1, keepdims=True).astype(np.float64)
        z = np.exp((logits - m) / temperature)  # [T, V]
        true_tail = z.sum(-1) - np.exp((decoded["next_logits"] - m) / temperature).sum(-1)
        estimate = (decoded["tail_counts"] * np.exp((decoded["tail_centres"] - m) / temperature)).sum(-1)
        np.testing.assert_allclose(estimate, true_tail, rtol=0.03)


def test_tokens_are_shown_as_the_text_of_their_bytes_with_visible_spaces_and_split_characters_as_hex():
    tok = tokenizer("tiny-qwen3")  # a 384-token vocabulary: each Chinese character is split into its bytes
    text = "a cat 凡\n"
    data = explain_data(tiny_model("tiny-qwen3"), tok, tok.encode(text))
    assert b"".join(bytes(BYTE_DECODER[c] for c in p.raw) for p in data.tokens) == text.encode()
    shown = [p.text for p in data.tokens]
    assert "\u2423cat" in shown or "\u2423c" in shown  # the space before a word is part of it, shown as ␣
    assert "<e5>" in shown and "\u21b5" in "".join(shown)  # a byte of 凡 (e5 87 a1); the newline as ↵
    bilingual = tokenizer("minillm-bilingual")
    pieces = explain_data(tiny_model("minillm-bilingual"), bilingual, bilingual.encode("<|im_start|>凡有")).tokens
    assert [(p.text, p.special) for p in pieces] == [("<|im_start|>", True), ("凡", False), ("有", False)]


def test_the_page_is_self_contained_and_text_in_the_prompt_cannot_end_its_script():
    model, tok = tiny_model("minillm-bilingual"), tokenizer("minillm-bilingual")
    prompt = 'x <!-- <script> </script><script>alert("no")</script> y'
    page = explain(model, tok, prompt).html
    block = re.search(r'<script type="application/json" id="minillm-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in block  # neither "</script>" nor "<!-- <script" can change how the HTML parser reads it
    outside = page.replace(block, "").replace('"http://www.w3.org/2000/svg"', "")  # SVG's namespace is a name
    assert not re.search(r"https?://|\bsrc\s*=|<link\b|@import|url\(", outside), "the page loads something"
    assert outside.count("<script") == 2 and outside.count("</script>") == 2
    assert "".join(bytes(BYTE_DECODER[c] for c in t[2]).decode() for t in page_json(page)["tokens"]) == prompt


def test_attention_past_the_size_cap_is_left_out_for_evenly_spaced_layers_and_the_page_says_so():
    model, tok = tiny_model("minillm-bilingual"), tokenizer("minillm-bilingual")
    ids = tok.encode(PROMPT)[:64]
    per_layer = model.config.num_attention_heads * 64 * 65 // 2  # bytes of one layer's maps
    full = explain(model, tok, ids)
    capped = explain(model, tok, ids, max_attention_bytes=3 * per_layer)
    kept, omitted = page_json(capped.html)["attention"]["layers"], page_json(capped.html)["attention"]["omitted"]
    assert kept == [0, 2, 5] and omitted == [1, 3, 4]
    assert [a is not None for a in capped.data.attention] == [True, False, True, False, False, True]  # not computed
    assert page_json(full.html)["attention"]["layers"] == list(range(6))
    assert len(full.html) - len(capped.html) >= 3 * per_layer * 4 / 3  # base64 of the three left out


def test_a_64_token_page_of_the_bundled_model_stays_under_one_megabyte():
    model, tok = tiny_model("minillm-bilingual"), tokenizer("minillm-bilingual")
    page = explain(model, tok, tok.encode(PROMPT)[:64]).html
    assert 100_000 < len(page.encode()) < 1_000_000


@pytest.mark.parametrize("name", ALL_BUNDLED)
def test_every_bundled_architecture_gets_a_page_with_the_views_its_layers_have(name):
    model, tok = tiny_model(name), tokenizer(name)
    cfg = model.config
    d = page_json(explain(model, tok, "The quick brown fox, 凡有").html)
    layers = range(cfg.num_hidden_layers)
    linear = [i for i in layers if cfg.is_hybrid and cfg.is_linear_attention(i)]
    assert d["linear"]["layers"] == linear
    assert d["attention"]["layers"] == [i for i in layers if i not in linear]
    assert d["moe"]["layers"] == [i for i in layers if cfg.is_moe_layer(i)]


def test_generated_tokens_are_the_greedy_continuation_and_marked_as_generated():
    model, tok = tiny_model("minillm-bilingual"), tokenizer("minillm-bilingual")
    ids = tok.encode("The capital of France is")
    new = minillm.generate(model, ids, 6, temperature=0).tolist()
    d = page_json(explain(model, tok, ids, generate=6).html)
    assert d["prompt_tokens"] == len(ids) and [t[0] for t in d["tokens"]] == ids + new


def test_too_long_or_empty_inputs_are_refused_with_the_limit_named():
    model, tok = tiny_model("tiny-qwen3"), tokenizer("tiny-qwen3")
    with pytest.raises(minillm.InputError, match=f"at most {MAX_TOKENS} tokens"):
        explain(model, tok, [1] * (MAX_TOKENS - 2), generate=5)
    with pytest.raises(minillm.InputError, match="no tokens"):
        explain(model, tok, "")
    with pytest.raises(minillm.InputError, match="generate must be an integer"):
        explain(model, tok, "hi", generate=-1)


def test_a_notebook_shows_the_page_in_an_iframe_holding_it_whole():
    model, tok = tiny_model("tiny-qwen3"), tokenizer("tiny-qwen3")
    page = minillm.explain(model, tok, "Hello there")
    shown = page._repr_html_()
    m = re.fullmatch(r'<iframe srcdoc="([^"]*)".*</iframe>', shown, re.S)
    assert m and html.unescape(m.group(1)) == page.html


def test_the_explain_command_writes_the_page_and_reports_bad_arguments_in_one_line(tmp_path, capsys):
    out = tmp_path / "page.html"
    model_dir = str(checkpoint("minillm-bilingual"))
    assert main(["explain", "The capital of France is", "--model", model_dir, "-o", str(out), "--generate", "3"]) == 0
    d = page_json(out.read_text(encoding="utf-8"))
    assert d["model"] == "minillm-bilingual" and len(d["tokens"]) == d["prompt_tokens"] + 3
    assert "wrote" in capsys.readouterr().out
    assert main(["explain", "x", "--model", model_dir, "-o", str(tmp_path / "no" / "page.html")]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert main(["explain", "x", "--model", model_dir, "--generate", "-2", "-o", str(out)]) == 1
    assert "generate must be an integer >= 0" in capsys.readouterr().err
