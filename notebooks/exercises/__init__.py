"""Your turn: the exercises at the end of each notebook, checked against minillm.

In a notebook (which runs in notebooks/, so this package imports as ``exercises``):

    from exercises import check
    def my_rms_norm(x, weight, eps):
        ...                                   # write it
    check("rms_norm", my_rms_norm)            # prints ✓, or what differs, or "not done yet"

Notebook NN keeps its checks in ``checks_NN.py``: a dict ``CHECKS`` of name -> a function that takes the
learner's function and raises AssertionError (with a message that helps) when it is wrong. The solutions are kept
apart, in ``solutions_NN.py`` (a function of the same name for every check): try first, read them after.
tests/test_exercises.py runs every check on its solution (it must pass) and on a function that is not written yet
or is wrong (it must fail), so the checks themselves are tested.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable


def all_checks() -> dict[str, Callable]:
    """Every exercise's check, by name, from every checks_NN module."""
    found: dict[str, Callable] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("checks_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            for name, fn in module.CHECKS.items():
                if name in found:
                    raise ValueError(f"exercise {name!r} is defined twice (again in {info.name})")
                found[name] = fn
    return found


def check(name: str, fn: Callable) -> bool:
    """Run exercise ``name``'s check on ``fn``; print the verdict and return whether it passed."""
    checks = all_checks()
    if name not in checks:
        raise KeyError(f"no exercise named {name!r}; there are: {', '.join(sorted(checks))}")
    try:
        checks[name](fn)
    except NotImplementedError:
        print(f"… {name}: not done yet (your function raises NotImplementedError): your turn")
        return False
    except AssertionError as e:
        print(f"✗ {name}: not yet right: {e}")
        return False
    print(f"✓ {name}: matches minillm")
    return True
