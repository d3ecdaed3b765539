"""The README is a front door that must stay true: its test command is the one CI runs, and every file it
links to exists."""

from __future__ import annotations

import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_the_readme_test_command_is_what_ci_runs():
    command = 'pip install -e ".[dev]" && python -m pytest -q'
    assert f"\n{command}\n" in README
    assert command in (ROOT / ".ci" / "run").read_text()


def test_every_local_link_in_the_readme_and_docs_exists():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
