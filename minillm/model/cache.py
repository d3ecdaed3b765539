"""The KV cache: keys and values of every token seen so far, kept so each new token costs one step.

Why a cache gives the same numbers as recomputing everything
------------------------------------------------------------
In a causal decoder, the keys and values at position s depend only on tokens 0..s (the mask hides the
future, and every other operation works token by token). So once computed, they never change: when token
t+1 arrives, the keys/values of tokens 0..t are exactly what a full forward pass over t+2 tokens would
recompute. Storing them means each decode step only projects the *new* token and attends over the stored
keys. What it saves is the factor T on the *matrix products*: without it, step t re-projects all t tokens
through every weight matrix (O(t*P) for P parameters) and recomputes O(t^2*D) attention scores; with it,
step t projects one token (O(P)) and scores one query against t keys (O(t*D)). Attention over the past
still grows with t: a cache makes decoding linear per step, not constant.

One exception, where cached keys are NOT what a full pass would recompute: dynamic RoPE beyond
``max_position_embeddings``. Its base grows with the current sequence length, so a full pass over a longer
sequence rotates every key with a new base, while the cached keys keep the rotation of the step that wrote
them. transformers' cache behaves the same way (it never re-rotates); the model was trained without either.

What is stored (and the traps):
* keys AFTER q/k-norm and RoPE, values as projected. Keys are rotated once, with their own absolute
  position; they must never be re-rotated when more tokens arrive.
* only the K key/value heads (GQA), not one copy per query head.
* the position of the next token is the number of real tokens seen so far in that row, NOT the number of
  cache slots (with left padding they differ), and it is counted once, after the whole step.

Layout: per layer, ``keys`` and ``values`` [B, K, capacity, Dh], allocated once up front; beside them, for
every slot, whether it holds a real token (``key_valid``) and which token id it holds (``token_ids``: the
repetition penalty must see the whole conversation, not only the ids of the latest call). Slots
0..length-1 are filled; a step of T tokens writes slots length..length+T-1 (no concatenation). Only
``generate`` ever grows a cache (``grow``: a copy into arrays twice as long), when it made the cache itself:
it cannot know how many tokens it will produce, and ``max_new_tokens=10**9`` must not allocate 10**9 slots.

Hybrid models (Qwen3.5): a per-layer cache
------------------------------------------
Only the full-attention layers (one in four) keep keys and values. A linear-attention layer keeps a
``LinearAttentionState`` instead (gated_deltanet.py): its conv's last W-1 inputs and its delta-rule memory
S [Hv, Dk, Dv], a fixed size per sequence however long the context grows. The same causality argument
holds (the state after token t depends only on tokens 0..t), so prefill + decode equals one full pass.

The trap is going back. Keys and values can be cut at any position, but a memory that has absorbed
tokens t+1.. cannot un-absorb them. So ``truncate`` can only return to a position where the states were
saved (``snapshot()``, e.g. at the end of each chat turn's history) or to 0, and it returns the position it
really kept; the caller recomputes from there rather than continuing from a wrong state. The slot
bookkeeping (``key_valid``, ``token_ids``, ``seen_ids``) is per position and the same as for a dense model,
so the repetition penalty sees the whole conversation here too; ``grow`` copies the keys and values of
the attention layers and keeps the linear-attention states (their size does not depend on the capacity).
"""

from __future__ import annotations

import numpy as np

from ..checkpoint.config import QwenConfig
from ..errors import InputError
from .gated_deltanet import LinearAttentionState

MAX_SNAPSHOTS = 4  # saved linear-attention states kept per cache (about 20 MB each for Qwen3.5-0.8B)


class LayerCache:
    """One layer's slice of the cache, handed to attention for one forward step."""

    def __init__(self, keys: np.ndarray, values: np.ndarray, start: int):
        self.keys, self.values, self.start = keys, values, start

    def append(self, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Store the new k, v [B, K, T, Dh] at slots start..start+T-1; return all keys/values [B, K, S, Dh]."""
        end = self.start + k.shape[2]
        self.keys[:, :, self.start:end] = k  # [B, K, T, Dh] written in place
        self.values[:, :, self.start:end] = v
        return self.keys[:, :, :end], self.values[:, :, :end]  # [B, K, S, Dh] views, no copy


class KVCache:
    """Preallocated keys/values for every layer, for a batch of B rows and up to ``capacity`` positions."""

    def __init__(self, config: QwenConfig, batch_size: int, capacity: int):
        for name, value in (("batch_size", batch_size), ("capacity", capacity)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) or value < 1:
                raise InputError(f"KVCache: {name} must be an integer >= 1, found {value!r}")
        batch_size, capacity = int(batch_size), int(capacity)
        shape = (batch_size, config.num_key_value_heads, capacity, config.head_dim)  # [B, K, capacity, Dh]
        linear = [config.is_hybrid and config.is_linear_attention(i) for i in range(config.num_hidden_layers)]
        per_slot = kv_bytes_per_token(config) + 9  # keys and values of the attention layers, key_valid, token_ids
        try:
            # L entries each; None where the layer keeps no keys/values (linear attention) or no state (attention)
            self.keys = [None if lin else np.zeros(shape, np.float32) for lin in linear]  # L x [B, K, cap, Dh]
            self.values = [None if lin else np.zeros(shape, np.float32) for lin in linear]
            self.linear_states = [new_linear_state(config, batch_size) if lin else None for lin in linear]
            self.key_valid = np.zeros((batch_size, capacity), bool)  # [B, capacity]: False for padding slots
            self.token_ids = np.zeros((batch_size, capacity), np.int64)  # [B, capacity]: the id in each slot
        except (MemoryError, ValueError) as e:  # ValueError: a shape larger than NumPy can index
            raise InputError(f"KVCache: {batch_size} rows x {capacity:,} positions need "
                             f"{batch_size * capacity * per_slot / 2 ** 30:,.1f} GiB, which cannot be "
                             f"allocated ({type(e).__name__}); ask for fewer positions") from None
        self.snapshots: dict[int, list[LinearAttentionState | None]] = {}  # length -> copies of linear_states
        self.next_position = np.zeros(batch_size, np.int64)  # [B]: RoPE position of each row's next token
        self.config, self.batch_size, self.capacity, self.length = config, batch_size, capacity, 0

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` positions, keeping what is held (a copy into larger arrays)."""
        if capacity <= self.capacity:
            return
        held = self.length
        bigger = KVCache(self.config, self.batch_size, capacity)
        for new, old in zip(bigger.keys + bigger.values, self.keys + self.values):
            if old is not None:  # None: a linear-attention layer, whose state (kept as is) has no positions
                new[:, :, :held] = old[:, :, :held]
        bigger.key_valid[:, :held] = self.key_valid[:, :held]
        bigger.token_ids[:, :held] = self.token_ids[:, :held]
        self.keys, self.values = bigger.keys, bigger.values
        self.key_valid, self.token_ids, self.capacity = bigger.key_valid, bigger.token_ids, capacity

    @property
    def nbytes(self) -> int:
        states = [s for held in [self.linear_states, *self.snapshots.values()] for s in held if s is not None]
        return sum(a.nbytes for a in self.keys + self.values if a is not None) + sum(s.nbytes for s in states)

    @property
    def has_linear_state(self) -> bool:
        return any(s is not None for s in self.linear_states)

    def check_room(self, num_new: int) -> None:
        if self.length + num_new > self.capacity:
            raise InputError(f"KV cache full: {self.length} positions cached + {num_new} new > capacity "
                             f"{self.capacity}; create the cache with a larger capacity")

    def layer(self, i: int) -> LayerCache | LinearAttentionState:
        """Layer i's part: a KV ``LayerCache`` for attention, the ``LinearAttentionState`` for linear attention."""
        if self.linear_states[i] is not None:
            return self.linear_states[i]
        return LayerCache(self.keys[i], self.values[i], self.length)

    def advance(self, valid: np.ndarray, ids: np.ndarray | None = None) -> None:
        """After a step of T tokens (valid [B, T] bool: False for padding; ids [B, T]), move the write head."""
        T = valid.shape[1]
        self.key_valid[:, self.length:self.length + T] = valid
        if ids is not None:
            self.token_ids[:, self.length:self.length + T] = ids
        self.next_position += valid.sum(axis=1)
        self.length += T

    def seen_ids(self) -> list[np.ndarray]:
        """For each row, the ids of the real tokens the cache holds (what transformers calls input_ids)."""
        held = self.key_valid[:, :self.length]  # [B, length]
        return [self.token_ids[b, :self.length][held[b]] for b in range(self.batch_size)]

    def truncate(self, length: int) -> int:
        """Keep only the first ``length`` positions (e.g. the prefix a new chat prompt shares with the old).

        Their keys and values stay valid: each depends only on the tokens up to it (causality). A
        linear-attention state cannot be rewound: with one, the cache goes back to the latest snapshot at or
        before ``length`` (or to 0). Returns the number of positions actually kept.
        """
        if not 0 <= length <= self.length:
            raise InputError(f"cannot truncate a cache of length {self.length} to {length}")
        if self.has_linear_state and length < self.length:
            length = max((n for n in self.snapshots if n <= length), default=0)
            saved = self.snapshots.get(length) or [None] * len(self.linear_states)  # None: back to zeros
            for state, copy in zip(self.linear_states, saved):
                if state is not None:
                    state.conv[...] = 0 if copy is None else copy.conv  # [B, W-1, C]
                    state.recurrent[...] = 0 if copy is None else copy.recurrent  # [B, Hv, Dk, Dv]
            self.snapshots = {n: states for n, states in self.snapshots.items() if n <= length}
        self.key_valid[:, length:] = False
        self.next_position = self.key_valid[:, :length].sum(axis=1).astype(np.int64)
        self.length = length
        return length

    def snapshot(self) -> None:
        """Save the linear-attention states at the current length, so ``truncate`` can come back here.

        (Nothing to save for a model without linear attention: its cache can be cut anywhere.)
        """
        if not self.has_linear_state:
            return
        self.snapshots[self.length] = [None if s is None else LinearAttentionState(s.conv.copy(), s.recurrent.copy())
                                       for s in self.linear_states]
        while len(self.snapshots) > MAX_SNAPSHOTS:
            del self.snapshots[min(self.snapshots)]

    def reset(self) -> None:
        """Forget everything (the arrays are kept and overwritten)."""
        self.truncate(0)


def new_linear_state(config: QwenConfig, batch_size: int) -> LinearAttentionState:
    """Zeros: the state of a linear-attention layer before its first token."""
    B, W, C = batch_size, config.linear_conv_kernel_dim, config.linear_conv_channels
    Hv, Dk, Dv = config.linear_num_value_heads, config.linear_key_head_dim, config.linear_value_head_dim
    return LinearAttentionState(conv=np.zeros((B, W - 1, C), np.float32),  # [B, W-1, C]
                                recurrent=np.zeros((B, Hv, Dk, Dv), np.float32))  # [B, Hv, Dk, Dv]


def kv_bytes_per_token(config: QwenConfig) -> int:
    """float32 bytes the KV cache grows by per position and sequence (attention layers only)."""
    attention_layers = sum(not (config.is_hybrid and config.is_linear_attention(i))
                           for i in range(config.num_hidden_layers))
    return 2 * attention_layers * config.num_key_value_heads * config.head_dim * 4


def linear_state_bytes(config: QwenConfig) -> int:
    """float32 bytes of all linear-attention states of one sequence: fixed, whatever the context length."""
    if not config.is_hybrid:
        return 0
    state = new_linear_state(config, 1)
    return sum(config.is_linear_attention(i) for i in range(config.num_hidden_layers)) * \
        (state.conv.nbytes + state.recurrent.nbytes)
