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
"""

from __future__ import annotations

import numpy as np

from ..checkpoint.config import QwenConfig
from ..errors import InputError


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
        per_slot = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * 4 + 9
        try:
            self.keys = [np.zeros(shape, np.float32) for _ in range(config.num_hidden_layers)]  # L x [B, K, cap, Dh]
            self.values = [np.zeros(shape, np.float32) for _ in range(config.num_hidden_layers)]
            self.key_valid = np.zeros((batch_size, capacity), bool)  # [B, capacity]: False for padding slots
            self.token_ids = np.zeros((batch_size, capacity), np.int64)  # [B, capacity]: the id in each slot
        except (MemoryError, ValueError) as e:  # ValueError: a shape larger than NumPy can index
            raise InputError(f"KVCache: {batch_size} rows x {capacity:,} positions need "
                             f"{batch_size * capacity * per_slot / 2 ** 30:,.1f} GiB, which cannot be "
                             f"allocated ({type(e).__name__}); ask for fewer positions") from None
        self.next_position = np.zeros(batch_size, np.int64)  # [B]: RoPE position of each row's next token
        self.config, self.batch_size, self.capacity, self.length = config, batch_size, capacity, 0

    def grow(self, capacity: int) -> None:
        """Room for ``capacity`` positions, keeping what is held (a copy into larger arrays)."""
        if capacity <= self.capacity:
            return
        held = self.length
        bigger = KVCache(self.config, self.batch_size, capacity)
        for new, old in zip(bigger.keys + bigger.values, self.keys + self.values):
            new[:, :, :held] = old[:, :, :held]
        bigger.key_valid[:, :held] = self.key_valid[:, :held]
        bigger.token_ids[:, :held] = self.token_ids[:, :held]
        self.keys, self.values = bigger.keys, bigger.values
        self.key_valid, self.token_ids, self.capacity = bigger.key_valid, bigger.token_ids, capacity

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.keys) + sum(a.nbytes for a in self.values)

    def check_room(self, num_new: int) -> None:
        if self.length + num_new > self.capacity:
            raise InputError(f"KV cache full: {self.length} positions cached + {num_new} new > capacity "
                             f"{self.capacity}; create the cache with a larger capacity")

    def layer(self, i: int) -> LayerCache:
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

    def truncate(self, length: int) -> None:
        """Keep only the first ``length`` positions (e.g. the prefix a new chat prompt shares with the old).

        Their keys and values stay valid: each depends only on the tokens up to it (causality).
        """
        if not 0 <= length <= self.length:
            raise InputError(f"cannot truncate a cache of length {self.length} to {length}")
        self.key_valid[:, length:] = False
        self.next_position = self.key_valid[:, :length].sum(axis=1).astype(np.int64)
        self.length = length

    def reset(self) -> None:
        """Forget everything (the arrays are kept and overwritten)."""
        self.truncate(0)
