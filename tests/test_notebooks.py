"""The notebooks: exactly the cells of scripts/notebook_sources.py, committed with the outputs of one clean
top-to-bottom run, and that run reproduces them (apart from cells that print measured times).

"Reproduces" must hold whatever BLAS kernel, library and thread count NumPy uses, so printed outputs are
compared as text with numbers (output_differences): the words exactly, integers exactly, a decimal to within
one unit of its last printed digit or 1e-3 of its size (whichever is larger; -0. equals 0.), and two
e-notation numbers below 1e-4 as equal float32 residues. A number that moves by more (a stale output) fails."""

from __future__ import annotations

import copy
import re
import sys

import nbformat
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from make_notebooks import execute  # noqa: E402
from notebook_sources import NOTEBOOKS  # noqa: E402

NAMES = sorted(NOTEBOOKS)
OTHER_MODEL = {"06_linear_attention.ipynb": "tiny-qwen3.5-hub",  # a notebook about Qwen3.5 needs a Qwen3.5 model
               "08_mixture_of_experts.ipynb": "tiny-qwen3.5-moe",  # and one about experts a MoE
               "10_vision.ipynb": "tiny-qwen3.5-vision"}  # and one about images a vision tower (the only one)


def committed(name: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "notebooks" / name, as_version=4)


def text_outputs(cell) -> list[str]:
    """What a reader sees: consecutive chunks of one stream are joined, because the kernel may split one
    printed text into several chunks, at boundaries that depend on timing (not on the code)."""
    out: list[str] = []
    previous_stream = None
    for o in cell.get("outputs", []):
        if o.output_type == "stream":
            if previous_stream == o.name:
                out[-1] += o.text
            else:
                out.append(f"{o.name}:{o.text}")
            previous_stream = o.name
            continue
        previous_stream = None
        if "text/plain" in o.get("data", {}) and "image/png" not in o.data:
            out.append(o.data["text/plain"])
    return out


# A printed number: an integer, a decimal (NumPy's "5." too) or e-notation, with its sign; not the digits
# inside a word ("qwen3", "Qwen3-0.6B" reads 0.6, the same on both sides).
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
RESIDUE = 1e-4       # numbers in e-notation below this, on both sides, are float32 rounding residues
RELATIVE = 1e-3      # and any decimal may move by this much of its size (or by one unit of its last digit)


def printed_numbers(text: str) -> tuple[str, list[str]]:
    """Split printed text into its words (each number replaced by a NUL, the whitespace around a number dropped:
    NumPy pads and wraps arrays by their widest number) and its numbers, as printed."""
    return re.sub(r"\s*\0\s*", "\0", NUMBER.sub("\0", text)), NUMBER.findall(text)


def last_digit_unit(number: str) -> float:
    """One unit of the last printed digit: 0.1234 -> 1e-4, 5. -> 1, 7.1e-07 -> 1e-08."""
    mantissa, _, exponent = number.lower().lstrip("+-").partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def numbers_agree(old: str, new: str) -> bool:
    """Integers (ids, counts, shapes) must be equal. Decimals may differ by one unit of the last printed digit
    or by RELATIVE of their size, whichever is larger (-0. equals 0.); two e-notation numbers both below
    RESIDUE agree (a float32 rounding residue's digits depend on the BLAS kernel)."""
    if not any(c in old + new for c in ".eE"):
        return int(old) == int(new)
    a, b = float(old), float(new)
    if "e" in (old + new).lower() and abs(a) < RESIDUE and abs(b) < RESIDUE:
        return True
    return abs(a - b) <= max(last_digit_unit(old), last_digit_unit(new), RELATIVE * max(abs(a), abs(b)))


def output_differences(old: list[str], new: list[str]) -> list[str]:
    """What differs between a committed cell's printed outputs and a fresh run's, beyond what the BLAS kernel,
    the library and the thread count may change: the text apart from its numbers must be identical, and each
    number must agree with numbers_agree(). An empty list means the outputs agree."""
    if len(old) != len(new):
        return [f"{len(old)} outputs committed, {len(new)} now"]
    found = []
    for old_text, new_text in zip(old, new):
        (old_words, old_numbers), (new_words, new_numbers) = printed_numbers(old_text), printed_numbers(new_text)
        if old_words != new_words or len(old_numbers) != len(new_numbers):
            found.append(f"text changed:\n--- committed\n{old_text}\n--- now\n{new_text}")
            continue
        found += [f"{a} committed, {b} now (in {old_text[:200]!r})"
                  for a, b in zip(old_numbers, new_numbers) if not numbers_agree(a, b)]
    return found


def test_output_comparison_joins_stream_chunks_the_kernel_split():
    one = nbformat.v4.new_code_cell("print(...)")
    one.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello world\n")]
    two = copy.deepcopy(one)
    two.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello "),
                   nbformat.v4.new_output("stream", name="stdout", text="world\n")]
    assert text_outputs(one) == text_outputs(two)
    three = copy.deepcopy(one)
    three.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello world\n"),
                     nbformat.v4.new_output("stream", name="stderr", text="warning\n")]
    assert text_outputs(three) != text_outputs(one)


def test_output_comparison_tolerates_a_last_digit_flip_and_catches_a_changed_number():
    same = [("max |a - b| = 0.1234\n", "max |a - b| = 0.1235\n"),            # one unit of the last digit
            ("lion -> [ 0. -0.  5.]\n", "lion -> [0. 0. 5.]\n"),              # -0. and NumPy's padding
            ("loss 1234.5\n", "loss 1235.6\n"),                              # relative 1e-3
            ("residue 7.1e-07\n", "residue 2.3e-08\n")]                       # both float32 residues
    for old, new in same:
        assert output_differences([old], [new]) == [], (old, new)
    changed = [("max |a - b| = 0.1234\n", "max |a - b| = 0.1236\n"),         # two units
               ("loss 1234.5\n", "loss 1236.0\n"),                           # beyond relative 1e-3
               ("ids [12, 7]\n", "ids [12, 8]\n"),                            # integers are exact
               ("residue 7.1e-07\n", "residue 2.3e-03\n"),                    # not a residue any more
               ("lion -> [0. 0. 5.]\n", "lion -> [0. 0. 5. 1.]\n"),            # one more number
               ("cat -> 1.0\n", "dog -> 1.0\n")]                              # the words are compared exactly
    for old, new in changed:
        assert output_differences([old], [new]) != [], (old, new)


def images(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_holds_exactly_the_source_cells(name):
    nb = committed(name)
    assert [(c.cell_type[:2] if c.cell_type == "code" else "md", c.source) for c in nb.cells] == \
           [("co" if kind == "code" else "md", text) for kind, text in NOTEBOOKS[name]]


@pytest.mark.parametrize("name", NAMES)
def test_committed_outputs_come_from_one_clean_run(name):
    code = [c for c in committed(name).cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # in order, none skipped
    for c in code:
        kinds = {o.output_type for o in c.outputs} | {o.get("name") for o in c.outputs if o.output_type == "stream"}
        assert "error" not in kinds and "stderr" not in kinds, f"cell {c.execution_count} has errors/warnings"


@pytest.mark.parametrize("name", NAMES)
def test_every_figure_has_a_title_axis_labels_and_a_sentence(name):
    cells = committed(name).cells
    for n, c in enumerate(cells):
        if c.cell_type == "code" and images(c):
            assert "title(" in c.source or "suptitle(" in c.source or "set_title(" in c.source
            assert "xlabel(" in c.source and "ylabel(" in c.source
            following = next(x for x in cells[n + 1:] if x.cell_type == "markdown")
            assert following.source.startswith("What to see"), f"figure in cell {n} has no explanation"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom_and_reproduces_its_committed_outputs(name):
    nb = committed(name)
    fresh = execute(copy.deepcopy(nb), timeout=300)  # raises CellExecutionError if any cell fails
    for old, new in zip(nb.cells, fresh.cells):
        if old.cell_type != "code":
            continue
        assert images(new) == images(old)
        if not old.source.startswith("# timing"):
            stale = output_differences(text_outputs(old), text_outputs(new))
            assert not stale, f"stale output in cell {old.execution_count}: " + "\n".join(stale)


def test_notebooks_import_minillm_rather_than_redefining_the_model():
    for name, cells in NOTEBOOKS.items():
        source = "\n".join(text for kind, text in cells if kind == "code")
        assert "import minillm" in source
        for definition in ("def rms_norm", "def apply_rope", "def softmax", "def attention", "def swiglu"):
            assert definition not in source, f"{name} re-implements {definition}"


@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoint_path_switches_the_notebook_to_that_model(name):
    """MINILLM_MODEL (the one marked cell) is all it takes: here another bundled checkpoint, with YaRN,
    sliding-window layers and 8 query heads, runs every notebook with no other edit."""
    other = ROOT / "weights" / OTHER_MODEL.get(name, "tiny-qwen3-yarn-swa")
    fresh = execute(copy.deepcopy(committed(name)), timeout=300, model=str(other))
    first_output = next(c for c in fresh.cells if c.cell_type == "code").outputs[0].text
    assert first_output.startswith(f"{other.name}:")


def test_no_notebook_drops_the_yarn_attention_scaling():
    """rope_frequencies returns (inv_freq, attention scaling). A notebook that rebuilds cos/sin without the
    scaling shows rotations and attention maps that are not the model's on a YaRN checkpoint (notebook 02
    also checks its maps against the model's own hidden state, on tiny-qwen3-yarn-swa in the test above)."""
    for name, cells in NOTEBOOKS.items():
        source = "\n".join(text for kind, text in cells if kind == "code")
        assert not re.search(r",\s*_\s*=\s*rope_frequencies\(", source), f"{name} discards the attention scaling"
        for args in re.findall(r"\brope_cos_sin\((.*)\)", source):  # (not vision_rope_cos_sin: no YaRN there)
            assert "scaling" in args, f"{name}: rope_cos_sin({args}) without the attention scaling"
