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

+--------------------------------------------------------------------------------------------------------+
| A SANDBOX IS NOT A BOUND. Jinja's sandbox stops a template from reaching Python, not from running      |
| forever or filling memory: ``{{ 9 ** (9 ** 9) }}`` computes for hours, two nested range(100000)       |
| loops run 10**10 steps, ``{{ 'x' * 10**10 }}`` asks for 10 GB. So every render here is bounded by      |
| ``RenderLimits``: a time limit, and a budget of work that every way a template can build text or loop |
| is charged against before it happens:                                                                  |
|   * output, and text collected by {% set %}...{% endset %}, macros, call and filter blocks;           |
|   * the operators + - * / // % ** and ~ (a result too large is refused before it is computed);        |
|   * filters and method calls that can grow text (center, indent, replace, join, format, ...);         |
|   * every step of every {% for %} loop.                                                                |
| Jinja has hooks for most of these (intercepted operators, call, getitem, finalize); loops, ~ and the   |
| block buffers are reached through a small subclass of its code generator. Every failure, whether a    |
| limit, a syntax error, a sandbox violation or an error inside a filter, is a TokenizerError saying    |
| that the chat template failed and why.                                                                |
+--------------------------------------------------------------------------------------------------------+
"""

from __future__ import annotations

import builtins
import inspect
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from functools import update_wrapper, wraps

import jinja2
import jinja2.ext
import jinja2.meta
import jinja2.nodes as nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum

from ..errors import TokenizerError

MAX_TEMPLATE_CHARS = 1_000_000  # a template's source; real ones are a few thousand characters
MAX_DATA_DEPTH = 100  # messages, tools and variables may nest this deep (and may not contain themselves)
MAX_INT_BITS = 1 << 16  # integers a template computes (real ones count messages)
LIST_SLOT = 8  # budget units charged per element of a list a template builds (its bytes in memory)


@dataclass(frozen=True)
class RenderLimits:
    """How much one chat-template render may do; going past either limit is a TokenizerError.

    ``seconds``: CPU time to compile and render the template (the rendering thread's own, so a busy machine
    does not make a legitimate template fail, while a template that computes for ever is stopped).
    ``budget``: units of work: one per character the template produces on the way to its output (the
    output itself, {% set %} blocks, ~ + * %, filters, method calls), eight per list element it builds, one
    per loop step. A real template spends a few units per character of its output, so the default allows
    prompts of tens of millions of characters (far beyond any model's context) while keeping a render's
    memory in the hundreds of megabytes.
    """

    seconds: float = 5.0
    budget: int = 64_000_000


DEFAULT_LIMITS = RenderLimits()


class TemplateLimitError(Exception):
    """A render went past its RenderLimits (raised inside Jinja, reported as a TokenizerError)."""


class _Budget:
    """The limits of one render: a deadline, and the units of work still allowed."""

    def __init__(self, limits: RenderLimits):
        self.limits, self.left = limits, limits.budget
        self.deadline = time.thread_time() + limits.seconds

    def tick(self) -> None:
        if time.thread_time() > self.deadline:
            raise TemplateLimitError(f"it computed for longer than its {self.limits.seconds:g} s limit")

    def charge(self, units: int, what: str) -> None:
        """Spend ``units`` on ``what``, or refuse before it is built."""
        self.tick()
        if units > self.left:
            raise TemplateLimitError(f"{what} would take it past its budget of {self.limits.budget:,} units "
                                     f"(characters, list elements, loop steps)")
        self.left -= units


    def measure(self, value) -> tuple[int, int]:
        """(about how many characters ``str(value)`` has, how deep it nests): an upper bound, without building it.

        Strings inside containers count ten per character (repr may escape one as ``\\U0001f600``); a value
        referenced twice counts twice, as repr prints it twice. The walk stops (size "too large") once the
        size passes what is left of the budget or the nesting passes MAX_DATA_DEPTH: a container that
        contains itself counts as too large.
        """
        limit, size, depth, steps = self.left, 0, 0, 0
        stack = [(value, 0)]
        while stack:
            v, d = stack.pop()
            depth, steps = max(depth, d), steps + 1
            if size > limit or d > MAX_DATA_DEPTH:
                return limit + 1, depth
            if steps % 65536 == 0:
                self.tick()
            if isinstance(v, str):
                size += len(v) if d == 0 else 10 * len(v) + 2
            elif isinstance(v, (bytes, bytearray)):
                size += 4 * len(v) + 3
            elif v is None or isinstance(v, (bool, float)):
                size += 24
            elif isinstance(v, int):
                size += v.bit_length() // 3 + 2
            elif isinstance(v, (list, tuple, set, frozenset, dict, jinja2.utils.Namespace)):
                items = vars(v).get("_Namespace__attrs", {}) if isinstance(v, jinja2.utils.Namespace) else v
                size += 4 + 4 * len(items)
                if isinstance(items, dict):
                    stack.extend((x, d + 1) for pair in items.items() for x in pair)
                else:
                    stack.extend((x, d + 1) for x in items)
            else:
                size += 100  # a macro, a loop, an undefined value: a short repr
        return size, depth


def _cost(value) -> int:
    """Budget units for a value a template just built: its characters, or its list slots."""
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return LIST_SLOT * len(value)
    return 0


# ------------------------------------------------------------------------------------------------ estimates
# What an operation would build, computed from its operands before it runs.

_PRINTF_WIDTHS = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _printf_size(fmt, args, budget: _Budget) -> int:
    """Upper bound of len(fmt % args): the format, every argument's text, and every width and precision."""
    limit = budget.left
    if not isinstance(fmt, str):
        return budget.measure(fmt)[0]
    numbers = [int(n) for m in _PRINTF_WIDTHS.finditer(fmt) for n in m.groups() if n and n != "*"]
    star = [a for a in (args if isinstance(args, tuple) else (args,)) if isinstance(a, int)] if "*" in fmt else []
    return len(fmt) + budget.measure(args)[0] + sum(n for n in numbers if n < limit) + \
        max([n for n in numbers if n >= limit] + [0]) + sum(abs(a) for a in star)


def _replace_size(s, old, new, count, budget: _Budget) -> int:
    """Upper bound of len(s.replace(old, new, count)); s may be a value the filter turns into text first."""
    if not (isinstance(old, str) and isinstance(new, str)):
        return 0
    size = len(s) if isinstance(s, str) else budget.measure(s)[0]
    found = size + 1 if old == "" else s.count(old) if isinstance(s, str) else size
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return size + found * max(len(new) - len(old), 0)


def _width(value, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# ------------------------------------------------------------------------------------------------ the code generator


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with three changes, so every loop step and every ``~`` and block buffer is
    charged to the render's budget (the rest is reached through the environment's documented hooks)."""

    def buffer(self, frame) -> None:  # {% set %}...{% endset %}, macros, call blocks, filter blocks
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.bounded_buffer()")

    def visit_Concat(self, node, frame) -> None:  # the ~ operator
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")

    def visit_For(self, node, frame) -> None:  # {% for x in items %}: items are handed out one step at a time
        guarded = nodes.Call(nodes.EnvironmentAttribute("loop_steps"), [node.iter], [], None, None,
                             lineno=node.lineno)
        if not (isinstance(node.iter, nodes.Call) and isinstance(node.iter.node, nodes.EnvironmentAttribute)):
            node.iter = guarded
        super().visit_For(node, frame)


class _Buffer(list):
    """The text a block collects, charged as it is collected."""

    def __init__(self, budget: _Budget):
        super().__init__()
        self.budget = budget

    def append(self, text) -> None:
        self.budget.charge(len(text), "a block's text")
        super().append(text)

    def extend(self, texts) -> None:
        texts = tuple(texts)
        self.budget.charge(sum(map(len, texts)), "a block's text")
        super().extend(texts)


class _BoundedFormatter(SandboxedFormatter):
    """str.format in the sandbox, with each field's width / precision charged before it is formatted."""

    def __init__(self, env, budget: _Budget):
        super().__init__(env)
        self.budget = budget

    def format_field(self, value, format_spec: str):
        numbers = [int(n) for n in re.findall(r"\d+", format_spec)]
        self.budget.charge(self.budget.measure(value)[0] + sum(numbers), "a str.format field")
        return super().format_field(value, format_spec)


# ------------------------------------------------------------------------------------------------ the environment


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


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """transformers' chat-template environment (immutable sandbox), with every render bounded (see above).

    One is made per render: it carries that render's budget.
    """

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset(["+", "-", "*", "/", "//", "%", "**"])  # also stops compile-time folding

    def __init__(self, budget: _Budget):
        super().__init__(trim_blocks=True, lstrip_blocks=True, finalize=self._finalize,
                         extensions=[_GenerationBlock, jinja2.ext.loopcontrols])
        self.budget = budget
        self.filters["tojson"] = _tojson
        self.globals["raise_exception"] = _raise_exception
        self.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.globals["namespace"] = _SafeNamespace
        self.globals["dict"] = lambda *a, **k: dict(*a, **k)
        self.globals["lipsum"] = self._lipsum
        for name, fn in list(self.filters.items()):
            self.filters[name] = self._bounded_filter(name, fn)

    # -- hooks Jinja calls ------------------------------------------------------------------------------

    def loop_steps(self, iterable):
        """Every loop's items, one budget unit per step (so nested loops cannot run 10**10 steps)."""
        for item in iterable:
            self.budget.charge(1, "a loop step")
            yield item

    def bounded_buffer(self) -> _Buffer:
        return _Buffer(self.budget)

    def bounded_concat(self, values) -> str:
        """``a ~ b ~ c``: each operand as text, the total charged before it is joined."""
        texts = [v if isinstance(v, str) else self._text(v) for v in values]
        self.budget.charge(sum(map(len, texts)), "the ~ operator")
        return "".join(texts)

    def _finalize(self, value):
        """Every value printed by {{ ... }}: a non-string is measured before it is turned into text."""
        if not isinstance(value, str):
            self.budget.charge(self.budget.measure(value)[0], "printing a value")
        return value

    def _text(self, value) -> str:
        self.budget.charge(self.budget.measure(value)[0], "turning a value into text")
        return str(value)

    def call_binop(self, context, operator, left, right):
        self.budget.tick()
        number = (int, float)
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if left.bit_length() * right > MAX_INT_BITS:
                raise TemplateLimitError(f"{left} ** {right} would have more than {MAX_INT_BITS} bits")
        elif operator == "*":
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise TemplateLimitError(f"a product of more than {MAX_INT_BITS} bits")
            elif isinstance(left, int) or isinstance(right, int):
                seq, n = (right, left) if isinstance(left, int) else (left, right)
                if not isinstance(seq, number) and n > 0:
                    per = 1 if isinstance(seq, (str, bytes)) else LIST_SLOT
                    self.budget.charge(per * len(seq) * n if hasattr(seq, "__len__") else 0,
                                       "repeating a sequence with *")
        elif operator == "+" and hasattr(left, "__len__") and hasattr(right, "__len__"):
            self.budget.charge(_cost(left) + _cost(right), "joining sequences with +")
        elif operator == "%" and isinstance(left, str):
            self.budget.charge(_printf_size(left, right, self.budget), "% formatting")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's convention
        """Every function or method a template calls: growing str methods are charged first, results after."""
        env = __self
        env.budget.tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (str, bytes)) and args:
            name, first = getattr(__obj, "__name__", ""), args[0]
            if name in ("center", "ljust", "rjust", "zfill"):
                env.budget.charge(max(_width(first), len(owner)), f"str.{name}")
            elif name == "expandtabs":
                env.budget.charge(len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") *
                                  max(_width(first), 0), "str.expandtabs")
            elif name == "replace" and len(args) >= 2:
                env.budget.charge(_replace_size(owner, first, args[1], args[2] if len(args) > 2 else -1, env.budget),
                                  "str.replace")
            elif name == "join":
                items = list(env.loop_steps(first))
                env.budget.charge(sum(env.budget.measure(x)[0] for x in items) + len(owner) * len(items), "str.join")
                args = (items, *args[1:])
            elif name == "translate" and isinstance(first, dict):
                longest = max([env.budget.measure(v)[0] for v in first.values()] + [1])
                env.budget.charge(len(owner) * longest, "str.translate")
            elif name == "encode":
                env.budget.charge(4 * len(owner), "str.encode")
        result = super().call(__context, __obj, *args, **kwargs)
        env.budget.charge(_cost(result), "the result of a call")
        return result

    def getitem(self, obj, argument):
        result = super().getitem(obj, argument)
        if isinstance(argument, slice):
            self.budget.charge(_cost(result), "a slice")
        return result

    def wrap_str_format(self, value):
        """``'{}'.format(...)`` through a formatter that charges each field (Jinja's code, our formatter)."""
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt, is_format_map = value.__self__, value.__name__ == "format_map"
        formatter = _BoundedFormatter(self, self.budget)

        def bounded(*args, **kwargs):
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            result = formatter.vformat(fmt, args, kwargs)
            self.budget.charge(len(result), "str.format")
            return type(fmt)(result)

        return update_wrapper(bounded, value)

    # -- filters ----------------------------------------------------------------------------------------

    def _bounded_filter(self, name: str, fn):
        """Wrap a filter: the ones that can grow text far beyond their input are estimated first."""
        precheck = getattr(self, f"_before_{name}", None)
        signature = inspect.signature(fn) if precheck is not None else None

        @wraps(fn)  # keeps Jinja's pass_context / pass_environment marks
        def bounded(*args, **kwargs):
            self.budget.tick()
            if precheck is not None:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                replaced = precheck(bound.arguments)
                if replaced:  # the filter's input was materialised to be measured
                    bound.arguments.update(replaced)
                    args, kwargs = bound.args, bound.kwargs
            result = fn(*args, **kwargs)
            self.budget.charge(_cost(result), f"the {name} filter")
            return result

        return bounded

    def _value(self, a: dict, *names):
        return next((a[n] for n in names if n in a), None)

    def _before_center(self, a):
        self.budget.charge(max(_width(a.get("width")), self.budget.measure(a.get("value"))[0]), "center")

    def _before_indent(self, a):
        s, width = a.get("s"), a.get("width")
        pad = len(width) if isinstance(width, str) else max(_width(width), 0)
        lines = s.count("\n") + 2 if isinstance(s, str) else self.budget.measure(s)[0] + 2
        self.budget.charge(self.budget.measure(s)[0] + lines * pad, "indent")

    def _before_wordwrap(self, a):
        s, wrap = a.get("s"), a.get("wrapstring")
        size = self.budget.measure(s)[0]
        self.budget.charge(size + (size + 1) * (len(wrap) if isinstance(wrap, str) else 1), "wordwrap")

    def _before_batch(self, a):
        items = list(self.loop_steps(a["value"]))
        self.budget.charge(LIST_SLOT * (len(items) + max(_width(a.get("linecount")), 0)), "batch")
        return {"value": items}

    def _before_slice(self, a):
        items = list(self.loop_steps(a["value"]))
        self.budget.charge(LIST_SLOT * (len(items) + max(_width(a.get("slices")), 0)), "slice")
        return {"value": items}

    def _before_format(self, a):
        self.budget.charge(_printf_size(a.get("value"), tuple(a.get("args", ())) + tuple(
            a.get("kwargs", {}).values()), self.budget), "format")

    def _before_replace(self, a):
        self.budget.charge(_replace_size(a.get("s"), a.get("old"), a.get("new"), a.get("count"), self.budget),
                           "replace")

    def _before_join(self, a):
        items = list(self.loop_steps(a["value"]))
        sep = a.get("d")
        self.budget.charge(sum(self.budget.measure(x)[0] for x in items) +
                           len(items) * (len(sep) if isinstance(sep, str) else 1), "join")
        return {"value": items}

    def _before_sum(self, a):
        items = list(self.loop_steps(a["iterable"]))
        if not all(isinstance(x, (int, float)) for x in items):  # adding sequences: each sum copies the total
            total, cost = _cost(a.get("start")), 0
            for x in items:
                total += _cost(x)
                cost += total
            self.budget.charge(cost, "sum")
        return {"iterable": items}

    def _before_tojson(self, a):
        x, indent = a.get("x"), a.get("indent")
        size, depth = self.budget.measure(x)
        pad = len(indent) if isinstance(indent, str) else max(_width(indent), 0)
        self.budget.charge(size + (size + 1) * (pad * depth + 1 if indent is not None else 0), "tojson")

    def _before_string(self, a):
        self.budget.charge(self.budget.measure(self._value(a, "value", "s"))[0], "string")

    _before_pprint = _before_string

    def _lipsum(self, n=5, html=True, min=20, max=100):  # noqa: A002 - Jinja's parameter names
        words = builtins.max(_width(max), _width(min), 0)
        self.budget.charge(builtins.max(_width(n), 0) * words * 12, "lipsum")
        return generate_lorem_ipsum(n, html, min, max)


# ------------------------------------------------------------------------------------------------ rendering

_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def _plain(value, depth: int = 0):
    """A deep copy made only of dicts, lists, str, numbers, bools and None: all a template may see."""
    if depth > MAX_DATA_DEPTH:
        raise TokenizerError(f"chat messages nest more than {MAX_DATA_DEPTH} levels deep (or contain themselves)")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):  # JSON object keys are strings
                raise TokenizerError(f"chat messages may hold only JSON-like data, found a {type(k).__name__} "
                                     f"dict key")
            out[k] = _plain(v, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TokenizerError(f"chat messages may hold only JSON-like data, found {type(value).__name__}")


def render_chat_template(template: str, messages: list[dict], special_tokens: dict[str, object],
                         add_generation_prompt: bool = False, limits: RenderLimits | None = None,
                         **variables) -> str:
    """Render ``template`` for ``messages``, as transformers' apply_chat_template(tokenize=False) does.

    ``variables`` become template variables (``tools``, ``enable_thinking``, ...); a variable passed as
    None is left undefined, so ``enable_thinking=None`` means "the template's default". The render is
    bounded by ``limits`` (default ``DEFAULT_LIMITS``); every failure is a TokenizerError.
    """
    if not isinstance(template, str):
        raise TokenizerError(f"chat template must be a string, found {type(template).__name__}")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise TokenizerError(f"chat template is {len(template):,} characters long; the limit is "
                             f"{MAX_TEMPLATE_CHARS:,}")
    if not isinstance(messages, (list, tuple)) or not all(isinstance(m, dict) for m in messages):
        raise TokenizerError("messages must be a list of dicts like {'role': 'user', 'content': 'Hi'}")
    chat = []
    for m in _plain(list(messages)):
        reasoning = next((m[k] for k in _REASONING_FIELDS if m.get(k) is not None), None)
        if reasoning is not None:  # the names transformers accepts for a message's reasoning
            m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        chat.append(m)
    context = {**_plain(special_tokens), **{k: _plain(v) for k, v in variables.items() if v is not None},
               "messages": chat, "add_generation_prompt": _plain(add_generation_prompt)}
    budget = _Budget(limits or DEFAULT_LIMITS)
    try:
        env = _BoundedEnvironment(budget)
        pieces = []
        for piece in env.from_string(template).generate(**context):
            budget.charge(len(piece), "the output")
            pieces.append(piece)
        return "".join(pieces)
    except TemplateLimitError as e:
        raise TokenizerError(f"chat template stopped: {e}") from None
    except jinja2.exceptions.SecurityError as e:
        raise TokenizerError(f"chat template tried an unsafe operation and was stopped: {e}") from None
    except jinja2.exceptions.TemplateSyntaxError as e:
        raise TokenizerError(f"chat template has a syntax error on line {e.lineno}: {e.message}") from None
    except jinja2.exceptions.TemplateError as e:
        raise TokenizerError(f"chat template failed: {e}") from None
    except RecursionError:
        raise TokenizerError("chat template failed: it nests or recurses too deeply") from None
    except SyntaxError as e:  # Python's compiler, on the code Jinja made: too many nested blocks
        raise TokenizerError(f"chat template failed: its blocks are nested too deeply to compile ({e.msg})") \
            from None
    except MemoryError:
        raise  # not a template's doing once the budget holds: let it be seen
    except Exception as e:  # noqa: BLE001 - the template is code from a file: any error of it is its failure
        raise TokenizerError(f"chat template failed: {type(e).__name__}: {_short(e)}") from None


def template_variables(template: str) -> set[str]:
    """The names a template reads from its caller (``enable_thinking``, ``tools``, ``messages``, ...), found by
    parsing it, nothing rendered. A template that does not parse reads nothing (rendering it reports why)."""
    try:
        return jinja2.meta.find_undeclared_variables(_BoundedEnvironment(_Budget(DEFAULT_LIMITS)).parse(template))
    except (jinja2.exceptions.TemplateError, RecursionError, SyntaxError):
        return set()


def _short(e: Exception, limit: int = 300) -> str:
    text = str(e)
    return text if len(text) <= limit else text[:limit] + "..."
