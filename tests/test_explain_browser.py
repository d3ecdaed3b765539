"""The explainer page in a real browser: headless Chromium opens the page of a dense, a Qwen3.5 (hybrid) and a MoE
model with no JavaScript error and no network request; real mouse events choose a head and hover tokens and lens
cells, and what the DOM then shows is checked against the numbers the library computed.

Skipped only when no chromium is installed (.ci/run installs Debian's). Driven over the DevTools protocol
(tests/chromium.py, the dev extra's websocket-client).
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from minillm.explain import explain
from minillm.generation.sampling import SamplingParams, process_logits
from minillm.model.activations import softmax

from chromium import Chromium, find_chromium
from explain_helpers import PROMPT, checkpoint_model, checkpoint_tokenizer

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)")

PAGES = {"dense": ("minillm-bilingual", 64), "hybrid": ("tiny-qwen3.5-hub", 64), "moe": ("tiny-qwen3-moe", 48)}
Q8, Q16 = 0.5 / 255, 0.5 / 65535  # one quantisation step's rounding
SHOWN4, SHOWN5 = 5e-5, 5e-6  # the DOM's data-* attributes carry 4 or 5 decimals


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """kind -> (page file, Explanation)."""
    folder, out = tmp_path_factory.mktemp("explain"), {}
    for kind, (name, n) in PAGES.items():
        tok = checkpoint_tokenizer(name)
        page = explain(checkpoint_model(name), tok, tok.encode(PROMPT)[:n])
        out[kind] = (page.save(folder / f"{kind}.html"), page)
    return out


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=1280, height=1000) as b:
        yield b


def open_page(browser, pages, kind):
    browser.events.clear()
    browser.open(pages[kind][0])
    assert browser.errors() == []
    return pages[kind][1].data


def numbers(browser, selector: str, attribute: str) -> np.ndarray:
    return np.array(browser.evaluate(f"[...document.querySelectorAll({selector!r})].map(e => +e.dataset.{attribute})"))


@pytest.mark.parametrize("kind", list(PAGES))
def test_each_page_opens_with_no_javascript_error_and_loads_nothing_but_itself(browser, pages, kind):
    data = open_page(browser, pages, kind)
    assert browser.evaluate("document.body.dataset.ready") == "1"
    assert browser.requests() == [pages[kind][0].resolve().as_uri()]
    T = len(data.tokens)
    assert browser.evaluate("document.querySelectorAll('#token-strip .tok').length") == T
    views = browser.evaluate("['attention-view', 'linear-view', 'moe-view'].map(id => !document.getElementById(id).hidden)")
    assert views == [True, kind == "hybrid", kind == "moe"]


def test_choosing_a_layer_and_a_head_then_hovering_a_token_shows_where_that_head_looks(browser, pages):
    data = open_page(browser, pages, "dense")
    layer, head, query = 2, 4, 30
    browser.choose("#attn-layer", layer)  # the option's value is the index among the embedded layers: all here
    browser.click(f'#attn-heads button[data-head="{head}"]')
    browser.hover(f'#attn-tokens .tok[data-pos="{query}"]')
    expected = data.attention[layer][head, query]  # [T]
    shown = numbers(browser, "#attn-tokens .tok", "weight")
    np.testing.assert_allclose(shown, np.where(np.arange(len(expected)) <= query, expected, 0), atol=Q8 + SHOWN4)
    G = data.config["H"] // data.config["K"]
    assert f"head {head} (key/value head {head // G})" in browser.evaluate("document.getElementById('attn-caption').textContent")
    keys = numbers(browser, "#attn-readout li", "key")
    assert keys[0] == np.argmax(expected) and len(keys) == 10
    # GQA made visible: the heads of one key/value group sit in one coloured box
    groups = browser.evaluate("[...document.querySelectorAll('#attn-heads .kv-group')].map(g => "
                              "[...g.querySelectorAll('button')].map(b => +b.dataset.head))")
    assert groups[:-1] == [list(range(g * G, (g + 1) * G)) for g in range(data.config["K"])]

    browser.hover("#attn-heat", at=(0.5, (40 + 0.5) / len(expected)))  # the heat map's rows are the queries
    assert "position 40 " in browser.evaluate("document.getElementById('attn-caption').textContent")
    np.testing.assert_allclose(numbers(browser, "#attn-tokens .tok", "weight")[:41], data.attention[layer][head, 40, :41],
                               atol=Q8 + SHOWN4)

    browser.hover(f'#attn-tokens .tok[data-pos="{query}"]')
    browser.click('#attn-heads button[data-head="-1"]')  # the mean of all heads
    shown = numbers(browser, "#attn-tokens .tok", "weight")
    np.testing.assert_allclose(shown[:query + 1], data.attention[layer][:, query, :query + 1].mean(0), atol=Q8 + SHOWN4)

    browser.click('input[name=attn-mode][value=lines]')
    browser.click(f'#attn-heads button[data-head="{head}"]')
    opacity = np.array(browser.evaluate("[...document.querySelectorAll('#attn-lines line')]"
                                        ".map(l => +l.getAttribute('stroke-opacity'))"))
    np.testing.assert_allclose(opacity, expected[:query + 1], atol=Q8 + 1e-6)


def test_hovering_a_logit_lens_cell_lists_that_depths_top_candidates(browser, pages):
    data = open_page(browser, pages, "dense")
    depth, position = 3, 12
    browser.hover(f'#lens-table td[data-depth="{depth}"][data-pos="{position}"]')
    assert list(numbers(browser, "#lens-readout li", "id")) == data.lens_ids[depth, position].tolist()
    np.testing.assert_allclose(numbers(browser, "#lens-readout li", "prob"), data.lens_probs[depth, position],
                               atol=Q16 + SHOWN5)
    cell = browser.evaluate(f"document.querySelector('#lens-table td[data-depth=\"{depth}\"][data-pos=\"{position}\"]').textContent")
    assert cell == data.vocab[int(data.lens_ids[depth, position, 0])].text


@pytest.mark.parametrize("temperature, top_k, top_p", [(0.7, 10, 0.9), (1.0, 5, 1.0), (1.3, 0, 0.8), (1.5, 0, 1.0)])
def test_the_sampling_sliders_reshape_the_next_token_distribution_as_the_library_does(browser, pages, temperature,
                                                                                    top_k, top_p):
    data = open_page(browser, pages, "dense")
    position = 20
    browser.hover(f'#token-strip .tok[data-pos="{position}"]')
    for slider, value in (("#temp", temperature), ("#topk", top_k), ("#topp", top_p)):
        browser.choose(slider, value)
    ids = numbers(browser, "#next-list li", "id").astype(np.int64)
    assert ids.tolist() == data.next_ids[position, :20].tolist()
    model = checkpoint_model("minillm-bilingual")
    logits = model.forward([t.id for t in data.tokens])[position]  # [V]
    expected = softmax(process_logits(logits[None], SamplingParams(temperature, top_k, top_p)))[0]  # [V]
    # exact but for the V - 256 logits the page carries as a histogram (they matter only without top-k)
    atol = 1e-6 if top_k else 5e-4  # measured: at most 1.5e-4 over every third position and four settings
    np.testing.assert_allclose(numbers(browser, "#next-list li", "prob"), expected[ids], atol=atol + 1e-6)
    browser.choose("#temp", 0)  # greedy: everything on the top token
    assert numbers(browser, "#next-list li", "prob")[:2].tolist() == [1, 0]


def test_a_linear_attention_layer_shows_each_heads_decay_and_write_strength_for_the_hovered_token(browser, pages):
    data = open_page(browser, pages, "hybrid")
    linear = [i for i, d in enumerate(data.decay) if d is not None]
    browser.choose("#lin-layer", 1)  # the second linear-attention layer
    browser.hover('#token-strip .tok[data-pos="17"]')
    np.testing.assert_allclose(numbers(browser, "#lin-readout tbody tr", "decay"), data.decay[linear[1]][17],
                               atol=Q16 + SHOWN5)
    np.testing.assert_allclose(numbers(browser, "#lin-readout tbody tr", "write"), data.write[linear[1]][17],
                               atol=Q16 + SHOWN5)
    # its full-attention layer still has a map
    full = [i for i, a in enumerate(data.attention) if a is not None]
    assert browser.evaluate("[...document.querySelectorAll('#attn-layer option')].map(o => o.textContent)") == \
        [str(i) for i in full]
    browser.click('#attn-heads button[data-head="2"]')
    browser.hover('#attn-tokens .tok[data-pos="40"]')
    np.testing.assert_allclose(numbers(browser, "#attn-tokens .tok", "weight")[:41], data.attention[full[0]][2, 40, :41],
                               atol=Q8 + SHOWN4)


def test_a_moe_page_lists_the_experts_each_token_chose_with_their_weights(browser, pages):
    data = open_page(browser, pages, "moe")
    moe = [i for i, e in enumerate(data.experts) if e is not None]
    browser.choose("#moe-layer", 1)
    browser.hover('#token-strip .tok[data-pos="9"]')
    assert numbers(browser, "#moe-readout li", "expert").tolist() == data.experts[moe[1]][9].tolist()
    np.testing.assert_allclose(numbers(browser, "#moe-readout li", "weight"), data.expert_weights[moe[1]][9],
                               atol=Q16 + SHOWN5)


@pytest.mark.parametrize("kind", list(PAGES))
def test_a_screenshot_of_each_page_is_a_png_of_the_window_width(browser, pages, kind, tmp_path):
    open_page(browser, pages, kind)
    shot = browser.screenshot(tmp_path / f"{kind}.png")
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert width == 1280 and height > 1000 and shot.stat().st_size > 20_000


def test_the_notebook_view_is_an_iframe_whose_page_runs(browser, pages, tmp_path):
    """What Jupyter shows (_repr_html_, inside an output cell) holds the whole page, and its script runs there."""
    explanation = pages["moe"][1]
    cell = tmp_path / "notebook.html"
    cell.write_text(f'<!doctype html><html><body><div class="output_html">{explanation._repr_html_()}</div></body></html>',
                    encoding="utf-8")
    inner = "document.querySelector('iframe').contentDocument"
    browser.events.clear()
    browser.open(cell, ready=f"{inner} && {inner}.body && {inner}.body.dataset.ready === '1'")
    assert browser.errors() == []
    assert browser.evaluate(f"{inner}.querySelectorAll('#token-strip .tok').length") == len(explanation.data.tokens)
