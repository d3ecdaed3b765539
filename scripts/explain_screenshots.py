"""Write the explainer pages of the bundled models, print their sizes, and screenshot them into docs/.

    python scripts/explain_screenshots.py              # needs chromium and the dev extra (websocket-client)
    python scripts/explain_screenshots.py --sizes      # only the size table (no browser)

Pages: a dense model (the bundled minillm-bilingual), a Qwen3.5 hybrid (tiny-qwen3.5-hub) and a MoE
(tiny-qwen3-moe), each on the first 64 tokens of the same text; the screenshots are docs/explain_*.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import minillm  # noqa: E402
from explain_helpers import PROMPT, checkpoint_model, checkpoint_tokenizer  # noqa: E402

MODELS = {"dense": "minillm-bilingual", "qwen35": "tiny-qwen3.5-hub", "moe": "tiny-qwen3-moe"}


def load(name):
    return checkpoint_model(name), checkpoint_tokenizer(name)


def sizes() -> None:
    print(f"{'model':<20} {'tokens':>6} {'L':>3} {'H':>3} {'bytes':>10}")
    for name in MODELS.values():
        model, tok = load(name)
        ids = tok.encode(PROMPT * 4)
        for n in (16, 64, 128, 256):
            page = minillm.explain(model, tok, ids[:n]).html.encode()
            c = model.config
            print(f"{name:<20} {n:>6} {c.num_hidden_layers:>3} {c.num_attention_heads:>3} {len(page):>10,}")


def screenshots(out: Path) -> None:
    from chromium import Chromium

    folder = Path(tempfile.mkdtemp(prefix="minillm-explain-"))
    with Chromium(width=1280, height=1000) as b:
        for kind, name in MODELS.items():
            model, tok = load(name)
            path = minillm.explain(model, tok, tok.encode(PROMPT)[:64]).save(folder / f"{kind}.html")
            b.events.clear()
            b.open(path)
            assert not b.errors(), b.errors()
            if kind == "dense":
                b.choose("#attn-layer", 1)
                b.click('#attn-heads button[data-head="4"]')
                b.hover('#attn-tokens .tok[data-pos="24"]')
                shot = b.screenshot(out / "explain_dense.png", "#attention-view")
                b.hover('#lens-table td[data-depth="4"][data-pos="14"]')
                b.choose("#temp", 0.8)
                b.choose("#topp", 0.9)
                print(b.screenshot(out / "explain_lens.png", "#lens-view"))
                print(b.screenshot(out / "explain_next.png", "#next-view"))
            elif kind == "qwen35":
                b.hover('#token-strip .tok[data-pos="20"]')
                shot = b.screenshot(out / "explain_qwen35.png", "#linear-view")
            else:
                b.choose("#moe-layer", 1)
                b.hover('#token-strip .tok[data-pos="20"]')
                shot = b.screenshot(out / "explain_moe.png", "#moe-view")
            print(shot, f"({path.stat().st_size:,} bytes of page)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", action="store_true", help="only print the page sizes")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    args = p.parse_args()
    sizes()
    if not args.sizes:
        screenshots(args.out)
