"""Build the notebooks in notebooks/ from scripts/notebook_sources.py and execute them, saving the outputs.

    pip install -e ".[dev,notebooks]"
    python scripts/make_notebooks.py            # all notebooks
    python scripts/make_notebooks.py 02         # the ones whose name contains "02"

Committed notebooks are exactly these cells, run top to bottom on the bundled model (the tests
check it), so they read well on GitHub and never hold stale outputs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from notebook_sources import NOTEBOOKS  # noqa: E402

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def build(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    for n, (kind, text) in enumerate(cells):
        cell = nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
        cell["id"] = f"cell-{n:02d}"  # stable ids: no churn in diffs
        nb.cells.append(cell)
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 600, model: str | None = None) -> nbformat.NotebookNode:
    """Run top to bottom in notebooks/, on the bundled model (or on ``model``: MINILLM_MODEL for the run)."""
    env_model = os.environ.pop("MINILLM_MODEL", None)
    if model is not None:
        os.environ["MINILLM_MODEL"] = model
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        os.environ.pop("MINILLM_MODEL", None)
        if env_model is not None:
            os.environ["MINILLM_MODEL"] = env_model
    return nb


def main(selection: list[str]) -> None:
    for name, cells in NOTEBOOKS.items():
        if selection and not any(s in name for s in selection):
            continue
        nb = execute(build(cells))
        nbformat.write(nb, ROOT / "notebooks" / name)
        print(f"wrote notebooks/{name} ({len(cells)} cells)")


if __name__ == "__main__":
    main(sys.argv[1:])
