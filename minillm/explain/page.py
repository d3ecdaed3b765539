"""The explainer page: ExplainData quantised, packed into JSON, and written into one self-contained HTML file.

Nothing is fetched: page.html (layout), page.css and page.js are inlined, the data sits in a
<script type="application/json"> block. Arrays travel as base64 of little-endian binary:

    attention   uint8   per attention layer: H heads x the lower triangle of [T, T] (row t holds keys 0..t)
    linear      uint16  per linear-attention layer: decay exp(g) and write strength beta, [T, Hv] each
    moe         uint16  per MoE layer: chosen experts [T, k], their weights [T, k]; uint8 router probs [T, E]
    lens        uint32 ids, uint16 probs [L+1, T, 5]; uint16 probability of the final prediction [L+1, T]
    next        uint32 ids, float32 logits [T, n]; the tail's histogram [T, 64] (counts, log-mean-exp logits)

A probability p is stored as round(p * 255) or round(p * 65535): an error of at most 0.002 or 8e-6.

Size (bytes, before base64's 4/3): attention  La * H * T (T + 1) / 2   (La attention layers: T^2 dominates)
                                   lens       (L + 1) * T * 5 * 6 + (L + 1) * T * 2
                                   next       T * n * 8 + T * 64 * 8   (n = 256)
                                   linear     Ll * T * Hv * 4;   moe  Lm * T * (k * 4 + E)
plus the text of every token the page names. Attention maps beyond data.MAX_ATTENTION_BYTES are not computed:
evenly spaced layers are kept (data.attention_layers_kept) and the page says which were left out.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np

from .data import ExplainData

HERE = Path(__file__).resolve().parent
MAX_ROUTER_EXPERTS = 256  # router probabilities over all experts are embedded up to this many experts
PLAIN = {  # the one-screen functions a learner reads next to each view (minillm/plain/, tested equal to the engine)
    "attention": ("minillm/plain/forward.py", "minillm/model/attention.py"),
    "lens": ("minillm/plain/forward.py", "minillm/model/transformer.py"),
    "next": ("minillm/plain/generate.py", "minillm/generation/sampling.py"),
    "linear": ("minillm/plain/deltanet.py", "minillm/model/gated_deltanet.py"),
    "moe": ("minillm/plain/moe.py", "minillm/model/router.py"),
}


def _b64(a: np.ndarray, dtype: str) -> str:
    """An array as base64 of its little-endian bytes (dtype like '<u2')."""
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _q(p: np.ndarray, levels: int) -> np.ndarray:
    """Probabilities in [0, 1] -> integers 0..levels (rounded)."""
    return np.rint(np.clip(p, 0.0, 1.0) * levels)


def lower_triangle(probs: np.ndarray) -> np.ndarray:
    """[H, T, T] -> [H, T (T + 1) / 2]: row t's keys 0..t, rows in order (a causal map holds nothing above)."""
    H, T, _ = probs.shape
    rows, cols = np.tril_indices(T)  # row-major: (0,0), (1,0), (1,1), (2,0), ...
    return probs[:, rows, cols]  # [H, T(T+1)/2]


def payload(d: ExplainData, source_root: str = "") -> dict:
    """The JSON the page reads (see the module docstring for the encodings)."""
    c = d.config
    kept = [i for i, a in enumerate(d.attention) if a is not None]  # data.py left out what is past its cap
    linear_layers = [i for i, a in enumerate(d.decay) if a is not None]
    moe_layers = [i for i, a in enumerate(d.experts) if a is not None]
    with_probs = c["E"] <= MAX_ROUTER_EXPERTS
    return {
        "format": 1,
        "model": d.model_name, "config": c, "prompt_tokens": d.prompt_tokens,
        "tokens": [[p.id, p.text, p.raw, p.special] for p in d.tokens],
        "vocab": {str(i): p.text for i, p in d.vocab.items()},
        "attention": {"layers": kept, "omitted": d.attention_omitted,
                      "sliding": [c["sliding_window"] if c["layer_types"][i] == "sliding_attention" else None
                                  for i in kept],
                      "data": [_b64(_q(lower_triangle(d.attention[i]), 255), "u1") for i in kept]},
        "linear": {"layers": linear_layers,
                   "decay": [_b64(_q(d.decay[i], 65535), "<u2") for i in linear_layers],
                   "write": [_b64(_q(d.write[i], 65535), "<u2") for i in linear_layers]},
        "moe": {"layers": moe_layers,
                "experts": [_b64(d.experts[i], "<u2") for i in moe_layers],
                "weights": [_b64(_q(d.expert_weights[i], 65535), "<u2") for i in moe_layers],
                "probs": [_b64(_q(d.router_probs[i], 255), "u1") for i in moe_layers] if with_probs else None},
        "lens": {"top": int(d.lens_ids.shape[-1]), "ids": _b64(d.lens_ids, "<u4"),
                 "probs": _b64(_q(d.lens_probs, 65535), "<u2"), "final": _b64(_q(d.lens_final_prob, 65535), "<u2")},
        "next": {"n": int(d.next_ids.shape[-1]), "ids": _b64(d.next_ids, "<u4"), "logits": _b64(d.next_logits, "<f4"),
                 "tail_counts": _b64(d.tail_counts, "<u4"), "tail_centres": _b64(d.tail_centres, "<f4"),
                 "bins": int(d.tail_counts.shape[-1])},
        "links": PLAIN, "source_root": source_root,
    }


def render_page(d: ExplainData, source_root: str = "") -> str:
    """The whole self-contained HTML page."""
    data = json.dumps(payload(d, source_root), ensure_ascii=False, separators=(",", ":"))
    # No "<" at all inside the data block: a token text "</script>" would end it, and "<!--" followed by "<script"
    # would put the HTML parser in a state where the block's own </script> no longer ends it. In JSON, "<" only
    # occurs inside strings, where \u003c is the same character.
    data = data.replace("<", "\\u003c")
    page = (HERE / "page.html").read_text(encoding="utf-8")
    parts = {"{{TITLE}}": html.escape(f"minillm explain: {d.model_name}"),  # in order: no part holds a later mark
             "/*STYLE*/": (HERE / "page.css").read_text(encoding="utf-8"),
             "/*SCRIPT*/": (HERE / "page.js").read_text(encoding="utf-8"),
             "/*DATA*/": data}
    for mark, text in parts.items():
        page = page.replace(mark, text, 1)
    return page
