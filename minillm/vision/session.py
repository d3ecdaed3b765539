"""A chat with images (``minillm chat --image PATH``, ``/image PATH``): ChatSession, plus pictures.

Images attached with ``attach`` go into the next user message as content parts, before its text. A turn
with no image anywhere in the conversation is an ordinary ChatSession turn. Once the conversation holds an
image, each turn keeps what it can of the cache, as ChatSession does: the conversation up to the assistant
header (the history) is computed first, with the new images, and its state saved there; the next turn
continues from everything cached when that is a prefix of its prompt, else from the saved history, else
from an empty cache. Only new messages and new images are computed. One difference: after an image the
next position is not the number of cached tokens (vision/positions.py), so the position at each saved
history point is kept too, and restored with it.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import InputError
from ..generation.chat import SAMPLING_ARGUMENTS, ChatSession, ConversationTooLong
from ..generation.generate import stream_generate
from .chat import Processor
from .processor import open_image


class VisionChatSession(ChatSession):
    def __init__(self, model, tokenizer, processor: Processor, **kwargs):
        if model.vision is None:
            raise InputError(f"{model.path}: this model has no vision tower, so it cannot take images")
        self.processor = processor
        self.pending: list = []
        super().__init__(model, tokenizer, **kwargs)

    def reset(self) -> None:
        super().reset()
        self.pending = []
        self.has_images = False
        self.positions_at: dict[int, int] = {}  # cache length at a saved history point -> its next position

    def attach(self, image) -> None:
        """Add an image (a path or a PIL image) to the next message; a file that is not an image fails now."""
        open_image(image)
        self.pending.append(image)

    def send(self, text: str, max_new_tokens: int = 256, **sampling) -> Iterator[str]:
        if not self.pending and not self.has_images:
            yield from super().send(text, max_new_tokens, **sampling)
            return
        unknown = sorted(set(sampling) - set(SAMPLING_ARGUMENTS))
        if unknown:
            raise InputError(f"unknown sampling argument(s) {unknown}; expected some of {list(SAMPLING_ARGUMENTS)}")
        parts = [{"type": "image", "image": image} for image in self.pending] + [{"type": "text", "text": text}]
        self.messages.append({"role": "user", "content": parts})
        try:
            enc = self.processor.apply_chat_template(self.messages, add_generation_prompt=True,
                                                     enable_thinking=self.enable_thinking)
            ids = enc["input_ids"]
            if len(ids) + max_new_tokens > self.cache.capacity:
                raise ConversationTooLong(f"the conversation ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) does "
                                 f"not fit the KV cache capacity of {self.cache.capacity} tokens; /reset or use "
                                 f"a larger --context")
            start, done = self._continuation(ids.tolist())  # the cache holds ids[:start], `done` images
            reused = start
            pixels = grids = None
            if enc["image_grid_thw"] is not None and done < len(enc["image_grid_thw"]):
                every = enc["image_grid_thw"]  # [I, 3]
                first = int(every[:done].prod(-1).sum())  # patches of the images the cache already holds
                pixels, grids = enc["pixel_values"][first:], every[done:]  # the new images only
            history = self._history_length(ids.tolist())  # up to the assistant header (0: not a prefix)
            if start < history:  # compute the history with the new images, and save the state there
                self.model.forward(ids[start:history], cache=self.cache, logits_to_keep=1, pixel_values=pixels,
                                   image_grid_thw=grids)
                self.cache.snapshot()
                self.positions_at[history] = int(self.cache.next_position[0])
                start, pixels, grids = history, None, None
            decoder = self.tokenizer.stream_decoder(skip_special_tokens=True)
            new: list[int] = []
            for token in stream_generate(self.model, ids[start:], max_new_tokens, cache=self.cache,
                                         pixel_values=pixels, image_grid_thw=grids, **sampling):
                new.append(int(token[0]))
                yield decoder.step(new[-1])
            yield decoder.flush()
        except Exception:  # start the next turn over: the message out, the cache emptied
            self.messages.pop()
            self.cache.reset()
            self.cached_ids, self.positions_at = [], {}
            raise
        self.pending, self.has_images = [], True
        self.cached_ids = ids.tolist() + new[:-1]  # the last new token was sampled, not yet run: not in the cache
        assert self.cache.length == len(self.cached_ids)
        reply = new[:-1] if new and new[-1] in self.stop_ids else new
        self.messages.append({"role": "assistant", "content": self.tokenizer.decode(reply, skip_special_tokens=True)})
        self.last_turn = {"prompt_tokens": len(ids), "reused_tokens": reused, "new_tokens": len(new)}

    def _continuation(self, ids: list[int]) -> tuple[int, int]:
        """Keep what the cache can give to ``ids``: returns (tokens kept, images among them).

        All the cached tokens when they are a prefix of ids (not ending inside an image); else the longest
        saved history point they share, with its position restored; else nothing (the cache is emptied).
        """
        n = len(self.cached_ids)
        pad = self.model.vision.config.image_token_id
        if 0 < n < len(ids) and ids[:n] == self.cached_ids and not (ids[n - 1] == pad and ids[n] == pad):
            keep = n
        else:
            common = next((i for i, (a, b) in enumerate(zip(self.cached_ids, ids[:-1])) if a != b),
                          min(n, len(ids) - 1))
            keep = max((h for h in self.positions_at if h <= common), default=0)
            if self.cache.truncate(keep) != keep:
                keep = self.cache.truncate(0)
            if keep:
                self.cache.next_position[:] = self.positions_at[keep]  # not the token count after an image
            self.positions_at = {h: p for h, p in self.positions_at.items() if h <= keep}
            self.cached_ids = self.cached_ids[:keep]
        runs = sum(1 for i in range(keep) if ids[i] == pad and (i == 0 or ids[i - 1] != pad))  # images in it
        return keep, runs

    def _history_length(self, ids: list[int]) -> int:
        """Tokens of ``ids`` before the generation prompt (0 if the rendering without it is not a prefix)."""
        history = self.processor.apply_chat_template(self.messages, add_generation_prompt=False,
                                                     enable_thinking=self.enable_thinking)["input_ids"].tolist()
        return len(history) if len(history) < len(ids) and ids[:len(history)] == history else 0
