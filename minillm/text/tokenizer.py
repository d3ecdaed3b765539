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
"""

from __future__ import annotations

from pathlib import Path

from .chat_template import render_chat_template
from ..checkpoint.hub import resolve_model_path
from ..checkpoint.jsonfile import read_json_object
from ..errors import TokenizerError

REPLACEMENT = "\ufffd"  # what a decoder prints for bytes that are not (yet) a whole UTF-8 character


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
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Text -> ids. No BOS/EOS added, as Qwen does. Special-token strings in the text become special ids."""
        if not isinstance(text, str):
            raise TokenizerError(f"encode expects a str, found {type(text).__name__}")
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text. Special tokens are kept unless skip_special_tokens=True (transformers' default)."""
        ids = [int(i) for i in ids]
        if any(i < 0 for i in ids):
            raise TokenizerError(f"decode: token ids must be >= 0, found {min(ids)}")
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        """The raw vocabulary string (byte-level: a leading space shows as 'Ġ'); None for padded ids."""
        return self.backend.id_to_token(int(token_id))

    @property
    def eos_token_id(self) -> int | None:
        eos = self.special_tokens.get("eos_token")
        return self.token_to_id(eos) if isinstance(eos, str) else None

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
        self.ids.append(int(token_id))
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


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load tokenizer.json (+ tokenizer_config.json, chat_template.jinja) from a checkpoint directory.

    ``path``: the directory (or its tokenizer.json), or a Hub id such as ``"Qwen/Qwen3-0.6B"`` (checkpoint/hub.py).
    """
    from tokenizers import Tokenizer as Backend

    path = resolve_model_path(path)
    directory = path if path.is_dir() else path.parent
    file = directory / "tokenizer.json"
    if not file.is_file():
        raise TokenizerError(f"{directory}: no tokenizer.json found")
    try:
        backend = Backend.from_file(str(file))
    except Exception as e:  # the Rust library raises its own Exception type for malformed files
        raise TokenizerError(f"{file}: cannot be read by the tokenizers library ({e})") from None

    config: dict = {}
    config_file = directory / "tokenizer_config.json"
    if config_file.is_file():
        config = read_json_object(config_file, TokenizerError)

    template = config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    jinja_file = directory / "chat_template.jinja"
    if jinja_file.is_file():  # transformers 5 saves the template in its own file; it takes precedence
        template = jinja_file.read_text(encoding="utf-8")
    if template is not None and not isinstance(template, str):
        raise TokenizerError(f"{config_file}: chat_template must be a string, found {type(template).__name__}")
    return Tokenizer(backend, config, template, directory)
