"""The whole Qwen decoder: embed, L decoder layers, final RMSNorm, LM head.

    x_0      = embed_tokens[ids]                                   [B, T, D]
    x_{i+1}  = decoder_layer(x_i)            for i = 0 .. L-1     (block.py; Qwen3.5, Qwen3-Next: hybrid.py)
    h        = RMSNorm(x_L; model.norm)                            (Qwen3.5: zero-centred, 1 + w)
    logits   = h @ lm_head^T                                       [B, T, V]  (lm_head = embed_tokens if tied)

minillm/plain/forward.py is this same computation for one unpadded sequence, on one screen (plain_forward).

Positions: token t of a row sits at RoPE position (number of real tokens before it in that row). For one
unpadded sequence that is just 0..T-1; with left padding each row counts from its own first real token,
as transformers' ``generate`` does (position_ids = cumsum(attention_mask) - 1); with a KV cache it
continues from the cached count. Worked example, a batch of two rows:

    attention_mask      [[0, 0, 1, 1, 1],          row 0: two padding tokens, then 3 real ones
                         [1, 1, 1, 1, 1]]
    cumsum - 1          [[-1, -1, 0, 1, 2],
                         [ 0,  1, 2, 3, 4]]
    positions           [[0, 0, 0, 1, 2],          padding set to 0 (masked anyway, so any value would do)
                         [0, 1, 2, 3, 4]]

The cache then holds 5 slots for both rows, but next_position = [3, 5]: the next decoded token of row 0
goes to slot 5 at RoPE position 3, the one of row 1 to slot 5 at position 5. Each new token's position is
next_position + (real tokens before it in this call), per row. The mask hides the padding keys (slots 0
and 1 of row 0) from every query, in this call and in every later one (the cache keeps ``key_valid``).

Long inputs are computed in pieces. Attention over T new tokens and S keys makes a [B, H, T, S] array of
scores (and a [T, S] mask): for a 40,000-token prompt that is tens of gigabytes. Since each query's row
of scores is independent of the others, ``forward`` runs the queries a piece at a time through a KV cache
(the caller's, or a temporary one), each piece seeing the keys of the pieces before it: the same numbers,
with at most QUERY_PIECE_SCORES scores in memory at once.

Qwen3.5 (hybrid): the linear-attention layers take no positions and no mask, only which tokens are padding
(zeroed at their input), and they run the chunked delta rule for a prompt, the recurrence for one token.
A hybrid model is computed in pieces too: a piece continues the linear-attention states in the cache
exactly as a chunk of a chunked prefill does (the state after a piece depends only on the tokens so far).

Mixtures of experts (Qwen3-MoE, Qwen3-Next, Qwen3.5-MoE) route every token on its own (moe.py): batches,
padding, pieces and the cache change nothing there. ``output_router_logits=True`` also returns each layer's
router logits, to see which experts the tokens chose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fast_linear import FEW_ROWS, fast_linear as linear  # y = x W^T + b (linear.py), at full speed
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

QUERY_PIECE_SCORES = 1 << 24  # attention scores (B * H * queries * keys) computed at once: 64 MiB of float32


def lm_head(h: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """logits = h W^T: one score per vocabulary entry.   h [..., D], weight [V, D] -> [..., V]

    Tied embeddings (tie_word_embeddings, every small Qwen): W is the embedding matrix itself, used twice,
    once to turn ids into vectors and once to score vectors against every token. In a small model that
    V x D matrix is a large share of all parameters (Qwen2.5-0.5B: 151936 x 896 = 136M of 494M, 28%), so
    sharing it saves that much memory; large models keep a separate lm_head.weight.
    """
    return linear(h, weight)  # [..., D] @ [D, V] -> [..., V] (flattened to one matrix product, see linear.py)


class Model:
    """A loaded Qwen model: its config, its float32 weights, and ``forward``."""

    def __init__(self, config: QwenConfig, weights: ModelWeights, path: Path | None = None,
                 unexpected_tensors: list[str] | None = None, generation_config: GenerationConfig | None = None):
        self.config, self.weights, self.path = config, weights, path
        self.unexpected_tensors = unexpected_tensors or []
        self.generation_config = generation_config or GenerationConfig()
        self._rope: tuple[np.ndarray, float] | None = None  # inv_freq and scaling, once computed
        self.adapter = None  # a LoRA adapter (checkpoint/adapter.py), set by load_model(..., adapter=)
        self.vision = None  # Qwen3.5's vision tower (minillm/vision/tower.py), when the checkpoint has one

    def __repr__(self) -> str:
        c = self.config
        return (f"Model({c.model_type}, L={c.num_hidden_layers}, D={c.hidden_size}, H={c.num_attention_heads}, "
                f"K={c.num_key_value_heads}, Dh={c.head_dim}, F={c.intermediate_size}, V={c.vocab_size}, "
                + (f"E={c.num_experts}, k={c.num_experts_per_tok}, Fe={c.moe_intermediate_size}, " if c.is_moe else "")
                + f"path={str(self.path) if self.path else None!r})")

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
        linear-attention state per row, and 4.5 MiB more once it generates (the delta rule's writes kept
        aside for a few tokens: delta_memory.py).
        """
        return KVCache(self.config, batch_size, capacity)

    def forward(self, ids, attention_mask=None, output_hidden_states: bool = False,
                cache: KVCache | None = None, logits_to_keep: int = 0, output_router_logits: bool = False, *,
                pixel_values=None, image_grid_thw=None, _rope_len: int | None = None, _inputs_embeds=None,
                _cos_sin=None):
        """Logits for every position (or the last ``logits_to_keep``), optionally every hidden state.

        ids [T] -> logits [T, V];  ids [B, T] (with attention_mask [B, T], 1 = real, 0 = left padding)
        -> logits [B, T, V]. With ``output_hidden_states=True`` returns (logits, hidden), hidden being
        L+1 arrays shaped like ids + [D], in transformers' convention: [0] the embeddings, [i] the residual
        stream after layer i-1, [L] the final norm of the last layer's output.
        With ``output_router_logits=True`` the router logits come last in the tuple: L entries, layer i's
        shaped like ids + [E] (every position, also with ``logits_to_keep``), None for a dense layer.
        ``cache``: a KVCache; the new tokens continue after what it holds, and it is updated.
        A long input is computed in pieces of queries (see the module docstring); the result is the same.
        ``pixel_values`` [N, C*Tp*P*P] and ``image_grid_thw`` [I, 3] (Qwen3.5 with a vision tower, as
        minillm.load_processor makes them): the images' features fill the <|image_pad|> tokens and the
        positions become (t, h, w) (minillm/vision/multimodal.py).
        (``_rope_len``, ``_inputs_embeds`` and ``_cos_sin`` are internal: the pieces of one long input share one
        RoPE length, as dynamic RoPE needs, and slices of the image-filled embeddings and M-RoPE angles.)
        """
        cfg, w = self.config, self.weights
        ids = check_token_ids(ids, cfg.vocab_size)  # [T] or [B, T] int64
        single = ids.ndim == 1
        ids_BT = ids[None] if single else ids  # [B, T]
        # With a cache, a row may be all padding in this call (chunked prefill of a long left padding): its
        # real tokens come in a later call. Without one, every row needs a real token.
        valid_BT = check_attention_mask(attention_mask, ids_BT.shape,
                                        allow_empty_rows=cache is not None)  # [B, T] bool
        B, T = ids_BT.shape
        if not isinstance(logits_to_keep, (int, np.integer)) or isinstance(logits_to_keep, bool) or \
                logits_to_keep < 0:
            raise InputError(f"logits_to_keep must be an integer >= 0 (0 = every position), found {logits_to_keep!r}")
        if cache is not None:
            check_cache(cache, cfg, B)
            cache.check_room(T)
        past = cache.length if cache is not None else 0
        start_position = cache.next_position if cache is not None else np.zeros(B, np.int64)  # [B]
        if cfg.is_hybrid:
            check_left_padding(valid_BT if cache is None else np.concatenate([cache.key_valid[:, :past], valid_BT], 1))

        # RoPE position of each token: real tokens counted from each row's first real token (worked
        # example in the module docstring: mask [0, 0, 1, 1, 1] -> positions [0, 0, 0, 1, 2]).
        positions = start_position[:, None] + np.cumsum(valid_BT, axis=1) - 1  # [B, T]
        positions = np.where(valid_BT, positions, 0)  # [B, T]; padding gets 0 (it is masked anyway)
        rope_len = _rope_len or int(positions.max()) + 1  # dynamic RoPE's base depends on it: one for all pieces
        next_position = None  # after images: the largest (t, h, w) position + 1, for the cache
        if pixel_values is not None or image_grid_thw is not None:
            from ..vision.multimodal import multimodal_inputs  # embeddings with the image features, M-RoPE
            _inputs_embeds, _cos_sin, next_position = multimodal_inputs(self, ids_BT, valid_BT, start_position,
                                                                        pixel_values, image_grid_thw)
        piece = max(1, QUERY_PIECE_SCORES // (B * cfg.num_attention_heads * (past + T)))
        if T > piece:
            out = self._forward_in_pieces(ids_BT, valid_BT, cache, piece, output_hidden_states,
                                          int(logits_to_keep), single, rope_len, output_router_logits,
                                          _inputs_embeds, _cos_sin)
            if cache is not None and next_position is not None:
                cache.next_position[:] = next_position
            return out
        if _cos_sin is not None:
            cos, sin = _cos_sin  # [B, T, R] each, M-RoPE
        else:
            inv_freq, scaling = self._rope_frequencies(rope_len)  # [Dh/2]
            # Computed once here and passed to every layer: all layers rotate at the same positions.
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

        x = embed(ids_BT, w.embed_tokens) if _inputs_embeds is None else _inputs_embeds  # [B, T, D]
        # Only the last logits_to_keep positions' logits asked for, and no hidden states or router logits: the
        # last layer computes the last positions' outputs only (every position's keys still go to the cache).
        # At least FEW_ROWS + 1 of them, so that they take the products a whole pass takes (a prompt's many-rows
        # path, not the few-rows one): the logits then differ from a whole pass's by rounding only, as the LM
        # head on the kept rows always made them (a few-rows last layer moved tiny-qwen2's by 1.9e-6, over the
        # 1e-6 that tests/test_reference.py allows).
        last = 0 if output_hidden_states or output_router_logits or not logits_to_keep else \
            max(int(logits_to_keep), FEW_ROWS + 1)
        hidden = [x]  # the residual stream after each layer, kept only when asked for
        routers: list = []  # each MoE layer's router logits [B, T, E], kept only when asked for
        for i, layer in enumerate(w.layers):
            layer_cache = cache.layer(i) if cache is not None else None
            record = [] if output_router_logits else None  # the layer appends its router logits, if it has a router
            if cfg.is_hybrid:  # Qwen3.5, Qwen3-Next: gated attention or Gated DeltaNet, by layer_types[i]
                x = hybrid_decoder_layer(x, layer, cfg, cos, sin, full_mask, valid_BT, layer_cache,
                                         chunked=T > 1, router_logits=record)  # [B, T, D]
            else:
                mask = window_mask if cfg.uses_sliding_window(i) else full_mask
                x = decoder_layer(x, layer, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.rms_norm_eps,
                                  cos, sin, mask, layer_cache, cfg.num_experts_per_tok, cfg.norm_topk_prob,
                                  record, last if i == len(w.layers) - 1 else 0)  # [B, T, D] ([B, last, D])
            if output_hidden_states:
                hidden.append(x)
            if output_router_logits:
                routers.append(record[0] if record else None)  # [B, T, E], or None for a dense layer
        if cache is not None:
            cache.advance(valid_BT, ids_BT)
            if next_position is not None:
                cache.next_position[:] = next_position  # after an image: not the token count (vision/positions.py)

        if logits_to_keep:
            x = x[:, -logits_to_keep:]  # [B, keep, D]: e.g. only the last position when generating
        h = self.final_norm(x)  # [B, T or keep, D]
        logits = lm_head(h, w.lm_head)  # [B, T or keep, V]

        if single:
            logits = logits[0]  # [T, V]
            routers = [r if r is None else r[0] for r in routers]  # L x [T, E] or None
        extra = (routers,) if output_router_logits else ()
        if not output_hidden_states:
            return (logits, *extra) if extra else logits
        # transformers replaces the last layer's raw output by its final-norm output.
        hidden[-1] = h if not logits_to_keep else self.final_norm(hidden[-1])
        if single:
            hidden = [hs[0] for hs in hidden]  # L+1 x [T, D]
        return (logits, hidden, *extra)

    def _forward_in_pieces(self, ids_BT, valid_BT, cache, piece: int, output_hidden_states: bool,
                           logits_to_keep: int, single: bool, rope_len: int, output_router_logits: bool = False,
                           inputs_embeds=None, cos_sin=None):
        """forward() of a long input, ``piece`` queries at a time through a KV cache (the same numbers)."""
        B, T = ids_BT.shape
        work = cache if cache is not None else self.new_cache(B, T)  # holds the keys of the earlier pieces
        keep = T if logits_to_keep == 0 else min(logits_to_keep, T)  # logits for positions T-keep .. T-1
        logits, hidden, routers = [], [], []
        for s in range(0, T, piece):
            e = min(s + piece, T)
            kept = max(0, e - max(s, T - keep))  # how many of this piece's positions need logits
            out = self.forward(ids_BT[:, s:e], attention_mask=valid_BT[:, s:e], cache=work,
                               output_hidden_states=output_hidden_states,
                               logits_to_keep=0 if kept == e - s else max(kept, 1),
                               output_router_logits=output_router_logits, _rope_len=rope_len,
                               _inputs_embeds=None if inputs_embeds is None else inputs_embeds[:, s:e],
                               _cos_sin=None if cos_sin is None else (cos_sin[0][:, s:e], cos_sin[1][:, s:e]))
            out = out if isinstance(out, tuple) else (out,)
            if kept:
                logits.append(out[0][:, -kept:])  # [B, kept, V]
            if output_hidden_states:
                hidden.append(out[1])
            if output_router_logits:
                routers.append(out[-1])
        logits = np.concatenate(logits, axis=1)  # [B, keep, V]
        unbatch = (lambda a: a[0]) if single else (lambda a: a)
        extra = ()
        if output_router_logits:  # L x [B, T, E] (or None: a dense layer)
            extra = ([None if parts[0] is None else unbatch(np.concatenate(parts, axis=1)) for parts in zip(*routers)],)
        if not output_hidden_states:
            return (unbatch(logits), *extra) if extra else unbatch(logits)
        hidden = [unbatch(np.concatenate(parts, axis=1)) for parts in zip(*hidden)]  # L+1 x [B, T, D]
        return (unbatch(logits), hidden, *extra)


def check_cache(cache, cfg: QwenConfig, batch_size: int) -> None:
    """A cache given to forward / generate must be a KVCache made for this model and this batch size."""
    if not isinstance(cache, KVCache):
        raise InputError(f"cache must be a KVCache (model.new_cache(batch_size, capacity)), "
                         f"found {type(cache).__name__}")
    # Compared layer by layer: a Qwen3.5 cache holds keys/values only for its full-attention layers (None for
    # the others) and a linear-attention state for the rest; a dense model's cache has keys in every layer.
    attention = [k.shape[1::2] if k is not None else None for k in cache.keys]  # (K, Dh) per layer, or None
    expected = [None if cfg.is_hybrid and cfg.is_linear_attention(i) else (cfg.num_key_value_heads, cfg.head_dim)
                for i in range(cfg.num_hidden_layers)]
    states = [None if s is None else s.memory.shape[1:] for s in getattr(cache, "linear_states", [])]  # no
    #   s.recurrent here: reading it would put the writes a generation step keeps aside into S at every call
    expected_states = [(cfg.linear_num_value_heads, cfg.linear_key_head_dim, cfg.linear_value_head_dim)
                       if e is None else None for e in expected]
    if attention != expected or (cfg.is_hybrid and states != expected_states):
        layers, shown = len(cache.keys), next((a for a in attention if a is not None), None)
        heads, head_dim = shown if shown is not None else ("no", "-")
        raise InputError(f"cache was made for another model: {layers} layers of {heads} key/value heads of "
                         f"dim {head_dim}; this model has {cfg.num_hidden_layers} layers of "
                         f"{cfg.num_key_value_heads} heads of dim {cfg.head_dim}"
                         + (" (Qwen3.5: keys/values in its full-attention layers only)" if cfg.is_hybrid else ""))
    if cache.batch_size != batch_size:
        raise InputError(f"cache was made for batch size {cache.batch_size}, ids have {batch_size} rows")


def check_token_ids(ids, vocab_size: int) -> np.ndarray:
    """Validate token ids ([T] or [B, T], any integer type) and return them as an int64 array."""
    try:
        arr = np.asarray(ids)
    except (ValueError, TypeError, OverflowError) as e:  # ragged nested lists, unconvertible objects
        raise InputError(f"token ids must be a rectangular array of integers: {e}") from None
    if isinstance(ids, (str, bytes, bytearray)) or arr.dtype.kind in "US":  # text, or a list of texts
        raise InputError(f"token ids must be integers, found text ({_preview(ids)}): encode it with the tokenizer "
                         f"first, e.g. ids = minillm.load_tokenizer(path).encode(text)")
    if arr.ndim not in (1, 2):
        raise InputError(f"token ids must be shaped [T] or [B, T], found shape {list(arr.shape)}")
    if arr.size == 0:
        raise InputError(f"token ids are empty (shape {list(arr.shape)}): need at least one token")
    if not np.issubdtype(arr.dtype, np.integer):  # floats, bools, strings, objects (ints beyond 64 bits)
        raise InputError(f"token ids must be integers, found dtype {arr.dtype}")
    low, high = arr.min(), arr.max()  # compared before any cast: a uint64 id beyond 2**63 stays what it is
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise InputError(f"token id {bad} is out of range: the model's vocab_size is {vocab_size} "
                         f"(valid ids 0..{vocab_size - 1})")
    return arr.astype(np.int64)  # [T] or [B, T]


def _preview(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_attention_mask(mask, shape: tuple[int, int], allow_empty_rows: bool = False) -> np.ndarray:
    """Validate an attention mask (1 = real token, 0 = padding) and return it as bool [B, T].

    ``allow_empty_rows``: a row of only padding is allowed (a prefill chunk when continuing a cache).
    """
    if mask is None:
        return np.ones(shape, bool)  # [B, T]
    try:
        m = np.asarray(mask)
    except (ValueError, TypeError, OverflowError) as e:  # a ragged mask
        raise InputError(f"attention_mask must be a rectangular array of 0s and 1s: {e}") from None
    if m.ndim == 1:
        m = m[None]
    if m.shape != shape:
        raise InputError(f"attention_mask has shape {list(m.shape)}, expected {list(shape)} like the ids")
    if m.dtype.kind not in "biuf" or not np.isin(m, (0, 1)).all():
        raise InputError("attention_mask must hold only 0 (padding) and 1 (real token)")
    m = m.astype(bool)
    if not allow_empty_rows and not m.any(axis=1).all():
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
