"""Images through the whole model against transformers (weights/tiny-qwen3.5-vision/reference.npz): the image
features in the pad slots, multimodal RoPE, hidden states, logits, greedy continuations, the cache after an image."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minillm
from minillm.errors import InputError
from minillm.model.rope import rope_cos_sin
from minillm.vision.positions import mrope_cos_sin, mrope_positions

ROOT = Path(__file__).resolve().parents[1]
CKPT = ROOT / "weights" / "tiny-qwen3.5-vision"
REF = np.load(CKPT / "reference.npz")
CASES = ["one", "two", "later"]
TOLERANCE = 1e-3  # relative to each array's largest value; float32 noise on the hybrid is ~1e-5 here


@pytest.fixture(scope="module")
def model():
    return minillm.load_model(CKPT)


def inputs(case):
    return dict(pixel_values=REF[f"{case}_pixel_values"], image_grid_thw=REF[f"{case}_image_grid_thw"])


def relative_error(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("case", CASES)
def test_every_hidden_state_and_the_logits_equal_transformers(model, case):
    logits, hidden = model.forward(REF[f"{case}_input_ids"], output_hidden_states=True, **inputs(case))
    errors = [relative_error(h, REF[f"{case}_hidden_{i}"]) for i, h in enumerate(hidden)]
    assert len(hidden) == model.config.num_hidden_layers + 1
    assert max(errors) < TOLERANCE, f"per layer: {['%.1e' % e for e in errors]}"
    assert relative_error(logits, REF[f"{case}_logits"]) < TOLERANCE


@pytest.mark.parametrize("case", CASES)
def test_three_component_positions_equal_transformers_get_rope_index(model, case):
    ids = REF[f"{case}_input_ids"]
    grids = [tuple(g) for g in REF[f"{case}_image_grid_thw"]]
    positions, next_position, used = mrope_positions(ids, np.ones(len(ids), bool), grids,
                                                     model.vision.config.image_token_id, 2)
    np.testing.assert_array_equal(positions, REF[f"{case}_position_ids"])
    assert next_position == positions.max() + 1 and used == len(grids)


@pytest.mark.parametrize("case", CASES)
def test_greedy_continuation_after_images_equals_transformers(model, case):
    new = minillm.generate(model, REF[f"{case}_input_ids"], 8, temperature=0, stop_token_ids=[], **inputs(case))
    np.testing.assert_array_equal(new, REF[f"{case}_greedy_new"])


def test_an_image_in_a_later_turn_continues_a_kept_cache(model):
    """The first turns as text into a cache, then the turn with the image: the same logits as all at once."""
    ids = REF["later_input_ids"]
    first_pad = int(np.flatnonzero(ids == model.vision.config.image_token_id)[0])
    split = first_pad - 1  # the text before <|vision_start|>
    cache = model.new_cache(1, len(ids) + 8)
    model.forward(ids[:split], cache=cache)
    logits = model.forward(ids[split:], cache=cache, **inputs("later"))
    assert relative_error(logits, REF["later_logits"][split:]) < TOLERANCE
    assert cache.next_position[0] == REF["later_position_ids"].max() + 1  # not the token count
    assert cache.next_position[0] < len(ids)
    token = int(logits[-1].argmax())
    assert token == REF["later_greedy_new"][0]
    step = model.forward([token], cache=cache)  # decoding after the image: plain positions from the offset
    assert int(step[-1].argmax()) == REF["later_greedy_new"][1]


def test_a_left_padded_batch_with_an_image_equals_the_row_alone(model):
    ids = REF["one_input_ids"]
    pad = 3
    batch = np.stack([np.concatenate([np.zeros(pad, np.int64), ids]), np.concatenate([ids[:pad], ids])])
    batch[1, :pad] = ids[:pad]  # row 1: three more text tokens before the same prompt, no padding
    mask = np.ones_like(batch)
    mask[0, :pad] = 0
    row1_ids = batch[1]
    both = np.concatenate([REF["one_pixel_values"]] * 2)
    grids = np.concatenate([REF["one_image_grid_thw"]] * 2)
    logits = model.forward(batch, attention_mask=mask, pixel_values=both, image_grid_thw=grids)
    assert relative_error(logits[0, pad:], REF["one_logits"]) < TOLERANCE
    alone = model.forward(row1_ids, **inputs("one"))
    assert relative_error(logits[1], alone) < TOLERANCE


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 370), min_size=1, max_size=40), st.integers(0, 50))
def test_text_only_positions_equal_the_one_dimensional_ones(ids, start):
    ids = np.array(ids, np.int64)
    positions, next_position, _ = mrope_positions(ids, np.ones(len(ids), bool), [], 377, 2, start)
    plain = start + np.arange(len(ids))
    assert (positions == plain).all() and next_position == start + len(ids)
    inv_freq = np.float32(1) / np.float32(1e7) ** (np.arange(0, 16, 2, dtype=np.float32) / 16)
    cos, sin = mrope_cos_sin(positions[:, None], inv_freq, [3, 3, 2])
    cos1, sin1 = rope_cos_sin(plain[None], inv_freq)
    np.testing.assert_array_equal(cos, cos1)
    np.testing.assert_array_equal(sin, sin1)


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_permuting_patches_inside_the_merge_order_changes_the_features(data):
    model = _model()
    pixels, grid = REF["one_pixel_values"], REF["one_image_grid_thw"]
    block = data.draw(st.integers(0, len(pixels) // 4 - 1))
    order = data.draw(st.permutations(range(4)).filter(lambda p: list(p) != [0, 1, 2, 3]))
    permuted = pixels.copy()
    permuted[4 * block:4 * block + 4] = pixels[4 * block + np.array(order)]
    a = model.vision.encode(pixels, grid)
    b = model.vision.encode(permuted, grid)
    assert np.abs(a - b).max() > 1e-2 * np.abs(a).max()


_CACHE = {}


def _model():
    if "m" not in _CACHE:
        _CACHE["m"] = minillm.load_model(CKPT)
    return _CACHE["m"]


def test_a_grid_that_does_not_match_the_pixel_values_is_an_input_error(model):
    with pytest.raises(InputError, match="describes 112 patches, but pixel_values holds 111"):
        model.forward(REF["one_input_ids"], pixel_values=REF["one_pixel_values"][:-1],
                      image_grid_thw=REF["one_image_grid_thw"])


def test_more_pad_tokens_than_features_is_an_input_error(model):
    ids = REF["one_input_ids"]
    pad = model.vision.config.image_token_id
    extra = np.concatenate([ids[:5], [pad], ids[5:]])
    with pytest.raises(InputError, match=r"29 <\|image_pad\|> tokens .* 28 features"):
        model.forward(extra, **inputs("one"))


def test_an_image_given_to_a_text_only_model_is_an_input_error():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its unused vision tower (image tokens outside its vocabulary)
        text_only = minillm.load_model(ROOT / "weights" / "tiny-qwen3.5-hub")
    assert text_only.vision is None
    with pytest.raises(InputError, match="no vision tower"):
        text_only.forward(REF["one_input_ids"], **inputs("one"))


@pytest.mark.parametrize("case", CASES)
def test_load_processor_gives_transformers_input_ids_pixel_values_and_grids(case, monkeypatch):
    import json
    monkeypatch.chdir(CKPT)  # the messages name their images relative to the checkpoint
    messages = json.loads((CKPT / f"{case}_messages.json").read_text())
    enc = minillm.load_processor(CKPT).apply_chat_template(messages, add_generation_prompt=True)
    np.testing.assert_array_equal(enc["input_ids"], REF[f"{case}_input_ids"])
    np.testing.assert_array_equal(enc["image_grid_thw"], REF[f"{case}_image_grid_thw"])
    np.testing.assert_allclose(enc["pixel_values"], REF[f"{case}_pixel_values"], rtol=0, atol=1e-6)


def test_the_public_calls_work_as_written_with_a_pil_image(model):
    from PIL import Image
    proc = minillm.load_processor(CKPT)
    image = Image.open(sorted((CKPT / "images").glob("image_2_*.png"))[0])
    enc = proc.apply_chat_template([{"role": "user", "content": [
        {"type": "image", "image": image}, {"type": "text", "text": "What is in the picture?"}]}],
        add_generation_prompt=True)
    np.testing.assert_array_equal(enc["input_ids"], REF["one_input_ids"])
    logits = model.forward(enc["input_ids"], pixel_values=enc["pixel_values"], image_grid_thw=enc["image_grid_thw"])
    assert relative_error(logits, REF["one_logits"]) < TOLERANCE
    new = minillm.generate(model, enc["input_ids"], 8, temperature=0, stop_token_ids=[],
                           pixel_values=enc["pixel_values"], image_grid_thw=enc["image_grid_thw"])
    np.testing.assert_array_equal(new, REF["one_greedy_new"])


def test_a_template_that_drops_images_is_a_clear_error(tmp_path):
    import shutil
    from minillm.errors import TokenizerError
    for f in CKPT.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    (tmp_path / "chat_template.jinja").write_text(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content if m.content is string else '' }}"
        "<|im_end|>\n{% endfor %}")
    image = sorted((CKPT / "images").glob("*.png"))[0]
    with pytest.raises(TokenizerError, match="wrote 0 <\\|image_pad\\|> tokens for 1 images"):
        minillm.load_processor(tmp_path).apply_chat_template(
            [{"role": "user", "content": [{"type": "image", "image": str(image)}]}])


def test_the_projects_qwen35_template_renders_image_parts_as_the_release_template_does():
    from minillm.text.chat_template import render_chat_template
    own = (ROOT / "scripts" / "chat_templates" / "qwen3.5.jinja").read_text()
    release = (CKPT / "chat_template.jinja").read_text()  # the Qwen3.5 release's template
    messages = [{"role": "user", "content": [{"type": "text", "text": "Compare"}, {"type": "image"},
                                             {"type": "text", "text": "with"}, {"type": "image"}]}]
    for template in (own, (ROOT / "weights" / "tiny-qwen3.5-hub" / "chat_template.jinja").read_text()):
        ours = render_chat_template(template, messages, {}, add_generation_prompt=True)
        assert ours == render_chat_template(release, messages, {}, add_generation_prompt=True)
        assert ours.count("<|vision_start|><|image_pad|><|vision_end|>") == 2


def test_a_video_part_is_refused_clearly():
    with pytest.raises(InputError, match="videos are not supported"):
        minillm.load_processor(CKPT).apply_chat_template(
            [{"role": "user", "content": [{"type": "video", "video": "clip.mp4"}]}])


def _copy_with_config(tmp_path, edit):
    import json
    import shutil
    for f in CKPT.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    config = json.loads((CKPT / "config.json").read_text())
    edit(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_a_vision_tensor_that_does_not_match_the_config_is_a_checkpoint_error_naming_it(tmp_path):
    path = _copy_with_config(tmp_path, lambda c: c["vision_config"].update(intermediate_size=40))
    with pytest.raises(minillm.CheckpointError, match=r"model.visual.blocks.0.mlp.linear_fc1.weight': expected "
                                                      r"shape \[40, 32\].*found \[48, 32\]"):
        minillm.load_model(path)


def test_an_mrope_section_that_does_not_fit_the_rotary_dims_is_a_config_error(tmp_path):
    path = _copy_with_config(tmp_path, lambda c: c["text_config"]["rope_parameters"].update(mrope_section=[4, 4, 4]))
    with pytest.raises(minillm.ConfigError, match=r"mrope_section must be 3 counts .* summing to the 8 rotary"):
        minillm.load_model(path)


def test_a_long_input_computed_in_pieces_gives_the_same_logits_with_images(model, monkeypatch):
    import minillm.model.transformer as transformer
    monkeypatch.setattr(transformer, "QUERY_PIECE_SCORES", 4 * 16 * 75)  # pieces of 16 queries (H = 4)
    logits = model.forward(REF["two_input_ids"], **inputs("two"))
    assert relative_error(logits, REF["two_logits"]) < TOLERANCE
    cache = model.new_cache(1, 100)
    model.forward(REF["two_input_ids"], cache=cache, **inputs("two"))
    assert cache.next_position[0] == REF["two_position_ids"].max() + 1
