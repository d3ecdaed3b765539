"""One small exception hierarchy, so callers can catch everything minillm raises on bad input.

Every message names the file, tensor or config field at fault, what was expected and what was found.
"""


class MinillmError(Exception):
    """Base class of every error minillm raises on purpose."""


class ConfigError(MinillmError):
    """config.json (or generation_config.json) is missing, malformed, or describes an unsupported model."""


class CheckpointError(MinillmError):
    """A weights file (safetensors or its shard index) is missing, malformed, or disagrees with the config."""


class TokenizerError(MinillmError):
    """tokenizer.json / tokenizer_config.json / the chat template is missing or malformed."""


class InputError(MinillmError, ValueError):
    """A caller passed bad input: token ids out of range, an empty prompt, a negative length, ..."""


class TrainingError(MinillmError):
    """Training cannot go on: a non-finite loss, a run directory that does not match, bad settings."""
