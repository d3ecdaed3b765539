"""A wheel of minillm works where it is installed: the bundled model is package data, so the README's main
command, chat and default_model_path() run from any directory, with no source checkout on the path."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

RUNTIME_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from this checkout without network (the venv's setuptools; `python -m build` does the same
    in an isolated environment)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(out)], check=True, capture_output=True, cwd=out)
    (built,) = out.glob("minillm-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", str(wheel), "--no-deps", "--no-index", "-q",
                    "--target", str(target)], check=True, capture_output=True)
    return target


def run_installed(installed: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Python with only the installed wheel (and the venv's dependencies) to import minillm from, run in an
    empty directory far from the checkout."""
    work = installed.parent / "elsewhere"
    work.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1"}
    env.pop("MINILLM_MODEL", None)
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, cwd=work, env=env,
                          timeout=120)


def test_the_wheel_carries_the_bundled_model_and_every_subpackage(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in RUNTIME_FILES:
        assert f"minillm/bundled/minillm-bilingual/{f}" in names
    for f in ["page.html", "page.css", "page.js"]:  # the explainer page's template
        assert f"minillm/explain/{f}" in names
    assert not any(n.endswith("reference.npz") or n.startswith("weights/") for n in names)  # test fixtures stay home
    packages = {p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "minillm").rglob("*.py")}
    for package in packages:
        assert f"{package}/__init__.py" in names, f"{package} is missing from the wheel (no __init__.py?)"


def test_the_installed_package_finds_its_model_from_any_directory(installed):
    r = run_installed(installed, "-c", "import minillm; p = minillm.default_model_path(); "
                      "print(minillm.__file__); print(p); print(p.is_dir())")
    assert r.returncode == 0, r.stderr
    module_file, model_dir, exists = r.stdout.split("\n")[:3]
    assert module_file.startswith(str(installed)) and model_dir.startswith(str(installed)), r.stdout
    assert exists == "True"


def test_the_installed_package_runs_the_main_command_and_chat(installed):
    r = run_installed(installed, "-m", "minillm", "generate", "To be", "--max-new-tokens", "8", "--seed", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and "new tokens" in r.stderr  # the continuation, then the summary line
    r = run_installed(installed, "-m", "minillm", "chat", "--max-new-tokens", "8", stdin="Hello\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), r.stderr
