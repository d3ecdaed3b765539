"""generation_config.json: the decoding defaults a checkpoint ships (sampling settings, stop ids, pad id).

Qwen2.5-0.5B-Instruct ships {"do_sample": true, "temperature": 0.7, "top_p": 0.8, "top_k": 20,
"repetition_penalty": 1.1, "eos_token_id": [151645, 151643], ...}: an instruct model *samples* by default,
and stops on either <|im_end|> or <|endoftext|>.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .fields import FieldReader, token_id_list
from .jsonfile import read_json_object
from .paths import checkpoint_file, user_path


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
    """generation_config.json of a checkpoint directory; an empty config when the file is absent.

    Every field is type- and range-checked as the file is read (fields.py), with the ranges sampling
    needs, so a bad file fails at load time naming the file, not at the first generate() blaming the caller.
    """
    directory = user_path(directory, ConfigError)
    file = checkpoint_file(directory, "generation_config.json", ConfigError)
    if file is None:
        return GenerationConfig()
    return parse_generation_config(read_json_object(file, ConfigError), str(directory / "generation_config.json"))


def parse_generation_config(raw: dict, source: str) -> GenerationConfig:
    """A generation_config.json object, checked field by field (the trainer checks a recipe's with it too)."""
    from ..generation.sampling import SETTINGS, check_setting  # the ranges sampling needs, in one place

    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a JSON object, found {type(raw).__name__}")
    get = FieldReader(raw, source)
    sampling = {}
    for name, (kind, _, _) in SETTINGS.items():
        value = get(name, kind, None)
        sampling[name] = None if value is None else check_setting(name, value, ConfigError, f"{get.source}: ")
    return GenerationConfig(
        do_sample=get("do_sample", bool, False),
        **sampling,
        eos_token_ids=tuple(token_id_list(raw.get("eos_token_id"), "eos_token_id", get.source)),
        pad_token_id=get("pad_token_id", int, None),
        max_new_tokens=get("max_new_tokens", int, None),
        extra=raw)
