"""generation_config.json: the decoding defaults a checkpoint ships (sampling settings, stop ids, pad id).

Qwen2.5-0.5B-Instruct ships {"do_sample": true, "temperature": 0.7, "top_p": 0.8, "top_k": 20,
"repetition_penalty": 1.1, "eos_token_id": [151645, 151643], ...}: an instruct model *samples* by default,
and stops on either <|im_end|> or <|endoftext|>.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .jsonfile import read_json_object
from ..errors import ConfigError


@dataclass(frozen=True)
class GenerationConfig:
    """The fields of generation_config.json that minillm uses (None: not set in the file)."""

    do_sample: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    eos_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None
    max_new_tokens: int | None = None
    extra: dict = field(default_factory=dict, compare=False)


def load_generation_config(directory: str | Path) -> GenerationConfig:
    """generation_config.json of a checkpoint directory; an empty config when the file is absent."""
    file = Path(directory) / "generation_config.json"
    if not file.is_file():
        return GenerationConfig()
    raw = read_json_object(file, ConfigError)

    def number(name, kind):
        value = raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and isinstance(value, float)):
            raise ConfigError(f"{file}: field {name!r}: expected {kind.__name__}, found {value!r}")
        return kind(value)

    eos = raw.get("eos_token_id")
    eos_list = eos if isinstance(eos, list) else ([] if eos is None else [eos])
    if not all(isinstance(e, int) and not isinstance(e, bool) for e in eos_list):
        raise ConfigError(f"{file}: eos_token_id: expected a token id or a list of ids, found {eos!r}")
    do_sample = raw.get("do_sample", False)
    if not isinstance(do_sample, bool):
        raise ConfigError(f"{file}: do_sample: expected bool, found {do_sample!r}")
    return GenerationConfig(
        do_sample=do_sample, temperature=number("temperature", float), top_k=number("top_k", int),
        top_p=number("top_p", float), min_p=number("min_p", float),
        repetition_penalty=number("repetition_penalty", float), eos_token_ids=tuple(eos_list),
        pad_token_id=number("pad_token_id", int), max_new_tokens=number("max_new_tokens", int), extra=raw)
