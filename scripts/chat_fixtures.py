"""Reference renderings of the repo's two chat templates, made by transformers' own apply_chat_template.

The templates (scripts/chat_templates/*.jinja) are written in this repo after Qwen's published templates
(not copied from the Hub): a Qwen2.5-style one (default system prompt, tools) and a Qwen3-style one
(no default system prompt, <think> handling, the enable_thinking switch). The tests render the same
conversations with minillm and compare strings and token ids. Used by make_tiny_models.py.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
CHAT_TEMPLATES = {name: (HERE / "chat_templates" / f"{name}.jinja").read_text() for name in ("qwen2.5", "qwen3")}

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}

TOOL_CONVERSATION = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "{\"temp\": 21}"}]

CASES = [
    ("qwen2.5", "user_only", [{"role": "user", "content": "Hi"}], {"add_generation_prompt": True}),
    ("qwen2.5", "no_generation_prompt", [{"role": "user", "content": "Hi"}], {}),
    ("qwen2.5", "multi_turn_with_system", [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "你好，世界"}], {"add_generation_prompt": True}),
    ("qwen2.5", "tools", TOOL_CONVERSATION,
     {"add_generation_prompt": True, "tools": [WEATHER_TOOL]}),
    ("qwen3", "user_only_thinking_default", [{"role": "user", "content": "Hi"}], {"add_generation_prompt": True}),
    ("qwen3", "thinking_off", [{"role": "user", "content": "Hi"}],
     {"add_generation_prompt": True, "enable_thinking": False}),
    ("qwen3", "thinking_on", [{"role": "user", "content": "Hi"}],
     {"add_generation_prompt": True, "enable_thinking": True}),
    ("qwen3", "earlier_reasoning_dropped", [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6", "reasoning_content": "3 plus 3"}], {}),
    ("qwen3", "multi_turn_thinking_off", [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nsum\n</think>\n\n4"},
        {"role": "user", "content": "鱻 means?"}], {"add_generation_prompt": True, "enable_thinking": False}),
    ("qwen3", "tools", TOOL_CONVERSATION,
     {"add_generation_prompt": True, "tools": [WEATHER_TOOL]}),
]


def make_chat_fixtures(tokenizer_dir: Path, out_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in CHAT_TEMPLATES.items():
        (out_dir / f"{name}.jinja").write_text(text)
    cases = []
    for template, case, messages, kwargs in CASES:
        rendered = tok.apply_chat_template(messages, chat_template=CHAT_TEMPLATES[template], tokenize=False,
                                           **kwargs)
        ids = tok.encode(rendered, add_special_tokens=False)
        cases.append({"template": template, "case": case, "messages": messages, "kwargs": kwargs,
                      "rendered": rendered, "input_ids": ids})
    (out_dir / "renderings.json").write_text(json.dumps(cases, indent=2, ensure_ascii=False) + "\n")
    print(f"chat fixtures: {len(cases)} renderings in {out_dir}")
