"""A multi-turn chat that keeps its KV cache between turns.

Each turn, the whole conversation is rendered again with the checkpoint's chat template and tokenized.
Usually the tokens already in the cache (the earlier turns) are a prefix of the new prompt, so only the new
user message and the template's markers are computed. When the template rewrites history (Qwen3 drops
earlier turns' <think> blocks) or a reply re-tokenizes differently, the cache is cut back to the longest
common prefix: the keys and values before that point are still exactly right (causality), those after
are recomputed.

A conversation has room for ``capacity`` positions: by default the model's max_position_embeddings, the context
it was trained on (past it RoPE extrapolates and the replies decay). When a turn would not fit, the oldest whole
turns (a user message and the reply to it) are dropped, the system prompt kept, and the cache is rebuilt from
what is kept (the common prefix above: usually just the system prompt). Only a message too long by itself is
an error (``ConversationTooLong``).

Qwen3.5's linear-attention layers keep a running state instead of per-token keys and values, and a state
cannot be cut back to an earlier token. So for those models each turn's history (everything before the
assistant header) is computed first and the state saved there (``cache.snapshot()``); when the next prompt
differs after that point, the cache goes back to the snapshot instead of to the very start.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from ..errors import InputError
from .generate import default_stop_ids, stream_generate

SAMPLING_ARGUMENTS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed", "stop_token_ids",
                      "prefill_chunk_size", "prompt_lookup_num_tokens", "max_matching_ngram_size", "draft_schedule")


class ConversationTooLong(InputError):
    """A turn that does not fit the session's capacity even with every earlier turn dropped."""


class ChatSession:
    """Conversation state: the messages, the KV cache, and which token ids the cache holds.

    ``capacity``: positions the conversation may take (None: the model's max_position_embeddings).
    """

    def __init__(self, model, tokenizer, system: str | None = None, capacity: int | None = None,
                 enable_thinking: bool | None = None):
        self.model, self.tokenizer, self.enable_thinking = model, tokenizer, enable_thinking
        self.system = system
        self.cache = model.new_cache(1, model.config.max_position_embeddings if capacity is None else capacity)
        self.stop_ids = set(default_stop_ids(model))
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []
        self.cache.reset()
        self.cached_ids: list[int] = []  # exactly the tokens whose keys/values are in the cache
        self.last_turn = {"prompt_tokens": 0, "reused_tokens": 0, "new_tokens": 0, "dropped_turns": 0}

    def send(self, text: str, max_new_tokens: int = 256, **sampling) -> Iterator[str]:
        """Add a user message and stream the reply as text pieces (whole characters only).

        The oldest turns are dropped first if the conversation would not fit (``last_turn["dropped_turns"]``
        says how many). A turn that fails (a bad argument, a template error, a message too long by itself)
        leaves the session as it was before it.
        """
        if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, (bool, np.bool_)) \
                or max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be an integer >= 0, found {max_new_tokens!r}")
        unknown = sorted(set(sampling) - set(SAMPLING_ARGUMENTS))
        if unknown:
            raise InputError(f"unknown sampling argument(s) {unknown}; expected some of {list(SAMPLING_ARGUMENTS)}")
        max_new_tokens = int(max_new_tokens)
        before = self.messages
        reuse = 0
        try:
            self.messages, ids, dropped = self._fit([*before, {"role": "user", "content": text}], max_new_tokens)
            for a, b in zip(self.cached_ids, ids[:-1]):  # keep at least one prompt token to compute
                if a != b:
                    break
                reuse += 1
            reuse = reused = self.cache.truncate(reuse)  # a linear-attention state goes back to a snapshot (or 0)
            self.cached_ids = ids[:reuse]
            if self.cache.has_linear_state:
                history = self._history_length(ids)
                if reuse < history:  # compute the conversation up to the assistant header, and save the state there
                    self.model.forward(ids[reuse:history], cache=self.cache, logits_to_keep=1)
                    self.cache.snapshot()
                    reuse = history
                    self.cached_ids = ids[:reuse]
            decoder = self.tokenizer.stream_decoder(skip_special_tokens=True)
            new: list[int] = []
            for token in stream_generate(self.model, ids[reuse:], max_new_tokens, cache=self.cache, **sampling):
                new.append(int(token[0]))
                yield decoder.step(new[-1])
            yield decoder.flush()
        except Exception:  # roll the turn back: the messages as they were, the cache back to what is known in it
            self.messages = before
            # (a linear-attention state returns to its latest snapshot at or before that point: truncate says where)
            kept = self.cache.truncate(min(reuse, self.cache.length))
            self.cached_ids = self.cached_ids[:kept]
            raise
        # The last generated token was sampled but not yet run through the model: it is not in the cache.
        # (With max_new_tokens=0 nothing ran: the cache holds only the reused prefix.)
        self.cached_ids = ids + new[:-1] if new else ids[:reuse]
        assert self.cache.length == len(self.cached_ids)
        reply = new[:-1] if new and new[-1] in self.stop_ids else new
        self.messages.append({"role": "assistant",
                              "content": self.tokenizer.decode(reply, skip_special_tokens=True)})
        self.last_turn = {"prompt_tokens": len(ids), "reused_tokens": reused, "new_tokens": len(new),
                          "dropped_turns": dropped}

    def _fit(self, messages: list[dict], max_new_tokens: int) -> tuple[list[dict], list[int], int]:
        """Drop the oldest whole turns (never the system prompt) until the prompt + max_new_tokens fit.

        Returns the kept messages, their prompt ids, and how many turns were dropped.
        """
        first = 1 if messages[0]["role"] == "system" else 0  # the system prompt stays
        dropped = 0
        while True:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                     enable_thinking=self.enable_thinking, tokenize=True)
            if len(ids) + max_new_tokens <= self.cache.capacity:
                return messages, ids, dropped
            users = [i for i, m in enumerate(messages) if i >= first and m["role"] == "user"]
            if len(users) < 2:  # only this turn's message is left
                raise ConversationTooLong(
                    f"the conversation ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) does not fit the KV "
                    f"cache capacity of {self.cache.capacity} tokens, with no earlier turn left to drop; send a "
                    f"shorter message, ask for fewer new tokens, or start a session with a larger capacity")
            messages = messages[:first] + messages[users[1]:]  # the oldest turn: its message and its reply
            dropped += 1

    def _history_length(self, ids: list[int]) -> int:
        """How many leading tokens of ``ids`` are the conversation itself, before the generation prompt.

        Those tokens stay the same in the next turn's prompt; what follows (the assistant header, a
        <think> block the template may later drop) may not. 0 if the rendering is not a prefix of ids.
        """
        history = self.tokenizer.apply_chat_template(self.messages, add_generation_prompt=False,
                                                     enable_thinking=self.enable_thinking, tokenize=True)
        return len(history) if len(history) < len(ids) and ids[:len(history)] == history else 0
