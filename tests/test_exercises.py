"""The notebooks' exercises: every check passes on its solution and fails on a function that is not written or
is wrong, so a learner's ✓ means something; and every notebook ends with exercises."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "notebooks"))
sys.path.insert(0, str(ROOT / "scripts"))
import exercises  # noqa: E402
from notebook_sources import NOTEBOOKS  # noqa: E402

CHECKS = exercises.all_checks()


def solution(name: str):
    for module_name in _solution_modules():
        module = importlib.import_module(f"exercises.{module_name}")
        if hasattr(module, name):
            return getattr(module, name)
    raise LookupError(f"no solution for exercise {name!r}")


def _solution_modules() -> list[str]:
    return sorted(i.name for i in pkgutil.iter_modules(exercises.__path__) if i.name.startswith("solutions_"))


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_solution_passes_its_check(name):
    CHECKS[name](solution(name))
    assert exercises.check(name, solution(name)) is True


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_function_not_yet_written_does_not_pass(name):
    def not_written(*args, **kwargs):
        raise NotImplementedError
    assert exercises.check(name, not_written) is False


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_a_wrong_answer_does_not_pass(name):
    right = solution(name)

    def wrong(*args, **kwargs):  # the right answer, nudged: every check must notice
        out = right(*args, **kwargs)
        return nudged(out)
    with pytest.raises(AssertionError):
        CHECKS[name](wrong)


def nudged(out):
    if isinstance(out, str):
        return out + " "
    if isinstance(out, tuple):
        return (nudged(out[0]),) + tuple(out[1:])
    if isinstance(out, dict):
        key = sorted(out)[0]
        return {**out, key: nudged(out[key])}
    a = np.asarray(out)
    if a.dtype.kind in "iub":
        return a + 1
    return a * 1.01 + 0.01


def test_every_notebook_ends_with_exercises_it_checks():
    for name, cells in NOTEBOOKS.items():
        code = "\n".join(text for kind, text in cells if kind == "code")
        assert "from exercises import check" in code and "check(\"" in code, f"{name} has no exercises"
        for called in re.findall(r'check\("([^"]+)"', code):
            assert called in CHECKS, f"{name} checks {called!r}, which has no check in notebooks/exercises/"
