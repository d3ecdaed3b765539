"""Text <-> token ids for Qwen: byte-level BPE from tokenizer.json, plus the checkpoint's chat template.

Encoding is done by the ``tokenizers`` library, which reads Qwen's tokenizer.json exactly as transformers
does: NFC normalisation, a regex split (letters, single digits, punctuation, whitespace), bytes mapped to
printable characters, BPE merges, and special tokens (``<|im_start|>``, ...) matched in the raw text first.

Qwen conventions that trip people:
* no BOS token is ever added (config.json's bos_token_id is misleading), and no EOS either;
* decode keeps special tokens unless ``skip_special_tokens=True`` (transformers' default; the
  ``tokenizers`` library's own default is the opposite). ``<think>`` is an added but *not* special token,
  so it survives skip_special_tokens;
* one character can span several tokens: decoding token by token would print broken characters, so
  streaming goes through ``StreamDecoder``, which only emits whole characters.

Why vocabulary entries look like 'Ġworld' or 'ä½ł' (what ``id_to_token`` shows)
--------------------------------------------------------------------------------
Byte-level BPE works on UTF-8 *bytes*, but tokenizer.json stores its vocabulary and merges as strings. So
each of the 256 byte values is given one printable character (GPT-2's ``bytes_to_unicode``): the bytes that
are already printable characters ('!'..'~', and most of 0xA1..0xFF read as Latin-1) map to themselves;
the others (control bytes, space 0x20, 0x7F..0xA0, 0xAD) map, in order, to the code points from 256 up.

    space  0x20           -> 'Ġ' (U+0120)    so ' world' is stored as 'Ġworld'
    newline 0x0A          -> 'Ċ' (U+010A)
    '你' = bytes e4 bd a0 -> 'ä' '½' 'ł'     (e4, bd print as themselves in Latin-1; a0 does not: U+0142)

A Chinese character is 3 UTF-8 bytes, so it shows as 3 Latin-1-looking characters: 'ä½ł' is the
vocabulary entry for '你'. ``decode`` maps them back to bytes and the bytes back to text.

The ``tokenizers`` library is Rust: a malformed tokenizer.json can make it raise its own exception types, or
*panic* (``PanicException``, a BaseException that ``except Exception`` does not catch), and a ``padding``
block with a huge fixed length makes it abort the whole process on allocation failure. So every call into it
goes through ``Tokenizer._call`` (the one place its failures become TokenizerError), the file's padding and
truncation are switched off at load (minillm never pads or truncates: it works on one prompt of ids), and the
arguments are checked first (text must be valid Unicode, ids must fit the library's 32 bits).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .chat_template import render_chat_template
from ..checkpoint.hub import resolve_model_path
from ..checkpoint.fields import show
from ..checkpoint.jsonfile import read_json_object
from ..checkpoint.paths import checkpoint_directory, checkpoint_file, user_path
from ..errors import InputError, TokenizerError

REPLACEMENT = "\ufffd"  # what a decoder prints for bytes that are not (yet) a whole UTF-8 character
MAX_ID = 2 ** 32 - 1  # the tokenizers library stores ids as unsigned 32-bit integers
MAX_TOKENIZER_BYTES = 512 * 1024 * 1024  # tokenizer.json: Qwen's is 7 MB, the largest known some 30 MB
MAX_TEMPLATE_BYTES = 1024 * 1024  # chat_template.jinja: real ones are a few kilobytes


class Tokenizer:
    """A Qwen tokenizer: ``encode``, ``decode``, ``apply_chat_template`` and streaming decode."""

    def __init__(self, backend, config: dict | None = None, chat_template: str | None = None,
                 path: Path | None = None):
        self.backend = backend  # a tokenizers.Tokenizer
        self.config = config or {}
        self.chat_template = chat_template
        self.path = path
        self.special_tokens = _special_tokens_map(self.config)

    def __len__(self) -> int:
        """Number of ids with a string (regular + added tokens); the model's vocab_size may be larger."""
        return self._call("count its tokens", self.backend.get_vocab_size, True)

    def encode(self, text: str) -> list[int]:
        """Text -> ids. No BOS/EOS added, as Qwen does. Special-token strings in the text become special ids."""
        if not isinstance(text, str):
            raise InputError(f"encode expects a str, found {type(text).__name__}")
        check_text(text, "encode")
        return self._call("encode text", lambda: self.backend.encode(text, add_special_tokens=False).ids)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text. Special tokens are kept unless skip_special_tokens=True (transformers' default)."""
        ids = check_ids(ids)
        return self._call("decode ids", self.backend.decode, ids, bool(skip_special_tokens))

    def token_to_id(self, token: str) -> int | None:
        if not isinstance(token, str):
            raise InputError(f"token_to_id expects a str, found {type(token).__name__}")
        check_text(token, "token_to_id")
        return self._call("look up a token", self.backend.token_to_id, token)

    def id_to_token(self, token_id: int) -> str | None:
        """The raw vocabulary string (byte-level: a leading space shows as 'Ġ'); None for padded ids."""
        (token_id,) = check_ids([token_id])
        return self._call("look up an id", self.backend.id_to_token, token_id)

    def _call(self, what: str, fn, *args):
        """Call the Rust library; any failure of it (its exceptions, a panic) becomes a TokenizerError."""
        try:
            return fn(*args)
        except Exception as e:  # the library raises its own types (and TypeError, OverflowError, ...)
            raise TokenizerError(f"{self.path or 'tokenizer'}: the tokenizers library failed to {what} "
                                 f"({type(e).__name__}: {e})") from None
        except BaseException as e:  # PanicException derives from BaseException, not Exception
            if type(e).__name__ != "PanicException":
                raise  # KeyboardInterrupt, SystemExit: not ours to stop
            raise TokenizerError(f"{self.path or 'tokenizer'}: the tokenizers library panicked trying to {what} "
                                 f"({e}); the tokenizer.json is probably malformed") from None

    @property
    def eos_token_id(self) -> int | None:
        eos = self.special_tokens.get("eos_token")
        try:
            return self.token_to_id(eos) if isinstance(eos, str) else None
        except InputError:  # not valid text (a lone surrogate in tokenizer_config.json): no such token
            return None

    def stream_decoder(self, skip_special_tokens: bool = False) -> "StreamDecoder":
        return StreamDecoder(self, skip_special_tokens)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = False,
                            enable_thinking: bool | None = None, tools: list[dict] | None = None,
                            tokenize: bool = False, **variables):
        """Render the conversation with the checkpoint's own chat template (sandboxed Jinja).

        Returns the prompt text, or its ids with ``tokenize=True``. ``add_generation_prompt=True`` appends
        the assistant header so the model answers (transformers' default is False). ``enable_thinking``
        is Qwen3's switch: False adds an empty <think></think> block; None leaves the template's default.
        """
        if self.chat_template is None:
            raise TokenizerError(f"{self.path or 'tokenizer'}: no chat template (expected 'chat_template' in "
                                 f"tokenizer_config.json or a chat_template.jinja file)")
        text = render_chat_template(self.chat_template, messages, self.special_tokens,
                                    add_generation_prompt=add_generation_prompt,
                                    enable_thinking=enable_thinking, tools=tools, **variables)
        return self.encode(text) if tokenize else text


class StreamDecoder:
    """Turn a stream of token ids into text pieces that never split a character.

    A character such as "鱻" is 3 UTF-8 bytes and may be spread over 2 tokens; decoding the first token
    alone gives U+FFFD. So we decode a short window of recent tokens and hold back text while it ends in
    an incomplete character (U+FFFD), emitting it whole once its last byte arrives. Pieces concatenate to
    exactly ``decode(all ids)``; ``flush()`` returns whatever is left at the end (e.g. truly invalid bytes).
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = False):
        self.tokenizer, self.skip = tokenizer, skip_special_tokens
        self.ids: list[int] = []
        self.prefix_offset = 0  # ids[prefix_offset:read_offset] were emitted and end on a whole character
        self.read_offset = 0

    def _decode(self, start: int, end: int | None = None) -> str:
        return self.tokenizer.decode(self.ids[start:end], skip_special_tokens=self.skip)

    def step(self, token_id: int) -> str:
        """Add one token; return the newly completed text ('' while a character is still incomplete)."""
        self.ids.extend(check_ids([token_id]))
        done = self._decode(self.prefix_offset, self.read_offset)
        text = self._decode(self.prefix_offset)
        if len(text) > len(done) and not text.endswith(REPLACEMENT):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return text[len(done):]
        return ""

    def flush(self) -> str:
        """Everything not yet emitted (call once at the end of the stream)."""
        done = self._decode(self.prefix_offset, self.read_offset)
        text = self._decode(self.prefix_offset)
        self.prefix_offset = self.read_offset = len(self.ids)
        return text[len(done):]


def _special_tokens_map(config: dict) -> dict[str, object]:
    """bos/eos/pad/unk token strings and additional_special_tokens, as template variables."""
    out: dict[str, object] = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token", "additional_special_tokens"):
        value = config.get(key)
        if isinstance(value, dict):  # {"content": "<|im_end|>", ...} in older files
            value = value.get("content")
        if value is not None:
            out[key] = value
    return out


def check_text(text: str, what: str) -> None:
    """Text must be valid Unicode: a lone surrogate (from a file name or argv decoded with surrogateescape)
    cannot be turned into UTF-8 bytes, which is what the tokenizer works on."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{what}: the text is not valid Unicode: it holds {show(text[e.start:e.end])} at position "
                         f"{e.start}, a lone surrogate (bytes that were not UTF-8 often become one)") from None


def check_ids(ids) -> list[int]:
    """Token ids for decoding (a sequence of integers, or one integer) as a list of ints in 0 .. 2**32 - 1."""
    if isinstance(ids, (int, np.integer)) and not isinstance(ids, (bool, np.bool_)):
        ids = [ids]
    if isinstance(ids, (str, bytes, dict)) or not hasattr(ids, "__len__") and not isinstance(ids, np.ndarray):
        raise InputError(f"token ids must be a sequence of integers, found {type(ids).__name__} {show(ids)}")
    out = []
    for i in (ids.tolist() if isinstance(ids, np.ndarray) else ids):
        if not isinstance(i, (int, np.integer)) or isinstance(i, (bool, np.bool_)):
            raise InputError(f"token ids must be integers, found {type(i).__name__} {show(i)}")
        if not 0 <= i <= MAX_ID:
            raise InputError(f"token id {show(i)} is out of range: ids are integers in 0 .. {MAX_ID}")
        out.append(int(i))
    return out


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load tokenizer.json (+ tokenizer_config.json, chat_template.jinja) from a checkpoint directory.

    ``path``: the directory (or its tokenizer.json), or a Hub id such as ``"Qwen/Qwen3-0.6B"`` (checkpoint/hub.py).
    """
    from tokenizers import Tokenizer as Backend

    target = user_path(resolve_model_path(path) if isinstance(path, str) else path, TokenizerError,
                       "checkpoint directory or tokenizer.json")  # a Hub id: its cached snapshot (hub.py)
    try:
        is_dir = target.is_dir()
    except (OSError, ValueError) as e:
        raise TokenizerError(f"{show(str(target))}: not a usable path ({getattr(e, 'strerror', None) or e})") \
            from None
    directory = checkpoint_directory(target if is_dir else target.parent, TokenizerError)
    file = checkpoint_file(directory, "tokenizer.json", TokenizerError)
    if file is None:
        raise TokenizerError(f"{directory}: no tokenizer.json found")
    data = _read_bytes(file, directory / "tokenizer.json", MAX_TOKENIZER_BYTES)
    probe = Tokenizer(None, path=directory)
    backend = probe._call("read tokenizer.json", Backend.from_buffer, data)
    # minillm never pads or truncates (one prompt, its own ids): a file's padding block with a huge fixed
    # length would make the library abort the process on its first encode, so both are switched off.
    probe._call("switch off padding and truncation", lambda: (backend.no_padding(), backend.no_truncation()))

    config: dict = {}
    config_file = checkpoint_file(directory, "tokenizer_config.json", TokenizerError)
    if config_file is not None:
        config = read_json_object(config_file, TokenizerError)

    template = config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)
                 and isinstance(t.get("name"), str)}
        template = named.get("default")
    jinja_file = checkpoint_file(directory, "chat_template.jinja", TokenizerError)
    if jinja_file is not None:  # transformers 5 saves the template in its own file; it takes precedence
        raw = _read_bytes(jinja_file, directory / "chat_template.jinja", MAX_TEMPLATE_BYTES)
        try:
            template = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TokenizerError(f"{directory / 'chat_template.jinja'}: not UTF-8 text ({e})") from None
    if template is not None and not isinstance(template, str):
        raise TokenizerError(f"{directory / 'tokenizer_config.json'}: chat_template must be a string, "
                             f"found {type(template).__name__}")
    return Tokenizer(backend, config, template, directory)


def _read_bytes(file: Path, shown: Path, limit: int) -> bytes:
    try:
        size = file.stat().st_size
        if size > limit:
            raise TokenizerError(f"{shown}: {size:,} bytes is larger than the {limit:,} bytes minillm reads")
        return file.read_bytes()
    except OSError as e:
        raise TokenizerError(f"{shown}: cannot read ({e.strerror or e})") from None
