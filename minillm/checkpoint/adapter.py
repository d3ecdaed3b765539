"""LoRA adapters in PEFT's format: create, load, save, merge, and name their gradients.

A PEFT adapter directory holds two files:

    adapter_config.json          {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "target_modules": [...], ...}
    adapter_model.safetensors    per adapted projection, two tensors (PEFT's names, no adapter name inside):
        base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight    [r, in]
        base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.weight    [out, r]

``base_model.model.`` is PEFT's wrapper (PeftModel -> LoraModel) around transformers' Qwen2ForCausalLM, whose
own names start with ``model.``: strip the prefix and the rest is the checkpoint name of the projection.

``target_modules`` is PEFT's: a list of names, each matching a module whose name is it or ends with "." + it
(``q_proj`` matches every layer's self_attn.q_proj), or one string, a regular expression that must match the
whole module name, or ``"all-linear"`` (every projection but the head). minillm adapts the seven projections
of a dense Qwen layer (q, k, v, o, gate, up, down); anything PEFT could do beyond plain LoRA on them (DoRA,
trained biases, modules_to_save, per-layer ranks, ...) is refused with the field named, never ignored.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, InputError
from ..model.lora import LoraWeight, lora_scaling
from .fields import FieldReader, show
from .jsonfile import read_json_object
from .paths import checkpoint_directory, checkpoint_file
from .safetensors_file import FLOAT_DTYPES, SafetensorsFile

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."  # PeftModel.base_model (LoraModel).model (Qwen2ForCausalLM)
PROJECTIONS = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
               "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}  # what LoRA can adapt here: module -> group
SHORT_NAMES = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj",
               "down": "down_proj"}  # the command line's --target q,k,v,o,gate,up,down

# PEFT options that change what LoRA computes, with the value that means "off": anything else is refused.
UNSUPPORTED = {
    "use_dora": (False, "DoRA (weight-decomposed LoRA)"),
    "bias": ("none", "trained biases"),
    "lora_bias": (False, "a bias on lora_B"),
    "modules_to_save": (None, "fully trained extra modules"),
    "fan_in_fan_out": (False, "transposed (Conv1D) weights"),
    "rank_pattern": ({}, "per-module ranks"),
    "alpha_pattern": ({}, "per-module alphas"),
    "layers_to_transform": (None, "adapting some layers only"),
    "layers_pattern": (None, "adapting some layers only"),
    "layer_replication": (None, "layer replication"),
    "exclude_modules": (None, "excluded modules"),
    "trainable_token_indices": (None, "trained token embeddings"),
    "target_parameters": (None, "adapted nn.Parameters"),
    "use_qalora": (False, "QALoRA"),
    "alora_invocation_tokens": (None, "activated LoRA"),
    "use_bdlora": (None, "block-diagonal LoRA"),
    "kasa_config": (None, "KaSA"),
    "monteclora_config": (None, "MonteCLoRA"),
    "velora_config": (None, "VeLoRA"),
    "arrow_config": (None, "Arrow routing"),
}
NEWER_OPTIONS = ("target_parameters", "use_qalora", "alora_invocation_tokens", "use_bdlora", "kasa_config",
                 "monteclora_config", "velora_config", "arrow_config")  # left out of what minillm writes


@dataclass
class LoraConfig:
    """The adapter_config.json fields minillm uses (PEFT's names)."""

    r: int
    lora_alpha: float
    target_modules: list[str] | str  # as PEFT stores it: names, or one regular expression
    lora_dropout: float = 0.0
    use_rslora: bool = False
    base_model_name_or_path: str | None = None

    @property
    def scaling(self) -> float:
        return lora_scaling(self.lora_alpha, self.r, self.use_rslora)

    def to_json(self) -> dict:
        """adapter_config.json as PEFT writes it (the options minillm does not use at their "off" value)."""
        off = {key: value for key, (value, _) in UNSUPPORTED.items() if key not in NEWER_OPTIONS}
        return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": self.base_model_name_or_path,
                "r": self.r, "lora_alpha": self.lora_alpha, "lora_dropout": self.lora_dropout,
                "use_rslora": self.use_rslora, "target_modules": self.target_modules, "init_lora_weights": True,
                "inference_mode": True, **off}


def parse_targets(text: str) -> list[str]:
    """'q,k,v,o,gate,up,down' (or full names 'q_proj,...', or 'all') -> ['q_proj', 'k_proj', ...]."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return list(PROJECTIONS)
    out = []
    for name in names:
        full = SHORT_NAMES.get(name, name)
        if full not in PROJECTIONS:
            raise InputError(f"--target: unknown module {name!r}; expected a comma-separated list of "
                             f"{', '.join(SHORT_NAMES)} (or their _proj names), or 'all'")
        out.append(full)
    if not out:
        raise InputError("--target: expected at least one module, e.g. q,v")
    return list(dict.fromkeys(out))


def parse_lora_config(raw: dict, source: str) -> LoraConfig:
    """Validate adapter_config.json (PEFT's LoraConfig as JSON); refuse what would be computed differently."""
    get = FieldReader(raw, source, CheckpointError)
    peft_type = get("peft_type", str, "LORA")
    if peft_type != "LORA":
        raise CheckpointError(f"{source}: peft_type: minillm loads LoRA adapters ('LORA'), found {show(peft_type)}")
    task = raw.get("task_type")
    if task not in (None, "CAUSAL_LM"):
        raise CheckpointError(f"{source}: task_type: expected 'CAUSAL_LM', found {show(task)}")
    for key, (off, what) in UNSUPPORTED.items():
        value = raw.get(key, off)
        if value != off and not (off in (None, {}) and value in (None, {}, [])):
            raise CheckpointError(f"{source}: {key} is {show(value)}: {what} is not supported by minillm "
                                  f"(expected {show(off)}); plain LoRA only")
    base = raw.get("base_model_name_or_path")
    return lora_settings(raw, source, CheckpointError, base if isinstance(base, str) else None)


def lora_settings(raw: dict, source: str, error: type[Exception], base: str | None = None) -> LoraConfig:
    """r, lora_alpha, target_modules, lora_dropout, use_rslora: type- and range-checked, whether they come from
    an adapter_config.json (CheckpointError) or from attach_lora's arguments (InputError)."""
    get = FieldReader(raw, source, error)
    targets = raw.get("target_modules")
    if isinstance(targets, list):
        if not targets or not all(isinstance(t, str) and t for t in targets):
            raise error(f"{source}: target_modules: expected a non-empty list of module names, found {show(targets)}")
    elif not isinstance(targets, str) or not targets:
        raise error(f"{source}: target_modules: expected a list of module names or a regular expression, "
                    f"found {show(targets)}")
    return LoraConfig(r=get("r", int, low=1, high=1 << 16), lora_alpha=get("lora_alpha", float, above=0.0),
                      target_modules=targets, lora_dropout=get("lora_dropout", float, 0.0, low=0.0, high=0.999),
                      use_rslora=get("use_rslora", bool, False), base_model_name_or_path=base)


def adapted_modules(cfg, target_modules: list[str] | str, source: str = "target_modules") -> list[str]:
    """The checkpoint names of the projections PEFT would adapt: 'model.layers.{i}.self_attn.q_proj', ...

    cfg: the base model's QwenConfig (dense). A name that matches no projection of this model is an error.
    """
    every = [f"model.layers.{i}.{group}.{proj}" for i in range(cfg.num_hidden_layers)
             for proj, group in PROJECTIONS.items()]
    if target_modules == "all-linear":
        return every
    if isinstance(target_modules, str):  # PEFT: a regular expression matched against the whole module name
        try:
            pattern = re.compile(target_modules)
        except re.error as e:
            raise CheckpointError(f"{source}: {show(target_modules)} is not a valid regular expression ({e})") \
                from None
        chosen = [m for m in every if pattern.fullmatch(m)]
        if not chosen:
            raise CheckpointError(f"{source}: the regular expression {show(target_modules)} matches none of "
                                  f"this model's projections (e.g. {every[0]!r})")
        return chosen
    for key in target_modules:  # PEFT: the module name is the key, or ends with '.' + key
        if not any(m == key or m.endswith("." + key) for m in every):
            raise CheckpointError(f"{source}: target module {show(key)} matches none of this model's projections; "
                                  f"minillm adapts {', '.join(PROJECTIONS)}")
    return [m for m in every if any(m == key or m.endswith("." + key) for key in target_modules)]


class LoraAdapter:
    """The LoRA adapter of a model: its config and one LoraWeight per adapted projection."""

    def __init__(self, config: LoraConfig, modules: dict[str, LoraWeight]):
        self.config = config
        self.modules = modules  # {'model.layers.0.self_attn.q_proj': LoraWeight, ...}

    def tensors(self) -> dict[str, np.ndarray]:
        """{name in adapter_model.safetensors: the adapter's own array} (the training updates these in place)."""
        named = {}
        for module, w in self.modules.items():
            named[f"{PEFT_PREFIX}{module}.lora_A.weight"] = w.lora_A  # [r, in]
            named[f"{PEFT_PREFIX}{module}.lora_B.weight"] = w.lora_B  # [out, r]
        return named

    def set_dropout_seed(self, seed: int | None) -> None:
        """Training: each projection draws its dropout mask from (seed, its index); None turns dropout off."""
        for index, w in enumerate(self.modules.values()):
            w.dropout_seed = None if seed is None else (seed, index)


def _projection(model, module: str):
    """(the dataclass holding the projection, its field name) for 'model.layers.{i}.{group}.{proj}'."""
    _, _, i, group, proj = module.split(".")
    return getattr(model.weights.layers[int(i)], group), proj


def _check_dense(model) -> None:
    cfg = model.config
    if cfg.is_hybrid or cfg.is_moe or cfg.attn_output_gate:
        raise InputError(f"LoRA supports the dense Qwen2/Qwen3 models; this is a {cfg.model_type} model")
    if getattr(model, "adapter", None) is not None:
        raise InputError("this model already has an adapter; load the base model again, or merge it first")


def _attach(model, config: LoraConfig, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> LoraAdapter:
    """Put a LoraWeight where each adapted projection's array was; the model now computes base + adapter."""
    modules = {}
    for module, (lora_A, lora_B) in arrays.items():
        holder, field = _projection(model, module)
        base = getattr(holder, field)  # [out, in]
        modules[module] = LoraWeight(base, lora_A, lora_B, config.scaling, config.lora_dropout)
        setattr(holder, field, modules[module])
    model.adapter = LoraAdapter(config, modules)
    return model.adapter


def attach_lora(model, r: int = 16, lora_alpha: float = 32, target_modules: list[str] | None = None,
                lora_dropout: float = 0.0, use_rslora: bool = False, seed: int = 0) -> LoraAdapter:
    """A new adapter, initialised as PEFT does: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0 (so the model is unchanged).

    PEFT's A init is ``nn.init.kaiming_uniform_(A, a=math.sqrt(5))``: bound = gain * sqrt(3 / fan_in) with
    gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), i.e. bound = 1 / sqrt(in). (Same law, not the same draws: torch's
    generator is not NumPy's.)
    """
    _check_dense(model)
    targets = list(PROJECTIONS) if target_modules is None else target_modules  # names, or PEFT's regex string
    # The arguments are checked as adapter_config.json's fields are (types, ranges): same settings, same rules.
    config = lora_settings({"r": r, "lora_alpha": lora_alpha, "target_modules": targets, "lora_dropout": lora_dropout,
                            "use_rslora": use_rslora}, "attach_lora", InputError,
                           str(model.path) if model.path else None)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"attach_lora: seed must be an integer >= 0, found {show(seed)}")
    modules = adapted_modules(model.config, targets, "target_modules")
    sizes = [getattr(*_projection(model, m)).shape for m in modules]  # [out, in] of each adapted projection
    _check_adapter_memory(config.r, sizes)
    rng = np.random.default_rng(seed)
    arrays = {}
    for module, (out_features, in_features) in zip(modules, sizes):
        bound = 1.0 / math.sqrt(in_features)
        lora_A = rng.uniform(-bound, bound, (config.r, in_features)).astype(np.float32)  # [r, in]
        lora_B = np.zeros((out_features, config.r), np.float32)  # [out, r]: the adapter starts as a no-op
        arrays[module] = (lora_A, lora_B)
    return _attach(model, config, arrays)


def _check_adapter_memory(r: int, sizes: list[tuple[int, int]]) -> None:
    """Refuse a rank whose adapter cannot be allocated (r=2**16 on a large model), before any of it is: the float32
    A [r, in] and B [out, r] of every projection, and the float64 draw of the largest A."""
    from ..backward.memory import available_bytes  # (backward imports checkpoint: import here, not at the top)
    need = 4 * r * sum(o + i for o, i in sizes) + 8 * r * max((i for _, i in sizes), default=0)
    have = available_bytes()
    if need > have:
        raise InputError(f"attach_lora: rank r={r} on {len(sizes)} projections needs {need / 2 ** 30:.1f} GiB, more "
                         f"than the {have / 2 ** 30:.1f} GiB this process can allocate; choose a smaller r")


def load_adapter(model, directory) -> LoraAdapter:
    """Read a PEFT LoRA adapter directory onto ``model`` (validated first: config, every tensor's name, shape)."""
    from .loading import report_problems  # loading.py imports this module lazily: keep the dependency one way
    _check_dense(model)
    directory = checkpoint_directory(directory, CheckpointError)
    config_path = checkpoint_file(directory, CONFIG_FILE, CheckpointError)
    if config_path is None:
        raise CheckpointError(f"{directory}: not a PEFT adapter directory: no {CONFIG_FILE}")
    config = parse_lora_config(read_json_object(config_path, CheckpointError), str(directory / CONFIG_FILE))
    weights_path = checkpoint_file(directory, WEIGHTS_FILE, CheckpointError)
    if weights_path is None:
        hint = " (adapter_model.bin, a pickle, is not read: convert it to safetensors)" \
            if (directory / "adapter_model.bin").exists() else ""
        raise CheckpointError(f"{directory}: no {WEIGHTS_FILE}{hint}")
    f = SafetensorsFile(weights_path)
    shown = directory / WEIGHTS_FILE
    modules = adapted_modules(model.config, config.target_modules, f"{directory / CONFIG_FILE}: target_modules")
    problems, expected = [], {}
    for module in modules:
        holder, field = _projection(model, module)
        out_features, in_features = getattr(holder, field).shape
        expected[f"{PEFT_PREFIX}{module}.lora_A.weight"] = (config.r, in_features)
        expected[f"{PEFT_PREFIX}{module}.lora_B.weight"] = (out_features, config.r)
    for name, shape in expected.items():
        info = f.tensors.get(name)
        if info is None:
            problems.append(f"tensor {name!r} is missing (expected shape {list(shape)})")
        elif info.shape != shape:
            problems.append(f"tensor {name!r}: expected shape {list(shape)} (r = {config.r} from "
                            f"{CONFIG_FILE}, the projection's size from the base config), found {list(info.shape)}")
        elif info.dtype not in FLOAT_DTYPES:
            problems.append(f"tensor {name!r}: expected dtype {'/'.join(FLOAT_DTYPES)}, found {info.dtype}")
    extra = sorted(set(f.tensors) - set(expected))
    if extra:
        problems.append(f"{len(extra)} tensors that the config's target_modules do not explain "
                        f"(e.g. {extra[0]!r}; DoRA magnitudes, trained biases and embeddings are not supported)")
    report_problems(problems, f"{shown}: adapter does not match {CONFIG_FILE} and the base model")
    arrays = {m: (f.get_float32(f"{PEFT_PREFIX}{m}.lora_A.weight"),
                  f.get_float32(f"{PEFT_PREFIX}{m}.lora_B.weight")) for m in modules}
    return _attach(model, config, arrays)


def save_adapter(model, directory) -> Path:
    """Write adapter_config.json + adapter_model.safetensors (F32) as PEFT does; the directory appears whole."""
    from .saving import write_safetensors

    adapter = _adapter_of(model)
    final = Path(directory)
    tmp = final.parent / f"{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        (tmp / CONFIG_FILE).write_text(json.dumps(adapter.config.to_json(), indent=2) + "\n", encoding="utf-8")
        write_safetensors(tmp / WEIGHTS_FILE, adapter.tensors(), "F32")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"{final}: could not write the adapter ({e})") from None
    return final


def merge_adapter(model):
    """A new Model whose weights have the adapter folded in (W + s B A); the adapted model is left as it was."""
    from ..model.transformer import Model
    from .weights import build_weights, named_tensors

    _adapter_of(model)
    named = {name: (w.merged() if isinstance(w, LoraWeight) else w) for name, w in named_tensors(model.weights).items()}
    tied = model.weights.lm_head is model.weights.embed_tokens
    weights = build_weights(model.config, named.__getitem__, tied=tied)
    return Model(model.config, weights, path=model.path, generation_config=model.generation_config)


def save_merged(model, directory, dtype: str = "F32") -> Path:
    """``merge``: a full checkpoint directory (config, weights, tokenizer) with the adapter folded into the weights."""
    from .saving import save_model_dir
    from .weights import named_tensors

    merged = merge_adapter(model)
    if model.path is None:
        raise InputError("merge needs the base model's directory (its config.json and tokenizer files)")
    config = read_json_object(Path(model.path) / "config.json", CheckpointError)
    generation = Path(model.path) / "generation_config.json"
    return save_model_dir(directory, config, named_tensors(merged.weights), dtype,
                          read_json_object(generation, CheckpointError) if generation.is_file() else None,
                          tokenizer_dir=model.path)


def adapter_gradients(grads) -> dict[str, np.ndarray]:
    """{adapter tensor name: gradient} out of model_backward's ModelWeights of gradients (LoraGrads inside)."""
    from ..backward.lora import LoraGrads

    named = {}
    for i, layer in enumerate(grads.layers):
        for proj, group in PROJECTIONS.items():
            g = getattr(getattr(layer, group), proj)
            if isinstance(g, LoraGrads):
                module = f"{PEFT_PREFIX}model.layers.{i}.{group}.{proj}"
                named[f"{module}.lora_A.weight"] = g.lora_A  # [r, in]
                named[f"{module}.lora_B.weight"] = g.lora_B  # [out, r]
    return named


def _adapter_of(model) -> LoraAdapter:
    adapter = getattr(model, "adapter", None)
    if adapter is None:
        raise InputError("this model has no adapter (load one with load_model(base, adapter=...) or attach_lora)")
    return adapter
