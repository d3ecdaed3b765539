"""minillm: Qwen2 / Qwen2.5 / Qwen3 (dense), Qwen3.5 (hybrid) and Qwen MoE inference in pure NumPy, readable and exact.

    import minillm
    model = minillm.load_model("weights/tiny-qwen2")       # or a Hub id: "Qwen/Qwen2.5-0.5B-Instruct"
    logits = model.forward([1, 2, 3])                      # [T] -> [T, V] float32
    loss, grads = minillm.loss_and_grads(model, [1, 2, 3]) # next-token loss, {tensor name: gradient}

To learn the architecture, start with minillm/plain/: each idea as one function on one screen (forward.py first).

Legend of dimension names, used in every shape comment:
    B batch      T new tokens in this call      S key positions (cached + new)
    D hidden     H query heads     K key/value heads     Dh head dim
    F MLP width (intermediate_size)     V vocab size     L layers
Qwen3.5's linear-attention (Gated DeltaNet) layers add:
    Hk / Hv linear key / value heads     Dk / Dv their head dims     C conv channels (2 Hk Dk + Hv Dv)
    W conv kernel width     R rotary dims of the full-attention heads (partial RoPE)
The mixtures of experts (Qwen3-MoE, Qwen3-Next, Qwen3.5-MoE) add:
    N tokens (batch and time flattened: each is routed on its own)     E experts     k experts per token
    Fe width of one expert (moe_intermediate_size)     Fs width of the shared expert
Qwen3.5's vision tower (minillm/vision) adds N patches, P patch size, Tp frames per patch, Dv / Hv / Dhv / Fv
    its width, heads, head dim and MLP width, m the merge size, I images (legend in minillm/vision/__init__.py).
"""

from .errors import CheckpointError, ConfigError, InputError, MinillmError, MinillmWarning, TokenizerError
# reading checkpoints
from .checkpoint.bundled import default_model_path
from .checkpoint.config import QwenConfig, load_config, parse_config
from .checkpoint.generation_config import GenerationConfig, load_generation_config
from .checkpoint.hub import resolve_model_path
from .checkpoint.loading import CheckpointWarning, load_model
# the model
from .model.cache import KVCache
from .model.transformer import Model
# training
from .backward import loss_and_grads
from .checkpoint.adapter import attach_lora, load_adapter, merge_adapter, save_adapter, save_merged
# text
from .text.tokenizer import StreamDecoder, Tokenizer, load_tokenizer
# images (Qwen3.5's vision tower)
from .vision.chat import Processor, load_processor
# generation
from .generation.generate import generate, stream_generate
from .generation.sampling import SamplingParams
from .generation.speculative import SpeculativeStats
from .explain import explain  # the interactive explainer page (minillm explain "PROMPT")

__version__ = "0.1.0"

__all__ = [
    "default_model_path", "resolve_model_path", "load_model", "loss_and_grads", "load_tokenizer", "generate", "stream_generate", "Tokenizer", "StreamDecoder", "KVCache",
    "SamplingParams", "SpeculativeStats", "GenerationConfig", "load_generation_config", "load_config", "parse_config", "Model", "QwenConfig",
    "MinillmError", "ConfigError", "CheckpointError", "TokenizerError", "InputError", "MinillmWarning",
    "CheckpointWarning", "explain",
    "attach_lora", "load_adapter", "save_adapter", "merge_adapter", "save_merged",
    "load_processor", "Processor",
]
