"""The Hugging Face cache is untrusted input too (issue 31, class 5): a snapshot or a repository folder that is
a symlink reads nothing from outside that model's cache folder, refs that are FIFOs or devices never hang,
and an id with a newline gives a one-line error."""

from __future__ import annotations

import os
import shutil

import pytest

import minillm
from minillm.checkpoint.hub import resolve_model_path
from minillm.errors import MinillmError
from conftest import WEIGHTS
from hub_cache import add_snapshot
from test_hub import REPO, cache, fake_huggingface_hub  # noqa: F401 (cache is a fixture)


def test_a_snapshot_that_is_a_symlink_to_a_directory_elsewhere_is_refused(cache, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(WEIGHTS / "tiny-qwen2", elsewhere)
    snapshot = add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    shutil.rmtree(snapshot)
    snapshot.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(MinillmError):
        minillm.load_model(REPO)


def test_a_snapshot_linked_to_another_repositorys_snapshot_is_refused(cache):
    other = add_snapshot(cache, "Qwen/Other", WEIGHTS / "tiny-qwen2")
    snapshot = add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2", files=["config.json"])
    shutil.rmtree(snapshot)
    snapshot.symlink_to(other, target_is_directory=True)
    with pytest.raises(MinillmError):
        minillm.load_model(REPO)


def test_a_repository_folder_that_is_a_symlink_is_refused(cache, tmp_path):
    add_snapshot(tmp_path / "othercache", REPO, WEIGHTS / "tiny-qwen2")
    (cache / "models--Qwen--Tiny-Qwen2").symlink_to(tmp_path / "othercache" / "models--Qwen--Tiny-Qwen2")
    with pytest.raises(MinillmError):
        minillm.load_model(REPO)


def test_a_checkpoint_named_snapshots_outside_a_models_folder_reads_only_its_own_files(tmp_path):
    """The models-- condition: x/snapshots/run1 is no Hub snapshot, so x/ is not its cache folder."""
    run = tmp_path / "x" / "snapshots" / "run1"
    shutil.copytree(WEIGHTS / "tiny-qwen2", run)
    (tmp_path / "x" / "private").mkdir()
    (tmp_path / "x" / "private" / "chat_template.jinja").write_text("SECRET")
    (run / "chat_template.jinja").unlink(missing_ok=True)
    (run / "chat_template.jinja").symlink_to(tmp_path / "x" / "private" / "chat_template.jinja")
    with pytest.raises(MinillmError, match="leaves the checkpoint directory"):
        minillm.load_tokenizer(run)


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_a_ref_that_is_a_fifo_or_a_device_never_hangs_nor_downloads(cache, monkeypatch, kind):
    calls = fake_huggingface_hub(monkeypatch)
    ref = cache / "models--Qwen--Tiny-Qwen2" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(ref)
    else:
        ref.symlink_to(kind)
    with pytest.raises(MinillmError, match="refs/main"):
        resolve_model_path(REPO)
    assert calls == []


@pytest.mark.parametrize("name", [REPO + "@ma\nin", "Qwen/Tiny\nQwen2", REPO + "@/etc/passwd"])
def test_an_id_with_a_newline_or_an_absolute_revision_gives_a_one_line_error(cache, name):
    with pytest.raises(MinillmError) as e:
        minillm.load_model(name)
    assert "\n" not in str(e.value) and "root:" not in str(e.value)


def test_a_commit_hash_followed_by_a_subfolder_is_not_a_commit(cache):
    snapshot = add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    shutil.copytree(WEIGHTS / "tiny-qwen2", snapshot / "sub")  # a whole checkpoint there: it must not be loaded
    with pytest.raises(MinillmError, match="not in the Hugging Face cache"):
        minillm.load_model(f"{REPO}@{snapshot.name}/sub")


def test_a_revision_with_dot_dot_is_refused_without_reading_what_it_names(cache, tmp_path):
    (tmp_path / "secret").write_text("SECRET-CONTENT")  # refs/../../../secret from the repository folder
    add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    with pytest.raises(MinillmError, match="not a branch, tag or commit hash") as e:
        minillm.load_model(f"{REPO}@../../../secret")
    assert "SECRET" not in str(e.value)


def test_a_snapshot_symlinked_out_of_its_repository_reads_nothing_even_links_back_to_its_blobs(cache, tmp_path):
    """The snapshot is judged by its name: one that resolves outside models--org--name/ reads nothing, even
    files that lead back into that folder's blobs/."""
    snapshot = add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for link in snapshot.iterdir():
        (elsewhere / link.name).symlink_to(link.resolve())  # absolute links into the repository's blobs/
    shutil.rmtree(snapshot)
    snapshot.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(MinillmError, match="leaves the checkpoint directory"):
        minillm.load_model(REPO)


def test_a_revision_that_is_an_absolute_path_is_refused_without_reading_that_file(cache, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("SECRET-CONTENT")
    with pytest.raises(MinillmError, match="not a branch, tag or commit hash") as e:
        minillm.load_model(f"{REPO}@{secret}")
    assert "SECRET" not in str(e.value)


def test_a_ref_holding_a_hash_followed_by_more_text_is_refused(cache):
    snapshot = add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    shutil.copytree(WEIGHTS / "tiny-qwen2", snapshot / "sub")  # what "<hash>/sub" would name
    (snapshot.parent.parent / "refs" / "main").write_text(f"{snapshot.name}/sub")
    with pytest.raises(MinillmError, match="expected a commit hash"):
        minillm.load_model(REPO)


def test_a_dangling_ref_symlink_is_reported_as_such(cache):
    snapshot = add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    ref = snapshot.parent.parent / "refs" / "main"
    ref.unlink()
    ref.symlink_to(snapshot.parent.parent / "nowhere")  # inside its repo folder
    with pytest.raises(MinillmError, match=r"refs/main: this ref .* is not a regular file"):
        minillm.load_model(REPO)


def test_a_ref_naming_a_snapshot_that_is_not_there_is_not_in_the_cache(cache):
    snapshot = add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen2")
    shutil.rmtree(snapshot)
    with pytest.raises(MinillmError, match="not in the Hugging Face cache"):
        minillm.load_model(REPO)


@pytest.mark.parametrize("value", ["true", "On", "yes"])
def test_offline_mode_takes_huggingface_hubs_true_values_in_any_case(cache, monkeypatch, value):
    calls = fake_huggingface_hub(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    with pytest.raises(MinillmError, match="HF_HUB_OFFLINE"):
        minillm.load_model(REPO)
    assert calls == []


def test_a_snapshot_missing_one_of_its_indexed_shards_is_incomplete(cache):
    files = [p.name for p in (WEIGHTS / "tiny-qwen3").iterdir() if p.name != "model-00002-of-00003.safetensors"]
    add_snapshot(cache, REPO, WEIGHTS / "tiny-qwen3", files=[f for f in files if not f.endswith(".npz")])
    with pytest.raises(MinillmError, match="incomplete.*model-00002-of-00003.safetensors"):
        minillm.load_model(REPO)
