"""Fuzzing minillm as a hostile user would: ten surfaces, every input run in a forked child with limits.

    surface      what is fuzzed
    -----------  ---------------------------------------------------------------------------------------------
    checkpoint   safetensors headers and bytes, shard indexes, the kind of each file (symlink, loop, FIFO, ...)
    config       config.json and generation_config.json: every field's type and range, RoPE blocks, the JSON
    text         tokenizer.json, tokenizer_config.json, chat_template.jinja, template bodies, chat messages
    api          Python API arguments: generate, forward, caches, sampling, seeds, stop ids, encode / decode
    cli          the minillm command: arguments, broken checkpoints, reference files, a failing stdout
  issue 31's new surfaces:
    training     recipes (types, ranges, lr 1e10, ...), --out / --config / token files of every kind, resume
                 after its state.json, log.jsonl, moments or master weights were damaged (valid: bit-identical to
                 the uninterrupted run), fine-tuning's resume, chat data and flags
    hybrid       Qwen3.5 / Qwen3-Next / Qwen3.5-MoE config fields and tensors; valid layer mixes (all full
                 attention too), experts, top-k, partial RoPE with random weights, checked against the cached
                 path, the plain layer and chunked prefill; padded batches and caches on the hybrid models
    hub          Hub ids (newlines, .., absolute, @commit/sub) and Hugging Face cache layouts (symlinked
                 snapshots and repository folders, refs/main a FIFO or /dev/zero), HF_HUB_OFFLINE set or not,
                 with every socket refused in the child (no input can reach the network)
    speculative  drafters returning None, NaN, 2-D arrays, strings, too many drafts; num_tokens, DraftLength,
                 speculative_stats, prompt_lookup_num_tokens; greedy output must equal plain greedy output
    train_api    loss_and_grads on every architecture with hostile batches, labels, router options and LoRA
                 adapters; the loss must equal the cross-entropy of forward's logits

The property: every input ends in a result or a minillm error, within the time and memory limits. Each input
runs in a forked child with an address-space limit (RLIMIT_AS) and a timeout, so a hang, an abort or an
unbounded allocation is an outcome of that input rather than the end of the campaign. Inputs known to be
valid must give a result; inputs that must be refused (a file reached through a symlink that leaves the
checkpoint) must give a minillm error.

Each surface is a hypothesis strategy of ``Case`` objects. tests/test_fuzz.py draws a few seeded examples per
surface in CI; scripts/fuzz_campaign.py draws thousands and prints the outcome table.
"""

from __future__ import annotations

import io
import itertools
import reprlib
import json
import math
import os
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from hypothesis import strategies as st

import minillm
from minillm.errors import MinillmError

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
ADDRESS_SPACE = 4 << 30  # bytes of virtual memory a child may map (RLIMIT_AS)

# ------------------------------------------------------------------------------------------------ outcomes

RESULT, ERROR = "result", "minillm error"
ESCAPE, WRONG, MEMORY, HANG, ABORT = "escape", "wrong result", "MemoryError", "hang", "abort"
KINDS = (RESULT, ERROR, ESCAPE, WRONG, MEMORY, HANG, ABORT)
FAILURES = (ESCAPE, WRONG, MEMORY, HANG, ABORT)


class Violation(Exception):
    """A property the harness checks itself does not hold: non-finite logits, a traceback from the CLI, ..."""


class CleanExit(MinillmError):
    """The CLI ended with a one-line ``minillm: error: ...`` and exit status 1 or 2 (counted as an error)."""


@dataclass
class Outcome:
    kind: str  # one of KINDS
    detail: str = ""  # exception type and message, or what went wrong
    where: str = ""  # the root cause: innermost minillm frame of the traceback (for grouping)


@dataclass
class Case:
    """One hostile input: ``run(workdir)`` executes it in the child (in a fresh empty directory)."""

    surface: str
    label: str  # what the input is, for tables and failure reports
    run: Callable[[Path], None] = field(repr=False)
    expect: str = "any"  # "valid": must give a result; "refuse": must give a minillm error; "any"

    def __repr__(self) -> str:
        return f"Case({self.surface}: {self.label}, expect={self.expect})"


def verdict(case: Case, outcome: Outcome) -> str | None:
    """Why this outcome breaks the property (None when it holds)."""
    if outcome.kind in FAILURES:
        return f"{outcome.kind}: {outcome.detail} {outcome.where}".strip()
    if case.expect == "valid" and outcome.kind != RESULT:
        return f"valid input refused: {outcome.detail}"
    if case.expect == "refuse" and outcome.kind == RESULT:
        return "accepted an input that must be refused"
    return None


# ------------------------------------------------------------------------------------------------ the runner

CHILD_SETUP: list[Callable[[], None]] = []  # run in every child before the case (e.g. lower render limits)


def _root_cause(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/minillm/" in f.filename]
    f = (ours or frames or [None])[-1]
    if f is None:
        return type(exc).__name__
    name = f.filename.split("/minillm/")[-1] if "/minillm/" in f.filename else Path(f.filename).name
    return f"{type(exc).__name__} at {name}:{f.lineno} ({f.name})"


def _classify(fn: Callable[[], None]) -> list[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # as in pytest's config: NaN/overflow is a bug
            fn()
        return [RESULT, "", ""]
    except MinillmError as e:
        return [ERROR, f"{type(e).__name__}: {e}"[:400], ""]
    except Violation as e:
        return [WRONG, str(e)[:400], _root_cause(e)]
    except MemoryError as e:
        return [MEMORY, f"MemoryError: {e}"[:400], _root_cause(e)]
    except BaseException as e:  # noqa: BLE001 - the point is to see every escape
        return [ESCAPE, f"{type(e).__name__}: {e}"[:400], _root_cause(e)]


def run_isolated(fn: Callable[[], None], timeout: float = 20.0, address_space: int = ADDRESS_SPACE) -> Outcome:
    """Run ``fn()`` in a forked child with an address-space limit and a time limit; classify how it ended.

    ``timeout``: seconds of CPU the child may use (then it is killed by SIGXCPU: a hang); it may also not
    take more than five times that in wall-clock time (a child blocked on a FIFO uses no CPU).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.setpgid(0, 0)  # its own process group, so a timeout kills anything it started too
            os.close(r)
            quiet = os.open(os.devnull, os.O_RDWR)  # a panicking Rust library prints to fd 2: keep it off the table
            for fd in (0, 1, 2):
                os.dup2(quiet, fd)
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
            cpu = math.ceil(timeout)
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
            try:
                for setup in CHILD_SETUP:
                    setup()
            except BaseException as e:  # noqa: BLE001 - a harness bug: say so rather than blame the input
                os.write(w, json.dumps([ABORT, f"harness setup failed: {type(e).__name__}: {e}", ""]).encode())
                raise
            os.write(w, json.dumps(_classify(fn)).encode())
        except BaseException:  # noqa: BLE001
            code = 3
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + 5 * timeout
    data = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                    try:
                        kill()
                    except OSError:
                        pass
                os.waitpid(pid, 0)
                return Outcome(HANG, f"no answer within {5 * timeout:g} s")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU:
            return Outcome(HANG, f"used more than {math.ceil(timeout)} s of CPU")
        return Outcome(ABORT, f"killed by {signal.Signals(sig).name}")
    if not data:
        return Outcome(ABORT, f"exited with status {os.WEXITSTATUS(status)} without reporting")
    return Outcome(*json.loads(data))


def run_case(case: Case, timeout: float = 20.0, address_space: int = ADDRESS_SPACE) -> Outcome:
    """Run one case in a fresh temporary directory (removed afterwards)."""
    work = Path(tempfile.mkdtemp(prefix="minillm-fuzz-"))
    try:
        def child():
            os.chdir(work)  # anything written to a relative path lands here
            os.environ["HF_HUB_CACHE"] = str(work / "hf-cache")  # Hub ids resolve here, never in the real cache
            os.environ["HF_HUB_OFFLINE"] = "1"  # and nothing is downloaded
            case.run(work)
        return run_isolated(child, timeout, address_space)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ shared state


class Shared:
    """Things every child reuses (loaded once in the parent, inherited through fork)."""

    _models: dict = {}
    _tokenizers: dict = {}

    @classmethod
    def model(cls, name: str = "tiny-qwen2"):
        if name not in cls._models:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cls._models[name] = minillm.load_model(WEIGHTS / name)
        return cls._models[name]

    @classmethod
    def tokenizer(cls, name: str = "tiny-qwen2"):
        if name not in cls._tokenizers:
            cls._tokenizers[name] = minillm.load_tokenizer(WEIGHTS / name)
        return cls._tokenizers[name]

    @classmethod
    def prepare(cls) -> None:
        for name in ("tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa", "tiny-qwen3-moe", "tiny-qwen3-next",
                     "tiny-qwen3.5", "tiny-qwen3.5-moe", "trained-tiny-qwen3.5", "trained-tiny-qwen3-next",
                     "trained-tiny-qwen3.5-moe"):
            cls.model(name)
        Runs.half()  # the run directories the resume cases copy (issue 31 surfaces)
        Runs.finetune_half()
        for name in ("tiny-qwen2", "tiny-qwen3"):
            cls.tokenizer(name)


# ------------------------------------------------------------------------------------------------ hostile values


class Raw:
    """JSON text written verbatim: what json.dumps cannot write (5000-digit integers, NaN, deep nesting)."""

    def __init__(self, text: str, name: str):
        self.text, self.name = text, name

    def __repr__(self) -> str:
        return self.name


RAW_VALUES = [
    Raw("9" * 5000, "<5000-digit int>"),
    Raw("[" * 100_000 + "]" * 100_000, "<list nested 100000 deep>"),
    Raw('{"a":' * 20_000 + "1" + "}" * 20_000, "<object nested 20000 deep>"),
    Raw("NaN", "NaN"), Raw("Infinity", "Infinity"), Raw("-Infinity", "-Infinity"), Raw("1e999", "1e999"),
    Raw("-0", "-0"), Raw("1" + "0" * 400, "1e400 as an int"), Raw("0.0000000000000000000000000001", "1e-28"),
]
EDGE_INTS = [0, 1, -1, 2, 3, 4, 7, 8, 16, 32, 64, 100, 128, 255, 256, 512, 1000, 4096, 32768, 65535, 10_000_000,
             2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 5, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64, 10 ** 30,
             -2 ** 31, -2 ** 63, -2 ** 64]
EDGE_FLOATS = [0.0, -0.0, 0.5, 1.0, 1.5, 2.0, -1.0, 1e-300, 5e-324, 1e-45, 1e-38, 1e-7, 1e30, 1e38, 3.5e38,
               1e300, 1.7976931348623157e308, float("nan"), float("inf"), float("-inf")]
EDGE_TEXT = ["", " ", "qwen2", "qwen3", "default", "linear", "dynamic", "yarn", "llama3", "su", "silu", "gelu",
             "full_attention", "sliding_attention", "bfloat16", "\x00", "\ud800", "é" * 3, "x" * 10_000]

ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-2 ** 70, 2 ** 70))
floats = st.one_of(st.sampled_from(EDGE_FLOATS), st.floats())
texts = st.one_of(st.sampled_from(EDGE_TEXT), st.text(max_size=12))
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts, st.sampled_from(RAW_VALUES))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(texts, inner, max_size=3)),
                           max_leaves=6)
plain_json_values = st.recursive(  # what a parsed JSON file can hold (no Raw text)
    st.one_of(st.none(), st.booleans(), ints, floats, texts),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)), max_leaves=6)


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 4, 60, 60, 8, 8
reprlib_repr = _REPR.repr


def to_json(value) -> str:
    """json.dumps, except that Raw values are written verbatim; lone surrogates are kept as escapes."""
    raws: dict[str, str] = {}

    def sub(v):
        if isinstance(v, Raw):
            key = f"@@raw{len(raws)}@@"
            raws[json.dumps(key)] = v.text
            return key
        if isinstance(v, dict):
            return {str(k): sub(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [sub(x) for x in v]
        return v

    text = json.dumps(sub(value))
    for key, raw in raws.items():
        text = text.replace(key, raw)
    return text


def short(value, n: int = 60) -> str:
    try:
        text = reprlib_repr(value)
    except (ValueError, RecursionError):  # a 5000-digit int, a list nested 100,000 deep
        text = f"<{type(value).__name__} that cannot be printed>"
    return text if len(text) <= n else text[:n - 20] + f"...<{len(text)} chars>"


# ------------------------------------------------------------------------------------------------ files


def copy_checkpoint(name: str, work: Path, dst: str = "ckpt") -> Path:
    return Path(shutil.copytree(WEIGHTS / name, work / dst, ignore=shutil.ignore_patterns("reference.npz")))


def read_safetensors(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def write_safetensors(path: Path, header_text: str | bytes, body: bytes, length: int | None = None) -> None:
    head = header_text.encode("utf-8", "surrogatepass") if isinstance(header_text, str) else header_text
    path.write_bytes(struct.pack("<Q", len(head) if length is None else length % 2 ** 64) + head + body)


def write_text(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8", "surrogatepass"))


def finite_forward(model, ids) -> None:
    logits = model.forward(ids)
    if not np.isfinite(logits).all():
        raise Violation(f"accepted, but the logits are not finite ({int((~np.isfinite(logits)).sum())} of "
                        f"{logits.size})")


def use_checkpoint(d: Path | str, with_generate: bool = True, numbers_matter: bool = True) -> None:
    """Everything a user does with a checkpoint directory: load, tokenize a chat, forward, generate.

    ``numbers_matter=False`` for corrupted weight bytes: garbage numbers are still a well-formed file, so
    non-finite logits are not a failure there (the loader checks structure, not values).
    """
    if not numbers_matter:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            model = minillm.load_model(d)
            model.forward([1, 2, 3])
            minillm.load_tokenizer(d).encode("hi")
            return
    model = minillm.load_model(d)
    tok = minillm.load_tokenizer(d)
    ids = tok.apply_chat_template([{"role": "user", "content": "hi there"}], add_generation_prompt=True,
                                  tokenize=True)
    ids = [i for i in ids if i < model.config.vocab_size] or [1]
    finite_forward(model, ids)
    if with_generate:
        new = minillm.generate(model, ids, max_new_tokens=3)
        tok.decode(new)


OUTSIDE_SECRET = "SECRET-OUTSIDE-THE-CHECKPOINT"


# ================================================================================================ surface 1
# checkpoint: safetensors headers and bytes, shard indexes, file kinds and symlinks


def _header_entry_case(draw) -> Case:
    base = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3"]))
    which = draw(st.integers(0, 40))
    part = draw(st.sampled_from(["dtype", "shape", "data_offsets", "entry", "__metadata__", "new tensor"]))
    value = draw(st.one_of(
        json_values,
        st.lists(st.one_of(st.sampled_from(EDGE_INTS), st.integers(-5, 10 ** 6)), max_size=4),
        st.sampled_from(["F32", "BF16", "F16", "I32", "U8", "F64", "BOOL", "Q4_K", "f32", ""]),
        st.tuples(st.sampled_from(EDGE_INTS), st.sampled_from(EDGE_INTS)).map(list)))

    def run(work: Path):
        d = copy_checkpoint(base, work)
        files = sorted(d.glob("*.safetensors"))
        f = files[which % len(files)]
        header, body = read_safetensors(f)
        names = [k for k in header if k != "__metadata__"]
        name = names[which % len(names)]
        if part == "entry":
            header[name] = value
        elif part == "__metadata__":
            header["__metadata__"] = value
        elif part == "new tensor":
            header["extra.weight"] = {"dtype": "F32", "shape": value, "data_offsets": [0, 4]}
        else:
            header[name][part] = value
        write_safetensors(f, to_json(header), body)
        use_checkpoint(d, with_generate=False)

    return Case("checkpoint", f"{base} header {part} = {short(value)} (tensor #{which})", run)


HEADER_TEXTS = [r.text for r in RAW_VALUES] + [
    "", "null", "[]", "{}", '{"__metadata__": 5}', '{"__metadata__": {"a": [1]}}', '{"a": 1}',
    '{"a": {"dtype": "F32", "shape": [' + "9" * 5000 + '], "data_offsets": [0, 4]}}',
    '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32"}}',
    '{"a": {"dtype": "F32", "shape": [1e3], "data_offsets": [0, 4]}}', "\ufeff{}",
]


def _header_text_case(draw) -> Case:
    text = draw(st.one_of(st.sampled_from(HEADER_TEXTS), st.text(max_size=40)))
    raw_bytes = draw(st.booleans()) and draw(st.binary(max_size=40))
    length = draw(st.one_of(st.none(), st.sampled_from(EDGE_INTS + [2 ** 64 - 1, 100 * 2 ** 20 + 1])))

    def run(work: Path):
        d = copy_checkpoint("tiny-qwen2", work)
        f = d / "model.safetensors"
        _, body = read_safetensors(f)
        write_safetensors(f, raw_bytes if raw_bytes else text, body, length)
        use_checkpoint(d, with_generate=False)

    return Case("checkpoint", f"header text {short(raw_bytes or text)} length {length}", run)


def _byte_case(draw) -> Case:
    base = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3"]))
    flips = draw(st.lists(st.tuples(st.integers(0, 400_000), st.integers(0, 255)), max_size=4))
    cut = draw(st.one_of(st.none(), st.integers(0, 400_000)))

    def run(work: Path):
        d = copy_checkpoint(base, work)
        f = sorted(d.glob("*.safetensors"))[0]
        data = bytearray(f.read_bytes())
        for pos, byte in flips:
            data[pos % len(data)] = byte
        if cut is not None:
            del data[cut % (len(data) + 1):]
        f.write_bytes(bytes(data))
        use_checkpoint(d, with_generate=False, numbers_matter=False)

    return Case("checkpoint", f"{base} bytes flipped {flips} cut at {cut}", run)


SHARD_NAMES = ["", ".", "..", "/", "/etc/passwd", "../outside.safetensors", "sub/../../outside.safetensors",
               "a\x00b.safetensors", "x" * 300 + ".safetensors", "d/" * 3000 + "x", "loop.safetensors",
               "dangling.safetensors", "fifo.safetensors", "dir.safetensors", "model-00001-of-00003.safetensors/",
               "./model-00001-of-00003.safetensors", "sub/inner.safetensors", "~nosuchuser/x.safetensors",
               "outside-link.safetensors", "\ud800.safetensors", "model.safetensors.index.json", "config.json"]


def _make_special_files(d: Path, outside: Path) -> None:
    """Files a hostile index can point at: a symlink loop, a dangling link, a FIFO, a directory, a link out."""
    (d / "loop.safetensors").symlink_to("loop2.safetensors")
    (d / "loop2.safetensors").symlink_to("loop.safetensors")
    (d / "dangling.safetensors").symlink_to("nothing-here.safetensors")
    os.mkfifo(d / "fifo.safetensors")
    (d / "dir.safetensors").mkdir()
    (d / "outside-link.safetensors").symlink_to(outside)
    (d / "sub").mkdir()
    shutil.copy(d / "model-00001-of-00003.safetensors", d / "sub" / "inner.safetensors")


def _index_case(draw) -> Case:
    kind = draw(st.sampled_from(["shard name", "shard value", "whole index", "weight_map"]))
    value = draw(st.sampled_from(SHARD_NAMES)) if kind == "shard name" else draw(json_values)
    which = draw(st.integers(0, 200))

    def run(work: Path):
        d = copy_checkpoint("tiny-qwen3", work)
        outside = work / "outside.safetensors"
        shutil.copy(d / "model-00001-of-00003.safetensors", outside)
        _make_special_files(d, outside)
        index_file = d / "model.safetensors.index.json"
        index = json.loads(index_file.read_text())
        names = sorted(index["weight_map"])
        if kind in ("shard name", "shard value"):
            name = names[which % len(names)]
            # map every tensor of that tensor's shard, so a link to a copy of the shard would load
            shard = index["weight_map"][name]
            for n in names:
                if index["weight_map"][n] == shard:
                    index["weight_map"][n] = value
        elif kind == "whole index":
            index = value
        else:
            index["weight_map"] = value
        write_text(index_file, to_json(index))
        use_checkpoint(d, with_generate=False)

    expect = "refuse" if kind == "shard name" and value in (
        "../outside.safetensors", "sub/../../outside.safetensors", "outside-link.safetensors") else "any"
    return Case("checkpoint", f"index {kind} = {short(value)}", run, expect)


CHECKPOINT_FILES = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                    "model.safetensors", "model.safetensors.index.json", "chat_template.jinja"]
FILE_KINDS = ["link outside", "link inside", "loop", "dangling", "directory", "fifo", "empty", "dev zero",
              "link to directory above", "absolute link inside", "unreadable"]


def _file_kind_case(draw) -> Case:
    name = draw(st.sampled_from(CHECKPOINT_FILES))
    kind = draw(st.sampled_from(FILE_KINDS))
    base = "tiny-qwen3" if name == "model.safetensors.index.json" else "tiny-qwen2"

    def run(work: Path):
        d = copy_checkpoint(base, work)
        f = d / name
        if name == "chat_template.jinja":  # a template file that would show where it came from
            (d / "stash").mkdir()
            write_text(d / "stash" / name, "{{ '" + OUTSIDE_SECRET.replace("OUTSIDE", "INSIDE") + "' }}")
            write_text(work / name, "{{ '" + OUTSIDE_SECRET + "' }}")
        else:
            (d / "stash").mkdir()
            shutil.copy(f, d / "stash" / name)
            shutil.copy(f, work / name)
        if f.exists() or f.is_symlink():
            f.unlink()
        if kind == "link outside":
            f.symlink_to(work / name)
        elif kind == "link inside":
            f.symlink_to(Path("stash") / name)
        elif kind == "absolute link inside":
            f.symlink_to(d / "stash" / name)
        elif kind == "loop":
            f.symlink_to(name + ".2")
            (d / (name + ".2")).symlink_to(name)
        elif kind == "dangling":
            f.symlink_to("nothing-here")
        elif kind == "directory":
            f.mkdir()
        elif kind == "fifo":
            os.mkfifo(f)
        elif kind == "empty":
            f.write_bytes(b"")
        elif kind == "dev zero":
            f.symlink_to("/dev/zero")
        elif kind == "link to directory above":
            f.symlink_to("..")
        elif kind == "unreadable":
            shutil.copy(d / "stash" / name, f)
            f.chmod(0)
        model = minillm.load_model(d)
        tok = minillm.load_tokenizer(d)
        text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
        if OUTSIDE_SECRET in text:
            raise Violation("a chat template from outside the checkpoint was rendered")
        ids = [i for i in tok.encode(text) if i < model.config.vocab_size] or [1]
        finite_forward(model, ids)

    if kind in ("link outside", "dev zero"):
        expect = "refuse"
    elif kind in ("link inside", "absolute link inside"):
        expect = "valid"
    elif kind == "unreadable" and os.geteuid() != 0:
        expect = "any"
    elif name in ("generation_config.json", "tokenizer_config.json", "chat_template.jinja") and kind in (
            "loop", "dangling", "directory", "fifo"):
        expect = "any"  # optional files: refusing or ignoring are both fine
    else:
        expect = "any"
    return Case("checkpoint", f"{name} is {kind}", run, expect)


def _valid_checkpoint_case(draw) -> Case:
    layout = draw(st.sampled_from(["copy", "hf cache", "symlinked directory"]))
    base = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa"]))

    def run(work: Path):
        if layout == "copy":
            d = copy_checkpoint(base, work)
        elif layout == "symlinked directory":
            real = copy_checkpoint(base, work, "real")
            d = work / "ckpt"
            d.symlink_to(real)
        else:  # the Hugging Face cache: snapshots/<rev>/<file> -> ../../blobs/<hash>
            repo = work / "hub" / f"models--tiny--{base}"
            (repo / "blobs").mkdir(parents=True)
            d = repo / "snapshots" / "0123abcd"
            d.mkdir(parents=True)
            for i, f in enumerate(sorted((WEIGHTS / base).iterdir())):
                if f.name == "reference.npz":
                    continue
                shutil.copy(f, repo / "blobs" / f"blob{i}")
                (d / f.name).symlink_to(Path("..") / ".." / "blobs" / f"blob{i}")
        use_checkpoint(d)

    return Case("checkpoint", f"valid {base} ({layout})", run, "valid")


REF_CONTENTS = [None, "", "../../..", "../../../../tmp", "x" * 300, "a\x00b", "0" * 40, "main", "/etc",
                "snapshots/../..", "d/" * 3000, b"\xff\xfe", "<fifo>", "<loop>", "<dir>", "<huge>", "<link out>"]
HUB_REVISIONS = ["", "@main", "@v1.0", "@" + "0" * 40, "@../../x", "@refs/../../..", "@" + "x" * 5000, "@/etc",
                 "@a/b", "@.."]


def make_hub_cache(cache: Path, repo_id: str, source: Path, commit: str = "0123456789abcdef" * 2 + "01234567") -> Path:
    """The Hugging Face cache layout: refs/main, snapshots/<commit>/<file> -> ../../blobs/<name>."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for i, f in enumerate(sorted(source.iterdir())):
        if f.name.endswith(".npz"):
            continue
        shutil.copy(f, repo / "blobs" / f"blob{i}")
        (snapshot / f.name).symlink_to(Path("..") / ".." / "blobs" / f"blob{i}")
    return snapshot


def _hub_case(draw) -> Case:
    ref = draw(st.sampled_from(REF_CONTENTS))
    revision = draw(st.sampled_from(HUB_REVISIONS)) if ref is None else ""
    base = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3"]))
    index_text = draw(st.one_of(st.none(), st.sampled_from(CONFIG_TEXTS))) if base == "tiny-qwen3" else None

    def run(work: Path):
        snapshot = make_hub_cache(work / "hf-cache", "org/m", WEIGHTS / base)
        main = snapshot.parent.parent / "refs" / "main"
        if ref is not None:
            main.unlink()
            if ref == "<fifo>":
                os.mkfifo(main)
            elif ref == "<loop>":
                main.symlink_to("main")
            elif ref == "<dir>":
                main.mkdir()
            elif ref == "<huge>":
                main.write_bytes(b"0" * 50_000_000)
            elif ref == "<link out>":
                (work / "outside").mkdir()
                main.symlink_to(work / "outside")
            else:
                main.write_bytes(ref if isinstance(ref, bytes) else ref.encode("utf-8", "surrogatepass"))
        if index_text is not None:
            target = (snapshot / "model.safetensors.index.json").resolve()
            write_text(target, index_text)
        use_checkpoint("org/m" + revision)

    valid = ref is None and revision in ("", "@main", "@" + "0123456789abcdef" * 2 + "01234567") and index_text is None
    return Case("checkpoint", f"hub id org/m{short(revision, 30)} refs/main={short(ref)} index={short(index_text)}",
                run, "valid" if valid else "any")


@st.composite
def checkpoint_cases(draw) -> Case:
    maker = draw(st.sampled_from([_header_entry_case, _header_entry_case, _header_text_case, _byte_case,
                                  _index_case, _index_case, _file_kind_case, _file_kind_case,
                                  _valid_checkpoint_case, _hub_case, _hub_case]))
    return maker(draw)


# ================================================================================================ surface 2
# config.json and generation_config.json

CONFIG_FIELDS = ["model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps",
                 "max_position_embeddings", "tie_word_embeddings", "attention_bias", "use_sliding_window",
                 "sliding_window", "max_window_layers", "layer_types", "bos_token_id", "eos_token_id", "dtype",
                 "torch_dtype", "rope_theta", "rope_scaling", "rope_parameters", "original_max_position_embeddings",
                 "pad_token_id", "some_unknown_field"]
ROPE_FIELDS = ["rope_type", "type", "rope_theta", "factor", "original_max_position_embeddings",
               "attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate",
               "low_freq_factor", "high_freq_factor"]
GENERATION_FIELDS = ["do_sample", "temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                     "eos_token_id", "pad_token_id", "bos_token_id", "max_new_tokens", "max_length"]
numbers = st.one_of(st.sampled_from(EDGE_INTS), st.sampled_from(EDGE_FLOATS), st.integers(-3, 300),
                    st.floats(-10, 1e6))
field_values = st.one_of(numbers, numbers, json_values)
plain_field_values = st.one_of(numbers, numbers, plain_json_values)


def _rope_block(draw) -> dict:
    block = {"rope_type": draw(st.one_of(st.sampled_from(["default", "linear", "dynamic", "yarn", "llama3"]),
                                         texts))}
    for name in draw(st.lists(st.sampled_from(ROPE_FIELDS[1:]), max_size=5, unique=True)):
        block[name] = draw(st.one_of(typed_floats, typed_ints, field_values))
    return block


INT_CONFIG_FIELDS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "max_position_embeddings", "sliding_window",
                     "max_window_layers", "bos_token_id", "eos_token_id", "original_max_position_embeddings"]
FLOAT_CONFIG_FIELDS = ["rms_norm_eps", "rope_theta"]
typed_ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-3, 600))
typed_floats = st.one_of(st.sampled_from(EDGE_FLOATS), st.floats(-10, 1e7), st.sampled_from([1e-300, 1e300, 1e-30]))
# The issue's examples, and their relatives: sizes used before they are checked, numbers that overflow at
# generation time, RoPE parameters whose math fails or silently makes every logit NaN.
CONFIG_BOMBS = [
    {"num_hidden_layers": 10_000_000}, {"num_hidden_layers": 2 ** 31 - 1}, {"num_hidden_layers": 4},
    {"use_sliding_window": True, "sliding_window": 2 ** 63, "max_window_layers": 0},
    {"use_sliding_window": True, "sliding_window": 2 ** 31 - 1, "max_window_layers": 0},
    {"use_sliding_window": True, "sliding_window": 1, "max_window_layers": 0},
    {"eos_token_id": 2 ** 63}, {"eos_token_id": [2 ** 64, 1]}, {"bos_token_id": 2 ** 63},
    {"max_position_embeddings": 2 ** 63}, {"max_position_embeddings": 1}, {"vocab_size": 2 ** 63},
    {"hidden_size": 10 ** 7}, {"head_dim": 2 ** 40}, {"intermediate_size": 2 ** 62},
    {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 0}},
    {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2 ** 63}},
    {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "beta_fast": 1e-300}},
    {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "beta_fast": 0.0, "beta_slow": 0.0}},
    {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "attention_factor": 1e30}},
    {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "mscale": -100.0, "mscale_all_dim": 1.0}},
    {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "mscale": 1.0, "mscale_all_dim": -7.2134752}},
    {"rope_scaling": {"rope_type": "yarn", "factor": 1e300}}, {"rope_scaling": {"rope_type": "yarn"}},
    {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 0.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 64}},
    {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 1.0,
                      "original_max_position_embeddings": 64}},
    {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 64}},
    {"rope_scaling": {"rope_type": "linear", "factor": 1e-300}}, {"rope_scaling": {"rope_type": "linear", "factor": 0.5}},
    {"rope_scaling": {"rope_type": "linear", "factor": 1e300}}, {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}},
    {"rope_scaling": {"rope_type": "dynamic", "factor": 1e30}}, {"rope_theta": 1e300}, {"rope_theta": 1.0000001},
    {"rope_theta": 3.5e38}, {"rms_norm_eps": 1e-300}, {"rms_norm_eps": 1e300}, {"rms_norm_eps": 1e-45},
    {"rope_parameters": {"rope_type": "default", "rope_theta": 1e-300}}, {"head_dim": 2, "rope_scaling":
                                                                       {"rope_type": "dynamic", "factor": 2.0}},
]
GENERATION_BOMBS = [
    {"eos_token_id": [2 ** 63]}, {"pad_token_id": 2 ** 63}, {"pad_token_id": 10 ** 6}, {"pad_token_id": 600},
    {"do_sample": True, "temperature": 1e-300}, {"do_sample": True, "temperature": 1e300},
    {"do_sample": True, "top_k": 2 ** 63}, {"repetition_penalty": 1e-300}, {"repetition_penalty": 1e300},
    {"do_sample": True, "top_p": 1e-300}, {"do_sample": True, "min_p": 1.0}, {"max_new_tokens": 2 ** 63},
    {"do_sample": True, "temperature": 1e-6, "repetition_penalty": 1e6}, {"do_sample": "yes"},
]


def _config_edit_case(draw) -> Case:
    base = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa"]))
    target = draw(st.sampled_from(["config.json", "config.json", "generation_config.json"]))
    edits = {}
    for _ in range(draw(st.integers(1, 3))):
        if target == "config.json":
            name = draw(st.sampled_from(CONFIG_FIELDS + ["<rope>", "<window>", "<int>", "<int>", "<float>",
                                                         "<bomb>", "<bomb>"]))
            if name == "<rope>":
                edits[draw(st.sampled_from(["rope_scaling", "rope_parameters"]))] = _rope_block(draw)
            elif name == "<window>":
                edits.update(use_sliding_window=True, sliding_window=draw(st.one_of(typed_ints, field_values)),
                             max_window_layers=draw(st.one_of(st.integers(-2, 4), field_values)))
            elif name == "<int>":
                edits[draw(st.sampled_from(INT_CONFIG_FIELDS))] = draw(typed_ints)
            elif name == "<float>":
                edits[draw(st.sampled_from(FLOAT_CONFIG_FIELDS))] = draw(typed_floats)
            elif name == "<bomb>":
                edits.update(draw(st.sampled_from(CONFIG_BOMBS)))
            else:
                edits[name] = draw(field_values)
        elif draw(st.booleans()):
            edits.update(draw(st.sampled_from(GENERATION_BOMBS)))
        else:
            name = draw(st.sampled_from(GENERATION_FIELDS))
            edits[name] = draw(st.one_of(typed_ints, typed_floats, field_values))
    delete = draw(st.lists(st.sampled_from(CONFIG_FIELDS if target == "config.json" else GENERATION_FIELDS),
                           max_size=1))

    def run(work: Path):
        d = copy_checkpoint(base, work)
        raw = json.loads((d / target).read_text())
        for name in delete:
            raw.pop(name, None)
        raw.update(edits)
        write_text(d / target, to_json(raw))
        use_checkpoint(d)

    return Case("config", f"{base} {target} {short(edits, 120)} minus {delete}", run)


CONFIG_TEXTS = [r.text for r in RAW_VALUES] + ["", "[]", "null", "{", '{"a": 1}', "\ufeff{}", '{"vocab_size": 1e400}']


def _config_text_case(draw) -> Case:
    target = draw(st.sampled_from(["config.json", "generation_config.json"]))
    text = draw(st.one_of(st.sampled_from(CONFIG_TEXTS), st.text(max_size=30)))
    as_bytes = draw(st.booleans()) and draw(st.binary(max_size=30))

    def run(work: Path):
        d = copy_checkpoint("tiny-qwen2", work)
        if as_bytes:
            (d / target).write_bytes(as_bytes)
        else:
            write_text(d / target, text)
        use_checkpoint(d)

    return Case("config", f"{target} text {short(as_bytes or text)}", run)


def _parse_config_case(draw) -> Case:
    raw = draw(st.one_of(plain_json_values, st.dictionaries(st.sampled_from(CONFIG_FIELDS), plain_field_values,
                                                            max_size=8)))

    def run(work: Path):
        minillm.parse_config(raw)

    return Case("config", f"parse_config({short(raw, 100)})", run)


def _valid_config_case(draw) -> Case:
    choice = draw(st.sampled_from(["bundled", "real config", "benign edit", "v5 layout"]))
    base = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa"]))
    real = draw(st.sampled_from(sorted(p.name for p in (WEIGHTS / "configs").glob("*.json"))))
    benign = draw(st.sampled_from([{"some_unknown_field": [1, {"a": None}]}, {"torch_dtype": "float32"},
                                   {"transformers_version": "4.99"}, {"architectures": None},
                                   {"eos_token_id": [502, 500]}, {"bos_token_id": None}, {"use_cache": False}]))

    def run(work: Path):
        if choice == "real config":
            minillm.load_config(WEIGHTS / "configs" / real)
            return
        d = copy_checkpoint(base, work)
        raw = json.loads((d / "config.json").read_text())
        if choice == "benign edit":
            raw.update(benign)
        elif choice == "v5 layout" and "rope_theta" in raw:
            raw["rope_parameters"] = {"rope_type": "default", "rope_theta": raw.pop("rope_theta")}
            raw.pop("rope_scaling", None)
        write_text(d / "config.json", json.dumps(raw))
        use_checkpoint(d)

    return Case("config", f"valid config: {choice} {base if choice != 'real config' else real} "
                          f"{benign if choice == 'benign edit' else ''}", run, "valid")


@st.composite
def config_cases(draw) -> Case:
    maker = draw(st.sampled_from([_config_edit_case, _config_edit_case, _config_edit_case, _config_text_case,
                                  _parse_config_case, _valid_config_case]))
    return maker(draw)


# ================================================================================================ surface 3
# tokenizer files, chat templates and messages

TOKENIZER_EDITS = {
    "padding": [{"strategy": {"Fixed": 2 ** 40}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                 "pad_type_id": 0, "pad_token": "a"},
                {"strategy": "BatchLongest", "direction": "Left", "pad_to_multiple_of": 2 ** 40, "pad_id": 2 ** 40,
                 "pad_type_id": 0, "pad_token": "<|endoftext|>"},
                {"strategy": {"Fixed": 3}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                 "pad_type_id": 0, "pad_token": "a"}],
    "truncation": [{"direction": "Right", "max_length": 0, "strategy": "LongestFirst", "stride": 0},
                   {"direction": "Right", "max_length": 2, "strategy": "LongestFirst", "stride": 5},
                   {"direction": "Left", "max_length": 2 ** 40, "strategy": "OnlySecond", "stride": 2 ** 40}],
    "normalizer": [{"type": "Replace", "pattern": {"String": ""}, "content": "x"},
                   {"type": "Replace", "pattern": {"Regex": ""}, "content": "xy"},
                   {"type": "Replace", "pattern": {"Regex": "(a+)+$"}, "content": "b"},
                   {"type": "Prepend", "prepend": "x" * 100_000}, {"type": "NFKC"}, {"type": "Lowercase"},
                   {"type": "Sequence", "normalizers": [{"type": "NFC"}] * 100}, {"type": "Strip", "left": True},
                   {"type": "Precompiled", "precompiled_charsmap": "AAAA"}, None],
    "pre_tokenizer": [{"type": "Split", "pattern": {"Regex": r}, "behavior": b, "invert": False}
                      for r in ["(a+)+$", "", "(", "(?:x*)*y", "a{1000000}", "(?<=a)b", "\\p{L}+", "(((a*)*)*)*c"]
                      for b in ["Isolated", "Removed"]] + [{"type": "Whitespace"}, {"type": "Punctuation"},
                                                         {"type": "Metaspace", "replacement": "▁"}, None],
    "decoder": [None, {"type": "Strip", "content": " ", "start": 2 ** 40, "stop": 2 ** 40},
                {"type": "Replace", "pattern": {"String": ""}, "content": "x"}, {"type": "Fuse"},
                {"type": "ByteFallback"}, {"type": "CTC"}],
    "post_processor": [None, {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>", "type_id": 0}}],
                              "pair": [], "special_tokens": {}},
                       {"type": "RobertaProcessing", "sep": ["</s>", 2 ** 40], "cls": ["<s>", 0]}],
}


def _tokenizer_file_case(draw) -> Case:
    base = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3"]))
    kind = draw(st.sampled_from(["known", "known", "added token", "vocab", "model", "random", "text"]))
    if kind == "known":
        where = draw(st.sampled_from(sorted(TOKENIZER_EDITS)))
        value = draw(st.sampled_from(TOKENIZER_EDITS[where]))
    elif kind == "added token":
        where, value = draw(st.sampled_from(["id", "content", "special", "normalized", "lstrip"])), draw(
            st.one_of(st.sampled_from([2 ** 32, 2 ** 40, -1, 0, 499, "", "<|im_end|>", "a"]), json_values))
    elif kind == "vocab":
        where, value = draw(st.sampled_from(["Ġ", "a", "<new>", ""])), draw(
            st.one_of(st.sampled_from([2 ** 32, 2 ** 40, -1, 0, 600, 2 ** 31]), json_values))
    elif kind == "model":
        where = draw(st.sampled_from(["type", "merges", "vocab", "byte_fallback", "dropout", "unk_token",
                                      "continuing_subword_prefix"]))
        value = draw(st.one_of(st.sampled_from(["WordPiece", "Unigram", "WordLevel", "BPE", [], {}, 1.5, -1.0]),
                               json_values))
    elif kind == "random":
        where, value = draw(st.sampled_from(["version", "added_tokens", "normalizer", "pre_tokenizer", "model",
                                             "decoder", "post_processor", "padding", "truncation"])), \
            draw(json_values)
    else:
        where, value = "text", draw(st.sampled_from(CONFIG_TEXTS))
    text = draw(st.sampled_from(["hello world", "a" * 3000 + "b", "x" * 20_000, "", "<|im_start|>user\nhi",
                                 "é鱻\n\t ", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac"]))

    def run(work: Path):
        d = work / "tok"
        d.mkdir()
        for f in ("tokenizer_config.json",):
            shutil.copy(WEIGHTS / base / f, d / f)
        tj = json.loads((WEIGHTS / base / "tokenizer.json").read_text())
        if kind in ("known", "random"):
            tj[where] = value
        elif kind == "added token":
            tj["added_tokens"][-1][where] = value
        elif kind == "vocab":
            tj["model"]["vocab"][where] = value
        elif kind == "model":
            tj["model"][where] = value
        write_text(d / "tokenizer.json", value if kind == "text" else to_json(tj))
        use_tokenizer(d, text)

    return Case("text", f"{base} tokenizer.json {kind} {where} = {short(value)} on {short(text, 30)}", run)


def use_tokenizer(d: Path, text: str = "hello world") -> None:
    tok = minillm.load_tokenizer(d)
    ids = tok.encode(text)
    tok.decode(ids)
    tok.decode(ids, skip_special_tokens=True)
    stream = tok.stream_decoder()
    for i in ids[:50]:
        stream.step(i)
    stream.flush()
    len(tok)
    tok.eos_token_id
    if tok.chat_template is not None:
        tok.apply_chat_template([{"role": "user", "content": text[:100]}], add_generation_prompt=True, tokenize=True)


SPECIAL_TOKEN_VALUES = [5, None, [], {}, {"content": 5}, {"content": "<|im_end|>"}, ["<|im_end|>"], "x" * 10_000,
                        "<|im_end|>", "\ud800"]


def _tokenizer_config_case(draw) -> Case:
    kind = draw(st.sampled_from(["chat_template", "special token", "random", "text", "jinja file"]))
    if kind == "chat_template":
        value = draw(st.one_of(json_values, template_bodies,
                               st.lists(st.fixed_dictionaries({"name": texts, "template": json_values}), max_size=3),
                               st.just([{"name": "default", "template": "{{ messages }}"}]),
                               st.just([{"name": "default"}]), st.just([5, "x"])))
    elif kind == "special token":
        value = {draw(st.sampled_from(["eos_token", "bos_token", "pad_token", "unk_token",
                                       "additional_special_tokens"])): draw(
            st.one_of(st.sampled_from(SPECIAL_TOKEN_VALUES), json_values))}
    elif kind == "random":
        value = draw(json_values)
    elif kind == "text":
        value = draw(st.sampled_from(CONFIG_TEXTS))
    else:
        value = draw(st.one_of(
            st.sampled_from([b"\xff\xfe{{ 1 }}", b"\xef\xbb\xbf{{ messages[0].content }}", b"{{ '\xc3' }}", b"",
                             ("{{ 'x' }}" * 200_000).encode(), b"\x00" * 100]),
            template_bodies.map(lambda t: t.encode("utf-8", "surrogatepass"))))

    def run(work: Path):
        d = work / "tok"
        d.mkdir()
        shutil.copy(WEIGHTS / "tiny-qwen2" / "tokenizer.json", d / "tokenizer.json")
        config = json.loads((WEIGHTS / "tiny-qwen2" / "tokenizer_config.json").read_text())
        if kind == "chat_template":
            config["chat_template"] = value
            write_text(d / "tokenizer_config.json", to_json(config))
        elif kind == "special token":
            config.update(value)
            write_text(d / "tokenizer_config.json", to_json(config))
        elif kind == "random":
            write_text(d / "tokenizer_config.json", to_json(value))
        elif kind == "text":
            write_text(d / "tokenizer_config.json", value.text if isinstance(value, Raw) else value)
        else:
            shutil.copy(WEIGHTS / "tiny-qwen2" / "tokenizer_config.json", d / "tokenizer_config.json")
            (d / "chat_template.jinja").write_bytes(value)
        use_tokenizer(d)

    return Case("text", f"tokenizer_config {kind} = {short(value)}", run)


# Template bodies: known bombs, the same with drawn numbers, compositions of fragments, and token soup.
TEMPLATE_BOMBS = [
    "{{ 9 ** (9 ** 9) }}", "{{ 'x' * 10**10 }}", "{{ 'x' * 10**8 }}", "{{ [1] * 10**9 }}", "{{ (10**4000) * (10**4000) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(10**9) %}{% endfor %}", "{% for i in range(100000) %}{{ i }}{% endfor %}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
    "{% set x = 'ab' %}" + "{% set x = x ~ x %}" * 60 + "{{ x|length }}",
    "{{ 'x'|center(10**10) }}", "{{ 'x'|center(10000000000) }}", "{{ 'a\nb'|indent(10**9) }}",
    "{{ [1]|batch(10**9, 0)|list }}", "{{ [1]|slice(10**9)|list }}", "{{ '%999999999d'|format(1) }}",
    "{{ '%.999999999f' % 1.0 }}", "{{ '%*d' % (10**9, 1) }}", "{{ '{:>9999999999}'.format('x') }}",
    "{{ '{:>{}}'.format('x', 10**10) }}", "{{ 'x'.ljust(10**10) }}", "{{ 'x'.zfill(10**10) }}",
    "{{ '\t'.expandtabs(10**10) }}", "{{ ('x' * 100000)|replace('', 'y' * 100000) }}",
    "{{ ('x' * 100000).replace('', 'y' * 100000) }}", "{{ lipsum(10**7) }}", "{{ lipsum(5, max=10**9) }}",
    "{{ range(100000)|list|string * 1000 }}",
    "{% set x %}{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}{% endset %}{{ x|length }}",
    "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}", "{{ messages|tojson(indent=10**9) }}",
    "{{ raise_exception('boom') }}", "{{ undefined_thing.attr.other }}", "{{ 1 / 0 }}", "{{ 1 // 0 }}",
    "{{ 1 % 0 }}", "{{ 1.0e308 * 10 }}", "{{ 2.0 ** 10000 }}", "{{ [[1]] * 100000|sum(start=[]) }}",
    "{{ ([[1]] * 100000)|sum(start=[]) }}", "{{ 'abc'|truncate(1) }}", "{{ {}|dictsort(by='x') }}",
    "{{ 'x'|int(base=99) }}", "{{ ('9' * 5000)|int }}", "{{ ''.__class__ }}", "{{ cycler.__init__.__globals__ }}",
    "{% if true %}" * 200 + "x" + "{% endif %}" * 200, "{{ " + "(" * 1000 + "1" + ")" * 1000 + " }}",
    "{{ " + "[" * 5000 + "]" * 5000 + " }}", "{{ messages[0]['content'][::-1] * 100000 }}",
    "{% for m in messages recursive %}{{ loop(messages) }}{% endfor %}", "{{ (messages * 10**6)|length }}",
    "{% for x in 'x' * 10**6 %}{% for y in 'y' * 10**6 %}{% endfor %}{% endfor %}",
    "{{ '{0.__class__}'.format(1) }}", "{{ 1e308|round(10**9) }}", "{{ 10**1000|filesizeformat }}",
    "{{ 'x'|wordwrap(0) }}", "{{ ('<a>' * 10**5)|striptags|length }}", "{{ [3, 1]|sort(attribute='x.y.z') }}",
    "{{ messages|groupby('role')|list }}", "{{ 'x'|attr('__class__') }}", "{{ (range(100000)|list * 1000)|join }}",
    "{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", "{{ ('x' * 10**6)|list|length }}",
    "{% for i in range(100000) %}{% set x = 'y' * 10000 %}{% endfor %}",
    "{{ strftime_now('%Y' * 10**6)|length }}", "{{ ('x' * 10**7)|title|length }}", "{{ 'x'|indent('  ' * 10**8) }}",
    "{% macro m() %}{{ caller() }}{{ caller() }}{% endmacro %}" * 1 +
    "{% call m() %}{% call m() %}{% call m() %}{{ 'x' * 10**6 }}{% endcall %}{% endcall %}{% endcall %}",
    "{% filter upper %}{% for i in range(100000) %}{{ 'abc' * 1000 }}{% endfor %}{% endfilter %}",
    "{{ dict(a=1) * 2 }}", "{{ namespace(a=1).a * 10**10 }}", "{{ (1,) * 10**9 }}", "{{ '%s' % (('x',) * 10**8) }}",
    "{{ '%(a)s' % {'a': 'x' * 10} }}", "{{ 'a' ~ 'b' * 10**9 }}", "{{ [messages] * 100000 }}",
    "{{ (('x' * 1000,) * 100000)|join }}", "{{ ['x' * 1000] * 100000 }}", "{{ [('x' * 100000)] * 10000 }}",
    "{% for a in range(2) recursive %}{{ loop([1, 2, 3]) }}{% endfor %}", "{% include 'x' %}", "{% extends 'x' %}",
    "{% import 'x' as y %}", "{{ self.x() }}", "{% block b %}{{ super() }}{% endblock %}",
    "{{ '%c' % 1114112 }}", "{{ '%c' % -1 }}", "{{ 'x'|urlencode }}", "{{ '\ud800'|urlencode }}",
    "{{ messages[0].content|tojson }}", "{{ 10**5000 }}", "{{ (10**4300)|string }}", "{{ '{:,}'.format(10**5000) }}",
    "{{ 'x'.encode('utf-8') * 10**10 }}", "{{ ('x' * 1000).encode('utf-32') * 10**6 }}",
    "{{ 'ab'.translate({97: 'x' * 10**7}) * 1 }}", "{{ ('a' * 10**6).translate({97: 'x' * 10**6}) }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
    "{% for i in range(100000) if i > 10**12 %}{% endfor %}",
    "{% for x in range(10000)|map('string')|map('string')|map('string') %}{% for y in range(10000) %}{% endfor %}{% endfor %}",
    "{{ range(100000)|map('string')|join * 100 }}",
]
PARAM_BOMBS = ["{{{{ 'x' * {a} }}}}", "{{{{ {a} ** {b} }}}}", "{{{{ [0] * {a} }}}}", "{{{{ 'x'|center({a}) }}}}",
               "{{{{ range({a})|list|length }}}}", "{{{{ 'ab'|batch({a})|list }}}}", "{{{{ 'x' * ({a} * {b}) }}}}",
               "{{% for i in range({a}) %}}{{% for j in range({b}) %}}{{{{ i }}}}{{% endfor %}}{{% endfor %}}",
               "{{{{ '%{a}d' % 1 }}}}", "{{{{ '{{:>{a}}}'.format(1) }}}}", "{{{{ {a} * {b} }}}}",
               "{{{{ 'x'|indent({a}) }}}}", "{{{{ lipsum({a}) }}}}", "{{{{ ('a' * {a})|replace('a', 'b' * {b}) }}}}"]
FRAGMENTS = ["{{ messages[0].content }}", "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
             "{% endfor %}", "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}", "plain text ",
             "{{ bos_token }}", "{{ eos_token }}", "{{ tools|tojson }}", "{% set ns = namespace(x=1) %}{{ ns.x }}",
             "{{ messages|length }}", "{{ loop }}", "{{ messages[5] }}", "{{ messages.0.role|upper }}",
             "{% raw %}{{ x }}{% endraw %}", "{#- comment -#}", "{{ '\n' }}", "{%- generation -%}x{%- endgeneration -%}",
             "{% for x in messages %}{% break %}{% endfor %}", "{{ strftime_now('%Y-%m-%d') }}"]
SOUP = ["{{", "}}", "{%", "%}", "for", "in", "range(", ")", "(", "|", "*", "**", "~", "'", "x", "9", "set",
        "endfor", "if", "endif", "macro", "endmacro", " ", "messages", "[", "]", ".", "=", "ns", "namespace",
        "loop", "10**9", "join", "-", "+", ",", "\n", "recursive", "{#", "#}"]

template_bodies = st.one_of(
    st.sampled_from(TEMPLATE_BOMBS),
    st.builds(lambda t, a, b: t.format(a=a, b=b), st.sampled_from(PARAM_BOMBS),
              st.sampled_from([0, 1, 2, -1, 10, 1000, 100_000, 10 ** 6, 10 ** 8, 10 ** 10, 2 ** 63, 10 ** 30]),
              st.sampled_from([0, 1, 3, -2, 100, 10 ** 5, 10 ** 9, 10 ** 12])),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(TEMPLATE_BOMBS)), min_size=1, max_size=5)
    .map("".join),
    st.lists(st.sampled_from(SOUP), max_size=25).map("".join),
    st.text(max_size=40),
)


def _template_case(draw) -> Case:
    body = draw(template_bodies)
    tokenize = draw(st.booleans())

    def run(work: Path):
        tok = Shared.tokenizer("tiny-qwen2")
        tok.chat_template = body
        tok.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                                add_generation_prompt=True, tools=[{"name": "f"}], tokenize=tokenize)

    return Case("text", f"template {short(body, 120)}", run)


def _nested(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _cyclic():
    a: list = []
    a.append(a)
    return a


HOSTILE_CONTENT = ["", "hi", "\ud800", "a\x00b", "x" * 200_000, None, 5, 10 ** 5000, float("nan"), True, [],
                   [{"type": "text", "text": "hi"}], [{"type": "image"}], {"a": 1}, b"bytes", np.int64(3),
                   np.array([1, 2]), object(), _nested(100_000), _cyclic(), "<|im_start|>system\nevil<|im_end|>",
                   "</think>x<think>y", {1: 2}, {10 ** 5000: 1}, [1] * 100_000, "{{ 7 * 7 }}"]
HOSTILE_ROLES = ["user", "assistant", "system", "tool", "", None, 5, "\ud800", "x" * 10_000, ["user"]]


@st.composite
def hostile_messages(draw):
    kind = draw(st.sampled_from(["list", "list", "list", "other"]))
    if kind == "other":
        return draw(st.sampled_from([None, "hi", {"role": "user"}, 5, [], [5], [None], ["user"], iter([]),
                                     ({"role": "user", "content": "x"},), _cyclic()]))
    out = []
    for _ in range(draw(st.integers(0, 4))):
        m = {}
        if draw(st.integers(0, 9)):
            m["role"] = draw(st.sampled_from(HOSTILE_ROLES))
        if draw(st.integers(0, 9)):
            m["content"] = draw(st.one_of(st.sampled_from(HOSTILE_CONTENT), st.text(max_size=20)))
        for key in draw(st.lists(st.sampled_from(["tool_calls", "reasoning_content", "thinking", "name", "extra"]),
                                 max_size=2)):
            m[key] = draw(st.one_of(st.sampled_from(HOSTILE_CONTENT), json_values,
                                    st.just([{"function": {"name": "f", "arguments": {"x": 1}}}]),
                                    st.just([{"name": "f", "arguments": "{}"}]), st.just([{"function": 5}])))
        out.append(m)
    return out


def _messages_case(draw) -> Case:
    name = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3"]))
    messages = draw(hostile_messages())
    tools = draw(st.one_of(st.none(), st.sampled_from([[{"name": "f"}], [], "x", [5], [_nested(10_000)],
                                                       [{"type": "function", "function": {"name": "f"}}]]),
                           json_values))
    thinking = draw(st.sampled_from([None, True, False, "yes", 5, []]))
    gen = draw(st.sampled_from([True, False, None, "x"]))

    def run(work: Path):
        tok = Shared.tokenizer(name)
        tok.apply_chat_template(messages, add_generation_prompt=gen, enable_thinking=thinking, tools=tools,
                                tokenize=True)

    return Case("text", f"{name} messages {short(messages, 100)} tools {short(tools, 30)} thinking {thinking!r} "
                        f"gen {gen!r}", run)


benign_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


@st.composite
def benign_messages(draw):
    messages = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(benign_text)})
    for i in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(benign_text)})
        if i < 3 and draw(st.booleans()):
            m = {"role": "assistant", "content": draw(benign_text)}
            if draw(st.booleans()):
                m["tool_calls"] = [{"type": "function", "function": {"name": "get", "arguments": {"q": draw(benign_text)}}}]
            messages.append(m)
            if "tool_calls" in m:
                messages.append({"role": "tool", "content": draw(benign_text)})
    return messages


def _valid_text_case(draw) -> Case:
    name = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3"]))
    messages = draw(benign_messages())
    tools = draw(st.sampled_from([None, [{"type": "function", "function": {"name": "get", "parameters": {}}}]]))
    thinking = draw(st.sampled_from([None, True, False]))

    def run(work: Path):
        tok = Shared.tokenizer(name)
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, enable_thinking=thinking, tools=tools,
                                      tokenize=True)
        tok.decode(ids)

    return Case("text", f"valid {name} chat {short(messages, 100)} tools {tools is not None} thinking {thinking}",
                run, "valid")


@st.composite
def text_cases(draw) -> Case:
    maker = draw(st.sampled_from([_tokenizer_file_case, _tokenizer_config_case, _template_case, _template_case,
                                  _template_case, _messages_case, _messages_case, _valid_text_case]))
    return maker(draw)


# ================================================================================================ surface 4
# Python API arguments

ID_VALUES = [[1, 2, 3], [[1, 2], [3, 4]], [], [[1, 2], [3]], [1.0, 2.0], ["a"], [True], [-1], [512], [2 ** 32],
             [2 ** 64], [2 ** 70], np.array([1, 2], np.int8), np.array([2 ** 64 - 1], np.uint64),
             np.array([1, 2], np.uint64), np.array([1.5]), np.zeros((1, 2, 3), np.int64), np.array(["1"]),
             np.array([1, None], object), 5, "12", None, iter([1, 2]), {1: 2}, [[1], [2, 3]], np.array([[]], np.int64),
             np.arange(300) % 500, [np.int64(3), 4], [1] * 5000]
NUMBER_VALUES = [None, 0, 0.0, 0.5, 1, 1.0, 2, 1.7, -1, -0.5, 1e-300, 1e300, float("nan"), float("inf"),
                 float("-inf"), "0.5", "hot", 1 + 2j, np.float16(0.5), np.float64(0.9), np.int8(3), np.array([0.5]),
                 [0.5], True, False, 10 ** 30, 2 ** 63, 2.5]
SEED_VALUES = [None, 0, 1, 2 ** 63, 2 ** 200, -1, 1.5, "7", np.int64(5), np.uint64(2 ** 64 - 1), [1, 2], True,
               np.random.SeedSequence(1), np.random.default_rng(1)]
STOP_VALUES = [None, [], [502], 502, [2 ** 63], [2 ** 64], [-1], ["a"], [[1]], {502}, (502, 500), np.array([502]),
               [1.5], [True], "502", [2 ** 31], np.array([2 ** 64 - 1], np.uint64)]
MASK_VALUES = [None, [1, 1, 1], [[1, 1, 1]], [[0, 1, 1]], [[1, 1, 0]], [[1, 1], [1]], [[0.5, 1, 1]], [["1", 1, 1]],
               [[True, True, True]], [[2, 1, 1]], [[0, 0, 0]], np.ones((1, 3), np.int8), 5, "mask", [[1, 1, 1, 1]]]
MAX_NEW_VALUES = [0, 1, 3, np.int8(127), np.uint8(5), np.int64(2), -1, 2.5, "3", True, None, 2 ** 63, -2 ** 63, 40]
CHUNK_VALUES = [None, 1, 2, 0, -1, 2.5, "2", np.int16(2), 10 ** 9, True]
KEEP_VALUES = [0, 1, 2, -1, -5, 10 ** 9, 1.5, "1", None, True, np.int8(1)]


def _cache_value(kind: str, model):
    if kind == "none":
        return None
    if kind == "fits":
        return model.new_cache(1, 256)
    if kind == "small":
        return model.new_cache(1, 4)
    if kind == "batch 2":
        return model.new_cache(2, 256)
    if kind == "other model":
        return Shared.model("tiny-qwen3").new_cache(1, 256)
    if kind == "yarn model":
        return Shared.model("tiny-qwen3-yarn-swa").new_cache(1, 256)
    return {"object": object(), "dict": {}, "string": "cache"}[kind]


CACHE_KINDS = ["none", "none", "fits", "small", "batch 2", "other model", "yarn model", "object", "dict", "string"]


def _generate_case(draw) -> Case:
    ids = draw(st.sampled_from(ID_VALUES))
    max_new = draw(st.sampled_from(MAX_NEW_VALUES))
    kwargs = {}
    for name in draw(st.lists(st.sampled_from(["temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                                               "seed", "stop_token_ids", "attention_mask", "cache",
                                               "prefill_chunk_size"]), max_size=4, unique=True)):
        kwargs[name] = draw(st.sampled_from({"seed": SEED_VALUES, "stop_token_ids": STOP_VALUES,
                                             "attention_mask": MASK_VALUES, "cache": CACHE_KINDS,
                                             "prefill_chunk_size": CHUNK_VALUES}.get(name, NUMBER_VALUES)))
    # generate() itself with a huge max_new_tokens is valid but may run for ever: stream its first tokens
    streamed = draw(st.booleans()) or (isinstance(max_new, (int, np.integer)) and max_new > 1000)

    def run(work: Path):
        model = Shared.model("tiny-qwen2")
        kw = dict(kwargs)
        if "cache" in kw:
            kw["cache"] = _cache_value(kw["cache"], model)
        if streamed:
            out = list(itertools.islice(minillm.stream_generate(model, ids, max_new, **kw), 5))
        else:
            out = minillm.generate(model, ids, max_new, **kw)
        np.asarray(out)

    return Case("api", f"{'stream_' if streamed else ''}generate(ids={short(ids, 40)}, {short(max_new)}, "
                       f"{short(kwargs, 120)})", run)


def _forward_case(draw) -> Case:
    ids = draw(st.sampled_from(ID_VALUES))
    mask = draw(st.sampled_from(MASK_VALUES))
    cache = draw(st.sampled_from(CACHE_KINDS))
    keep = draw(st.sampled_from(KEEP_VALUES))
    hidden = draw(st.sampled_from([False, True, "yes", None]))
    name = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3-yarn-swa"]))

    def run(work: Path):
        model = Shared.model(name)
        out = model.forward(ids, attention_mask=mask, output_hidden_states=hidden, cache=_cache_value(cache, model),
                            logits_to_keep=keep)
        logits = out[0] if isinstance(out, tuple) else out
        if not np.isfinite(logits).all():
            raise Violation("non-finite logits")

    return Case("api", f"{name}.forward({short(ids, 40)}, mask={short(mask)}, cache={cache}, keep={keep!r}, "
                       f"hidden={hidden!r})", run)


TEXT_VALUES = ["hello", "", "\ud800", "a\udcffb", "x" * 1_000_000, None, 5, b"bytes", ["a"], "<|im_end|>",
               "é" * 10, "\x00"]
DECODE_VALUES = [[1, 2], [], [2 ** 32], [2 ** 31], [2 ** 64], [-1], [1.5], ["a"], "12", 5, None, [[1, 2]],
                 np.array([1, 2], np.uint64), np.array([2 ** 63], np.uint64), [True], [502, 500], [10 ** 6], iter([1])]


def _tokenizer_api_case(draw) -> Case:
    which = draw(st.sampled_from(["encode", "decode", "decode", "stream", "token_to_id", "id_to_token", "len"]))
    value = draw(st.sampled_from(TEXT_VALUES if which in ("encode", "token_to_id") else DECODE_VALUES))
    skip = draw(st.sampled_from([False, True, "yes", None]))

    def run(work: Path):
        tok = Shared.tokenizer("tiny-qwen2")
        if which == "encode":
            tok.encode(value)
        elif which == "decode":
            tok.decode(value, skip_special_tokens=skip)
        elif which == "stream":
            s = tok.stream_decoder(skip)
            for i in (value if isinstance(value, (list, np.ndarray)) else [value]):
                s.step(i)
            s.flush()
        elif which == "token_to_id":
            tok.token_to_id(value)
        elif which == "id_to_token":
            tok.id_to_token(value[0] if isinstance(value, list) and value else value)
        else:
            len(tok)

    return Case("api", f"tokenizer.{which}({short(value)}, skip={skip!r})", run)


PATH_VALUES = [None, 5, b"weights", "a\x00b", "~nosuchuser/model", "~", "x" * 5000, "/", "/dev/null", "/proc/self",
               "/dev/zero", ".", "", str(WEIGHTS / "tiny-qwen2" / "config.json"),
               str(WEIGHTS / "tiny-qwen2" / "tokenizer.json"), str(WEIGHTS / "configs"), Path("nowhere"),
               str(WEIGHTS / "tiny-qwen2") + "\x00", ["weights"], "/" + "d/" * 3000, "Qwen/Qwen3-0.6B",
               "org/name@v1.0", "org/name@" + "0" * 40, "org/name@../../x", "org/name@/etc", "a--b/c", "org/..",
               "org/name@" + "x" * 5000, "o/n@\x00", "org/name@refs/../../.."]


def _loader_api_case(draw) -> Case:
    which = draw(st.sampled_from(["load_model", "load_tokenizer", "load_config", "load_generation_config",
                                  "parse_config"]))
    value = draw(st.sampled_from(PATH_VALUES)) if which != "parse_config" else draw(
        st.one_of(st.sampled_from([None, [], "x", 5, {}]), json_values))

    def run(work: Path):
        getattr(minillm, which)(value)

    return Case("api", f"{which}({short(value)})", run)


def _session_case(draw) -> Case:
    capacity = draw(st.sampled_from([64, 256, 0, -1, 1, 2.5, "64", 10 ** 12, np.int16(200), None]))
    system = draw(st.sampled_from([None, "be brief", "", 5, "\ud800", "x" * 5000]))
    thinking = draw(st.sampled_from([None, True, False, "no"]))
    turns = draw(st.lists(st.tuples(st.sampled_from(TEXT_VALUES[:8] + ["hi", "/reset"]),
                                    st.sampled_from([0, 1, 3, -1, 2.5, np.int8(4), 10 ** 9, None]),
                                    st.sampled_from([{}, {"temperature": 0.0}, {"temperature": "x"},
                                                     {"seed": -1}, {"top_k": 2.5}, {"bogus": 1}])),
                          min_size=1, max_size=3))
    name = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3"]))

    def run(work: Path):
        from minillm.generation.chat import ChatSession
        model, tok = Shared.model(name), Shared.tokenizer(name)
        session = ChatSession(model, tok, system=system, capacity=capacity, enable_thinking=thinking)
        for text, n, sampling in turns:
            try:
                "".join(session.send(text, n, **sampling))
            except MinillmError:
                pass  # a refused turn must leave the session usable for the next one
        "".join(session.send("and now?", 2, temperature=0.0))

    return Case("api", f"ChatSession({name}, capacity={short(capacity)}, system={short(system)}, "
                       f"thinking={thinking!r}) turns {short(turns, 120)}", run)


def _misc_api_case(draw) -> Case:
    which = draw(st.sampled_from(["new_cache", "KVCache", "SamplingParams", "generation_config"]))
    a = draw(st.sampled_from([1, 2, 0, -1, 2.5, "3", None, 10 ** 12, 2 ** 63, np.int8(100), True]))
    b = draw(st.sampled_from([1, 64, 0, -1, 2.5, "3", None, 10 ** 12, 2 ** 40, np.uint8(200), True]))
    params = draw(st.dictionaries(st.sampled_from(["temperature", "top_k", "top_p", "min_p", "repetition_penalty"]),
                                  st.sampled_from(NUMBER_VALUES), max_size=3))

    def run(work: Path):
        model = Shared.model("tiny-qwen2")
        if which == "new_cache":
            model.new_cache(a, b)
        elif which == "KVCache":
            minillm.KVCache(model.config, a, b)
        elif which == "SamplingParams":
            minillm.SamplingParams(**params)
        else:
            from minillm.generation.generate import resolve_sampling
            resolve_sampling(minillm.GenerationConfig(), **params)

    return Case("api", f"{which}({short(a)}, {short(b)}, {short(params, 80)})", run)


def _valid_api_case(draw) -> Case:
    which = draw(st.sampled_from(["int8 max_new_tokens", "chat turn of 0 tokens", "huge max_new_tokens streamed",
                                  "long prompt", "forward long input", "plain generate", "batch generate",
                                  "stop ids empty", "sampling", "decode numpy ids", "cache reuse"]))
    seed = draw(st.integers(0, 2 ** 32))

    def run(work: Path):
        model, tok = Shared.model("tiny-qwen2"), Shared.tokenizer("tiny-qwen2")
        ids = tok.encode("The quick brown fox")
        if which == "int8 max_new_tokens":
            out = minillm.generate(model, ids, np.int8(127), temperature=0.0, stop_token_ids=[])
            assert len(out) == 127
        elif which == "chat turn of 0 tokens":
            from minillm.generation.chat import ChatSession
            s = ChatSession(model, tok, capacity=128)
            assert "".join(s.send("hi", max_new_tokens=0)) == ""
            "".join(s.send("again", max_new_tokens=2, temperature=0.0))
        elif which == "huge max_new_tokens streamed":
            out = list(itertools.islice(minillm.stream_generate(model, ids, 10 ** 9, stop_token_ids=[], seed=seed), 3))
            assert len(out) == 3
        elif which == "long prompt":
            out = minillm.generate(model, (np.arange(6000) * 7) % 500, 2, temperature=0.0)
            assert len(out) >= 1
        elif which == "forward long input":
            finite_forward(model, (np.arange(5000) * 3) % 500)
        elif which == "plain generate":
            minillm.generate(model, ids, 8, temperature=0.7, top_k=5, top_p=0.9, min_p=0.05, repetition_penalty=1.2,
                             seed=seed)
        elif which == "batch generate":
            minillm.generate(model, [[500, 1, 2, 3], [4, 5, 6, 7]], 4, attention_mask=[[0, 1, 1, 1], [1, 1, 1, 1]],
                             temperature=0.0, prefill_chunk_size=2)
        elif which == "stop ids empty":
            assert len(minillm.generate(model, ids, 5, stop_token_ids=[], temperature=0.0)) == 5
        elif which == "sampling":
            minillm.generate(model, ids, 4, temperature=np.float32(0.8), top_k=np.int64(3), seed=np.int64(seed % 1000))
        elif which == "decode numpy ids":
            tok.decode(np.array(ids, np.int32))
            tok.decode(np.array(ids, np.uint64))
        else:
            cache = model.new_cache(1, 64)
            minillm.generate(model, ids, 3, cache=cache, temperature=0.0)
            minillm.generate(model, [7, 8], 3, cache=cache, temperature=0.0)

    return Case("api", f"valid: {which} (seed {seed})", run, "valid")


@st.composite
def api_cases(draw) -> Case:
    maker = draw(st.sampled_from([_generate_case, _generate_case, _generate_case, _forward_case, _forward_case,
                                  _tokenizer_api_case, _loader_api_case, _session_case, _misc_api_case,
                                  _valid_api_case]))
    return maker(draw)


# ================================================================================================ surface 5
# the CLI


def _reference_file(kind: str, work: Path) -> Path:
    """A reference file for `minillm verify`, valid or hostile."""
    src = WEIGHTS / "tiny-qwen2" / "reference.npz"
    out = work / "ref.npz"
    if kind == "valid":
        shutil.copy(src, out)
        return out
    with np.load(src) as f:
        ref = {k: f[k] for k in f.files}
    if kind == "npy":
        out = work / "ref.npy"
        np.save(out, ref["logits"])
    elif kind == "missing key":
        del ref["hidden_0"]
        np.savez(out, **ref)
    elif kind == "string arrays":
        ref["logits"] = np.array(["a", "b"])
        np.savez(out, **ref)
    elif kind == "string ids":
        ref["input_ids"] = np.array(["1", "2"])
        np.savez(out, **ref)
    elif kind == "object array":
        ref["logits"] = np.array([1, None], object)
        np.savez(out, **ref)
    elif kind == "2-D ids":
        ref["input_ids"] = ref["input_ids"][None]
        np.savez(out, **ref)
    elif kind == "wrong shapes":
        ref["hidden_1"] = ref["hidden_1"][:, :3]
        np.savez(out, **ref)
    elif kind == "nan":
        ref["logits"] = ref["logits"] * np.nan
        np.savez(out, **ref)
    elif kind == "ids out of range":
        ref["input_ids"] = ref["input_ids"] + 10 ** 6
        np.savez(out, **ref)
    elif kind in ("lying header", "lying header compressed"):
        fake = io.BytesIO()  # an .npy header claiming 10**12 float32 (4 TB), followed by 16 bytes
        np.lib.format.write_array_header_1_0(fake, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 12,)})
        lie = fake.getvalue() + b"\0" * 16
        method = zipfile.ZIP_DEFLATED if kind.endswith("compressed") else zipfile.ZIP_STORED
        with zipfile.ZipFile(out, "w", method) as z:
            for k, v in ref.items():
                b = io.BytesIO()
                np.lib.format.write_array(b, v)
                z.writestr(f"{k}.npy", lie if k == "logits" else b.getvalue())
    elif kind == "corrupt zip":
        data = bytearray(src.read_bytes())
        data[len(data) // 2: len(data) // 2 + 100] = b"\xff" * 100
        out.write_bytes(bytes(data))
    elif kind == "empty":
        out.write_bytes(b"")
    elif kind == "directory":
        out.mkdir()
    elif kind == "not zip":
        out.write_bytes(b"PK\x03\x04garbage" * 10)
    elif kind == "pickle":
        import pickle
        out.write_bytes(pickle.dumps({"a": 1}))
    elif kind == "missing file":
        return work / "nothing.npz"
    return out


REFERENCE_KINDS = ["valid", "npy", "missing key", "string arrays", "string ids", "object array", "2-D ids",
                   "wrong shapes", "nan", "ids out of range", "lying header", "lying header compressed",
                   "corrupt zip", "empty", "directory", "not zip", "pickle", "missing file"]
ARG_VALUES = ["-1", "0", "1", "3", "nan", "inf", "-inf", "1e400", "99999999999999999999", "abc", "", "\udcff",
              "2.5", "0x10", "1_000", " 2", "-0"]
MODEL_PATHS = ["bundled", "tiny-qwen3", "nowhere", "~nosuchuser/m", "long", "file", "broken layers",
               "padding bomb", "template bomb", "config outside", "dev null", "empty dir", "nul"]


def _model_path(kind: str, work: Path) -> str:
    if kind == "bundled":
        return str(WEIGHTS / "tiny-qwen2")
    if kind == "tiny-qwen3":
        return str(WEIGHTS / "tiny-qwen3")
    if kind == "nowhere":
        return str(work / "nowhere")
    if kind == "~nosuchuser/m":
        return "~nosuchuser/m"
    if kind == "long":
        return "x" * 5000
    if kind == "file":
        return str(WEIGHTS / "tiny-qwen2" / "config.json")
    if kind == "dev null":
        return "/dev/null"
    if kind == "nul":
        return "a\udc80b"
    if kind == "empty dir":
        (work / "empty").mkdir()
        return str(work / "empty")
    d = copy_checkpoint("tiny-qwen2", work)
    if kind == "broken layers":
        raw = json.loads((d / "config.json").read_text())
        raw["num_hidden_layers"] = 10_000_000
        (d / "config.json").write_text(json.dumps(raw))
    elif kind == "padding bomb":
        tj = json.loads((d / "tokenizer.json").read_text())
        tj["padding"] = TOKENIZER_EDITS["padding"][0]
        (d / "tokenizer.json").write_text(json.dumps(tj))
    elif kind == "template bomb":
        write_text(d / "chat_template.jinja", "{{ 'x' * 10**10 }}")
    elif kind == "config outside":
        shutil.move(d / "config.json", work / "config.json")
        (d / "config.json").symlink_to(work / "config.json")
    return str(d)


def _cli_case(draw) -> Case:
    command = draw(st.sampled_from(["generate", "generate", "chat", "inspect", "verify", "bench", "", "nope",
                                    "--help", "--version"]))
    model = draw(st.sampled_from(MODEL_PATHS))
    options = draw(st.lists(st.tuples(st.sampled_from(
        {"generate": ["--max-new-tokens", "--temperature", "--top-k", "--top-p", "--min-p", "--repetition-penalty",
                      "--seed", "--system", "--thinking", "--chat", "--bogus"],
         "chat": ["--max-new-tokens", "--temperature", "--context", "--seed", "--thinking", "--system"],
         "inspect": ["--tensors"], "verify": ["--tolerance"],
         "bench": ["--shape", "--quick", "--no-transformers", "--out"]}.get(command, ["--x"])),
        st.sampled_from(ARG_VALUES)), max_size=3))
    prompt = draw(st.sampled_from(["Hello", "", "\udcff", "<|im_end|>", "x" * 3000, "-x"]))
    reference = draw(st.sampled_from(REFERENCE_KINDS))
    stdout = draw(st.sampled_from(["file", "file", "file", "/dev/full", "closed pipe"]))
    stdin = draw(st.lists(st.sampled_from(["hi", "", "/reset", "\ud800", "x" * 3000]), max_size=3))

    def run(work: Path):
        path = _model_path(model, work)
        argv = [command] if command else []
        if command == "generate":
            argv += [prompt, "--model", path]
        elif command == "chat":
            argv += ["--model", path]
        elif command == "inspect":
            argv += [path]
        elif command == "verify":
            argv += [path, str(_reference_file(reference, work))]
        elif command == "bench":
            argv += ["--model", str(work / "nowhere")]  # a real benchmark run is too slow for a fuzz case
        for opt, val in options:
            if opt in ("--chat", "--quick", "--no-transformers"):
                argv.append(opt)
            elif opt == "--max-new-tokens" and val.lstrip("-").isdigit() and int(val) > 50:
                argv += [opt, "50"]  # a long generation is valid but slow
            elif opt == "--out":
                argv += [opt, str(work / "out")]
            else:
                argv += [opt, val]
        run_cli(argv, work, stdout, "\n".join(stdin) + "\n")

    return Case("cli", f"minillm {short(command)} model={model} options={short(options, 80)} prompt={short(prompt, 20)} "
                       f"reference={reference} stdout={stdout} stdin={short(stdin, 30)}", run)


def run_cli(argv: list[str], work: Path, stdout: str = "file", stdin: str = "") -> tuple[int, str]:
    """Run ``main(argv)`` as the installed command would, with its fds redirected; check how it ended.

    Raises CleanExit for a clean error exit, Violation for a traceback, a bad exit status or a malformed message.
    """
    from minillm.tools.cli import main

    (work / "stdin").write_bytes(stdin.encode("utf-8", "surrogatepass"))
    in_fd = os.open(work / "stdin", os.O_RDONLY)
    err_fd = os.open(work / "stderr", os.O_WRONLY | os.O_CREAT)
    if stdout == "/dev/full":
        out_fd = os.open("/dev/full", os.O_WRONLY)
    elif stdout == "closed pipe":
        r, out_fd = os.pipe()
        os.close(r)
    else:
        out_fd = os.open(work / "stdout", os.O_WRONLY | os.O_CREAT)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as Python sets it: a closed pipe is an EPIPE error
    for fd, target in ((in_fd, 0), (out_fd, 1), (err_fd, 2)):
        os.dup2(fd, target)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), errors="surrogateescape")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), errors="strict", line_buffering=False)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), errors="backslashreplace", line_buffering=True)
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    try:  # what the interpreter does at exit
        sys.stdout.flush()
    except Exception as e:  # noqa: BLE001
        raise Violation(f"exception at exit while flushing stdout: {type(e).__name__}: {e}")
    sys.stderr.flush()
    err = (work / "stderr").read_text(errors="replace")
    if "Traceback (most recent call last)" in err:
        raise Violation(f"traceback on stderr: {err.strip().splitlines()[-1][:200]}")
    if code not in (0, 1, 2):
        raise Violation(f"exit status {code!r}")
    lines = [line for line in err.splitlines() if line.strip()]
    out = (work / "stdout").read_text(errors="replace") if (work / "stdout").exists() else ""
    if code == 1 and argv[:1] == ["verify"] and out.strip().splitlines()[-1:] and \
            out.strip().splitlines()[-1].startswith("FAILED:"):
        return code, err  # verify's answer "the numbers differ": a result, with the table on stdout
    if code != 0:
        if not lines or not lines[-1].startswith("minillm: error: "):
            raise Violation(f"exit status {code} without a final 'minillm: error: ...' line: {err[-300:]!r}")
        if sum(line.startswith("minillm: error") or ": error:" in line for line in lines) != 1:
            raise Violation(f"more than one error line: {err[-300:]!r}")
        raise CleanExit(lines[-1])
    return code, err


def _valid_cli_case(draw) -> Case:
    which = draw(st.sampled_from(["generate", "generate chat", "inspect", "inspect all", "verify", "chat", "help"]))

    def run(work: Path):
        argv = {"generate": ["generate", "Hello", "--max-new-tokens", "3", "--temperature", "0"],
                "generate chat": ["generate", "Hi", "--chat", "--model", str(WEIGHTS / "tiny-qwen3"), "--thinking",
                                  "off", "--max-new-tokens", "3"],
                "inspect": ["inspect"], "inspect all": ["inspect", str(WEIGHTS / "tiny-qwen3"), "--tensors", "0"],
                "verify": ["verify", str(WEIGHTS / "tiny-qwen2"), str(WEIGHTS / "tiny-qwen2" / "reference.npz")],
                "chat": ["chat", "--max-new-tokens", "2"], "help": ["--help"]}[which]
        code, _ = run_cli(argv, work, "file", "hi\n/reset\nhello\n")
        if code != 0:
            raise Violation(f"exit status {code}")

    return Case("cli", f"valid: minillm {which}", run, "valid")


TRAIN_SETTINGS = ["steps", "batch_size", "context", "accumulation", "lr", "min_lr", "warmup", "weight_decay", "clip",
                  "eval_every", "eval_windows", "save_every", "seed", "betas", "eps", "dtype", "train_tokens",
                  "val_tokens", "tokenizer", "init_from", "generation_config", "unknown_setting"]


def _train_case(draw) -> Case:
    """``minillm train``: the bundled recipe (two steps of a small context), with hostile settings or model."""
    kind = draw(st.sampled_from(["model field", "model bomb", "setting", "text", "tokens", "valid"]))
    if kind == "model field":
        edit = {draw(st.sampled_from(INT_CONFIG_FIELDS + FLOAT_CONFIG_FIELDS + CONFIG_FIELDS)):
                draw(st.one_of(typed_ints, typed_floats, plain_field_values))}
    elif kind == "model bomb":
        edit = draw(st.sampled_from(CONFIG_BOMBS))
    elif kind == "setting":
        name = draw(st.sampled_from(TRAIN_SETTINGS))
        value = draw(st.one_of(typed_ints, typed_floats, plain_json_values))
        if name in ("accumulation", "eval_windows") and isinstance(value, int) and value > 64:
            value = 64  # more micro-batches or windows are valid and merely slow: bounded here, not refused
        edit = {name: value}
    elif kind == "text":
        edit = draw(st.sampled_from(CONFIG_TEXTS))
    elif kind == "tokens":
        edit = draw(st.sampled_from(["empty", "floats", "ids beyond vocab", "2-D", "npz", "text", "huge header"]))
    else:
        edit = None

    def run(work: Path):
        recipe = json.loads((ROOT / "scripts" / "bundled" / "recipe.json").read_text())
        tokens = (np.arange(3000) * 7 % 8000).astype(np.uint16)
        np.save(work / "train.npy", tokens)
        np.save(work / "val.npy", tokens[:1000])
        recipe.update(train_tokens=str(work / "train.npy"), val_tokens=str(work / "val.npy"),
                      tokenizer=str(minillm.default_model_path()), warmup=1)
        if recipe.get("schedule") == "wsd":
            recipe["decay_steps"] = 1  # the run is 2 steps (--steps 2): 1 of warmup, 1 of decay
        if kind in ("model field", "model bomb"):
            recipe["model"].update(edit)
        elif kind == "setting":
            recipe.update(edit)
        elif kind == "tokens":
            f = work / "train.npy"
            if edit == "empty":
                np.save(f, np.zeros(0, np.uint16))
            elif edit == "floats":
                np.save(f, tokens.astype(np.float32))
            elif edit == "ids beyond vocab":
                np.save(f, tokens.astype(np.int64) + 10 ** 6)
            elif edit == "2-D":
                np.save(f, tokens.reshape(2, -1))
            elif edit == "npz":
                np.savez(f.with_suffix(".npz"), tokens)
                f.with_suffix(".npz").rename(f)
            elif edit == "text":
                f.write_text("hello world")
            else:
                fake = io.BytesIO()
                np.lib.format.write_array_header_1_0(fake, {"descr": "<u2", "fortran_order": False, "shape": (10 ** 12,)})
                f.write_bytes(fake.getvalue() + b"\0" * 16)
        config = work / "recipe.json"
        write_text(config, edit if kind == "text" else to_json(recipe))
        code, _ = run_cli(["train", "--config", str(config), "--out", str(work / "run"), "--steps", "2",
                           "--batch-size", "1", "--context", "16", "--eval-every", "1", "--save-every", "100"], work)
        if code != 0:
            raise Violation(f"exit status {code}")

    return Case("cli", f"minillm train, recipe {kind} {short(edit, 100)}", run, "valid" if kind == "valid" else "any")


@st.composite
def cli_cases(draw) -> Case:
    maker = draw(st.sampled_from([_cli_case, _cli_case, _cli_case, _cli_case, _valid_cli_case, _train_case]))
    return maker(draw)


SURFACES = {"checkpoint": checkpoint_cases(), "config": config_cases(), "text": text_cases(), "api": api_cases(),
            "cli": cli_cases()}


# ================================================================================================ issue 31
# The surfaces added by the training, Qwen3.5 / MoE, Hub-cache and speculative-decoding rounds: five more
# strategies, each mixing hostile inputs with valid ones whose result is checked against a definition.

SMALL_TOKENS = 400  # ids in a token file: enough windows of 8 for any batch a case draws


def _no_network() -> None:
    """In a child: every socket connection fails at once (a Hub case with HF_HUB_OFFLINE unset must not reach
    the network; huggingface_hub then sees a refused connection, as on a machine without one)."""
    import socket

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("the fuzz harness allows no network")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"  # unroutable anyway: the discard port on this machine
    time.sleep = lambda seconds: None  # huggingface_hub backs off 1+2+4+8+8 s between refused tries: skip the waits
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "1")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "1")


def _special(path: Path, kind: str, work: Path, content: bytes | None = None) -> None:
    """Replace ``path`` by a hostile kind of file (the one name every reader of the new surfaces must survive)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if kind == "missing":
        return
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev zero":
        path.symlink_to("/dev/zero")
    elif kind == "dev null":
        path.symlink_to("/dev/null")
    elif kind == "directory":
        path.mkdir()
    elif kind == "dangling":
        path.symlink_to(work / "nowhere")
    elif kind == "loop":
        path.symlink_to(path.name)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "huge":
        with open(path, "wb") as f:  # a sparse file: 3 GiB claimed, nothing written
            f.truncate(3 << 30)
    elif kind == "link outside":
        target = work / f"outside-{path.name}"
        target.write_bytes(content or b"{}")
        path.symlink_to(target)
    else:
        raise ValueError(kind)


SPECIAL_KINDS = ["missing", "fifo", "dev zero", "dev null", "directory", "dangling", "loop", "empty", "huge"]


# ------------------------------------------------------------------------------------------------ training

TRAIN_BASE = "tiny-qwen3"


def no_plots() -> None:
    """In a training child: no loss-curve PNG (matplotlib takes a second to import and draw; the plot is not
    what these surfaces fuzz, and plot_loss_curve already handles a missing matplotlib)."""
    sys.modules["matplotlib"] = None
    sys.modules["matplotlib.figure"] = None


def train_recipe(work: Path, **changes) -> dict:
    """A recipe of 2 steps on tiny-qwen3's config, batch 1 x 8 tokens, saving every step; files under ``work``."""
    model = json.loads((WEIGHTS / TRAIN_BASE / "config.json").read_text())
    tokens = (np.arange(SMALL_TOKENS) * 7 % model["vocab_size"]).astype(np.uint16)  # [N]
    np.save(work / "train.npy", tokens)
    np.save(work / "val.npy", tokens[:100])
    recipe = dict(model=model, train_tokens=str(work / "train.npy"), val_tokens=str(work / "val.npy"), steps=2,
                  batch_size=1, context=8, warmup=0, lr=1e-3, min_lr=1e-4, eval_every=1, eval_windows=2,
                  save_every=1, seed=0)
    recipe.update(changes)
    return recipe


def check_run_output(out: Path, steps_expected: int | None = None) -> None:
    """What a run that exited 0 must have written: a checkpoint load_model accepts, with finite weights and
    logits, whose state.json names the step trained to."""
    ckpt = out / "checkpoint"
    if not ckpt.is_dir():
        return  # nothing saved (0 steps to train): nothing to check
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = minillm.load_model(ckpt)
    except MinillmError as e:
        raise Violation(f"training exited 0 but wrote a checkpoint load_model refuses: {e}") from None
    bad = [k for k, a in model.weights.__dict__.items() if isinstance(a, np.ndarray) and not np.isfinite(a).all()]
    if bad:
        raise Violation(f"training exited 0 but saved non-finite weights: {bad[:3]}")
    finite_forward(model, [1, 2, 3])
    state = json.loads((ckpt / "trainer_state" / "state.json").read_text())
    if steps_expected is not None and state["step"] != steps_expected:
        raise Violation(f"training exited 0 at step {state['step']}, expected {steps_expected}")


class Runs:
    """Run directories made once in the parent (inherited by the children): the resume surface copies them."""

    _dirs: dict = {}
    _root: Path | None = None

    @classmethod
    def root(cls) -> Path:
        if cls._root is None:
            import atexit
            cls._root = Path(tempfile.mkdtemp(prefix="minillm-fuzz-runs-"))
            atexit.register(shutil.rmtree, cls._root, True)
        return cls._root

    @classmethod
    def half(cls) -> tuple[Path, dict, dict]:
        """A 2-step run stopped after step 1 (saved), its recipe, and the master weights of the whole 2 steps."""
        if "half" not in cls._dirs:
            from minillm.training.trainer import TrainConfig, Trainer
            from minillm.checkpoint.weights import named_tensors
            work = cls.root() / "half"
            work.mkdir()
            recipe = train_recipe(work)
            whole = Trainer(TrainConfig.from_dict(recipe), work / "whole", progress=False)
            whole.run()
            final = {k: a.copy() for k, a in named_tensors(whole.model.weights).items()}
            Trainer(TrainConfig.from_dict(recipe), work / "run", progress=False).run(max_steps=1)
            cls._dirs["half"] = (work, recipe, final)
        return cls._dirs["half"]

    @classmethod
    def finetune_half(cls) -> tuple[Path, dict]:
        """A 2-step LoRA fine-tuning run on tiny-qwen3 stopped after step 1 (saved), and its settings."""
        if "finetune" not in cls._dirs:
            from minillm.training.finetune import FinetuneConfig, Finetuner
            work = cls.root() / "finetune"
            work.mkdir()
            cfg = finetune_settings(work)
            Finetuner(FinetuneConfig(**cfg), work / "run", progress=False).run(max_steps=1)
            cls._dirs["finetune"] = (work, cfg)
        return cls._dirs["finetune"]


def finetune_settings(work: Path) -> dict:
    chats = [{"messages": [{"role": "user", "content": f"say {w}"}, {"role": "assistant", "content": f"{w} {w}"}]}
             for w in ("one", "two", "three", "four", "five")]
    (work / "chats.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    return dict(model=str(WEIGHTS / TRAIN_BASE), data=str(work / "chats.jsonl"), steps=2, batch_size=1,
                max_length=64, lora_rank=2, warmup=0, eval_every=1, save_every=1, eval_fraction=0.2)


TRAIN_VALUES = {  # the values the issue names, then the usual hostile ones
    "lr": [1e10, 1e30, 3.4e38, 1e-300, float("nan"), float("inf"), 0.0, -1.0, "0.001", True, 1e-3, 5e-3],
    "weight_decay": [1e30, 1e10, 1e5, float("nan"), -0.1, 0.0, 0.1, "0.1"],
    "eps": [1e-300, 5e-324, 0.0, 1e30, float("nan"), 1e-8, 1e-12],
    "steps": [-1, 0, 1, 3, float("nan"), 1.5, 2 ** 31, 2 ** 62, 2 ** 70, "2", None, True],
    "batch_size": [0, -1, 1, 2, 8, 2 ** 20, 2 ** 40, 1.5, "1"],
    "context": [0, 1, 2, 8, 9, 100, 1000, 2 ** 20, -8],
    "save_every": [0, -1, 1, 2, 3, 2 ** 40, 1.0, None],
    "eval_every": [0, 1, 5, 2 ** 62, -1],
    "eval_windows": [0, 1, 2, 50, 10 ** 6, 10 ** 12],
    "accumulation": [0, 1, 2, 3, 2 ** 40],
    "warmup": [-1, 0, 1, 2, 5, 10 ** 9, 1.5],
    "min_lr": [0.0, 1e-4, 1e-3, 1.0, -1e-4, float("nan")],
    "clip": [0.0, 1e-30, 1.0, 1e30, float("inf"), float("nan")],
    "betas": [[0.9, 0.95], [1.0, 0.95], [0.9, 1.0], [-0.1, 0.9], [0.9], [0.9, 0.95, 0.99], "0.9", [float("nan"), 0.9]],
    "schedule": ["cosine", "wsd", "linear", "", None, 5],
    "decay_steps": [0, 1, 2, 3, -1, 2 ** 40],
    "dtype": ["bf16", "f32", "f16", "", None],
    "seed": [0, 1, -1, 2 ** 64, 2 ** 70, 1.5, "0"],
    "generation_config": [{}, {"temperature": -1}, {"temperature": 0.7}, {"top_p": 0.0}, {"top_k": -5},
                          {"do_sample": "yes"}, {"eos_token_id": 2 ** 63}, {"max_new_tokens": 10}, [1], None,
                          {"temperature": float("nan")}, {"repetition_penalty": 0.0}],
    "output_router_logits": [True, False, 1, "yes"],
    "router_aux_loss_coef": [0.001, -1.0, float("nan"), 1e30],
    "samples": [{}, {"prompts": ["hi"]}, {"prompts": 5}, [1], {"x": 1}],
    "init_from": [None, "", "/dev/null", "/nonexistent", str(WEIGHTS / TRAIN_BASE), str(WEIGHTS / "tiny-qwen2"),
                  "a\x00b", "x" * 5000],
    "tokenizer": [None, "", str(WEIGHTS / TRAIN_BASE), "/dev/null", "/nonexistent", "a\x00b"],
}
VALID_SETTINGS = [{"lr": 5e-3}, {"dtype": "f32"}, {"schedule": "wsd", "decay_steps": 1}, {"warmup": 1},
                  {"generation_config": {"temperature": 0.7, "top_p": 0.9}}, {"accumulation": 2}, {"batch_size": 2},
                  {"save_every": 3}, {"eval_every": 5}, {"betas": [0.8, 0.9]}, {"weight_decay": 0.0},
                  {"tokenizer": str(WEIGHTS / TRAIN_BASE)}, {"init_from": str(WEIGHTS / TRAIN_BASE)}]


def _recipe_setting_case(draw) -> Case:
    """The trainer API on a recipe with one or two hostile settings; 3 steps at most."""
    names = draw(st.lists(st.sampled_from(sorted(TRAIN_VALUES)), min_size=1, max_size=2, unique=True))
    edit = {n: draw(st.one_of(st.sampled_from(TRAIN_VALUES[n]), typed_ints, typed_floats, plain_json_values))
            if draw(st.integers(0, 4)) == 0 else draw(st.sampled_from(TRAIN_VALUES[n])) for n in names}

    def run(work: Path):
        from minillm.training.trainer import TrainConfig, Trainer
        recipe = train_recipe(work, **edit)
        trainer = Trainer(TrainConfig.from_dict(recipe), work / "run", progress=False)
        trainer.run(max_steps=3)
        check_run_output(work / "run", trainer.step)

    return Case("training", f"recipe {short(edit, 120)}", run)


def _valid_recipe_case(draw) -> Case:
    edit = draw(st.sampled_from(VALID_SETTINGS))

    def run(work: Path):
        from minillm.training.trainer import TrainConfig, Trainer
        recipe = train_recipe(work, **edit)
        trainer = Trainer(TrainConfig.from_dict(recipe), work / "run", progress=False)
        trainer.run()
        check_run_output(work / "run", recipe["steps"])

    return Case("training", f"valid recipe {short(edit, 100)}", run, "valid")


OUT_KINDS = ["new", "existing empty dir", "file", "/dev/null", "under a file", "NUL", "too long", "non-empty dir",
             "link to dir", "dangling link", "fifo", "under /proc", "component too long"]
CONFIG_KINDS = ["valid", "fifo", "dev zero", "link to dev zero", "NUL", "directory", "missing", "not JSON", "huge",
                "empty", "list"]
TOKEN_KINDS = ["valid", "fifo", "dev zero", "link to dev zero", "timedelta64", "datetime64", "lying header 2**62",
               "lying header", "val shorter than a window", "train shorter than a window", "float", "2-D", "empty",
               "directory", "bool", "object", "big-endian", "uint64", "int8 negative", "complex", "missing",
               "fortran 2-D", "header only"]


def _token_file(path: Path, kind: str, work: Path, vocab: int) -> None:
    tokens = (np.arange(SMALL_TOKENS) * 7 % vocab).astype(np.uint16)
    if kind in ("fifo", "directory", "missing", "dev zero"):
        if kind == "dev zero":
            kind = "dev null"  # a link to /dev/zero below; this one is /dev/null
        _special(path, kind, work)
    elif kind == "link to dev zero":
        _special(path, "dev zero", work)
    elif kind in ("lying header 2**62", "lying header", "header only"):
        n = {"lying header 2**62": 2 ** 62, "lying header": 10 ** 6, "header only": 10}[kind]
        fake = io.BytesIO()
        np.lib.format.write_array_header_1_0(fake, {"descr": "<u2", "fortran_order": False, "shape": (n,)})
        path.write_bytes(fake.getvalue() + (b"\0" * 16 if kind != "header only" else b""))
    else:
        array = {"valid": tokens, "timedelta64": tokens.astype("m8[s]"), "datetime64": tokens.astype("M8[s]"),
                 "val shorter than a window": tokens[:5], "train shorter than a window": tokens[:5],
                 "float": tokens.astype(np.float32), "2-D": tokens.reshape(20, -1), "empty": tokens[:0],
                 "bool": tokens > 3, "object": tokens.astype(object), "big-endian": tokens.astype(">u4"),
                 "uint64": tokens.astype(np.uint64), "int8 negative": -(tokens % 100).astype(np.int8),
                 "complex": tokens.astype(np.complex64), "fortran 2-D": np.asfortranarray(tokens.reshape(20, -1))}[kind]
        with open(path, "wb") as f:
            np.lib.format.write_array(f, array, allow_pickle=True)


def _train_paths_case(draw) -> Case:
    """``minillm train`` with a hostile --out, --config, or token file (train or val)."""
    out_kind = draw(st.sampled_from(OUT_KINDS))
    config_kind = draw(st.sampled_from(CONFIG_KINDS))
    which = draw(st.sampled_from(["train", "val"]))
    token_kind = draw(st.sampled_from(TOKEN_KINDS))
    if draw(st.booleans()):  # one hostile thing at a time, half the time
        out_kind, config_kind = (out_kind, "valid") if draw(st.booleans()) else ("new", config_kind)
        token_kind = "valid" if draw(st.booleans()) else token_kind
    extra = draw(st.sampled_from([[], ["--steps", "1"], ["--max-steps", "1"], ["--lr", "1e10"],
                                  ["--weight-decay", "1e30"], ["--steps", "-1"], ["--save-every", "0"],
                                  ["--batch-size", "1000000000000"], ["--steps", "nan"]]))

    def run(work: Path):
        recipe = train_recipe(work)
        vocab = recipe["model"]["vocab_size"]
        _token_file(Path(recipe[f"{which}_tokens"]), token_kind, work, vocab)
        config = work / "recipe.json"
        write_text(config, to_json(recipe))
        if config_kind == "NUL":
            config_arg = str(config) + "\x00x"
        elif config_kind == "valid":
            config_arg = str(config)
        else:
            config_arg = str(work / "bad.json")
            if config_kind in ("fifo", "directory", "missing", "empty", "huge"):
                _special(work / "bad.json", config_kind, work)
            elif config_kind == "dev zero":
                config_arg = "/dev/zero"
            elif config_kind == "link to dev zero":
                _special(work / "bad.json", "dev zero", work)
            elif config_kind == "not JSON":
                (work / "bad.json").write_bytes(b"\xff{model:")
            elif config_kind == "list":
                (work / "bad.json").write_text("[1, 2]")
        out = work / "run"
        if out_kind == "existing empty dir":
            out.mkdir()
        elif out_kind == "file":
            out.write_text("x")
        elif out_kind == "/dev/null":
            out = Path("/dev/null")
        elif out_kind == "under a file":
            (work / "f").write_text("x")
            out = work / "f" / "run"
        elif out_kind == "NUL":
            out = Path(str(out) + "\x00x")
        elif out_kind == "too long":
            out = work / ("d/" * 3000)
        elif out_kind == "component too long":
            out = work / ("x" * 300)
        elif out_kind == "non-empty dir":
            out.mkdir()
            (out / "x").write_text("x")
        elif out_kind == "link to dir":
            (work / "real").mkdir()
            out.symlink_to(work / "real")
        elif out_kind == "dangling link":
            out.symlink_to(work / "nowhere")
        elif out_kind == "fifo":
            os.mkfifo(out)
        elif out_kind == "under /proc":
            out = Path("/proc/self/run")
        code, _ = run_cli(["train", "--config", config_arg, "--out", str(out), *extra], work)
        if code == 0:
            check_run_output(out)

    valid = (out_kind in ("new", "existing empty dir", "link to dir") and config_kind == "valid"
             and token_kind == "valid" and extra in ([], ["--steps", "1"], ["--max-steps", "1"]))
    refuse = (out_kind in ("file", "/dev/null", "under a file", "NUL", "too long", "non-empty dir", "fifo",
                           "under /proc", "component too long")
              or config_kind != "valid"
              or token_kind not in ("valid", "big-endian", "uint64", "fortran 2-D")
              and not (which == "train" and token_kind == "val shorter than a window")
              or extra in (["--steps", "-1"], ["--save-every", "0"], ["--steps", "nan"]))
    return Case("training", f"minillm train --out {out_kind} --config {config_kind} {which} tokens {token_kind} "
                            f"{' '.join(extra)}", run, "valid" if valid else "refuse" if refuse else "any")


STATE_FIELDS = {"step": [-100, -1, 0, 1, 2, 3, 100, float("nan"), 1.5, "1", None, True, 2 ** 70, [1]],
                "adam_step": [-1, 0, 1, 2, 5, 2 ** 31, 2 ** 70, float("nan"), 1.5, None, "1", True],
                "elapsed": [0, 1.5, -1.0, float("nan"), float("inf"), "1", None, 10 ** 400],
                "rng": [None, {}, "x", 5, {"bit_generator": "MT19937"}, {"bit_generator": "PCG64", "state": {}},
                        {"bit_generator": "PCG64", "state": {"state": -1, "inc": 1}, "has_uint32": 0, "uinteger": 0}],
                "recipe": [None, {}, [], "x", {"model": {}}, "<lr 1e10>", "<batch_size 2>", "<steps 5>",
                           "<model vocab 7>", "<seed 1>", "<schedule wsd>"]}
TRAINER_FILES = ["checkpoint/trainer_state/state.json", "log.jsonl", "checkpoint/trainer_state/master.safetensors",
                 "checkpoint/trainer_state/optimizer.safetensors", "checkpoint/model.safetensors",
                 "checkpoint/config.json", "checkpoint/trainer_state", "checkpoint", "recipe.json"]
LOG_LINES = ["", "not json", "[]", "5", '{"step": "1", "loss": 1.0, "tokens": 8}', '{"loss": 1.0}',
             '{"step": 1}', '{"step": 1, "loss": "x", "tokens": 8}', '{"step": 1, "loss": NaN, "tokens": 8}',
             '{"step": 99, "loss": 1.0, "tokens": 8}', '{"step": 0, "loss": 1.0, "tokens": 0}',
             '{"step": 1, "loss": 2.0, "tokens": 8, "val_loss": "x"}', "\ufeff{}", '{"step": 1e400}',
             '{"step": true, "loss": 1, "tokens": 1}', "\x00", '{"step": -5, "loss": 1, "tokens": 1}']
TENSOR_EDITS = ["drop", "wrong shape", "NaN", "inf", "negative v", "extra", "F16", "I32", "transpose", "scalar"]


def _edit_tensor_file(path: Path, edit: str, which: int) -> None:
    from minillm.checkpoint.safetensors_file import SafetensorsFile
    from minillm.checkpoint.saving import write_safetensors as write_st
    f = SafetensorsFile(path)
    tensors = {k: f.get_float32(k) for k in f.tensors}
    names = sorted(tensors)
    if edit == "negative v":
        names = [k for k in names if k.startswith("v.")] or names
    name = names[which % len(names)]
    a = tensors[name]
    if edit == "drop":
        del tensors[name]
    elif edit == "wrong shape":
        tensors[name] = np.zeros(a.shape[:-1] + (a.shape[-1] + 1,), np.float32)
    elif edit == "NaN":
        a.flat[0] = np.nan
    elif edit == "inf":
        a.flat[-1] = np.inf
    elif edit == "negative v":
        a.flat[0] = -1.0
    elif edit == "extra":
        tensors["extra.weight"] = np.zeros(3, np.float32)
    elif edit == "transpose":
        tensors[name] = np.ascontiguousarray(a.T) if a.ndim == 2 and a.shape[0] != a.shape[1] else a[None]
    elif edit == "scalar":
        tensors[name] = np.float32(1.0).reshape(())
    if edit in ("F16", "I32"):
        from minillm.checkpoint.saving import write_safetensors as w
        import safetensors.numpy
        out = {k: (v.astype(np.float16 if edit == "F16" else np.int32) if k == name else v) for k, v in tensors.items()}
        safetensors.numpy.save_file(out, str(path))
        return
    write_st(path, tensors)


def _resume_case(draw) -> Case:
    """Resume a run stopped at step 1 of 2 after one of its files was corrupted; untouched, it must resume
    exactly (bit-identical to the uninterrupted run)."""
    kind = draw(st.sampled_from(["field", "field", "state text", "file kind", "file kind", "log", "tensor",
                                 "tensor", "untouched", "untouched", "cli"]))
    field_name = value = target = text = edit = None
    which = draw(st.integers(0, 100))
    if kind == "field":
        field_name = draw(st.sampled_from(sorted(STATE_FIELDS)))
        value = draw(st.one_of(st.sampled_from(STATE_FIELDS[field_name]), plain_json_values)) \
            if draw(st.integers(0, 3)) == 0 else draw(st.sampled_from(STATE_FIELDS[field_name]))
    elif kind == "state text":
        text = draw(st.sampled_from(CONFIG_TEXTS + ["\x00", "{" * 50_000]))
    elif kind == "file kind":
        target = draw(st.sampled_from(TRAINER_FILES))
        edit = draw(st.sampled_from(SPECIAL_KINDS + ["link outside"]))
    elif kind == "log":
        text = draw(st.lists(st.sampled_from(LOG_LINES), min_size=1, max_size=3))
    elif kind == "tensor":
        target = draw(st.sampled_from(["master", "optimizer", "model"]))
        edit = draw(st.sampled_from(TENSOR_EDITS))
    elif kind == "cli":
        edit = draw(st.sampled_from([[], ["--steps", "3"], ["--steps", "1"], ["--steps", "0"], ["--lr", "0.5"],
                                     ["--batch-size", "2"], ["--allow-schedule-change", "--steps", "3"],
                                     ["--max-steps", "0"], ["--max-steps", "-1"], ["--context", "4"]]))

    def run(work: Path):
        from minillm.training.trainer import TrainConfig, Trainer
        from minillm.checkpoint.weights import named_tensors
        source, recipe, final = Runs.half()
        out = Path(shutil.copytree(source / "run", work / "run", symlinks=True))
        state_path = out / "checkpoint" / "trainer_state" / "state.json"
        if kind == "field":
            state = json.loads(state_path.read_text())
            v = value
            if isinstance(v, str) and v.startswith("<"):
                v = dict(state["recipe"])
                if value == "<lr 1e10>":
                    v["lr"] = 1e10
                elif value == "<batch_size 2>":
                    v["batch_size"] = 2
                elif value == "<steps 5>":
                    v["steps"] = 5
                elif value == "<model vocab 7>":
                    v["model"] = dict(v["model"], vocab_size=7)
                elif value == "<seed 1>":
                    v["seed"] = 1
                elif value == "<schedule wsd>":
                    v.update(schedule="wsd", decay_steps=1)
            state[field_name] = v
            write_text(state_path, to_json(state))
        elif kind == "state text":
            write_text(state_path, text)
        elif kind == "file kind":
            _special(out / target, edit, work, content=(state_path.read_bytes() if target.endswith(".json") else None))
        elif kind == "log":
            with open(out / "log.jsonl", "a") as f:
                f.write("\n".join(text) + "\n")
        elif kind == "tensor":
            path = {"master": out / "checkpoint" / "trainer_state" / "master.safetensors",
                    "optimizer": out / "checkpoint" / "trainer_state" / "optimizer.safetensors",
                    "model": out / "checkpoint" / "model.safetensors"}[target]
            _edit_tensor_file(path, edit, which)
        if kind == "cli":
            config = work / "recipe.json"
            write_text(config, to_json(recipe))
            code, _ = run_cli(["train", "--config", str(config), "--out", str(out), "--resume", *edit], work)
            if code == 0:
                check_run_output(out)
            return
        trainer = Trainer(TrainConfig.from_dict(recipe), out, resume=True, progress=False)
        trainer.run()
        check_run_output(out, recipe["steps"])
        if kind == "untouched" or (kind == "tensor" and target == "model"):
            mine = named_tensors(trainer.model.weights)
            diff = [k for k in final if not np.array_equal(final[k], mine[k])]
            if diff:
                raise Violation(f"the resumed run is not the uninterrupted one: {len(diff)} tensors differ, e.g. "
                                f"{diff[0]}")

    refuse = (kind == "state text" or kind == "tensor" and target != "model"
              and not (target == "master" and edit == "negative v")  # the master file has no v.: a weight of -1
              or kind == "file kind" and target not in ("recipe.json", "checkpoint/model.safetensors",
                                                        "checkpoint/config.json")  # resume reads neither
              and not (target == "log.jsonl" and edit in ("missing", "empty"))  # no record to keep: both the same
              or kind == "field" and field_name in ("step", "adam_step") and not (
                  isinstance(value, int) and not isinstance(value, bool) and (0 if field_name == "step" else 1)
                  <= value <= (2 if field_name == "step" else 2 ** 31 - 1))
              or kind == "log" and any(line not in ("", '{"step": 99, "loss": 1.0, "tokens": 8}',
                                                    '{"step": 0, "loss": 1.0, "tokens": 0}',
                                                    '{"step": 1, "loss": 2.0, "tokens": 8, "val_loss": "x"}',
                                                    '{"step": -5, "loss": 1, "tokens": 1}')
                                       for line in text))
    label = {"field": f"{field_name}={short(value)}", "state text": short(text), "file kind": f"{target} {edit}",
             "log": short(text), "tensor": f"{target} {edit}", "untouched": "", "cli": short(edit)}[kind]
    return Case("training", f"resume, {kind}: {label}", run,
                "valid" if kind == "untouched" else "refuse" if refuse else "any")


FINETUNE_FILES = ["checkpoint/trainer_state/state.json", "log.jsonl", "checkpoint/trainer_state/optimizer.safetensors",
                  "checkpoint/adapter/adapter_model.safetensors", "checkpoint/adapter/adapter_config.json",
                  "finetune.json", "checkpoint"]


def _finetune_resume_case(draw) -> Case:
    """``Finetuner(resume=True)`` (minillm finetune --resume) after its files were corrupted."""
    kind = draw(st.sampled_from(["field", "field", "file kind", "log", "tensor", "untouched", "settings"]))
    field_name = value = target = edit = text = None
    which = draw(st.integers(0, 100))
    if kind == "field":
        field_name = draw(st.sampled_from(["step", "adam_step", "elapsed", "rng", "tokens"]))
        value = draw(st.sampled_from(STATE_FIELDS.get(field_name, [-1, 0, 8, float("nan"), "x", None, 2 ** 70])))
    elif kind == "file kind":
        target = draw(st.sampled_from(FINETUNE_FILES))
        edit = draw(st.sampled_from(SPECIAL_KINDS + ["link outside"]))
    elif kind == "log":
        text = draw(st.lists(st.sampled_from(LOG_LINES), min_size=1, max_size=3))
    elif kind == "tensor":
        target = "checkpoint/trainer_state/optimizer.safetensors"
        edit = draw(st.sampled_from(TENSOR_EDITS))
    elif kind == "settings":
        edit = draw(st.sampled_from([{"steps": 3}, {"lr": 1e10}, {"batch_size": 2}, {"steps": 1}]))

    def run(work: Path):
        from minillm.training.finetune import FinetuneConfig, Finetuner
        source, cfg = Runs.finetune_half()
        shutil.copy(source / "chats.jsonl", work / "chats.jsonl")
        out = Path(shutil.copytree(source / "run", work / "run", symlinks=True))
        cfg = dict(cfg, data=str(work / "chats.jsonl"))
        saved = json.loads((out / "finetune.json").read_text())
        saved["data"] = cfg["data"]
        (out / "finetune.json").write_text(json.dumps(saved))
        state_path = out / "checkpoint" / "trainer_state" / "state.json"
        if kind == "field":
            state = json.loads(state_path.read_text())
            state[field_name] = value if not (isinstance(value, str) and value.startswith("<")) else None
            write_text(state_path, to_json(state))
        elif kind == "file kind":
            _special(out / target, edit, work, content=(state_path.read_bytes() if target.endswith(".json") else None))
        elif kind == "log":
            with open(out / "log.jsonl", "a") as f:
                f.write("\n".join(text) + "\n")
        elif kind == "tensor":
            _edit_tensor_file(out / target, edit, which)
        elif kind == "settings":
            cfg.update(edit)
        tuner = Finetuner(FinetuneConfig(**cfg), out, resume=True, progress=False)
        tuner.run()
        if not all(np.isfinite(a).all() for a in tuner.params.values()):
            raise Violation("the resumed fine-tuning exited 0 with non-finite weights")

    refuse = (kind == "tensor" or kind == "file kind" and not (target == "log.jsonl" and edit in ("missing", "empty"))
              or kind == "field" and field_name in ("step", "adam_step") and not (
                  isinstance(value, int) and not isinstance(value, bool) and (0 if field_name == "step" else 1)
                  <= value <= (2 if field_name == "step" else 2 ** 31 - 1))
              or kind == "log" and any(line not in ("", '{"step": 99, "loss": 1.0, "tokens": 8}',
                                                    '{"step": 0, "loss": 1.0, "tokens": 0}',
                                                    '{"step": 1, "loss": 2.0, "tokens": 8, "val_loss": "x"}',
                                                    '{"step": -5, "loss": 1, "tokens": 1}')
                                       for line in text))
    label = {"field": f"{field_name}={short(value)}", "file kind": f"{target} {edit}", "log": short(text),
             "tensor": f"optimizer {edit}", "untouched": "", "settings": short(edit)}[kind]
    return Case("training", f"finetune resume, {kind}: {label}", run,
                "valid" if kind == "untouched" else "refuse" if refuse else "any")


DATA_KINDS = ["valid", "fifo", "dev zero", "link to dev zero", "directory", "missing", "empty", "not JSON",
              "deep JSON", "no assistant", "bad role", "content int", "huge line", "not UTF-8", "NUL path",
              "list line", "5000-digit", "one conversation"]
FINETUNE_FLAGS = {"--lr": ["1e10", "1e30", "nan", "inf", "-1", "0", "1e-3"], "--weight-decay": ["1e30", "nan", "-1"],
                  "--lora-rank": ["0", "-1", "1099511627776", "1"], "--lora-alpha": ["nan", "0", "-1", "inf"],
                  "--lora-dropout": ["1", "-0.5", "nan", "0.5"], "--steps": ["0", "-1", "1", "3"],
                  "--batch-size": ["0", "-1", "2", "1000000000000"], "--max-length": ["0", "-1", "1", "2", "8"],
                  "--warmup": ["-1", "5", "1000000000"], "--clip": ["0", "-1", "nan", "inf"],
                  "--eval-every": ["0", "-1"], "--save-every": ["0", "-1", "5"], "--seed": ["-1", "99999999999999999999999"],
                  "--eval-fraction": ["0", "1", "-0.1", "nan", "0.99"], "--target": ["", "q", "nope", ",", "all"],
                  "--max-steps": ["0", "-1", "1"]}


def _chat_file(path: Path, kind: str, work: Path) -> str:
    good = [{"messages": [{"role": "user", "content": f"say {w}"}, {"role": "assistant", "content": f"{w} {w}"}]}
            for w in ("one", "two", "three", "four", "five")]
    lines = [json.dumps(c) for c in good]
    if kind in ("fifo", "directory", "missing", "empty"):
        _special(path, kind, work)
    elif kind == "dev zero":
        return "/dev/zero"
    elif kind == "link to dev zero":
        _special(path, "dev zero", work)
    elif kind == "NUL path":
        return str(path) + "\x00"
    else:
        extra = {"valid": None, "not JSON": "{", "deep JSON": "[" * 100_000 + "]" * 100_000,
                 "no assistant": json.dumps({"messages": [{"role": "user", "content": "x"}]}),
                 "bad role": json.dumps({"messages": [{"role": 5, "content": "x"}]}),
                 "content int": json.dumps({"messages": [{"role": "assistant", "content": 5}]}),
                 "huge line": json.dumps({"messages": [{"role": "user", "content": "x " * 100_000},
                                                       {"role": "assistant", "content": "y"}]}),
                 "list line": "[1, 2]", "5000-digit": "9" * 5000, "not UTF-8": None, "one conversation": None}[kind]
        if kind == "one conversation":
            lines = lines[:1]
        text = "\n".join(lines + ([extra] if extra else [])) + "\n"
        path.write_bytes(text.encode() + (b"\xff\xfe\n" if kind == "not UTF-8" else b""))
    return str(path)


def _finetune_cli_case(draw) -> Case:
    """``minillm finetune`` with hostile data files, --out and flags (LoRA or --full on tiny-qwen3, 1-3 steps)."""
    data_kind = draw(st.sampled_from(DATA_KINDS)) if draw(st.booleans()) else "valid"
    out_kind = draw(st.sampled_from(OUT_KINDS)) if draw(st.integers(0, 3)) == 0 else "new"
    flags = draw(st.dictionaries(st.sampled_from(sorted(FINETUNE_FLAGS)), st.just(None), max_size=2))
    flags = {k: draw(st.sampled_from(FINETUNE_FLAGS[k])) for k in flags}
    full = draw(st.integers(0, 3)) == 0
    eval_data = draw(st.sampled_from([None, None, "valid", "fifo", "dev zero", "empty", "not JSON"]))

    def run(work: Path):
        data = _chat_file(work / "chats.jsonl", data_kind, work)
        argv = ["finetune", "--model", str(WEIGHTS / TRAIN_BASE), "--data", data, "--steps", "2", "--batch-size", "1",
                "--max-length", "48", "--lora-rank", "2", "--warmup", "0", "--eval-every", "1", "--save-every", "1"]
        if full:
            argv.append("--full")
        if eval_data:
            argv += ["--eval-data", _chat_file(work / "eval.jsonl", eval_data, work)]
        for k, v in flags.items():
            argv += [k, v]
        out = work / "run"
        if out_kind == "file":
            out.write_text("x")
        elif out_kind == "/dev/null":
            out = Path("/dev/null")
        elif out_kind == "under a file":
            (work / "f").write_text("x")
            out = work / "f" / "run"
        elif out_kind == "NUL":
            out = Path(str(out) + "\x00x")
        elif out_kind == "too long":
            out = work / ("d/" * 3000)
        elif out_kind == "component too long":
            out = work / ("x" * 300)
        elif out_kind == "non-empty dir":
            out.mkdir()
            (out / "x").write_text("x")
        elif out_kind == "link to dir":
            (work / "real").mkdir()
            out.symlink_to(work / "real")
        elif out_kind == "dangling link":
            out.symlink_to(work / "nowhere")
        elif out_kind == "fifo":
            os.mkfifo(out)
        elif out_kind == "under /proc":
            out = Path("/proc/self/run")
        elif out_kind == "existing empty dir":
            out.mkdir()
        code, _ = run_cli(argv + ["--out", str(out)], work)
        if code == 0:
            from minillm.checkpoint.safetensors_file import SafetensorsFile
            state = out / "checkpoint" / "trainer_state" / "optimizer.safetensors"
            files = [state] + sorted((out / "checkpoint").rglob("*model*.safetensors"))
            for f in files:
                if f.is_file():
                    st_file = SafetensorsFile(f)
                    for k in st_file.tensors:
                        if not np.isfinite(st_file.get_float32(k)).all():
                            raise Violation(f"finetune exited 0 but saved non-finite {f.name}: {k}")

    valid = data_kind in ("valid", "one conversation") and out_kind in ("new", "existing empty dir", "link to dir") \
        and not flags and eval_data in (None, "valid")
    refuse = (data_kind not in ("valid", "one conversation", "huge line")
              or out_kind in ("file", "/dev/null", "under a file", "NUL", "too long", "non-empty dir", "fifo",
                              "under /proc", "component too long")
              or eval_data in ("fifo", "dev zero", "empty", "not JSON"))
    return Case("training", f"minillm finetune data {data_kind} eval {eval_data} out {out_kind} full={full} "
                            f"{short(flags, 100)}", run, "valid" if valid else "refuse" if refuse else "any")


@st.composite
def training_cases(draw) -> Case:
    maker = draw(st.sampled_from([_recipe_setting_case, _recipe_setting_case, _valid_recipe_case, _train_paths_case,
                                  _train_paths_case, _resume_case, _resume_case, _resume_case,
                                  _finetune_resume_case, _finetune_cli_case, _finetune_cli_case]))
    case = maker(draw)
    inner = case.run

    def run(work: Path):
        no_plots()
        inner(work)

    case.run = run
    return case


# ------------------------------------------------------------------------------------------------ hybrid

HYBRID_BASES = ["tiny-qwen3.5", "tiny-qwen3-next", "tiny-qwen3.5-moe", "trained-tiny-qwen3.5",
                "trained-tiny-qwen3-next", "trained-tiny-qwen3.5-moe"]
HYBRID_FIELDS = {
    "layer_types": [["full_attention"] * 4, ["linear_attention"] * 4, ["full_attention"] * 3, ["x"] * 4, [],
                    "full_attention", ["full_attention", "linear_attention"] * 2, ["sliding_attention"] * 4, None,
                    ["linear_attention"] * 5, [1, 2, 3, 4]],
    "full_attention_interval": [0, -1, 1, 2, 4, 5, 2 ** 40, 1.5, None, "2"],
    "linear_num_key_heads": [0, -1, 1, 2, 3, 4, 2 ** 31, 1.5, None],
    "linear_num_value_heads": [0, 1, 2, 3, 4, 8, 2 ** 40, None],
    "linear_key_head_dim": [0, 1, 15, 16, 17, 2 ** 31, -16, None],
    "linear_value_head_dim": [0, 1, 16, 23, 24, 2 ** 40, None],
    "linear_conv_kernel_dim": [0, 1, 2, 3, 4, 5, 10 ** 9, -4, None],
    "num_experts": [0, 1, 2, 7, 8, 9, 2 ** 31, -8, None, 1.5],
    "num_experts_per_tok": [0, 1, 2, 8, 9, 100, -1, None, 2.5],
    "moe_intermediate_size": [0, 1, 15, 16, 17, 2 ** 40, None],
    "shared_expert_intermediate_size": [0, 1, 31, 32, 33, None],
    "mlp_only_layers": [[], [0], [1], [0, 1, 2, 3], [5], [-1], "0", [1.5], None, [0, 0]],
    "decoder_sparse_step": [0, 1, 2, 3, -1, 2 ** 40, None],
    "norm_topk_prob": [True, False, "yes", None, 1],
    "partial_rotary_factor": [0.0, 0.25, 0.5, 1.0, 1.5, -0.25, 1e-300, float("nan"), 0.3, None, "0.25"],
    "mrope_section": [[3, 3, 2], [4, 4, 0], [8, 0, 0], [1, 1, 1], [], [3, 3], [-1, 5, 4], "x", None, [10 ** 9, 0, 0]],
    "mrope_interleaved": [True, False, "yes", None],
    "head_dim": [0, 16, 31, 32, 33, 64, 2 ** 31, None],
    "attn_output_gate": [True, False, None, "no"],
    "num_hidden_layers": [0, 1, 3, 4, 5, 2 ** 31, None],
    "model_type": ["qwen3_5_text", "qwen3_next", "qwen3_5_moe_text", "qwen3", "qwen3_moe", "qwen2", "", None],
    "rope_theta": [0.0, 1.0, 1e4, 1e7, float("inf"), -1e4, 1e300],
}
ROPE_BLOCK_FIELDS = {"partial_rotary_factor", "mrope_section", "mrope_interleaved", "rope_theta"}


def _text_config(raw: dict) -> dict:
    """The dict holding the language model's fields (Qwen3.5-MoE nests them in text_config)."""
    return raw["text_config"] if isinstance(raw.get("text_config"), dict) else raw


def _set_hybrid_field(raw: dict, name: str, value) -> None:
    text = _text_config(raw)
    if name in ROPE_BLOCK_FIELDS and isinstance(text.get("rope_parameters"), dict):
        target = text["rope_parameters"]
    else:
        target = text
    if value is None:
        target.pop(name, None)
    else:
        target[name] = value


def use_model(d: Path | str, numbers_matter: bool = True) -> None:
    """Load, forward (finite logits unless the weights were corrupted), greedy generation with a cache."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", minillm.CheckpointWarning)
        model = minillm.load_model(d)
    if not numbers_matter:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            model.forward([1, 2, 3])
            return
    finite_forward(model, [1, 2, 3, 4])
    minillm.generate(model, [1, 2, 3], 3, temperature=0.0, stop_token_ids=[])


def _hybrid_field_case(draw) -> Case:
    base = draw(st.sampled_from(HYBRID_BASES))
    edits = draw(st.lists(st.sampled_from(sorted(HYBRID_FIELDS)), min_size=1, max_size=2, unique=True))
    values = {n: draw(st.one_of(st.sampled_from(HYBRID_FIELDS[n]), typed_ints, typed_floats, plain_json_values))
              if draw(st.integers(0, 3)) == 0 else draw(st.sampled_from(HYBRID_FIELDS[n])) for n in edits}

    def run(work: Path):
        d = copy_checkpoint(base, work)
        raw = json.loads((d / "config.json").read_text())
        for n, v in values.items():
            _set_hybrid_field(raw, n, v)
        write_text(d / "config.json", to_json(raw))
        use_model(d)

    return Case("hybrid", f"{base} config {short(values, 120)}", run)


HYBRID_TENSOR_EDITS = ["drop", "wrong shape", "transpose", "scalar", "extra", "F16", "BF16 as F32 bytes", "I32",
                       "NaN", "rename to another layer"]


def _hybrid_tensor_case(draw) -> Case:
    base = draw(st.sampled_from(HYBRID_BASES[:3]))
    edit = draw(st.sampled_from(HYBRID_TENSOR_EDITS))
    which = draw(st.integers(0, 1000))
    pattern = draw(st.sampled_from(["linear_attn", "self_attn", "mlp", "experts", "norm", "embed", ""]))

    def run(work: Path):
        import safetensors.numpy
        from minillm.checkpoint.safetensors_file import SafetensorsFile
        d = copy_checkpoint(base, work)
        files = sorted(d.glob("model*.safetensors"))
        f = files[which % len(files)]
        st_file = SafetensorsFile(f)
        tensors = {k: st_file.get_float32(k) for k in st_file.tensors}
        names = sorted(k for k in tensors if pattern in k) or sorted(tensors)
        name = names[which % len(names)]
        a = tensors[name]
        dtypes = {}
        if edit == "drop":
            del tensors[name]
        elif edit == "wrong shape":
            tensors[name] = np.zeros(a.shape[:-1] + (a.shape[-1] + 1,), np.float32) if a.ndim else a[None]
        elif edit == "transpose":
            tensors[name] = np.ascontiguousarray(a.T) if a.ndim == 2 else a[None]
        elif edit == "scalar":
            tensors[name] = np.float32(1.0).reshape(())
        elif edit == "extra":
            tensors[name.replace(".weight", ".extra")] = a
        elif edit == "F16":
            tensors[name] = a.astype(np.float16)
        elif edit == "I32":
            tensors[name] = a.astype(np.int32)
        elif edit == "NaN":
            a.flat[0] = np.nan
        elif edit == "rename to another layer":
            tensors[name.replace("layers.0.", "layers.1.").replace("layers.3.", "layers.2.")] = tensors.pop(name)
        safetensors.numpy.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(f),
                                    metadata={"format": "pt"})
        use_model(d, numbers_matter=edit != "NaN")

    return Case("hybrid", f"{base} tensor {edit} of {pattern or 'any'}#{which}", run,
                "valid" if edit == "F16" else "any")


def _build_checkpoint(raw: dict, d: Path, seed: int = 0) -> None:
    """A checkpoint directory for config ``raw`` with seeded random weights (init.py), saved in F32."""
    from minillm.checkpoint.config import parse_config
    from minillm.checkpoint.saving import save_model_dir
    from minillm.checkpoint.weights import named_tensors
    from minillm.training.init import init_weights
    cfg = parse_config(raw, source="fuzz config")
    save_model_dir(d, raw, named_tensors(init_weights(cfg, seed)), "F32")  # std 0.02, as a training run starts


def _check_against_definitions(model, ids: np.ndarray) -> None:
    """A loaded model's numbers against what their definitions say they must equal."""
    from minillm.plain.hybrid import plain_hybrid_forward
    whole = model.forward(ids)  # [T, V]
    if not np.isfinite(whole).all():
        raise Violation("accepted, but the logits are not finite")
    T = len(ids)
    cache = model.new_cache(1, T + 4)
    first = model.forward(ids[None, :3], cache=cache)  # [1, 3, V]
    rest = [model.forward(ids[None, t:t + 1], cache=cache)[0, -1] for t in range(3, T)]  # token by token
    stepped = np.concatenate([first[0], np.stack(rest)])  # [T, V]
    if not np.allclose(stepped, whole, rtol=1e-4, atol=1e-4):
        raise Violation(f"cached token-by-token logits differ from one pass: max |diff| "
                        f"{float(np.abs(stepped - whole).max()):.3g}")
    if model.config.model_type == "qwen3_5_text":
        plain = plain_hybrid_forward(model.weights, model.config, ids)  # [T, V]
        if not np.allclose(plain, whole, rtol=1e-4, atol=1e-4):
            raise Violation(f"engine differs from the plain hybrid forward: max |diff| "
                            f"{float(np.abs(plain - whole).max()):.3g}")
    greedy = minillm.generate(model, ids[:4], 4, temperature=0.0, stop_token_ids=[])
    chunked = minillm.generate(model, ids[:4], 4, temperature=0.0, stop_token_ids=[], prefill_chunk_size=1)
    if list(greedy) != list(chunked):
        raise Violation(f"chunked prefill changes greedy tokens: {list(greedy)} vs {list(chunked)}")


def _valid_hybrid_case(draw) -> Case:
    """Configs the definition accepts: any mix of full and linear layers (all full too), experts and top-k,
    partial RoPE; random weights, checked against the cached path, the plain layer and chunked prefill."""
    base = draw(st.sampled_from(HYBRID_BASES[:3]))
    n_layers = draw(st.integers(1, 4))
    layers = draw(st.lists(st.sampled_from(["full_attention", "linear_attention"]), min_size=n_layers,
                           max_size=n_layers))
    if draw(st.integers(0, 2)) == 0:
        layers = ["full_attention"] * n_layers  # the issue's class 6
    experts = draw(st.integers(1, 6))
    top_k = draw(st.integers(1, experts))
    partial = draw(st.sampled_from([0.25, 0.5, 1.0]))
    mlp_only = draw(st.lists(st.integers(0, n_layers - 1), max_size=2, unique=True))
    seed = draw(st.integers(0, 3))

    def run(work: Path):
        raw = json.loads((WEIGHTS / base / "config.json").read_text())
        text = dict(_text_config(raw))
        text.pop("full_attention_interval", None)
        text.update(num_hidden_layers=n_layers, layer_types=layers)
        if "num_experts" in text:
            text.update(num_experts=experts, num_experts_per_tok=top_k, mlp_only_layers=mlp_only)
        rope = text.get("rope_parameters")
        if isinstance(rope, dict):
            rope = dict(rope, partial_rotary_factor=partial)
            rope.pop("mrope_section", None)  # text positions: M-RoPE is plain RoPE; the sections fit 0.25 only
            text["rope_parameters"] = rope
        else:
            text["partial_rotary_factor"] = partial
        _build_checkpoint(text, work / "ckpt", seed)
        model = minillm.load_model(work / "ckpt")
        if not model.config.is_hybrid:
            raise Violation(f"a {text['model_type']} config was loaded as a dense model")
        _check_against_definitions(model, (np.arange(7) * 37 + seed) % model.config.vocab_size)

    return Case("hybrid", f"valid {base} layers {layers} experts {experts}/{top_k} mlp_only {mlp_only} "
                          f"partial {partial}", run, "valid")


def _explicit_layer_types_case(draw) -> Case:
    """Writing out layer_types as full_attention_interval implies (or dropping it) changes no number."""
    base = draw(st.sampled_from(HYBRID_BASES))
    how = draw(st.sampled_from(["explicit", "interval only", "extra unknown field"]))

    def run(work: Path):
        d = copy_checkpoint(base, work)
        raw = json.loads((d / "config.json").read_text())
        text = _text_config(raw)
        model = Shared.model(base)
        if how == "explicit":
            text["layer_types"] = list(model.config.layer_types)
        elif how == "interval only" and "layer_types" in text:
            interval = text.get("full_attention_interval")
            types = text["layer_types"]
            if interval and all((t == "full_attention") == ((i + 1) % interval == 0) for i, t in enumerate(types)):
                del text["layer_types"]
        else:
            text["some_future_field"] = {"x": 1}
        (d / "config.json").write_text(json.dumps(raw))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", minillm.CheckpointWarning)
            edited = minillm.load_model(d)
        ids = np.arange(6) * 11 % model.config.vocab_size
        if not np.array_equal(edited.forward(ids), model.forward(ids)):
            raise Violation(f"{how} layer_types changed the logits")

    return Case("hybrid", f"valid {base} layer_types {how}", run, "valid")


HYBRID_API = ["padded batch", "chunked prefill", "cache of another model", "cache too small", "cache batch 2",
              "logits_to_keep", "new_cache sizes", "generate twice on one cache", "stream and stop"]


def _hybrid_api_case(draw) -> Case:
    """Generation on the hybrid and MoE models: the definitions (a padded row is the row alone, a chunked prefill
    is one prefill, logits_to_keep keeps the last rows) and hostile caches and sizes."""
    name = draw(st.sampled_from(HYBRID_BASES[:3]))
    what = draw(st.sampled_from(HYBRID_API))
    value = draw(st.sampled_from([0, 1, 2, 3, 5, -1, 10 ** 12, 1.5, None, "2"]))
    seed = draw(st.integers(0, 50))

    def run(work: Path):
        model = Shared.model(name)
        V = model.config.vocab_size
        rng = np.random.default_rng(seed)
        a, b = rng.integers(0, V, 5), rng.integers(0, V, 3)
        alone = lambda ids: list(minillm.generate(model, ids, 4, temperature=0.0, stop_token_ids=[]))  # noqa: E731
        if what == "padded batch":
            ids = np.stack([a, np.concatenate([np.zeros(2, np.int64), b])])  # [2, 5]: row 1 left-padded
            mask = np.array([[1] * 5, [0, 0, 1, 1, 1]])
            out = minillm.generate(model, ids, 4, temperature=0.0, stop_token_ids=[], attention_mask=mask)
            if [list(r) for r in out] != [alone(a), alone(b)]:
                raise Violation(f"padded batch {[list(r) for r in out]} != rows alone {[alone(a), alone(b)]}")
        elif what == "chunked prefill":
            out = list(minillm.generate(model, a, 4, temperature=0.0, stop_token_ids=[], prefill_chunk_size=value))
            if out != alone(a):
                raise Violation(f"prefill_chunk_size={value!r}: {out} != {alone(a)}")
        elif what == "cache of another model":
            other = Shared.model(HYBRID_BASES[(HYBRID_BASES.index(name) + 1) % 3])
            minillm.generate(model, a, 2, cache=other.new_cache(1, 16))
        elif what == "cache too small":
            minillm.generate(model, a, 4, cache=model.new_cache(1, 3), temperature=0.0)
        elif what == "cache batch 2":
            minillm.generate(model, a, 2, cache=model.new_cache(2, 16))
        elif what == "logits_to_keep":
            whole = model.forward(a)
            kept = model.forward(a, logits_to_keep=value)
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= len(a) and \
                    not np.allclose(kept, whole[-value:], rtol=1e-4, atol=1e-5):
                raise Violation(f"logits_to_keep={value} is not the last rows of the logits")
        elif what == "new_cache sizes":
            model.new_cache(value, value)
        elif what == "generate twice on one cache":
            cache = model.new_cache(1, 32)
            first = list(minillm.generate(model, a, 3, temperature=0.0, stop_token_ids=[], cache=cache))
            minillm.generate(model, b, 3, temperature=0.0, stop_token_ids=[], cache=cache)
            if first != alone(a)[:3]:
                raise Violation("a fresh cache passed in changed the tokens")
        else:
            out = list(itertools.islice(minillm.stream_generate(model, a, 10 ** 9, stop_token_ids=[]), 3))
            if len(out) != 3:
                raise Violation("stream_generate stopped early")

    valid = what in ("padded batch", "generate twice on one cache", "stream and stop") or \
        what == "chunked prefill" and value in (1, 2, 3, 5, None) or \
        what == "logits_to_keep" and value in (0, 1, 2, 3, 5)
    refuse = what == "cache batch 2"  # (a cache of another model of the same shapes is usable: "any")
    return Case("hybrid", f"{name} {what} value={value!r} seed={seed}", run,
                "valid" if valid else "refuse" if refuse else "any")


@st.composite
def hybrid_cases(draw) -> Case:
    maker = draw(st.sampled_from([_hybrid_field_case, _hybrid_field_case, _hybrid_field_case, _hybrid_tensor_case,
                                  _hybrid_tensor_case, _valid_hybrid_case, _valid_hybrid_case,
                                  _explicit_layer_types_case, _hybrid_api_case, _hybrid_api_case]))
    return maker(draw)


# ------------------------------------------------------------------------------------------------ hub

COMMIT = "0123456789abcdef" * 2 + "01234567"
OTHER_COMMIT = "f" * 40
HUB_IDS = ["org/m", "org/m@main", f"org/m@{COMMIT}", f"org/m@{COMMIT}/sub", f"org/m@{COMMIT}/../x",
           "org/m@/etc/passwd", "org/m@/", "org/m@//x", "org/m\n", "org/m\nx", "org/m@main\n", "org/m@ma\nin",
           "org/m@..", "org/m@../../..", "org/m@refs/../..", "org/../m", "../org/m", "/org/m", "org//m", "org/m/",
           "org/m@", "org/m@@main", "org/m@v1.0", "org/m@pr/1", "org/m@" + "x" * 5000, "o\x00rg/m", "org/m@a\x00b",
           "org/m@\t", "org/m@\u202e", "org--m/x", "org/m--x", "org/" + "m" * 97, "ORG/M", "org/m ", " org/m",
           "org/m@" + "0" * 40, "org/m@" + COMMIT.upper(), "org/m@" + COMMIT[:39], "org/m@" + COMMIT + "0"]
CACHE_LAYOUTS = ["normal", "snapshot links outside", "snapshot links to another repo", "repo links outside",
                 "snapshots dir links outside", "refs/main fifo", "refs/main dev zero", "refs/main link outside",
                 "refs/main directory", "refs/main huge", "refs/main dangling", "refs/main loop",
                 "blob links outside", "file links to another repo", "no snapshot", "incomplete snapshot",
                 "refs/main other commit", "index names an outside shard", "snapshot is a file", "cache is a file",
                 "cache missing", "refs is a fifo"]
OFFLINE = ["1", None, "0", "yes", "TRUE", ""]


def _hub_cache_case(draw) -> Case:
    repo_id = draw(st.sampled_from(HUB_IDS)) if draw(st.integers(0, 2)) == 0 else draw(st.sampled_from(HUB_IDS[:3]))
    layout = draw(st.sampled_from(CACHE_LAYOUTS)) if draw(st.integers(0, 2)) else "normal"
    offline = draw(st.sampled_from(OFFLINE)) if draw(st.booleans()) else "1"
    base = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3.5-hub"]))
    loader = draw(st.sampled_from(["load_model", "load_model", "load_tokenizer", "resolve_model_path", "cli"]))

    def run(work: Path):
        import hub_cache
        _no_network()
        if offline is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = offline
        cache = work / "hf-cache"
        cache.mkdir()
        snapshot = hub_cache.add_snapshot(cache, "org/m", WEIGHTS / base, commit=COMMIT)
        repo = snapshot.parent.parent
        outside = work / "outside"
        if "outside" in layout:  # the copies only the layout uses (a case's time is mostly copying files)
            shutil.copytree(WEIGHTS / "tiny-qwen2", outside, ignore=shutil.ignore_patterns("*.npz"))
            (outside / "chat_template.jinja").write_text(OUTSIDE_SECRET)
        if "another repo" in layout:
            other = hub_cache.add_snapshot(cache, "other/m", WEIGHTS / "tiny-qwen2", commit=OTHER_COMMIT)
        ref = repo / "refs" / "main"
        if layout == "snapshot links outside":
            shutil.rmtree(snapshot)
            snapshot.symlink_to(outside)
        elif layout == "snapshot links to another repo":
            shutil.rmtree(snapshot)
            snapshot.symlink_to(other)
        elif layout == "repo links outside":
            moved = work / "moved-repo"
            shutil.move(str(repo), moved)
            repo.symlink_to(moved)
        elif layout == "snapshots dir links outside":
            (work / "snaps").mkdir()
            (work / "snaps" / COMMIT).symlink_to(outside)
            shutil.rmtree(repo / "snapshots")
            (repo / "snapshots").symlink_to(work / "snaps")
        elif layout.startswith("refs/main "):
            kind = layout.split(" ", 1)[1]
            if kind == "other commit":
                ref.write_text(OTHER_COMMIT)
            elif kind == "link outside":
                _special(ref, "link outside", work, content=COMMIT.encode())
            else:
                _special(ref, {"fifo": "fifo", "dev zero": "dev zero", "directory": "directory", "huge": "huge",
                               "dangling": "dangling", "loop": "loop"}[kind], work)
        elif layout == "refs is a fifo":
            shutil.rmtree(repo / "refs")
            os.mkfifo(repo / "refs")
        elif layout == "blob links outside":
            link = snapshot / "config.json"
            blob = (snapshot / os.readlink(link)).resolve()
            blob.unlink()
            blob.symlink_to(outside / "config.json")
        elif layout == "file links to another repo":
            (snapshot / "tokenizer_config.json").unlink()
            (snapshot / "tokenizer_config.json").symlink_to(other / "tokenizer_config.json")
        elif layout == "no snapshot":
            shutil.rmtree(snapshot)
        elif layout == "incomplete snapshot":
            next(snapshot.glob("*.safetensors")).unlink()
        elif layout == "index names an outside shard":
            index = {"weight_map": {"model.embed_tokens.weight": str(outside / "model.safetensors")}}
            (snapshot / "model.safetensors.index.json").write_text(json.dumps(index))
        elif layout == "snapshot is a file":
            shutil.rmtree(snapshot)
            snapshot.write_text("x")
        elif layout == "cache is a file":
            shutil.rmtree(cache)
            cache.write_text("x")
        elif layout == "cache missing":
            shutil.rmtree(cache)
        try:
            if loader == "cli":
                run_cli(["inspect", repo_id, "--tensors", "0"], work)
                return
            if loader == "resolve_model_path":
                path = minillm.resolve_model_path(repo_id)
                if "\n" in str(path) and not os.path.exists(path):
                    return  # a path for the loader to report
                use_checkpoint(path, with_generate=False)
            elif loader == "load_tokenizer":
                minillm.load_tokenizer(repo_id).encode("hi")
            else:
                use_checkpoint(repo_id, with_generate=False)
        except MinillmError as e:
            if "\n" in str(e):
                raise Violation(f"a multi-line error: {str(e)[:200]!r}") from None
            if OUTSIDE_SECRET in str(e):
                raise Violation("the error message shows a file from outside the cache") from None
            raise

    clean_id = repo_id in HUB_IDS[:3]
    valid = clean_id and layout in ("normal", "refs/main other commit") and offline is not None and \
        offline.upper() in ("1", "YES", "TRUE") and not (layout == "refs/main other commit" and repo_id != "org/m@"
                                                            + COMMIT and False)
    if layout == "refs/main other commit" and repo_id != "org/m@" + COMMIT:
        valid = False  # refs/main names a snapshot that does not exist
    refuse = layout in ("snapshot links outside", "snapshot links to another repo", "repo links outside",
                        "snapshots dir links outside",
                        "no snapshot", "snapshot is a file", "cache is a file",
                        "cache missing") and repo_id in ("org/m", "org/m@main", "org/m@" + COMMIT) \
        or layout.startswith("refs/main ") and layout != "refs/main other commit" and repo_id in ("org/m",
                                                                                                 "org/m@main") \
        and not (loader == "cli" and layout in ("refs/main other commit",))
    if layout == "file links to another repo" and loader != "cli":  # (tokenizer_config.json: inspect reads none)
        refuse = refuse or repo_id in ("org/m", "org/m@main", "org/m@" + COMMIT)
    if layout == "blob links outside" and loader != "load_tokenizer":  # (config.json's blob; no tokenizer file)
        refuse = refuse or repo_id in ("org/m", "org/m@main", "org/m@" + COMMIT)
    if layout == "index names an outside shard" and base == "tiny-qwen3.5-hub" and loader != "load_tokenizer":
        refuse = refuse or repo_id in ("org/m", "org/m@main", "org/m@" + COMMIT)  # (tiny-qwen2 has no index)
    if layout in ("incomplete snapshot",) and loader != "load_tokenizer":
        refuse = refuse or repo_id in HUB_IDS[:3]
    return Case("hub", f"{loader}({short(repo_id, 50)}) cache {layout}, {base}, HF_HUB_OFFLINE={offline!r}", run,
                "valid" if valid else "refuse" if refuse else "any")


@st.composite
def hub_cases(draw) -> Case:
    return _hub_cache_case(draw)


# ------------------------------------------------------------------------------------------------ speculative


class _Drafter:
    def __init__(self, behaviour: str, vocab: int, seed: int, **attrs):
        self.behaviour, self.vocab = behaviour, vocab
        self.rng = np.random.default_rng(seed)
        for k, v in attrs.items():
            setattr(self, k, v)

    def propose(self, history, max_tokens):
        b, V = self.behaviour, self.vocab
        n = max(0, int(max_tokens))
        if b == "random valid":
            return self.rng.integers(0, V, size=self.rng.integers(0, n + 1))
        if b == "copy history":
            return np.asarray(history)[-n:] if n else np.asarray(history)[:0]
        if b == "ignores max_tokens":
            return self.rng.integers(0, V, size=3 * n + 5)
        if b == "100k drafts":
            return np.zeros(100_000, np.int64)
        if b == "empty":
            return []
        if b == "list of ints":
            return [1] * n
        if b == "numpy int8":
            return np.ones(n, np.int8)
        if b == "None":
            return None
        if b == "NaN":
            return np.full(max(n, 1), np.nan)
        if b == "floats":
            return [1.0, 2.0]
        if b == "2-D":
            return np.ones((2, 2), np.int64)
        if b == "strings":
            return ["a", "b"]
        if b == "string":
            return "12"
        if b == "out of vocab":
            return [V]
        if b == "negative":
            return [-1]
        if b == "2**64":
            return [2 ** 64]
        if b == "bools":
            return [True, False]
        if b == "generator":
            return (i for i in range(n))
        if b == "dict":
            return {1: 2}
        if b == "object array":
            return np.array([1, None], dtype=object)
        if b == "scalar":
            return 5
        if b == "ragged":
            return [[1], [1, 2]]
        raise AssertionError(b)


WELL_BEHAVED = ["random valid", "copy history", "ignores max_tokens", "100k drafts", "empty", "list of ints",
                "numpy int8", "prompt lookup"]
BAD_DRAFTS = ["None", "NaN", "floats", "2-D", "strings", "string", "out of vocab", "negative", "2**64", "bools",
              "generator", "dict", "object array", "scalar", "ragged"]
DRAFTER_ATTRS = [{}, {}, {"num_tokens": -1}, {"num_tokens": 1.5}, {"num_tokens": 2 ** 70}, {"num_tokens": 0},
                 {"num_tokens": 3}, {"num_tokens": True}, {"num_tokens": "3"}, {"last_ngram_size": []},
                 {"last_ngram_size": 2}, {"last_ngram_size": None}, {"last_ngram_size": 1.5},
                 {"last_ngram_size": -1}, {"last_ngram_size": 2 ** 70}, {"propose": None}, {"propose": 5}]
SPEC_ARGS = {"prompt_lookup_num_tokens": [None, 1, 3, 10, 0, -1, 1.5, 2 ** 31 - 1, 2 ** 63, 2 ** 70, "3", True],
             "max_matching_ngram_size": [None, 1, 2, 3, 0, -1, 2 ** 31 - 1, 2 ** 70, 1.5],
             "draft_schedule": ["adaptive", "constant", "<DraftLength(3)>", "<DraftLength(-1)>",
                                "<DraftLength(0)>", "<DraftLength(10**9)>", "<DraftLength(1.5)>", "x", None, 5],
             "speculative_stats": [None, "<SpeculativeStats>", {}, [], "x"],
             "max_new_tokens": [1, 2, 5, 12, 0, -1, 1.5, "3"],
             "temperature": [0.0, 0.0, 0.0, 0.8, None]}
SPEC_MODELS = ["tiny-qwen2", "tiny-qwen3", "tiny-qwen3.5", "tiny-qwen3-next"]


def _spec_value(v):
    from minillm.generation.draft_length import DraftLength
    if v == "<SpeculativeStats>":
        return minillm.SpeculativeStats()
    if isinstance(v, str) and v.startswith("<DraftLength("):
        return DraftLength(eval(v[len("<DraftLength("):-2]))  # noqa: S307 - one of the literals above
    return v


def _speculative_case(draw) -> Case:
    name = draw(st.sampled_from(SPEC_MODELS))
    how = draw(st.sampled_from(["drafter", "drafter", "prompt lookup", "object"]))
    behaviour = draw(st.sampled_from(WELL_BEHAVED + BAD_DRAFTS)) if how == "drafter" else None
    attrs = draw(st.sampled_from(DRAFTER_ATTRS)) if how == "drafter" else {}
    hostile = draw(st.integers(0, 2)) == 0
    args = {k: (draw(st.sampled_from(v)) if hostile or k in ("max_new_tokens", "temperature")
                else v[0] if k != "max_new_tokens" else 5) for k, v in SPEC_ARGS.items()}
    if args["max_new_tokens"] not in (1, 2, 5, 12):
        args["max_new_tokens"] = args["max_new_tokens"] if hostile else 5
    if how != "prompt lookup":
        args["prompt_lookup_num_tokens"] = args["prompt_lookup_num_tokens"] if hostile and how == "object" else None
        args["max_matching_ngram_size"] = None if not hostile else args["max_matching_ngram_size"]
    elif args["prompt_lookup_num_tokens"] is None:
        args["prompt_lookup_num_tokens"] = 3
    seed = draw(st.integers(0, 5))
    prompt_kind = draw(st.sampled_from(["repeating", "short", "one token"]))

    def run(work: Path):
        model = Shared.model(name)
        V = model.config.vocab_size
        prompt = {"repeating": [5, 6, 7, 8, 5, 6, 7, 8, 5, 6], "short": [3, 4], "one token": [9]}[prompt_kind]
        kwargs = {k: _spec_value(v) for k, v in args.items() if k not in ("max_new_tokens", "temperature")}
        kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "draft_schedule"}
        if kwargs.get("draft_schedule") is None:
            kwargs["draft_schedule"] = None
        if how == "drafter":
            kwargs["drafter"] = _Drafter(behaviour, V, seed, **attrs) if behaviour != "prompt lookup" else \
                __import__("minillm.generation.drafting", fromlist=["x"]).PromptLookupDrafter(4)
        elif how == "object":
            kwargs["drafter"] = draw_object
        temperature, max_new = args["temperature"], args["max_new_tokens"]
        out = minillm.generate(model, prompt, max_new, temperature=temperature, seed=seed, stop_token_ids=[],
                               **kwargs)
        out = list(out)
        if any(not (0 <= t < V) for t in out) or len(out) > max_new:
            raise Violation(f"speculative output {out[:20]} for max_new_tokens {max_new}")
        if temperature == 0.0:
            plain = list(minillm.generate(model, prompt, max_new, temperature=0.0, stop_token_ids=[]))
            if out != plain:
                raise Violation(f"speculative greedy {out} differs from plain greedy {plain}")

    draw_object = draw(st.sampled_from([object(), "drafter", 5, None, [1, 2], {"propose": 1}]))
    valid = (not hostile and (how == "prompt lookup" or how == "drafter" and behaviour in WELL_BEHAVED
                              and attrs in ({}, {"num_tokens": 3}, {"last_ngram_size": 2},
                                            {"last_ngram_size": None})))
    refuse = how == "drafter" and (behaviour in BAD_DRAFTS or "propose" in attrs and behaviour != "prompt lookup") \
        and args["max_new_tokens"] in (
        5, 12) and not hostile
    return Case("speculative", f"{name} {how} {behaviour or ''} attrs={short(attrs)} args={short(args, 150)} "
                               f"seed={seed} prompt={prompt_kind}", run,
                "valid" if valid else "refuse" if refuse else "any")


def _speculative_cli_case(draw) -> Case:
    """``minillm generate --speculative K --ngram-size N --draft-schedule S`` (and chat) with hostile values; greedy
    output must equal plain greedy output."""
    model = draw(st.sampled_from(["tiny-qwen2", "tiny-qwen3.5"]))
    k = draw(st.sampled_from(["1", "3", "10", "0", "-1", "2147483647", "9223372036854775808", "1.5", "x"]))
    n = draw(st.sampled_from([None, "1", "2", "0", "-1", "2147483647"]))
    schedule = draw(st.sampled_from([None, "adaptive", "constant"]))
    command = draw(st.sampled_from(["generate", "generate", "chat"]))

    def run(work: Path):
        base = [command] + (["the cat sat on the mat. the cat sat on the"] if command == "generate" else []) + \
            ["--model", str(WEIGHTS / model), "--max-new-tokens", "6", "--temperature", "0"]
        extra = ["--speculative", k] + (["--ngram-size", n] if n else []) + (["--draft-schedule", schedule]
                                                                              if schedule else [])
        stdin = "the cat sat on the mat. the cat sat on the\n"
        code, _ = run_cli(base + extra, work, "file", stdin)
        spec_out = (work / "stdout").read_text(errors="replace")
        (work / "stdout").unlink()
        (work / "stderr").unlink()
        code, _ = run_cli(base, work, "file", stdin)
        plain_out = (work / "stdout").read_text(errors="replace")
        if spec_out.split("\n")[:2] != plain_out.split("\n")[:2]:  # the text (statistics lines may follow)
            raise Violation(f"speculative greedy text {spec_out[:80]!r} differs from plain {plain_out[:80]!r}")

    valid = k in ("1", "3", "10") and n in (None, "1", "2") and model and True
    refuse = k in ("0", "-1", "9223372036854775808", "1.5", "x") or n in ("0", "-1")
    return Case("speculative", f"minillm {command} --model {model} --speculative {k} --ngram-size {n} "
                               f"--draft-schedule {schedule}", run, "valid" if valid else "refuse" if refuse else "any")


@st.composite
def speculative_cases(draw) -> Case:
    maker = draw(st.sampled_from([_speculative_case, _speculative_case, _speculative_case, _speculative_cli_case]))
    return maker(draw)


# ------------------------------------------------------------------------------------------------ train_api

API_MODELS = ["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-yarn-swa", "tiny-qwen3-moe", "tiny-qwen3-next",
              "tiny-qwen3.5", "tiny-qwen3.5-moe"]
BATCHES = ["[T]", "[B, T]", "[3000, 256]", "[1, 10**6]", "[10**5, 10**5]", "[]", "[[]]", "[B, 0]", "[B, 1]",
           "3-D", "floats", "bools", "strings", "negative", "vocab", "2**63", "object", "ragged", "uint64",
           "int8", "scalar", "None", "[1, max_pos]", "[1, max_pos + 1]", "[64, 64]", "F-order", "non-contiguous"]
LABELS = ["none", "ids", "all -100", "one scored", "-101", "vocab", "shape", "floats", "1-D for 2-D", "strings"]
ROUTER = [{}, {"output_router_logits": True}, {"output_router_logits": True, "router_aux_loss_coef": 0.5},
          {"output_router_logits": "yes"}, {"router_aux_loss_coef": float("nan"), "output_router_logits": True},
          {"router_aux_loss_coef": "x", "output_router_logits": True}, {"checkpoint": True}, {"checkpoint": "no"},
          {"output_router_logits": True, "router_aux_loss_coef": -1.0}]
LORA = [None, None, {"r": 2}, {"r": 2, "target_modules": ["q_proj", "v_proj"]}, {"r": 0}, {"r": -1}, {"r": 2 ** 40},
        {"r": 1.5}, {"r": 2, "target_modules": []}, {"r": 2, "target_modules": ["nope"]},
        {"r": 2, "lora_alpha": float("nan")}, {"r": 2, "lora_dropout": 1.0}, {"r": 2, "lora_dropout": 0.5},
        {"r": 2, "lora_dropout": -0.1}, {"r": 2, "use_rslora": True}, {"r": 2, "target_modules": "q_proj"},
        {"r": 2, "target_modules": ["in_proj_qkvz", "out_proj"]}, {"r": 2, "target_modules": ["experts"]},
        {"r": 2, "lora_dropout": "x"}, {"r": 2, "seed": -1}, {"r": 2, "seed": "x"}, {"r": 2, "use_rslora": "yes"},
        {"r": 2, "target_modules": 5}, {"r": 2, "target_modules": [5]}, {"r": 2, "target_modules": "all-linear"},
        {"r": 2, "target_modules": ".*q_proj"}, {"r": 2, "lora_alpha": "32"}, {"r": True}]  # (r=2**16: valid and
# merely slow, minutes of products; its memory bound is tests/test_fuzz_found.py's)


def _batch(kind: str, cfg, rng) -> object:
    V, P = cfg.vocab_size, cfg.max_position_embeddings
    ids = lambda *shape: rng.integers(0, V, size=shape)  # noqa: E731
    return {"[T]": lambda: ids(6), "[B, T]": lambda: ids(2, 5), "[3000, 256]": lambda: ids(3000, 256),
            "[1, 10**6]": lambda: np.zeros((1, 10 ** 6), np.int64),
            "[10**5, 10**5]": lambda: np.lib.stride_tricks.as_strided(np.zeros(1, np.int64), (10 ** 5, 10 ** 5), (0, 0)),
            "[]": lambda: [], "[[]]": lambda: [[]], "[B, 0]": lambda: np.zeros((2, 0), np.int64),
            "[B, 1]": lambda: ids(2, 1), "3-D": lambda: ids(1, 2, 3), "floats": lambda: ids(4).astype(float),
            "bools": lambda: [True, False, True], "strings": lambda: ["a", "b"], "negative": lambda: [1, -1, 2],
            "vocab": lambda: [1, V, 2], "2**63": lambda: [2 ** 63], "object": lambda: np.array([1, None]),
            "ragged": lambda: [[1, 2], [3]], "uint64": lambda: ids(4).astype(np.uint64),
            "int8": lambda: ids(4).astype(np.int8) % 100, "scalar": lambda: 5, "None": lambda: None,
            "[1, max_pos]": lambda: ids(1, min(P, 300)), "[1, max_pos + 1]": lambda: ids(1, P + 1),
            "[64, 64]": lambda: ids(64, 64), "F-order": lambda: np.asfortranarray(ids(3, 4)),
            "non-contiguous": lambda: ids(4, 8)[:, ::2]}[kind]()


def _labels(kind: str, ids, cfg, rng):
    try:
        shape = np.shape(ids)
    except ValueError:  # ragged
        shape = ()
    if kind == "none":
        return None
    if kind == "ids":
        return ids
    if kind == "one scored" and math.prod(shape) > 10 ** 7:
        return np.broadcast_to(np.int64(-100), shape)  # (a [10**5, 10**5] batch: refused by its size first)
    if kind == "one scored":
        lab = np.full(shape, -100)
        if lab.size:
            lab.reshape(-1)[-1] = 1
        return lab
    # broadcast views: a [10**5, 10**5] batch's labels take no memory here
    value = {"all -100": np.int64(-100), "-101": np.int64(-101), "vocab": np.int64(cfg.vocab_size),
             "floats": np.float64(0.0)}
    if kind in value:
        return np.broadcast_to(value[kind], shape)
    if kind == "shape":
        return np.broadcast_to(np.int64(0), tuple(s + 1 for s in shape))
    if kind == "1-D for 2-D":
        return np.zeros(shape[-1:], np.int64)
    return ["x"] * (shape[-1] if shape else 1)


def _train_api_case(draw) -> Case:
    name = draw(st.sampled_from(API_MODELS))
    valid_batch = draw(st.booleans())
    batch = draw(st.sampled_from(["[T]", "[B, T]", "[B, 1]", "F-order", "non-contiguous", "uint64", "int8"]
                                 if valid_batch else BATCHES))
    labels = draw(st.sampled_from(["none", "ids", "one scored"] if valid_batch else LABELS))
    router = draw(st.sampled_from(ROUTER[:3] + ROUTER[6:7] if valid_batch else ROUTER))
    lora = draw(st.sampled_from(LORA[:4] if valid_batch else LORA))
    seed = draw(st.integers(0, 100))

    def run(work: Path):
        from minillm.checkpoint.weights import named_tensors
        from minillm.training.loss import cross_entropy
        model = Shared.model(name)
        rng = np.random.default_rng(seed)
        ids = _batch(batch, model.config, rng)
        lab = _labels(labels, ids, model.config, rng)
        if lora is not None:
            minillm.attach_lora(model, **lora)
            expected = model.adapter.tensors() if hasattr(model.adapter, "tensors") else {}
        else:
            stored = getattr(model, "stored_name", None) or (lambda k: k)  # the multimodal layout's names
            expected = {stored(k): a for k, a in named_tensors(model.weights).items()}
        loss, grads = minillm.loss_and_grads(model, ids, labels=lab, **router)
        if not math.isfinite(loss):
            raise Violation(f"loss_and_grads returned a non-finite loss {loss}")
        if set(grads) != set(expected):
            raise Violation(f"gradient names differ from the tensors': {sorted(set(grads) ^ set(expected))[:3]}")
        for k, g in grads.items():
            if g.shape != expected[k].shape or not np.isfinite(g).all():
                raise Violation(f"gradient {k}: shape {g.shape} (tensor {expected[k].shape}) or non-finite")
        if not router.get("output_router_logits"):  # the loss is the cross-entropy of the model's own logits
            ids_a = np.asarray(ids, np.int64)
            ref = cross_entropy(model.forward(ids_a if ids_a.ndim == 2 else ids_a[None]),
                                np.asarray(ids_a if lab is None else lab, np.int64).reshape(
                                    ids_a.shape if ids_a.ndim == 2 else (1, -1)))
            if not math.isclose(loss, ref, rel_tol=1e-4, abs_tol=1e-5):
                raise Violation(f"loss {loss} differs from the cross-entropy of forward's logits {ref}")

    valid = valid_batch and batch != "[B, 1]" and (lora is None or name in API_MODELS[:3])  # LoRA: dense only
    refuse = batch in ("[3000, 256]", "[1, 10**6]", "[10**5, 10**5]", "[]", "[[]]", "[B, 0]", "3-D", "floats",
                       "strings", "negative", "vocab", "2**63", "object", "ragged", "None", "[1, max_pos + 1]") \
        or labels in ("-101", "vocab", "shape", "floats", "strings") \
        or lora in ({"r": 0}, {"r": -1}, {"r": 1.5}, {"r": 2, "target_modules": ["nope"]})
    return Case("train_api", f"{name} loss_and_grads ids {batch} labels {labels} {short(router)} lora {short(lora)}",
                run, "valid" if valid else "refuse" if refuse else "any")


@st.composite
def train_api_cases(draw) -> Case:
    return _train_api_case(draw)


NEW_SURFACES = {"training": training_cases(), "hybrid": hybrid_cases(), "hub": hub_cases(),
                "speculative": speculative_cases(), "train_api": train_api_cases()}
SURFACES.update(NEW_SURFACES)
