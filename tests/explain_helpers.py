"""Reading an explainer page back: the JSON block and its base64 arrays, decoded as the page's script decodes them."""

from __future__ import annotations

import base64
import functools
import json
import re

import numpy as np

import minillm
# The checkpoints by name, each loaded once per session: the suite's own helpers (conftest.py).
from conftest import checkpoint_dir as checkpoint, reference as checkpoint_reference, tiny_model as checkpoint_model

# 64+ tokens on every bundled tokenizer, English and Chinese (the bilingual model's two languages)
PROMPT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
          "want of a wife. 凡有钱的单身汉，总想娶位太太。 However little known the feelings or views of such a man may be "
          "on his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families")


@functools.lru_cache(maxsize=None)
def checkpoint_tokenizer(name: str) -> minillm.Tokenizer:
    return minillm.load_tokenizer(checkpoint(name))


def page_json(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="minillm-data">(.*?)</script>', page, re.S)
    assert m, "the page has no data block"
    return json.loads(m.group(1))


def array(b64: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype=dtype)


def decode_page(page: str) -> dict:
    """The page's numbers as float arrays: attention {layer: [H, T, T]}, decay / write {layer: [T, Hv]},
    experts / expert_weights {layer: [T, k]}, router_probs {layer: [T, E]}, lens ids / probs [L+1, T, top],
    lens_final [L+1, T], next ids / logits [T, n]."""
    d = page_json(page)
    c, T = d["config"], len(d["tokens"])
    H, L = c["H"], c["L"]
    rows, cols = np.tril_indices(T)
    out = {"json": d, "attention": {}, "decay": {}, "write": {}, "experts": {}, "expert_weights": {},
           "router_probs": {}}
    for li, layer in enumerate(d["attention"]["layers"]):
        tri = array(d["attention"]["data"][li], "u1").reshape(H, -1) / 255  # [H, T(T+1)/2]
        full = np.zeros((H, T, T))
        full[:, rows, cols] = tri
        out["attention"][layer] = full
    for li, layer in enumerate(d["linear"]["layers"]):
        out["decay"][layer] = array(d["linear"]["decay"][li], "<u2").reshape(T, -1) / 65535
        out["write"][layer] = array(d["linear"]["write"][li], "<u2").reshape(T, -1) / 65535
    for li, layer in enumerate(d["moe"]["layers"]):
        out["experts"][layer] = array(d["moe"]["experts"][li], "<u2").reshape(T, -1)
        out["expert_weights"][layer] = array(d["moe"]["weights"][li], "<u2").reshape(T, -1) / 65535
        if d["moe"]["probs"]:
            out["router_probs"][layer] = array(d["moe"]["probs"][li], "u1").reshape(T, -1) / 255
    top, n = d["lens"]["top"], d["next"]["n"]
    out["lens_ids"] = array(d["lens"]["ids"], "<u4").reshape(L + 1, T, top)
    out["lens_probs"] = array(d["lens"]["probs"], "<u2").reshape(L + 1, T, top) / 65535
    out["lens_final"] = array(d["lens"]["final"], "<u2").reshape(L + 1, T) / 65535
    out["next_ids"] = array(d["next"]["ids"], "<u4").reshape(T, n)
    out["next_logits"] = array(d["next"]["logits"], "<f4").reshape(T, n)
    out["tail_counts"] = array(d["next"]["tail_counts"], "<u4").reshape(T, -1)
    out["tail_centres"] = array(d["next"]["tail_centres"], "<f4").reshape(T, -1)
    return out
