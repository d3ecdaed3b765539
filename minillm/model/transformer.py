"""The whole Qwen decoder: embed, L decoder layers, final RMSNorm, LM head.

    x_0      = embed_tokens[ids]                                   [B, T, D]
    x_{i+1}  = decoder_layer(x_i)            for i = 0 .. L-1     (block.py; Qwen3.5: hybrid.py)
    h        = RMSNorm(x_L; model.norm)                            (Qwen3.5: zero-centred, 1 + w)
    logits   = h @ lm_head^T                                       [B, T, V]  (lm_head = embed_tokens if tied)

Positions: token t of a row sits at RoPE position (number of real tokens before it in that row). For one
unpadded sequence that is just 0..T-1; with left padding each row counts from its own first real token,
as transformers' ``generate`` does (position_ids = cumsum(attention_mask) - 1); with a KV cache it
continues from the cached count.

Qwen3.5 (hybrid): the linear-attention layers take no positions and no mask, only which tokens are padding
(zeroed at their input), and they run the chunked delta rule for a prompt, the recurrence for one token.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .masks import causal_mask
from .block import decoder_layer
from .hybrid import hybrid_decoder_layer
from .cache import KVCache
from ..checkpoint.config import QwenConfig
from .embedding import embed
from ..errors import InputError
from ..checkpoint.generation_config import GenerationConfig
from .norm import rms_norm, zero_centred_rms_norm
from .rope import rope_cos_sin, rope_frequencies
from ..checkpoint.weights import ModelWeights


def lm_head(h: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """logits = h W^T: one score per vocabulary entry.   h [..., D], weight [V, D] -> [..., V]"""
    return h @ weight.T  # [..., D] @ [D, V] -> [..., V]


class Model:
    """A loaded Qwen model: its config, its float32 weights, and ``forward``."""

    def __init__(self, config: QwenConfig, weights: ModelWeights, path: Path | None = None,
                 unexpected_tensors: list[str] | None = None, generation_config: GenerationConfig | None = None):
        self.config, self.weights, self.path = config, weights, path
        self.unexpected_tensors = unexpected_tensors or []
        self.generation_config = generation_config or GenerationConfig()
        self._rope: tuple[np.ndarray, float] | None = None  # inv_freq and scaling, once computed

    def __repr__(self) -> str:
        c = self.config
        return (f"Model({c.model_type}, L={c.num_hidden_layers}, D={c.hidden_size}, H={c.num_attention_heads}, "
                f"K={c.num_key_value_heads}, Dh={c.head_dim}, F={c.intermediate_size}, V={c.vocab_size}, "
                f"path={str(self.path) if self.path else None!r})")

    def _rope_frequencies(self, seq_len: int) -> tuple[np.ndarray, float]:
        """inv_freq [Dh/2] and attention scaling; computed once, except for dynamic RoPE (depends on seq_len)."""
        cfg = self.config  # cfg.rotary_dim: the head dim, or its rotated part R (Qwen3.5's partial RoPE)
        if cfg.rope.rope_type == "dynamic":  # its base grows with the sequence: recompute every call
            return rope_frequencies(cfg.rotary_dim, cfg.rope, cfg.max_position_embeddings, seq_len)
        if self._rope is None:
            self._rope = rope_frequencies(cfg.rotary_dim, cfg.rope, cfg.max_position_embeddings)
        return self._rope

    def final_norm(self, x: np.ndarray) -> np.ndarray:
        """model.norm: zero-centred (1 + w) in the hybrid models, plain w otherwise.   [..., D] -> [..., D]"""
        norm = zero_centred_rms_norm if self.config.zero_centred_norms else rms_norm
        return norm(x, self.weights.norm, self.config.rms_norm_eps)

    def new_cache(self, batch_size: int, capacity: int) -> KVCache:
        """An empty KV cache for ``batch_size`` rows of up to ``capacity`` positions, allocated now.

        Size it to what you need: 2 * L * K * Dh * 4 bytes per position and row (Qwen3-0.6B: 224 KiB,
        so its full 40960-position context would take 9.4 GB). Qwen3.5 keeps keys and values in its
        full-attention layers only (Qwen3.5-0.8B: 6 layers, 24 KiB per position), plus a fixed 19 MiB of
        linear-attention state per row.
        """
        return KVCache(self.config, batch_size, capacity)

    def forward(self, ids, attention_mask=None, output_hidden_states: bool = False,
                cache: KVCache | None = None, logits_to_keep: int = 0):
        """Logits for every position (or the last ``logits_to_keep``), optionally every hidden state.

        ids [T] -> logits [T, V];  ids [B, T] (with attention_mask [B, T], 1 = real, 0 = left padding)
        -> logits [B, T, V]. With ``output_hidden_states=True`` returns (logits, hidden), hidden being
        L+1 arrays shaped like ids + [D], in transformers' convention: [0] the embeddings, [i] the residual
        stream after layer i-1, [L] the final norm of the last layer's output.
        ``cache``: a KVCache; the new tokens continue after what it holds, and it is updated.
        """
        cfg, w = self.config, self.weights
        ids = check_token_ids(ids, cfg.vocab_size)  # [T] or [B, T] int64
        single = ids.ndim == 1
        ids_BT = ids[None] if single else ids  # [B, T]
        # With a cache, a row may be all padding in this call: one chunk of a left-padded prompt.
        valid_BT = check_attention_mask(attention_mask, ids_BT.shape, empty_rows_ok=cache is not None)  # [B, T]
        B, T = ids_BT.shape
        if cache is not None:
            if cache.batch_size != B:
                raise InputError(f"cache was made for batch size {cache.batch_size}, ids have {B} rows")
            cache.check_room(T)
        past = cache.length if cache is not None else 0
        start_position = cache.next_position if cache is not None else np.zeros(B, np.int64)  # [B]
        if cfg.is_hybrid:
            check_left_padding(valid_BT if cache is None else np.concatenate([cache.key_valid[:, :past], valid_BT], 1))

        # RoPE position of each token: real tokens counted from each row's first real token.
        positions = start_position[:, None] + np.cumsum(valid_BT, axis=1) - 1  # [B, T]
        positions = np.where(valid_BT, positions, 0)  # [B, T]; padding gets 0 (it is masked anyway)
        inv_freq, scaling = self._rope_frequencies(int(positions.max()) + 1)  # [Dh/2]
        cos, sin = rope_cos_sin(positions, inv_freq, scaling)  # [B, T, Dh] each

        # Which keys may each query see: causal, minus padding (and a window on sliding layers).
        key_valid = valid_BT if cache is None else np.concatenate(
            [cache.key_valid[:, :past], valid_BT], axis=1)  # [B, S]
        if key_valid.all():
            key_valid = None  # no padding anywhere: the plain causal mask is enough
        if T == 1 and key_valid is None:
            full_mask = None  # decoding one token: it may see every cached key, so no mask at all
        else:
            full_mask = causal_mask(T, past, key_valid)  # [B or 1, 1, T, S]
        window_mask = causal_mask(T, past, key_valid, cfg.sliding_window) if cfg.sliding_window else None

        x = embed(ids_BT, w.embed_tokens)  # [B, T, D]
        hidden = [x]  # the residual stream after each layer, kept only when asked for
        for i, layer in enumerate(w.layers):
            layer_cache = cache.layer(i) if cache is not None else None
            if cfg.is_hybrid:  # Qwen3.5: gated attention or Gated DeltaNet, by layer_types[i]
                x = hybrid_decoder_layer(x, layer, cfg, cos, sin, full_mask, valid_BT, layer_cache,
                                         chunked=T > 1)  # [B, T, D]
            else:
                mask = window_mask if cfg.uses_sliding_window(i) else full_mask
                x = decoder_layer(x, layer, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.rms_norm_eps,
                                  cos, sin, mask, layer_cache)  # [B, T, D]
            if output_hidden_states:
                hidden.append(x)
        if cache is not None:
            cache.advance(valid_BT)

        if logits_to_keep:
            x = x[:, -logits_to_keep:]  # [B, keep, D]: e.g. only the last position when generating
        h = self.final_norm(x)  # [B, T or keep, D]
        logits = lm_head(h, w.lm_head)  # [B, T or keep, V]

        if single:
            logits = logits[0]  # [T, V]
        if not output_hidden_states:
            return logits
        # transformers replaces the last layer's raw output by its final-norm output.
        hidden[-1] = h if not logits_to_keep else self.final_norm(hidden[-1])
        if single:
            hidden = [hs[0] for hs in hidden]  # L+1 x [T, D]
        return logits, hidden


def check_token_ids(ids, vocab_size: int) -> np.ndarray:
    """Validate token ids ([T] or [B, T], any integer type) and return them as an int64 array."""
    try:
        arr = np.asarray(ids)
    except ValueError as e:  # ragged nested lists
        raise InputError(f"token ids must be a rectangular array: {e}") from None
    if arr.ndim not in (1, 2):
        raise InputError(f"token ids must be shaped [T] or [B, T], found shape {list(arr.shape)}")
    if arr.size == 0:
        raise InputError(f"token ids are empty (shape {list(arr.shape)}): need at least one token")
    if not np.issubdtype(arr.dtype, np.integer):  # floats, bools, strings, objects
        raise InputError(f"token ids must be integers, found dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise InputError(f"token id {bad} is out of range: the model's vocab_size is {vocab_size} "
                         f"(valid ids 0..{vocab_size - 1})")
    return arr  # [T] or [B, T]


def check_attention_mask(mask, shape: tuple[int, int], empty_rows_ok: bool = False) -> np.ndarray:
    """Validate an attention mask (1 = real token, 0 = padding) and return it as bool [B, T]."""
    if mask is None:
        return np.ones(shape, bool)  # [B, T]
    m = np.asarray(mask)
    if m.ndim == 1:
        m = m[None]
    if m.shape != shape:
        raise InputError(f"attention_mask has shape {list(m.shape)}, expected {list(shape)} like the ids")
    if not np.isin(m, (0, 1)).all():
        raise InputError("attention_mask must hold only 0 (padding) and 1 (real token)")
    m = m.astype(bool)
    if not empty_rows_ok and not m.any(axis=1).all():
        raise InputError(f"attention_mask row {int(np.argmin(m.any(axis=1)))} has no real token")
    return m  # [B, T]


def check_left_padding(valid: np.ndarray) -> None:
    """Hybrid models: each row must be padding first, then real tokens (valid [B, S] bool, cached + new).

    A pad after a real token is not neutral in a linear-attention layer: its zeroed input still decays the
    memory of the tokens before it, so right padding (or a hole) would silently change the results.
    """
    after_real = np.maximum.accumulate(valid, axis=1) & ~valid  # [B, S]: a pad somewhere after a real token
    if after_real.any():
        row = int(np.argmax(after_real.any(axis=1)))
        raise InputError(f"attention_mask row {row} has padding after real tokens; linear-attention (Qwen3.5) "
                         f"layers are exact with left padding only (pads first, then the tokens)")
