"""Chat templates: turning a list of messages into the exact prompt text a chat model was trained on.

A Qwen checkpoint ships its template as Jinja source (in tokenizer_config.json's ``chat_template``, or in a
``chat_template.jinja`` file). Qwen uses ChatML:

    <|im_start|>system
    You are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>
    <|im_start|>user
    Hi<|im_end|>
    <|im_start|>assistant
                                        <- add_generation_prompt=True adds this last line; the model continues

We render it the way transformers does (same Jinja options, filters and variables), so the prompt is
identical to the one the model saw in training: trim_blocks and lstrip_blocks, a ``tojson`` that does not
escape HTML, ``raise_exception``, ``strftime_now``, the loop-control extension, and every special token
of tokenizer_config.json (``eos_token``, ...) as a variable.

A template is code from the internet. It runs in Jinja's *immutable sandbox*: it can format strings and
loop over messages, but cannot reach Python internals (``__class__``, ``__globals__``, ...), call unsafe
methods or mutate the caller's data. Any such attempt raises a TokenizerError; nothing is executed.
"""

from __future__ import annotations

import json
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import TokenizerError


class _GenerationBlock(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` marks assistant text for training masks; we just render it."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class _SafeNamespace(jinja2.utils.Namespace):
    """``namespace(...)`` that refuses underscore-prefixed names (no route to dunder attributes)."""

    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _SafeNamespace._check(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _SafeNamespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"templates may not set underscore attribute {name!r}")


def _raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' version: unlike Jinja's built-in, it does not HTML-escape '<', '>' and '&'.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["namespace"] = _SafeNamespace
    env.globals["dict"] = lambda *a, **k: dict(*a, **k)
    return env


_ENV = _environment()
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def _plain(value):
    """A deep copy made only of dicts, lists, str, numbers, bools and None: all a template may see."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TokenizerError(f"chat messages may hold only JSON-like data, found {type(value).__name__}")


def render_chat_template(template: str, messages: list[dict], special_tokens: dict[str, object],
                         add_generation_prompt: bool = False, **variables) -> str:
    """Render ``template`` for ``messages``, as transformers' apply_chat_template(tokenize=False) does.

    ``variables`` become template variables (``tools``, ``enable_thinking``, ...); a variable passed as
    None is left undefined, so ``enable_thinking=None`` means "the template's default".
    """
    if not isinstance(messages, (list, tuple)) or not all(isinstance(m, dict) for m in messages):
        raise TokenizerError("messages must be a list of dicts like {'role': 'user', 'content': 'Hi'}")
    chat = []
    for m in _plain(list(messages)):
        reasoning = next((m[k] for k in _REASONING_FIELDS if m.get(k) is not None), None)
        if reasoning is not None:  # the names transformers accepts for a message's reasoning
            m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        chat.append(m)
    context = {**_plain(special_tokens), **{k: _plain(v) for k, v in variables.items() if v is not None}}
    try:
        compiled = _ENV.from_string(template)
        return compiled.render(messages=chat, add_generation_prompt=add_generation_prompt, **context)
    except jinja2.exceptions.SecurityError as e:
        raise TokenizerError(f"chat template tried an unsafe operation and was stopped: {e}") from None
    except jinja2.exceptions.TemplateError as e:
        raise TokenizerError(f"chat template failed: {e}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError) as e:
        raise TokenizerError(f"chat template failed: {type(e).__name__}: {e}") from None
