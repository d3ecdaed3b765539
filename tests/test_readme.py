"""The README is a front door that must stay true: its test command is the one CI runs, and every file it
links to exists."""

from __future__ import annotations

import importlib.util
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


def learning_path():
    spec = importlib.util.spec_from_file_location("learning_path", ROOT / "scripts" / "learning_path.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_readme_learning_path_is_the_table_the_script_measures():
    assert learning_path().readme_markdown() in README  # line counts and notebooks as the code has them


def test_every_plain_module_is_on_the_learning_path():
    listed = {module for _, module, _, _, _ in learning_path().PATH}
    plain = {p.name for p in (ROOT / "minillm" / "plain").glob("*.py")} - {"__init__.py", "ops.py"}
    assert plain <= listed, f"not on the learning path: {sorted(plain - listed)}"
