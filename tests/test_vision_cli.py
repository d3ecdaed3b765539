"""`minillm chat --image PATH` and `/image PATH` on the tiny Qwen3.5 with a vision tower."""

import subprocess
import sys
from pathlib import Path


import minillm

CKPT = Path(__file__).resolve().parents[1] / "weights" / "tiny-qwen3.5-vision"
IMAGE = str(sorted((CKPT / "images").glob("image_0_*.png"))[0])


def expected_reply(messages, n=6) -> str:
    model, proc = minillm.load_model(CKPT), minillm.load_processor(CKPT)
    enc = proc.apply_chat_template(messages, add_generation_prompt=True)
    new = minillm.generate(model, enc["input_ids"], n, temperature=0, pixel_values=enc["pixel_values"],
                           image_grid_thw=enc["image_grid_thw"])
    return proc.tokenizer.decode(new.tolist(), skip_special_tokens=True)


def chat(*args, stdin: str) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "minillm", "chat", "--model", str(CKPT), "--temperature", "0",
                          "--max-new-tokens", "6", *args], input=stdin, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run


def test_chat_with_an_image_answers_as_generate_on_the_processors_encoding():
    run = chat("--image", IMAGE, stdin="What is this?\n")
    messages = [{"role": "user", "content": [{"type": "image", "image": IMAGE},
                                             {"type": "text", "text": "What is this?"}]}]
    assert run.stdout == expected_reply(messages) + "\n"


def test_slash_image_attaches_to_the_next_message_and_a_corrupt_file_is_reported(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    run = chat(stdin=f"/image {bad}\n/image {IMAGE}\nWhat is this?\n")
    assert "broken.png" in run.stderr and "not a readable image" in run.stderr
    messages = [{"role": "user", "content": [{"type": "image", "image": IMAGE},
                                             {"type": "text", "text": "What is this?"}]}]
    assert run.stdout == expected_reply(messages) + "\n"


def test_inspect_counts_the_vision_tower_as_used(capsys):
    from minillm.tools.cli import main
    assert main(["inspect", str(CKPT), "--tensors", "0"]) == 0
    out = capsys.readouterr().out
    assert "vision tower: 2 blocks" in out and "(not used)" not in out and "vision (unused)" not in out


def test_a_chat_with_images_continues_its_cache_and_answers_as_a_fresh_computation():
    from minillm.vision.session import VisionChatSession
    model, proc = minillm.load_model(CKPT), minillm.load_processor(CKPT)
    session = VisionChatSession(model, proc.tokenizer, proc, capacity=512)
    images = sorted((CKPT / "images").glob("*.png"))
    turns = [([images[2]], "What is this?"), ([], "And the colours?"), ([images[4]], "Compare it.")]
    messages, reused = [], []
    for attached, text in turns:
        for image in attached:
            session.attach(image)
        got = "".join(session.send(text, 6, temperature=0))
        messages.append({"role": "user", "content": [{"type": "image", "image": str(i)} for i in attached]
                         + [{"type": "text", "text": text}]})
        enc = proc.apply_chat_template(messages, add_generation_prompt=True)
        new = minillm.generate(model, enc["input_ids"], 6, temperature=0, pixel_values=enc["pixel_values"],
                               image_grid_thw=enc["image_grid_thw"])
        assert got == proc.tokenizer.decode(new.tolist(), skip_special_tokens=True)
        messages.append(session.messages[-1])
        reused.append(session.last_turn["reused_tokens"])
    assert reused[0] == 0 and 0 < reused[1] < reused[2]  # later turns continue the cache, after an image
