"""Training's paths and token files (issue 31, class 2): a run directory, a recipe or a token file that is not
what it should be gets a one-line minillm error from `minillm train` (exit 1), never a traceback or a hang."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from minillm.errors import InputError
from minillm.tools.cli import main
from minillm.training.data import TokenFile
from test_training import recipe


def train(tmp_path, *extra):
    path = tmp_path / "recipe.json"
    if not path.exists():
        path.write_text(json.dumps(recipe(tmp_path, steps=1)))
    return main(["train", "--config", str(path), *extra])


@pytest.mark.parametrize("out", ["file", "/dev/null", "under a file", "nul", "too long"])
def test_an_out_that_cannot_be_a_run_directory_is_refused_in_one_line(tmp_path, capsys, out):
    (tmp_path / "afile").write_text("x")
    where = {"file": str(tmp_path / "afile"), "/dev/null": "/dev/null", "under a file": str(tmp_path / "afile" / "run"),
             "nul": str(tmp_path / "r\0un"), "too long": str(tmp_path / ("x" * 5000))}[out]
    assert train(tmp_path, "--out", where) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "--out" in err
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("config", ["nul", "/dev/zero", "fifo", "directory"])
def test_a_config_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path, capsys, config):
    if config == "fifo":
        os.mkfifo(tmp_path / "pipe")
    where = {"nul": str(tmp_path / "re\0cipe.json"), "/dev/zero": "/dev/zero", "fifo": str(tmp_path / "pipe"),
             "directory": str(tmp_path)}[config]
    assert main(["train", "--config", where, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_token_file_of_timedelta64_is_refused_naming_its_dtype(tmp_path):
    np.save(tmp_path / "t.npy", np.arange(100).astype("timedelta64[s]"))
    with pytest.raises(InputError, match=r"t\.npy.*timedelta64"):
        TokenFile(tmp_path / "t.npy", 100)


def test_a_token_file_whose_header_claims_2_to_the_62_ids_is_refused(tmp_path):
    path = tmp_path / "huge.npy"
    np.save(path, np.arange(100, dtype=np.uint16))
    data = path.read_bytes().replace(b"(100,)", b"(4611686018427387904,)".ljust(len(b"(100,)")))
    header_len = int.from_bytes(data[8:10], "little")
    header = data[10:10 + header_len].replace(b"(100,), }", b"(4611686018427387904,), }")
    header = header.rstrip(b"\n ").ljust(len(header) + 64 - (10 + len(header)) % 64 + 64 - 1) + b"\n"
    path.write_bytes(data[:8] + len(header).to_bytes(2, "little") + header + data[10 + header_len:])
    with pytest.raises(InputError, match=r"huge\.npy"):
        TokenFile(path, 100)


def test_a_token_file_that_is_a_fifo_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "t.npy")
    with pytest.raises(InputError, match=r"t\.npy.*FIFO"):
        TokenFile(tmp_path / "t.npy", 100)


def test_validation_tokens_shorter_than_one_window_are_refused_like_training_tokens(tmp_path, capsys):
    raw = recipe(tmp_path, steps=1, context=16, eval_windows=1)
    np.save(tmp_path / "short.npy", np.arange(10, dtype=np.uint16))
    raw["val_tokens"] = str(tmp_path / "short.npy")
    (tmp_path / "recipe.json").write_text(json.dumps(raw))
    assert train(tmp_path, "--out", str(tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert "short.npy" in err and "window" in err


def test_a_token_file_needs_two_tokens_one_input_and_one_target(tmp_path):
    np.save(tmp_path / "one.npy", np.array([5], np.uint16))
    with pytest.raises(InputError, match=r"one\.npy: holds 1 tokens; need at least 2"):
        TokenFile(tmp_path / "one.npy", 100)
    np.save(tmp_path / "two.npy", np.array([5, 6], np.uint16))
    assert len(TokenFile(tmp_path / "two.npy", 100)) == 2


def test_a_file_of_exactly_one_window_gives_that_window_and_every_distinct_window_can_be_evaluated(tmp_path):
    np.save(tmp_path / "t.npy", np.arange(20, dtype=np.uint16))
    tokens = TokenFile(tmp_path / "t.npy", 100)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(tokens.random_windows(rng, 3, 20), np.tile(np.arange(20), (3, 1)))
    starts = tokens.random_windows(rng, 200, 16)[:, 0]  # 20 - 16 + 1 = 5 possible starts, the last one included
    assert sorted(set(starts.tolist())) == [0, 1, 2, 3, 4]
    windows = tokens.fixed_windows(5, 16)  # all 5 distinct windows
    np.testing.assert_array_equal(windows[:, 0], [0, 1, 2, 3, 4])
    with pytest.raises(InputError, match="only 5 distinct windows"):
        tokens.fixed_windows(6, 16)
