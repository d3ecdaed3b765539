"""Models by Hub id: resolved from a fake Hugging Face cache laid out as the real one; never the network."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import minillm
from minillm.checkpoint.hub import DOWNLOAD_PATTERNS, hub_cache_dir, resolve_model_path
from conftest import ROOT, WEIGHTS, reference
from hub_cache import add_snapshot

REPO = "Qwen/Tiny-Qwen2"
HF_VARIABLES = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HF_HUB_OFFLINE",
                "TRANSFORMERS_OFFLINE")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache in HF_HUB_CACHE, no other Hugging Face setting, and huggingface_hub not importable."""
    for var in HF_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` raises ImportError
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hub").mkdir()
    return tmp_path / "hub"


def fake_huggingface_hub(monkeypatch, source: Path | None = WEIGHTS / "tiny-qwen2", error: Exception | None = None):
    """A stand-in huggingface_hub whose snapshot_download 'downloads' ``source`` into the cache, as the real one."""
    calls = []

    def snapshot_download(repo_id, *, revision=None, cache_dir=None, allow_patterns=None, ignore_patterns=None,
                          **kwargs):
        calls.append(dict(repo_id=repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=allow_patterns,
                          ignore_patterns=ignore_patterns, **kwargs))
        if error is not None:
            raise error
        return str(add_snapshot(Path(cache_dir), repo_id, source, refs=(revision,)))

    module = types.ModuleType("huggingface_hub")
    module.snapshot_download = snapshot_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    return calls


def test_a_hub_id_loads_from_the_cache_without_huggingface_hub(cache):
    snapshot = add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    assert (snapshot / "model.safetensors").is_symlink()  # the real layout: a relative link into blobs/
    assert os.readlink(snapshot / "model.safetensors").startswith("../../blobs/")
    model = minillm.load_model(REPO)
    assert model.path == snapshot
    ref = reference("tiny-qwen2")
    np.testing.assert_allclose(model.forward(ref["input_ids"]), ref["logits"], rtol=1e-4, atol=1e-4)
    assert minillm.load_tokenizer(REPO).encode("Hello world") == \
        minillm.load_tokenizer(WEIGHTS / "tiny-qwen2").encode("Hello world")


def test_a_sharded_checkpoint_in_the_cache_loads_through_its_symlinked_blobs(cache):
    add_snapshot(cache, "Qwen/Tiny-Qwen3", WEIGHTS / "tiny-qwen3")
    ref = reference("tiny-qwen3")
    model = minillm.load_model("Qwen/Tiny-Qwen3")
    np.testing.assert_allclose(model.forward(ref["input_ids"]), ref["logits"], rtol=1e-4, atol=1e-4)


def test_a_revision_names_a_ref_or_a_commit_hash(cache):
    old = add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen3", commit="a" * 40, refs=("v1.0", "refs/pr/1"))
    add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2", commit="b" * 40, refs=("main",))
    unnamed = add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen3-yarn-swa", commit="c" * 40, refs=())
    assert resolve_model_path(REPO) == cache / "models--Qwen--Tiny-Qwen2" / "snapshots" / ("b" * 40)
    assert resolve_model_path(REPO + "@main") == resolve_model_path(REPO)
    assert resolve_model_path(REPO + "@v1.0") == old
    assert resolve_model_path(REPO + "@refs/pr/1") == old  # stored as refs/refs/pr/1, as huggingface_hub does
    assert resolve_model_path(REPO + "@" + "c" * 40) == unnamed  # a commit hash names its snapshot directly
    assert minillm.load_model(REPO + "@v1.0").config.model_type == "qwen3"
    with pytest.raises(minillm.CheckpointError, match="v2.0"):
        resolve_model_path(REPO + "@v2.0")


@pytest.mark.parametrize("env, expected", [
    ({"HF_HUB_CACHE": "/a/hub", "HF_HOME": "/b", "XDG_CACHE_HOME": "/c"}, "/a/hub"),
    ({"HF_HOME": "/b", "XDG_CACHE_HOME": "/c"}, "/b/hub"),
    ({"XDG_CACHE_HOME": "/c"}, "/c/huggingface/hub"),
    ({"HOME": "/home/someone"}, "/home/someone/.cache/huggingface/hub"),
    ({"HF_HOME": "~/hf"}, "/home/someone/hf/hub"),
])
def test_the_cache_is_where_huggingface_hub_puts_it(monkeypatch, env, expected):
    for var in HF_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert hub_cache_dir() == Path(expected)


def test_an_existing_directory_wins_over_a_hub_id_of_the_same_spelling(cache, tmp_path):
    add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    import shutil
    shutil.copytree(WEIGHTS / "tiny-qwen3", tmp_path / REPO)  # ./Qwen/Tiny-Qwen2 is a directory here
    model = minillm.load_model(REPO)
    assert model.config.model_type == "qwen3" and model.path == Path(REPO)


def test_a_missing_id_without_huggingface_hub_is_one_line_naming_the_id_the_cache_and_the_remedy(cache):
    with pytest.raises(minillm.CheckpointError) as e:
        minillm.load_model("Qwen/Not-Downloaded")
    message = str(e.value)
    assert "Qwen/Not-Downloaded" in message and str(cache) in message
    assert "hf download Qwen/Not-Downloaded" in message and "minillm[hub]" in message
    assert "\n" not in message
    with pytest.raises(minillm.CheckpointError, match="hf download Qwen/Not-Downloaded --revision v2"):
        minillm.load_tokenizer("Qwen/Not-Downloaded@v2")


def test_a_missing_id_is_downloaded_with_snapshot_download_limited_to_the_files_minillm_reads(cache, monkeypatch):
    calls = fake_huggingface_hub(monkeypatch)
    model = minillm.load_model(REPO + "@main")
    assert len(calls) == 1
    call = calls[0]
    assert (call["repo_id"], call["revision"], call["cache_dir"]) == (REPO, "main", str(cache))
    assert model.path.parent.parent == cache / "models--Qwen--Tiny-Qwen2"
    minillm.load_model(REPO)
    assert len(calls) == 1  # now in the cache: no second download

    def downloaded(name):  # huggingface_hub's filter: any allow pattern, no ignore pattern (fnmatch)
        return (any(fnmatch.fnmatchcase(name, p) for p in call["allow_patterns"])
                and not any(fnmatch.fnmatchcase(name, p) for p in call["ignore_patterns"] or []))

    wanted = ["config.json", "generation_config.json", "model.safetensors", "model-00001-of-00002.safetensors",
              "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
              "preprocessor_config.json"]
    unwanted = ["pytorch_model.bin", "onnx/model.safetensors", "README.md", "merges.txt", "vocab.json",
                "model.gguf", "original/model.safetensors", ".gitattributes"]
    assert [n for n in wanted if not downloaded(n)] == []
    assert [n for n in unwanted if downloaded(n)] == []
    assert call["allow_patterns"] == DOWNLOAD_PATTERNS


def test_offline_mode_never_downloads(cache, monkeypatch):
    calls = fake_huggingface_hub(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(minillm.CheckpointError, match="HF_HUB_OFFLINE"):
        minillm.load_model(REPO)
    assert calls == []
    add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    assert minillm.load_model(REPO).config.model_type == "qwen2"  # the cache still works offline


def test_an_incomplete_snapshot_is_reported_or_completed(cache, monkeypatch):
    add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2", files=["config.json", "tokenizer.json"])
    with pytest.raises(minillm.CheckpointError, match="incomplete.*model.safetensors"):
        minillm.load_model(REPO)
    calls = fake_huggingface_hub(monkeypatch)
    assert minillm.load_model(REPO).config.model_type == "qwen2"
    assert len(calls) == 1


def test_a_failed_download_is_one_clear_line(cache, monkeypatch):
    fake_huggingface_hub(monkeypatch, error=OSError("404 Client Error: Repository Not Found\nfor url ..."))
    with pytest.raises(minillm.CheckpointError) as e:
        minillm.load_model("Qwen/No-Such-Model")
    assert "Qwen/No-Such-Model" in str(e.value) and "404 Client Error" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_path_that_is_no_id_and_does_not_exist_is_reported_as_a_missing_directory(cache):
    with pytest.raises(minillm.CheckpointError, match="not a directory"):
        minillm.load_model("./no/such/dir")
    with pytest.raises(minillm.CheckpointError, match="not a directory.*Hugging Face cache"):
        minillm.load_model("no-such/dir")  # looks like an id: both readings are reported


# ---------------------------------------------------------------------------------------------- the command

def run_cli(args, cache: Path, tmp_path: Path):
    """``python -m minillm ...`` with the cache in HF_HUB_CACHE and huggingface_hub made unimportable."""
    shim = tmp_path / "shim" / "huggingface_hub"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "__init__.py").write_text("raise ImportError('huggingface_hub is not installed (test shim)')\n")
    env = {k: v for k, v in os.environ.items() if k not in HF_VARIABLES}
    env.update(HF_HUB_CACHE=str(cache), PYTHONPATH=os.pathsep.join([str(shim.parent), str(ROOT)]))
    return subprocess.run([sys.executable, "-m", "minillm", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=tmp_path)


def test_the_command_takes_a_hub_id_from_a_populated_cache_with_no_network_and_no_huggingface_hub(cache, tmp_path):
    add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    by_id = run_cli(["generate", "Hello world", "--model", REPO, "--temperature", "0", "--max-new-tokens", "6"],
                    cache, tmp_path)
    assert by_id.returncode == 0, by_id.stderr
    model, tok = minillm.load_model(WEIGHTS / "tiny-qwen2"), minillm.load_tokenizer(WEIGHTS / "tiny-qwen2")
    new = minillm.generate(model, tok.encode("Hello world"), 6, temperature=0.0)
    assert by_id.stdout == tok.decode(new, skip_special_tokens=True) + "\n"  # the text ends its line
    inspect = run_cli(["inspect", REPO], cache, tmp_path)
    assert inspect.returncode == 0 and "model_type qwen2" in inspect.stdout and REPO in inspect.stdout


def test_the_command_reports_an_id_missing_from_the_cache_in_one_line(cache, tmp_path):
    run = run_cli(["chat", "--model", "Qwen/Qwen2.5-0.5B-Instruct"], cache, tmp_path)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("minillm: error: ") and len(run.stderr.strip().splitlines()) == 1
    assert "hf download Qwen/Qwen2.5-0.5B-Instruct" in run.stderr and str(cache) in run.stderr
