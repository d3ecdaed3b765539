"""Chat templates and tokenizer configs at their edges, rendered by transformers (weights/behaviour/templates.json,
made by scripts/make_behaviour_fixtures.py).

The bundled Qwen templates write ``{%-`` everywhere, so they cannot tell whether trim_blocks or lstrip_blocks is
on; these small templates exercise each feature of transformers' Jinja environment on its own.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

import minillm
from conftest import WEIGHTS

FIXTURE = json.loads((WEIGHTS / "behaviour" / "templates.json").read_text(encoding="utf-8"))
TEMPLATES, TOKENIZERS = FIXTURE["templates"], FIXTURE["tokenizers"]


@pytest.fixture(scope="module")
def tok():
    return minillm.load_tokenizer(WEIGHTS / "tiny-qwen2")


@pytest.mark.parametrize("case", sorted(name for name in TEMPLATES if TEMPLATES[name]["error"] is None))
def test_the_template_environment_renders_as_transformers(tok, case):
    """trim_blocks, lstrip_blocks, break / continue, tojson (non-ASCII, no HTML escaping, indent, separators),
    special tokens as variables, an unset variable being undefined, {% generation %}, namespace()."""
    spec = TEMPLATES[case]
    tok.chat_template = spec["template"]
    assert tok.apply_chat_template(FIXTURE["messages"], **spec["kwargs"]) == spec["rendered"]


def test_raise_exception_in_a_template_reports_the_templates_own_message(tok):
    spec = TEMPLATES["raise_exception"]
    tok.chat_template = spec["template"]
    with pytest.raises(minillm.TokenizerError, match=re.escape(spec["error"])):
        tok.apply_chat_template(FIXTURE["messages"])


@pytest.mark.parametrize("case", sorted(TOKENIZERS))
def test_tokenizer_config_variants_load_as_in_transformers(tmp_path, case):
    """Special tokens written as {"content": ...} objects; chat_template.jinja beside the config's template
    (the file wins); a list of named templates (the one named "default")."""
    spec = TOKENIZERS[case]
    shutil.copy(WEIGHTS / "tiny-qwen2" / "tokenizer.json", tmp_path)
    config = json.loads((WEIGHTS / "tiny-qwen2" / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, **spec["config_changes"]}))
    if spec["chat_template_jinja"] is not None:
        (tmp_path / "chat_template.jinja").write_text(spec["chat_template_jinja"])
    tok = minillm.load_tokenizer(tmp_path)
    assert tok.apply_chat_template([{"role": "user", "content": "Hi"}]) == spec["rendered"]
    assert tok.eos_token_id == spec["eos_token_id"]
