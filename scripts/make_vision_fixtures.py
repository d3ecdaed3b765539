"""Make weights/tiny-qwen3.5-vision: a tiny Qwen3.5 checkpoint WITH a vision tower, and transformers' outputs.

    PYTHONPATH=. /work/refvenv/bin/python scripts/make_vision_fixtures.py

The checkpoint is the Hub layout (``Qwen3_5ForConditionalGeneration``: ``model.language_model.*``,
``model.visual.*``), float32, with the files a real Qwen3.5 carries for images: a tokenizer holding
<|vision_start|> <|vision_end|> <|image_pad|> <|video_pad|> as added special tokens (ids inside vocab_size,
matched by the config's ids), the real Qwen3.5 chat template (/work/shared/templates), and a
preprocessor_config.json with a small patch (4 pixels) and a small pixel budget so the images stay tiny.
Its text config is weights/tiny-qwen3.5-hub's; its vision config is made a little larger (2 blocks, head dim
16, a 6 x 6 learned position table) so that every convention of the encoder shows.

Every weight is drawn large (std 0.25; norms around 1, the position table std 1): a wrong convention
(patch order, interpolation corners, RoPE frequency layout, tanh vs erf GELU) moves the outputs far more
than float32 noise.

reference.npz holds, for PNG images this script draws itself (several sizes and aspect ratios, some resized
up, some down):
  image_{k}_pixel_values, image_{k}_grid_thw      the PIL image processor on image k alone
  {case}_input_ids, {case}_pixel_values, {case}_image_grid_thw   the processor on a chat (case: one, two, later)
  {case}_position_ids [3, T]                      get_rope_index (t, h, w)
  {case}_vision_pooler, {case}_vision_last         the vision encoder: merged features and its last hidden state
  {case}_logits, {case}_hidden_{i}                 the full forward
  {case}_greedy_new                                generate(do_sample=False, 8 tokens)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from tokenizers import AddedToken, Tokenizer

ROOT = Path(__file__).resolve().parents[1]
HUB = ROOT / "weights" / "tiny-qwen3.5-hub"
OUT = ROOT / "weights" / "tiny-qwen3.5-vision"
TEMPLATE = Path("/work/shared/templates/qwen3.5-hub.chat_template.jinja")
SEED = 1234
VISION_TOKENS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
VISION = {"depth": 2, "hidden_act": "gelu_pytorch_tanh", "hidden_size": 32, "in_channels": 3,
          "initializer_range": 0.02, "intermediate_size": 48, "model_type": "qwen3_5", "num_heads": 2,
          "num_position_embeddings": 36, "out_hidden_size": 64, "patch_size": 4,
          "rope_parameters": {"rope_theta": 10000.0, "rope_type": "axial"}, "spatial_merge_size": 2,
          "temporal_patch_size": 2, "deepstack_visual_indexes": []}
PREPROCESSOR = {"image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen3VLProcessor",
                "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],  # distinct per channel (CLIP's): a channel
                "image_std": [0.26862954, 0.26130258, 0.27577711],  # mix-up shows
                "merge_size": 2, "patch_size": 4, "temporal_patch_size": 2, "resample": 3,
                "rescale_factor": 0.00392156862745098, "size": {"longest_edge": 2304, "shortest_edge": 256}}
# (height, width): kept as is, resized up (min_pixels), resized down (max_pixels), rounded, odd aspect ratios
IMAGE_SIZES = [(16, 24), (7, 9), (120, 200), (13, 50), (61, 33), (300, 20)]


def draw_image(k: int, height: int, width: int) -> Image.Image:
    """Smooth gradients plus noise: resampling matters, and no two pixels are alike."""
    rng = np.random.default_rng(SEED + k)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([255 * y / max(height - 1, 1), 255 * x / max(width - 1, 1),
                     127 + 120 * np.sin((x + 2 * y) / 3.0)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def make_tokenizer() -> None:
    tok = Tokenizer.from_file(str(HUB / "tokenizer.json"))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in VISION_TOKENS])
    tok.save(str(OUT / "tokenizer.json"))
    cfg = json.loads((HUB / "tokenizer_config.json").read_text())
    cfg["extra_special_tokens"] = cfg["extra_special_tokens"] + VISION_TOKENS
    (OUT / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (OUT / "chat_template.jinja").write_text(TEMPLATE.read_text())


def randomize_vision(model) -> None:
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.model.visual.named_parameters():
            randn = torch.randn(p.shape, generator=g)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * randn)  # LayerNorm gains around 1
            elif name == "pos_embed.weight":
                p.copy_(randn)  # the learned position table: large, so its resampling shows
            else:
                p.copy_(0.25 * randn)


def main() -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from make_qwen35_fixtures import randomize

    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "images").mkdir(parents=True)
    make_tokenizer()
    tok = Tokenizer.from_file(str(OUT / "tokenizer.json"))
    ids = {t: tok.token_to_id(t) for t in VISION_TOKENS}
    hub = json.loads((HUB / "config.json").read_text())
    assert max(ids.values()) < hub["text_config"]["vocab_size"], ids

    config = transformers.Qwen3_5Config(text_config=hub["text_config"], vision_config=VISION,
                                        tie_word_embeddings=True, image_token_id=ids["<|image_pad|>"],
                                        video_token_id=ids["<|video_pad|>"],
                                        vision_start_token_id=ids["<|vision_start|>"],
                                        vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(SEED)
    model = transformers.Qwen3_5ForConditionalGeneration(config).eval()
    randomize(model, torch, seed=SEED)  # the language model, as the other Qwen3.5 fixtures
    randomize_vision(model)
    model.tie_weights()
    model.save_pretrained(OUT)
    (OUT / "generation_config.json").write_text((HUB / "generation_config.json").read_text())
    (OUT / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2) + "\n")

    image_processor = transformers.Qwen2VLImageProcessorPil(**{k: v for k, v in PREPROCESSOR.items()
                                                              if k not in ("image_processor_type",
                                                                           "processor_class")})
    hf_tok = transformers.AutoTokenizer.from_pretrained(OUT)
    # No video processor (it needs torchvision, absent here): skip the class check of that one argument.
    check = transformers.processing_utils.ProcessorMixin.check_argument_for_proper_class
    transformers.processing_utils.ProcessorMixin.check_argument_for_proper_class = (
        lambda self, name, arg: None if name == "video_processor" else check(self, name, arg))
    processor = transformers.Qwen3VLProcessor(image_processor=image_processor, tokenizer=hf_tok,
                                              chat_template=TEMPLATE.read_text())
    ref = transformers.Qwen3_5ForConditionalGeneration.from_pretrained(
        OUT, dtype=torch.float32, attn_implementation="eager").eval()

    result: dict[str, np.ndarray] = {}
    paths = []
    for k, (h, w) in enumerate(IMAGE_SIZES):
        path = OUT / "images" / f"image_{k}_{h}x{w}.png"
        draw_image(k, h, w).save(path)
        paths.append(path)
        out = image_processor(images=[Image.open(path)], return_tensors="np")
        result[f"image_{k}_pixel_values"] = out["pixel_values"]
        result[f"image_{k}_grid_thw"] = out["image_grid_thw"]
        print(f"image {k}: {h}x{w} -> grid {out['image_grid_thw'].tolist()}")

    rel = lambda p: str(p.relative_to(OUT))  # noqa: E731 - paths in the messages are relative to OUT
    cases = {
        "one": [{"role": "user", "content": [{"type": "image", "image": rel(paths[2])},
                                             {"type": "text", "text": "What is in the picture?"}]}],
        "two": [{"role": "user", "content": [{"type": "text", "text": "Compare"},
                                             {"type": "image", "image": rel(paths[3])},
                                             {"type": "text", "text": "with"},
                                             {"type": "image", "image": rel(paths[4])}]}],
        "later": [{"role": "user", "content": "Hello there"},
                  {"role": "assistant", "content": "Hi! Show me."},
                  {"role": "user", "content": [{"type": "image", "image": rel(paths[0])},
                                               {"type": "text", "text": "This one."}]}],
    }
    import os
    os.chdir(OUT)  # the relative image paths
    for case, messages in cases.items():
        enc = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                            return_dict=True, return_tensors="pt")
        input_ids, pixel_values, grid = enc["input_ids"], enc["pixel_values"], enc["image_grid_thw"]
        result[f"{case}_input_ids"] = input_ids[0].numpy()
        result[f"{case}_pixel_values"] = pixel_values.numpy()
        result[f"{case}_image_grid_thw"] = grid.numpy()
        with torch.no_grad():
            vis = ref.model.visual(pixel_values, grid_thw=grid)
            result[f"{case}_vision_pooler"] = vis.pooler_output.numpy()
            result[f"{case}_vision_last"] = vis.last_hidden_state.numpy()
            pos, _ = ref.model.get_rope_index(input_ids, mm_token_type_ids=enc["mm_token_type_ids"],
                                              image_grid_thw=grid)
            result[f"{case}_position_ids"] = pos[:, 0].numpy()
            ref.model.rope_deltas = None
            o = ref(**enc, output_hidden_states=True)
            result[f"{case}_logits"] = o.logits[0].numpy()
            for i, hs in enumerate(o.hidden_states):
                result[f"{case}_hidden_{i}"] = hs[0].numpy()
            ref.model.rope_deltas = None
            g = ref.generate(**enc, do_sample=False, max_new_tokens=8, eos_token_id=None, pad_token_id=0,
                             top_k=None, top_p=None, temperature=None, repetition_penalty=1.0)
            result[f"{case}_greedy_new"] = g[0, input_ids.shape[1]:].numpy()
        (OUT / f"{case}_messages.json").write_text(json.dumps(messages, indent=2) + "\n")
        print(f"{case}: {input_ids.shape[1]} tokens, grids {grid.tolist()}, logits std "
              f"{result[f'{case}_logits'].std():.3f}, greedy {result[f'{case}_greedy_new'].tolist()}")
    np.savez_compressed(OUT / "reference.npz", **result)
    print(sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
