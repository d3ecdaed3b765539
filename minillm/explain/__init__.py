"""See the model think: one self-contained HTML page with the tokens, attention, logit lens, next-token
distribution, and (Qwen3.5) the delta rule's decay or (MoE) the router's choices, for any prompt.

    import minillm
    page = minillm.explain(model, tok, "The capital of France is")   # in a notebook: displays inline
    page.save("page.html")                                           # or: minillm explain "..." -o page.html

data.py computes the numbers with the library's own functions; page.py quantises and embeds them into
page.html (+ page.css, page.js); docs/EXPLAIN.md says what each view shows and how the size grows.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from .data import MAX_ATTENTION_BYTES, MAX_TOKENS, ExplainData, explain_data
from .page import render_page

REPO_ROOT = Path(__file__).resolve().parents[2]  # a checkout: the plain functions the page links to live here


class Explanation:
    """The explainer page of one prompt: ``.html`` (the page), ``.data`` (full-precision numbers), ``.save(path)``.
    Jupyter shows it inline (an iframe holding the page, so its script and style stay its own)."""

    def __init__(self, data: ExplainData, source_root: str | None = None):
        self.data, self.source_root = data, source_root
        self.html = render_page(data, source_root if source_root is not None else links_from(Path.cwd()))

    def __repr__(self) -> str:
        return (f"Explanation({self.data.model_name}, {len(self.data.tokens)} tokens): shown as a page in a notebook; "
                f".save('page.html') writes it")

    def save(self, path) -> Path:
        """Write the page to ``path`` (links to the source relative to its folder). Returns the path."""
        path = Path(path)
        root = self.source_root if self.source_root is not None else links_from(path.resolve().parent)
        page = render_page(self.data, root)
        try:
            path.write_text(page, encoding="utf-8")
        except OSError as e:
            raise InputError(f"cannot write {path}: {e.strerror or e}") from None
        return path

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" title="minillm explain" '
                f'style="width: 100%; height: 900px; border: 1px solid #dde; border-radius: 6px"></iframe>')


def links_from(folder: Path) -> str:
    """The prefix that turns 'minillm/plain/forward.py' into a link working from ``folder``: a relative path to
    the checkout, or the GitHub-style path itself when minillm is not a checkout."""
    if not (REPO_ROOT / "pyproject.toml").is_file():
        return ""
    try:
        rel = os.path.relpath(REPO_ROOT, folder)
    except ValueError:  # another drive (Windows)
        return REPO_ROOT.as_uri() + "/"
    return "" if rel == "." else Path(rel).as_posix() + "/"


def explain(model, tok, prompt, generate: int = 0, max_attention_bytes: int = MAX_ATTENTION_BYTES,
            source_root: str | None = None) -> Explanation:
    """The explainer of ``prompt`` (text, or a list of token ids), plus ``generate`` greedily generated tokens.

    The page covers every prompt and generated token (at most data.MAX_TOKENS in all); attention maps past
    ``max_attention_bytes`` are left out for evenly spaced layers (the page says which).
    """
    from ..generation.generate import generate as generate_ids

    ids = tok.encode(prompt) if isinstance(prompt, str) else list(prompt)
    if not ids:
        raise InputError("the prompt encodes to no tokens; give some text")
    if not isinstance(generate, (int, np.integer)) or isinstance(generate, bool) or generate < 0:
        raise InputError(f"generate must be an integer >= 0 (new tokens), found {generate!r}")
    if len(ids) + generate > MAX_TOKENS:
        raise InputError(f"explain shows at most {MAX_TOKENS} tokens, asked for {len(ids)} prompt + {generate} "
                         f"generated (the attention maps grow as tokens^2): shorten the prompt")
    prompt_tokens = len(ids)
    if generate:
        ids = ids + generate_ids(model, ids, generate, temperature=0).tolist()
    data = explain_data(model, tok, ids, prompt_tokens, max_attention_bytes=max_attention_bytes)
    return Explanation(data, source_root)
