"""One small exception hierarchy, so callers can catch everything minillm raises on bad input.

Every message names the file, tensor or config field at fault, what was expected and what was found.

Every way minillm can fail on input (a hostile checkpoint, a broken config, a chat template, an argument)
ends in one of these, never in another exception type: tests/test_fuzz.py and scripts/fuzz_campaign.py
check that property on thousands of hostile inputs. InputError also subclasses ValueError, so a Pythonic
``except ValueError`` around a call keeps working.
"""


class MinillmError(Exception):
    """Base class of every error minillm raises on purpose."""


class ConfigError(MinillmError):
    """config.json (or generation_config.json) is missing, malformed, or describes an unsupported model."""


class CheckpointError(MinillmError):
    """A weights file (safetensors or its shard index) is missing, malformed, or disagrees with the config."""


class TokenizerError(MinillmError):
    """tokenizer.json / tokenizer_config.json / the chat template is missing, malformed, or fails to run."""


class InputError(MinillmError, ValueError):
    """A caller passed bad input: token ids out of range, an empty prompt, a negative length, ..."""


class TrainingError(MinillmError):
    """Training cannot go on: a non-finite loss, a run directory that does not match, bad settings."""


class MinillmWarning(UserWarning):
    """Something that works but deserves the user's attention (the CLI prints it as one line)."""
