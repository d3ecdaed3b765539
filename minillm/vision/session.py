"""A chat with images (``minillm chat --image PATH``, ``/image PATH``): ChatSession, plus pictures.

Images attached with ``attach`` go into the next user message as content parts, before its text. A turn
with no image anywhere in the conversation is an ordinary ChatSession turn (the cache reused across
turns). Once the conversation holds an image, each turn runs the whole conversation again (its images
included) from an empty cache: simple and exact, since the cache's positions after an image are not the
token count, which ChatSession's prefix reuse assumes (a known cost: every turn re-encodes the images).
"""

from __future__ import annotations

from typing import Iterator

from ..errors import InputError
from ..generation.chat import SAMPLING_ARGUMENTS, ChatSession
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
                raise InputError(f"the conversation ({len(ids)} tokens) + max_new_tokens ({max_new_tokens}) does "
                                 f"not fit the KV cache capacity of {self.cache.capacity} tokens; /reset or use "
                                 f"a larger --context")
            self.cache.reset()
            decoder = self.tokenizer.stream_decoder(skip_special_tokens=True)
            new: list[int] = []
            for token in stream_generate(self.model, ids, max_new_tokens, cache=self.cache,
                                         pixel_values=enc["pixel_values"], image_grid_thw=enc["image_grid_thw"],
                                         **sampling):
                new.append(int(token[0]))
                yield decoder.step(new[-1])
            yield decoder.flush()
        except Exception:
            self.messages.pop()
            self.cache.reset()
            self.cached_ids = []
            raise
        self.pending, self.has_images = [], True
        self.cache.reset()  # the next turn starts over (see the module docstring)
        self.cached_ids = []
        reply = new[:-1] if new and new[-1] in self.stop_ids else new
        self.messages.append({"role": "assistant", "content": self.tokenizer.decode(reply, skip_special_tokens=True)})
        self.last_turn = {"prompt_tokens": len(ids), "reused_tokens": 0, "new_tokens": len(new)}
