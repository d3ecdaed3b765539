"""The experts of a mixture-of-experts layer on disk: stacked, or one tensor per expert. In memory: stacked.

    stacked      model.layers.{i}.mlp.experts.gate_up_proj             [E, 2*Fe, D]   rows [gate | up] per expert
                 model.layers.{i}.mlp.experts.down_proj                [E, D, Fe]
    per expert   model.layers.{i}.mlp.experts.{e}.gate_proj.weight     [Fe, D]        e = 0 .. E-1
                 model.layers.{i}.mlp.experts.{e}.up_proj.weight       [Fe, D]
                 model.layers.{i}.mlp.experts.{e}.down_proj.weight     [D, Fe]

Both occur in real checkpoints, even within one family: Qwen3.5-35B-A3B ships stacked BF16 experts while its
FP8 release and Qwen3-30B-A3B ship one tensor per expert, which is also what transformers 5's save_pretrained
writes. transformers holds the stacked form in memory, and so does minillm (moe.py).

Per-expert tensors are checked with every other tensor (all E experts present, each with its shape and a
float dtype) before anything is read, and then each is widened to float32 straight into its slice of the
stacked array: expert e's gate_proj into gate_up_proj[e, :Fe], its up_proj into gate_up_proj[e, Fe:], its
down_proj into down_proj[e]. No expert is ever held twice (stacking a list of per-expert arrays would hold
every expert twice, for a moment, at the peak of loading).

A config is not trusted to say how many experts there are: the expert indices the files hold are counted
first, so a config claiming a million experts fails with one message instead of a million names.
"""

from __future__ import annotations

import re

import numpy as np

from .safetensors_file import FLOAT_DTYPES

STACKED = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
# each stacked tensor, from its per-expert parts: (per-expert module, which half of the rows it fills)
PARTS = {"mlp.experts.gate_up_proj": (("gate_proj", 0), ("up_proj", 1)),
         "mlp.experts.down_proj": (("down_proj", None),)}
PER_EXPERT_NAME = re.compile(r"model\.layers\.(\d{1,9})\.mlp\.experts\.(\d{1,9})\."
                             r"(gate_proj|up_proj|down_proj)\.weight")

Part = tuple[int, slice, str]  # (expert e, rows of out[e] it fills, the per-expert tensor's name)


def per_expert_sources(files: dict, expected: dict[str, tuple[int, ...]], stored) -> tuple[dict[str, list[Part]],
                                                                                          list[str]]:
    """For every stacked expert tensor that ``expected`` asks for and the files do not hold, the per-expert
    tensors to read it from.

    files: {language-model name: SafetensorsFile}; expected: {name: shape}; stored(name): the name in the file.
    Returns ({stacked name: parts}, problems): one problem per missing, misshapen or non-float per-expert
    tensor, or per layer whose experts are missing altogether or stored both ways.
    """
    held: dict[int, set[int]] = {}  # layer -> the expert indices its per-expert tensors name
    for name in files:
        if m := PER_EXPERT_NAME.fullmatch(name):
            held.setdefault(int(m.group(1)), set()).add(int(m.group(2)))

    sources: dict[str, list[Part]] = {}
    problems: list[str] = []
    for name, shape in expected.items():
        stacked = next((s for s in STACKED if name.endswith("." + s)), None)
        if stacked is None:
            continue  # not a stacked expert tensor
        prefix = name[:-len(stacked)]  # "model.layers.{i}."
        layer = int(prefix.split(".")[2])
        experts = held.get(layer, set())
        if name in files:
            if experts:
                problems.append(f"layer {layer} holds its experts twice: stacked ({stored(name)!r}) and one tensor "
                                f"per expert ({stored(prefix + 'mlp.experts.0.')}*)")
            continue
        E = shape[0]
        if not experts:
            problems.append(f"tensor {stored(name)!r} is missing (expected shape {list(shape)}), and so are the "
                            f"per-expert tensors it can be read from ({stored(prefix + 'mlp.experts.')}{{e}}."
                            f"{'gate_proj / up_proj' if 'gate_up' in name else 'down_proj'}.weight, e = 0 .. {E - 1})")
            continue
        if len(experts) < E:  # counted before any name is made: E may be a lie of the config
            problems.append(f"layer {layer} stores {len(experts)} experts one tensor per expert "
                            f"({stored(prefix + 'mlp.experts.')}{{{min(experts)} .. {max(experts)}}}.*), "
                            f"but the config's num_experts is {E}")
            continue
        parts: list[Part] = []
        for module, half in PARTS[stacked]:
            part_shape = shape[1:] if half is None else (shape[1] // 2, shape[2])  # [D, Fe] or [Fe, D]
            rows = slice(None) if half is None else slice(half * part_shape[0], (half + 1) * part_shape[0])
            for e in range(E):
                part = f"{prefix}mlp.experts.{e}.{module}.weight"
                problem = _check_part(files, part, part_shape, stored)
                if problem:
                    problems.append(problem)
                else:
                    parts.append((e, rows, part))
        sources[name] = parts
    return sources, problems


def _check_part(files: dict, name: str, shape: tuple[int, ...], stored) -> str | None:
    if name not in files:
        return f"tensor {stored(name)!r} is missing (expected shape {list(shape)}; one tensor per expert)"
    info = files[name].tensors[stored(name)]
    if info.shape != shape:
        return (f"tensor {stored(name)!r} in {files[name].path.name}: expected shape {list(shape)} (from config "
                f"moe_intermediate_size, hidden_size), found {list(info.shape)}")
    if info.dtype not in FLOAT_DTYPES:
        return (f"tensor {stored(name)!r} in {files[name].path.name}: expected dtype {'/'.join(FLOAT_DTYPES)}, "
                f"found {info.dtype}")
    return None


def read_stacked(files: dict, parts: list[Part], shape: tuple[int, ...], stored) -> np.ndarray:
    """The stacked float32 tensor [E, ...], each per-expert tensor widened straight into its slice."""
    out = np.empty(shape, np.float32)  # [E, 2*Fe, D] or [E, D, Fe]
    for e, rows, name in parts:
        files[name].read_into(stored(name), out[e, rows])  # [Fe, D] or [D, Fe], written in place
    return out
