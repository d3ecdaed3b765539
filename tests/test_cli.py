"""The minillm command, run as a user would (a subprocess for the pipe-driven chat)."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

import minillm
from minillm.tools.cli import BUNDLED_MODEL, main
from conftest import WEIGHTS, tiny_model


def test_generate_on_the_bundled_model_streams_the_greedy_text(capsys):
    assert main(["generate", "Hello world", "--max-new-tokens", "8", "--temperature", "0"]) == 0
    out, err = capsys.readouterr()
    tok = minillm.load_tokenizer(BUNDLED_MODEL)
    model = tiny_model(BUNDLED_MODEL.name)
    new = minillm.generate(model, tok.encode("Hello world"), 8, temperature=0.0)
    assert out == tok.decode(new, skip_special_tokens=True) + "\n"  # the text ends its line
    assert "prompt tokens" in err and "new tokens" in err and "tok/s" in err


@pytest.mark.parametrize("schedule", ["adaptive", "constant"])
def test_generate_speculative_prints_the_greedy_text_and_the_drafting_figures(capsys, schedule):
    prompt = "To be, or not to be, that is the question. To be, or not"
    argv = ["generate", prompt, "--max-new-tokens", "24", "--temperature", "0", "--speculative", "6",
            "--draft-schedule", schedule]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    tok = minillm.load_tokenizer(BUNDLED_MODEL)
    new = minillm.generate(tiny_model(BUNDLED_MODEL.name), tok.encode(prompt), 24, temperature=0.0)
    assert out == tok.decode(new, skip_special_tokens=True) + "\n"
    assert "drafted tokens accepted" in err and "tokens per pass" in err and "passes without a draft" in err


def test_ngram_size_without_speculative_decodes_plainly_and_warns_that_it_does_nothing(capsys):
    """As transformers: prompt lookup drafts only when its number of tokens (--speculative) is given."""
    prompt = "To be, or not to be, that is the question. To be, or not"
    argv = ["generate", prompt, "--max-new-tokens", "24", "--temperature", "1.0", "--seed", "7", "--ngram-size", "3"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    tok = minillm.load_tokenizer(BUNDLED_MODEL)
    new = minillm.generate(tiny_model(BUNDLED_MODEL.name), tok.encode(prompt), 24, temperature=1.0, seed=7)
    assert out == tok.decode(new, skip_special_tokens=True) + "\n"  # plain sampling's draws for the seed
    assert "drafted" not in err
    assert "minillm: warning: --ngram-size" in err and "--speculative" in err


def test_zero_new_tokens_print_an_empty_line_and_no_rate(capsys):
    assert main(["generate", "Hello world", "--max-new-tokens", "0"]) == 0
    out, err = capsys.readouterr()
    assert out == "\n"
    assert "0 new tokens" in err and "nan" not in err and "inf" not in err


def test_one_new_token_prints_no_decode_rate(capsys):
    """The first token comes out of the prefill: there is no decode step to measure."""
    assert main(["generate", "Hello world", "--max-new-tokens", "1", "--temperature", "0"]) == 0
    err = capsys.readouterr().err
    assert "1 new tokens" in err and "decode" not in err and "nan" not in err


@pytest.mark.parametrize("argv, words", [
    (["generate", "Hi", "--system", "Be brief."], ["--system", "--chat"]),
    (["generate", "Hi", "--thinking", "off"], ["--thinking", "--chat"]),
    (["generate", "Hi", "--chat", "--thinking", "on"], ["--thinking on", "enable_thinking"]),
    (["chat", "--thinking", "off"], ["--thinking off", "enable_thinking"]),
    (["generate", "Hi", "--chat", "--thinking", "off", "--model", str(WEIGHTS / "tiny-qwen3")], None),
])
def test_a_flag_that_would_be_ignored_is_named_in_a_warning(capsys, monkeypatch, argv, words):
    """The bundled model's template has no thinking switch; --system and --thinking shape the chat template only."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # chat: an empty conversation
    assert main(argv + ["--max-new-tokens", "1"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("minillm: warning:")]
    if words is None:  # a template that reads enable_thinking: nothing to warn about
        assert warnings == []
    else:
        assert len(warnings) == 1 and all(w in warnings[0] for w in words), warnings


def test_generate_chat_wraps_the_prompt_in_the_template(capsys):
    argv = ["generate", "Hi", "--chat", "--model", str(WEIGHTS / "tiny-qwen3"), "--thinking", "off",
            "--max-new-tokens", "3", "--temperature", "0"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    tok = minillm.load_tokenizer(WEIGHTS / "tiny-qwen3")
    n = len(tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                    enable_thinking=False, tokenize=True))
    assert f"[{n} prompt tokens" in err


def test_chat_from_a_pipe_reuses_the_cache_and_matches_a_fresh_computation():
    turns = ["Hi", "How are you?"]
    run = subprocess.run([sys.executable, "-m", "minillm", "chat", "--temperature", "0", "--max-new-tokens", "6"],
                         input="\n".join(turns) + "\n", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    tok = minillm.load_tokenizer(BUNDLED_MODEL)
    model = tiny_model(BUNDLED_MODEL.name)
    stops = {tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")}
    messages, expected = [], ""
    for text in turns:  # recompute every turn from scratch, no cache reuse
        messages.append({"role": "user", "content": text})
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        new = minillm.generate(model, ids, 6, temperature=0.0).tolist()
        expected += tok.decode(new, skip_special_tokens=True) + "\n"
        reply = new[:-1] if new and new[-1] in stops else new
        messages.append({"role": "assistant", "content": tok.decode(reply, skip_special_tokens=True)})
    assert run.stdout == expected


def test_chat_reset_and_end_of_input():
    run = subprocess.run([sys.executable, "-m", "minillm", "chat", "--max-new-tokens", "2"],
                         input="hello\n/reset\nhello\n", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "[conversation reset]" in run.stderr


def test_a_chat_turn_too_long_for_the_context_is_an_error_for_that_turn_and_the_chat_goes_on():
    long = " ".join(["Tell me a fortune."] * 12)  # more than the 60 positions by itself
    run = subprocess.run([sys.executable, "-m", "minillm", "chat", "--context", "60", "--max-new-tokens", "30",
                          "--temperature", "0"], input=f"Tell me a fortune.\n{long}\n/reset\nTell me a fortune.\n",
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("minillm: error:")]
    assert len(errors) == 1 and "does not fit" in errors[0] and "[conversation reset]" in run.stderr
    half = len(run.stdout) // 2  # the first turn's reply, then (after /reset) the same reply again
    assert run.stdout.strip() and run.stdout[:half] == run.stdout[half:]


def test_chat_keeps_to_the_models_trained_context_by_dropping_the_oldest_turns():
    """The bundled model was trained on 512 positions: a long chat drops its first turns instead of running past."""
    turns = [f"Tell me fortune number {n}, please." for n in range(12)]
    run = subprocess.run([sys.executable, "-m", "minillm", "chat", "--temperature", "0", "--max-new-tokens", "40"],
                         input="\n".join(turns) + "\n", capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "dropped the oldest" in run.stderr and "max_position_embeddings" not in run.stderr


def test_inspect_lists_parameters_tensors_and_memory(capsys):
    assert main(["inspect", str(WEIGHTS / "tiny-qwen3"), "--tensors", "0"]) == 0
    out = capsys.readouterr().out
    model = tiny_model("tiny-qwen3")
    total = sum(a.size for a in model.weights.arrays())
    assert f"{total:,}" in out
    assert "model.layers.2.self_attn.q_norm.weight" in out and "BF16" in out and "memory in float32" in out


def test_verify_prints_a_per_layer_table(capsys):
    path = WEIGHTS / "tiny-qwen2"
    assert main(["verify", str(path), str(path / "reference.npz")]) == 0
    out = capsys.readouterr().out
    assert "layer 1 output" in out and "logits" in out and "OK" in out


def test_verify_fails_against_another_models_reference(capsys):
    code = main(["verify", str(WEIGHTS / "tiny-qwen2"), str(WEIGHTS / "tiny-qwen3" / "reference.npz")])
    assert code == 1 and "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["generate", "hi", "--model", "/no/such/dir"],
                                  ["inspect", "/no/such/dir"],
                                  ["generate", "hi", "--top-p", "0"]])
def test_errors_are_one_clear_line_not_a_traceback(argv):
    run = subprocess.run([sys.executable, "-m", "minillm", *argv], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.startswith("minillm: error: ") and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_bench_runs_on_the_bundled_model_and_writes_json(tmp_path):
    """A smoke test of `minillm bench` (it prints figures; nothing here is timed or compared to a bound)."""
    import json
    run = subprocess.run([sys.executable, "-m", "minillm", "bench", "--model", str(WEIGHTS / "tiny-qwen2"),
                          "--quick", "--no-transformers", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "of floor" in run.stdout and "tok/s" in run.stdout
    result = json.loads((tmp_path / "bench-tiny-qwen2.json").read_text())
    assert set(result["ratios"]) >= {"decode_vs_bandwidth_floor", "prefill_vs_matmul_floor",
                                     "peak_memory_vs_weights_plus_cache"}


def test_the_cli_module_runs_as_a_script():
    """``python -m minillm.tools.cli``: every command's function is defined before the script's entry point."""
    done = subprocess.run([sys.executable, "-m", "minillm.tools.cli", "train", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--decay-steps" in done.stdout


def test_verify_tolerance_is_the_largest_relative_error_allowed_equal_passes(capsys):
    """--tolerance is "relative error allowed": a worst error equal to it passes, one a hair above it fails."""
    from minillm.tools.verify import compare_to_reference, format_error_table, load_reference
    path = WEIGHTS / "tiny-qwen2"
    rows = compare_to_reference(minillm.load_model(path), load_reference(path / "reference.npz"))
    worst = max(r.rel_error for r in rows)
    assert worst > 0
    assert main(["verify", str(path), str(path / "reference.npz"), "--tolerance", repr(worst)]) == 0
    out = capsys.readouterr().out
    assert "OK: worst relative error" in out and "over tolerance" not in out
    assert "over tolerance" not in format_error_table(rows, worst)  # the worst row itself is not over it
    below = float(np.nextafter(worst, 0))
    assert main(["verify", str(path), str(path / "reference.npz"), "--tolerance", repr(below)]) == 1
    out = capsys.readouterr().out
    assert "FAILED: worst relative error" in out and "over tolerance" in out


def test_verify_rows_of_an_all_zero_reference_have_scale_one():
    from minillm.tools.verify import _row
    row = _row("x", np.full((2, 3), 0.5, np.float32), np.zeros((2, 3), np.float32))
    assert (row.max_abs_error, row.scale, row.rel_error) == (0.5, 1.0, 0.5)


def test_a_reference_member_claiming_more_than_deflate_can_hold_is_refused_before_reading(tmp_path):
    """A zip's directory states each member's sizes: a deflated member of a few bytes whose stated size (and
    .npy header) claims 400 MB cannot hold them (DEFLATE expands at most 1032x); refused before NumPy allocates."""
    import struct
    import zipfile
    from minillm.tools.verify import load_reference
    path = tmp_path / "ref.npz"
    claimed = (100_000_000,)  # float32: 400 MB
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    header["shape"] = claimed
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("input_ids.npy", _npy(np.arange(3)))
        z.writestr("hidden_0.npy", _npy(np.zeros((3, 2), np.float32)))
        z.writestr("logits.npy", buf.getvalue() + b"\0" * 64)
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 1) + 1)  # logits'
    data[entry + 24:entry + 28] = struct.pack("<I", 400_000_000 + len(buf.getvalue()))  # its stated size
    path.write_bytes(bytes(data))
    assert zipfile.ZipFile(path).getinfo("logits.npy").file_size > 400_000_000
    with pytest.raises(minillm.CheckpointError, match=r"'logits' claims shape \[100000000\]"):
        load_reference(path)


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()
