"""Reading one field of a config file with its type and range checked: the validation layer for config.json
and generation_config.json.

A config file is untrusted input, and its numbers are used in arithmetic long after it is read (a sliding
window subtracted from NumPy int64 positions, RoPE factors dividing float32 frequencies, a layer count that
sizes lists). So every field is checked *when the file is read*, and an error names the file and the field:

* integers must fit in 32 bits (``INT_MAX``) and, unless a field says otherwise, be >= 0: token ids, sizes,
  lengths and counts are never negative, and nothing larger than 2**31 is meaningful in a config (nor can
  it overflow NumPy's int64 arithmetic later, as 2**63 would);
* floats must be finite, and must fit in float32 (``FLOAT32_MAX``): the math runs in float32;
* each field may narrow its range further (``low`` / ``high`` inclusive, ``above`` exclusive).

    get = FieldReader(raw, "config.json")
    heads = get("num_attention_heads", int, low=1)            # required, an integer >= 1
    eps = get("rms_norm_eps", float, 1e-6, above=0, high=1)   # optional (default 1e-6), in (0, 1]
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError

INT_MAX = 2 ** 31 - 1  # the largest integer any config field may hold
FLOAT32_MAX = float(np.finfo(np.float32).max)  # ~3.4e38: floats are used in float32 math
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # ~1.2e-38: smaller positive numbers vanish in float32
REQUIRED = object()  # marks a field without a default


def show(value, limit: int = 80) -> str:
    """repr(value), shortened: a hostile file can hold a megabyte where a number belongs."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


class FieldReader:
    """``get(name, kind, default, low=, high=, above=)``: one field of a JSON object, type and range checked.

    A missing field takes the default (or is an error when there is none); ``null`` also means the default.
    ints are accepted where floats are expected (Qwen3 writes ``"rope_theta": 1000000``); bools never count
    as numbers. ``kind`` is int, float, bool, str or list.
    """

    def __init__(self, obj: dict, source: str, error: type[Exception] = ConfigError):
        self.obj, self.source, self.error = obj, source, error

    def __call__(self, name: str, kind: type, default=REQUIRED, *, low=None, high=None, above=None):
        value = self.obj.get(name)
        if value is None:
            if default is REQUIRED:
                raise self.error(f"{self.source}: required field {name!r} is missing")
            return default
        ok = {
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
            bool: isinstance(value, bool),
            str: isinstance(value, str),
            list: isinstance(value, list),
        }[kind]
        if not ok:
            raise self.error(f"{self.source}: field {name!r}: expected {kind.__name__}, "
                             f"found {type(value).__name__} {show(value)}")
        if kind is int:
            check_range(value, name, self.source, self.error, 0 if low is None else low,
                        INT_MAX if high is None else high, above)
        elif kind is float:
            try:
                value = float(value)
            except OverflowError:  # an integer of hundreds of digits
                value = math.inf
            if not math.isfinite(value):
                raise self.error(f"{self.source}: field {name!r}: expected a finite number, found {value}")
            check_range(value, name, self.source, self.error, -FLOAT32_MAX if low is None else low,
                        FLOAT32_MAX if high is None else high, above)
        return value


def check_range(value, name: str, source: str, error: type[Exception], low=None, high=None, above=None) -> None:
    """Raise ``error`` unless low <= value <= high and value > above (each bound optional)."""
    if (low is not None and value < low) or (high is not None and value > high) or (
            above is not None and not value > above):
        lower = f"> {_num(above)}" if above is not None else f">= {_num(low)}" if low is not None else ""
        upper = f"<= {_num(high)}" if high is not None else ""
        expected = " and ".join(b for b in (lower, upper) if b)
        raise error(f"{source}: {name}: expected a{'n integer' if isinstance(value, int) else ' number'} "
                    f"{expected}, found {show(value)}")


def _num(bound) -> str:
    return f"{bound:,}" if isinstance(bound, int) else f"{bound:g}"


def token_id_list(value, name: str, source: str, error: type[Exception] = ConfigError) -> list[int]:
    """A field such as eos_token_id: null, one token id, or a list of ids (each in 0 .. INT_MAX)."""
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= INT_MAX for v in values):
        raise error(f"{source}: {name}: expected a token id (an integer in 0 .. {INT_MAX}) or a list of them, "
                    f"found {show(value)}")
    return list(values)
