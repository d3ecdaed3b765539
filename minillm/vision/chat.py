"""load_processor: chat messages with images -> input_ids, pixel_values, image_grid_thw (as transformers'
Qwen3VLProcessor.apply_chat_template does).

    proc = minillm.load_processor("weights/tiny-qwen3.5-vision")
    enc = proc.apply_chat_template([{"role": "user", "content": [
        {"type": "image", "image": "photo.png"},            # a path, or a PIL image
        {"type": "text", "text": "What is in the picture?"}]}], add_generation_prompt=True)
    logits = model.forward(enc["input_ids"], pixel_values=enc["pixel_values"], image_grid_thw=enc["image_grid_thw"])

Three steps:
  1. the checkpoint's chat template renders each image part as <|vision_start|><|image_pad|><|vision_end|>:
     one pad token per image, whatever its size;
  2. the image processor (processor.py) turns each image into patches and its grid (1, gh, gw);
  3. each image's single pad token is expanded to gh * gw / m^2 pad tokens, one per feature the encoder
     will give, and the text is tokenised. The model writes feature k over pad token k.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checkpoint.hub import resolve_model_path
from ..checkpoint.paths import checkpoint_directory
from ..errors import InputError, TokenizerError
from ..text.tokenizer import Tokenizer, load_tokenizer
from .processor import ImageProcessorConfig, load_image_processor_config, preprocess_images

IMAGE_PAD = "<|image_pad|>"


class Processor:
    """A checkpoint's tokenizer, image processor and chat template, together."""

    def __init__(self, tokenizer: Tokenizer, image_config: ImageProcessorConfig):
        self.tokenizer, self.image_config = tokenizer, image_config
        if tokenizer.token_to_id(IMAGE_PAD) is None:
            raise TokenizerError(f"{tokenizer.path}: the tokenizer has no {IMAGE_PAD} token: this checkpoint "
                                 f"cannot take images")

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = False, **variables) -> dict:
        """{"input_ids": [T] int64, "pixel_values": [N, C*Tp*P*P] float32, "image_grid_thw": [I, 3] int64}.

        Without images, pixel_values and image_grid_thw are None. ``variables`` go to the template
        (``enable_thinking``, ``tools``, ...).
        """
        images, plain = split_images(messages)
        text = self.tokenizer.apply_chat_template(plain, add_generation_prompt=add_generation_prompt, **variables)
        pieces = text.split(IMAGE_PAD)
        if len(pieces) - 1 != len(images):
            raise TokenizerError(f"the chat template wrote {len(pieces) - 1} {IMAGE_PAD} tokens for {len(images)} "
                                 f"images: it must render each image part as <|vision_start|>{IMAGE_PAD}"
                                 f"<|vision_end|> (the template of {self.tokenizer.path} does not)")
        if not images:
            return {"input_ids": np.array(self.tokenizer.encode(text), np.int64), "pixel_values": None,
                    "image_grid_thw": None}
        pixel_values, image_grid_thw = preprocess_images(images, self.image_config)  # [N, ...], [I, 3]
        merge = self.image_config.merge_size ** 2
        expanded = pieces[0]
        for grid, piece in zip(image_grid_thw, pieces[1:]):
            expanded += IMAGE_PAD * (int(grid.prod()) // merge) + piece  # one pad per merged patch
        return {"input_ids": np.array(self.tokenizer.encode(expanded), np.int64), "pixel_values": pixel_values,
                "image_grid_thw": image_grid_thw}


def split_images(messages) -> tuple[list, list[dict]]:
    """The images of the messages' content parts, in order, and the messages with each image part replaced
    by {"type": "image"} (all the template needs; a PIL image is not data a template may see)."""
    if not isinstance(messages, (list, tuple)) or not all(isinstance(m, dict) for m in messages):
        raise InputError("messages must be a list of dicts like {'role': 'user', 'content': 'Hi'}")
    images, plain = [], []
    for message in messages:
        content = message.get("content")
        if isinstance(content, (list, tuple)):
            parts = []
            for part in content:
                if isinstance(part, dict) and (part.get("type") == "image" or "image" in part):
                    if part.get("image") is None:
                        raise InputError(f"an image part needs its image: {{'type': 'image', 'image': "
                                         f"'photo.png'}}, found keys {sorted(part)}")
                    images.append(part["image"])
                    part = {"type": "image"}
                elif isinstance(part, dict) and (part.get("type") == "image_url" or "image_url" in part):
                    raise InputError("image_url parts are not fetched (no network): save the picture and pass "
                                     "{'type': 'image', 'image': 'photo.png'} (a path or a PIL image)")
                elif isinstance(part, dict) and (part.get("type") == "video" or "video" in part):
                    raise InputError("videos are not supported (images only); see docs/VISION.md")
                parts.append(part)
            message = {**message, "content": parts}
        plain.append(message)
    return images, plain


def load_processor(path: str | Path) -> Processor:
    """The processor of a checkpoint with a vision tower: tokenizer + image processor + chat template.

    ``path``: a checkpoint directory or a Hub id (as load_model).
    """
    directory = checkpoint_directory(resolve_model_path(path) if isinstance(path, str) else path, TokenizerError)
    return Processor(load_tokenizer(directory), load_image_processor_config(directory))
