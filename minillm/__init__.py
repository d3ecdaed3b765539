"""minillm: Qwen2 / Qwen2.5 / Qwen3 (dense) inference in pure NumPy, readable and exact.

    import minillm
    model = minillm.load_model("weights/tiny-qwen2")
    logits = model.forward([1, 2, 3])                      # [T] -> [T, V] float32

Legend of dimension names, used in every shape comment:
    B batch      T new tokens in this call      S key positions (cached + new)
    D hidden     H query heads     K key/value heads     Dh head dim
    F MLP width (intermediate_size)     V vocab size     L layers
"""

from .config import QwenConfig, load_config, parse_config
from .errors import CheckpointError, ConfigError, InputError, MinillmError, TokenizerError
from .cache import KVCache
from .generation import generate, stream_generate
from .generation_config import GenerationConfig, load_generation_config
from .loading import CheckpointWarning, load_model
from .model import Model
from .sampling import SamplingParams
from .tokenizer import StreamDecoder, Tokenizer, load_tokenizer

__version__ = "0.1.0"

__all__ = [
    "load_model", "load_tokenizer", "generate", "stream_generate", "Tokenizer", "StreamDecoder", "KVCache",
    "SamplingParams", "GenerationConfig", "load_generation_config", "load_config", "parse_config", "Model", "QwenConfig",
    "MinillmError", "ConfigError", "CheckpointError", "TokenizerError", "InputError", "CheckpointWarning",
]
