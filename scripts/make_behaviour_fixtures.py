"""Reference fixtures for the behaviour tests (tests/test_behaviour_*.py): what transformers itself does at the edges.

    pip install -e ".[reference]"                   # torch + transformers: needed by this script only
    python scripts/make_behaviour_fixtures.py       # rewrites weights/behaviour/ (run after make_tiny_models.py)

Every expected value in those tests comes from here (or from a definition written in the test), never from
running minillm. Written to weights/behaviour/:

  rope_edges.json + .npz  config.json dicts at RoPE's edges (dynamic at / past max_position_embeddings; YaRN with
                          an explicit attention_factor, a null factor, mscale alone, correction dims past half the
                          head, no truncation, original_max_position_embeddings in either place; conflicting
                          rope_theta; rope_scaling beside rope_parameters) and the inv_freq and attention scaling
                          transformers' rotary embedding computes from each file
  dynamic_rope.npz        tiny-qwen2 with dynamic RoPE (factor 2, max_position_embeddings 16): logits at, just past
                          and beyond the limit, a short call after a long one, a greedy continuation across it
  configs.json            minimal config.json files and the values transformers reads from them (its defaults)
  generation.json + .npz  generation_config.json files as transformers' generate resolves them; a batch where one
                          row stops early (pad id distinct from every stop id); the repetition penalty with left
                          padding made of a token the penalty would change
  sampling.json           transformers' top-p / min-p / top-k warpers at their boundaries (ties at the cut, ...)
  templates.json          transformers' renderings of small templates exercising the Jinja environment
                          (trim_blocks, lstrip_blocks, loop controls, tojson with non-ASCII text, ...), and of
                          tokenizer configs (special tokens as objects, chat_template.jinja beside the config's
                          template, a list of named templates)
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
OUT = WEIGHTS / "behaviour"
TINY = WEIGHTS / "tiny-qwen2"


def write_json(name: str, data) -> None:
    (OUT / name).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def config_from_file(transformers, raw: dict):
    """Load a config.json dict exactly as from_pretrained would (through a file)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(raw))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return transformers.AutoConfig.from_pretrained(tmp)


# ------------------------------------------------------------------------------------------------ RoPE edges

ROPE_BASE = {"model_type": "qwen3", "vocab_size": 1000, "hidden_size": 1024, "intermediate_size": 64,
             "num_hidden_layers": 1, "num_attention_heads": 8, "num_key_value_heads": 8, "head_dim": 128}
ROPE_CASES = {
    # dynamic NTK: base unchanged up to max_position_embeddings, grown past it (seq_lens below)
    "dynamic": {"max_position_embeddings": 4096, "rope_parameters": {"rope_type": "dynamic", "factor": 2.0,
                                                                     "rope_theta": 10000.0}},
    "yarn_attention_factor": {"max_position_embeddings": 131072, "rope_parameters": {
        "rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0, "original_max_position_embeddings": 32768,
        "attention_factor": 0.75}},
    "yarn_factor_null": {"max_position_embeddings": 131072, "rope_parameters": {
        "rope_type": "yarn", "rope_theta": 1e6, "factor": None, "original_max_position_embeddings": 32768}},
    "yarn_mscale_only": {"max_position_embeddings": 32768, "rope_parameters": {
        "rope_type": "yarn", "rope_theta": 10000.0, "factor": 8.0, "original_max_position_embeddings": 4096,
        "mscale": 0.707}},
    # theta 1e4 and a long original context: the correction range [45, 70] reaches past Dh/2 = 64
    "yarn_correction_past_half_the_head": {"max_position_embeddings": 524288, "rope_parameters": {
        "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 131072}},
    "yarn_no_truncate": {"max_position_embeddings": 131072, "rope_parameters": {
        "rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0, "original_max_position_embeddings": 32768,
        "truncate": False}},
    # original_max_position_embeddings outside rope_parameters (v4 file): transformers gives it priority
    "yarn_original_top_level": {"max_position_embeddings": 131072, "original_max_position_embeddings": 8192,
                                "rope_theta": 10000.0, "rope_scaling": {"type": "yarn", "factor": 4.0}},
    "yarn_original_in_both_places": {"max_position_embeddings": 131072, "original_max_position_embeddings": 8192,
                                     "rope_parameters": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                         "original_max_position_embeddings": 16384}},
    "yarn_original_missing": {"max_position_embeddings": 65536, "rope_parameters": {
        "rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0}},
    "llama3_original_in_both_places": {"max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
                                       "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0,
                                                           "factor": 8.0, "low_freq_factor": 1.0,
                                                           "high_freq_factor": 4.0,
                                                           "original_max_position_embeddings": 8192}},
    # precedence: rope_parameters' own rope_theta beats a conflicting top-level one
    "rope_theta_in_both_places": {"max_position_embeddings": 32768, "rope_theta": 500000.0,
                                  "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}},
    # precedence: a (v4) rope_scaling beside a (v5) rope_parameters
    "rope_scaling_beside_rope_parameters": {"max_position_embeddings": 32768, "rope_theta": 1e6,
                                            "rope_scaling": {"type": "linear", "factor": 2.0},
                                            "rope_parameters": {"rope_type": "dynamic", "factor": 3.0,
                                                                "rope_theta": 1e6}},
}
DYNAMIC_SEQ_LENS = [2048, 4096, 4097, 12293]  # half, exactly, one past, three times max_position_embeddings


def make_rope_edges(torch, transformers) -> None:
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding

    arrays, cases = {}, {}
    for name, extra in ROPE_CASES.items():
        raw = {**ROPE_BASE, **extra}
        config = config_from_file(transformers, raw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rotary = Qwen3RotaryEmbedding(config)  # what the model computes at init, from the loaded file
        arrays[f"{name}_inv_freq"] = rotary.inv_freq.float().numpy()
        cases[name] = {"config": raw, "attention_scaling": float(rotary.attention_scaling), "seq_lens": []}
        if config.rope_parameters["rope_type"] == "dynamic" and name == "dynamic":
            for seq_len in DYNAMIC_SEQ_LENS:
                inv_freq, _ = ROPE_INIT_FUNCTIONS["dynamic"](config, "cpu", seq_len=seq_len)
                arrays[f"{name}_seq{seq_len}_inv_freq"] = inv_freq.float().numpy()
            cases[name]["seq_lens"] = DYNAMIC_SEQ_LENS
    np.savez_compressed(OUT / "rope_edges.npz", **arrays)
    write_json("rope_edges.json", cases)


# ------------------------------------------------------------------------------------------------ dynamic RoPE model

def make_dynamic_model(torch, transformers) -> None:
    """tiny-qwen2's weights with dynamic RoPE and a 16-position limit, run by transformers (float32, eager)."""
    ids = np.load(TINY / "reference.npz")["input_ids"][:24]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "m"
        shutil.copytree(TINY, d)
        cfg = json.loads((d / "config.json").read_text())
        cfg.update(max_position_embeddings=16, rope_scaling={"type": "dynamic", "factor": 2.0})
        (d / "config.json").write_text(json.dumps(cfg))

        def fresh():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return transformers.Qwen2ForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                                     attn_implementation="eager").eval()

        out = {"input_ids": ids, "config_changes": np.array(json.dumps(
            {"max_position_embeddings": 16, "rope_scaling": {"type": "dynamic", "factor": 2.0}}))}
        with torch.no_grad():
            for T in (16, 17, 24):  # exactly the limit, one past it, beyond it; a fresh model each time
                out[f"logits_{T}_last4"] = fresh()(torch.tensor([ids[:T]])).logits[0, -4:].numpy()
            model = fresh()
            model(torch.tensor([ids[:24]]))  # a long call first: transformers grows, then resets on the short one
            out["logits_8_after_24"] = model(torch.tensor([ids[:8]])).logits[0].numpy()
            prompt = torch.tensor([ids[:12]])  # (an explicit mask: transformers would infer one from pad_token_id)
            g = fresh().generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10, do_sample=False,
                                 eos_token_id=None, pad_token_id=0, repetition_penalty=1.0, top_k=None, top_p=None,
                                 temperature=None)
            out["greedy_prompt"] = ids[:12]
            out["greedy_new"] = g[0, 12:].numpy()  # positions 12..21: the base grows at every step past 16
    np.savez_compressed(OUT / "dynamic_rope.npz", **out)


# ------------------------------------------------------------------------------------------------ config defaults

# (num_key_value_heads and Qwen3's head_dim are always given: minillm derives them when missing, where transformers
# takes its class defaults 32 and 128; every checkpoint states them, and the weights' shapes decide either way.)
MINIMAL = {"vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
           "num_key_value_heads": 2}
CONFIG_CASES = {
    "qwen2_minimal": {"model_type": "qwen2", **MINIMAL, "num_hidden_layers": 4},
    "qwen3_minimal": {"model_type": "qwen3", **MINIMAL, "num_hidden_layers": 4, "head_dim": 32},
    "eos_list": {"model_type": "qwen2", **MINIMAL, "num_hidden_layers": 4, "eos_token_id": [7, 5]},
    "sliding_window_default_layers": {"model_type": "qwen2", **MINIMAL, "num_hidden_layers": 30,
                                      "use_sliding_window": True, "sliding_window": 8},
    "sliding_window_from_layer_2": {"model_type": "qwen2", **MINIMAL, "num_hidden_layers": 4,
                                    "use_sliding_window": True, "sliding_window": 8, "max_window_layers": 2},
}


def make_config_defaults(transformers) -> None:
    cases = {}
    for name, raw in CONFIG_CASES.items():
        c = config_from_file(transformers, raw)
        eos = c.eos_token_id
        cases[name] = {"config": raw, "transformers": {
            "rms_norm_eps": c.rms_norm_eps, "max_position_embeddings": c.max_position_embeddings,
            "tie_word_embeddings": c.tie_word_embeddings, "num_key_value_heads": c.num_key_value_heads,
            "head_dim": getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
            "sliding_window": c.sliding_window, "layer_types": list(c.layer_types),
            "rope_theta": c.rope_parameters["rope_theta"], "rope_type": c.rope_parameters["rope_type"],
            "eos_token_ids": [] if eos is None else (eos if isinstance(eos, list) else [eos]),
            "attention_bias": bool(getattr(c, "attention_bias", False))}}
    write_json("configs.json", cases)


# ------------------------------------------------------------------------------------------------ generation

GENERATION_CONFIGS = {
    "temperature_without_do_sample": {"temperature": 0.7, "top_p": 0.8, "top_k": 20},
    "sampling_without_top_k": {"do_sample": True, "temperature": 0.9},
    "scalar_eos_and_distinct_pad": {"eos_token_id": 7, "pad_token_id": 3, "bos_token_id": 5},
    "min_p": {"do_sample": True, "min_p": 0.05, "top_k": 0},
    "qwen2.5_instruct": {"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True,
                         "eos_token_id": [151645, 151643], "repetition_penalty": 1.1, "temperature": 0.7,
                         "top_p": 0.8, "top_k": 20},
    "empty": {},
}


def tiny_transformers_model(torch, transformers):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.Qwen2ForCausalLM.from_pretrained(TINY, dtype=torch.float32,
                                                             attn_implementation="eager").eval()


def make_generation(torch, transformers) -> None:
    model = tiny_transformers_model(torch, transformers)
    resolved = {}
    for name, raw in GENERATION_CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "generation_config.json").write_text(json.dumps(raw))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.generation_config = transformers.GenerationConfig.from_pretrained(tmp)
                gc, _ = model._prepare_generation_config(None)
        eos = gc.eos_token_id
        resolved[name] = {"file": raw, "transformers": {
            "do_sample": bool(gc.do_sample), "temperature": gc.temperature, "top_k": gc.top_k, "top_p": gc.top_p,
            "min_p": gc.min_p, "repetition_penalty": gc.repetition_penalty, "pad_token_id": gc.pad_token_id,
            "eos_token_ids": [] if eos is None else (eos if isinstance(eos, list) else [eos])}}
    model.generation_config = transformers.GenerationConfig.from_pretrained(TINY)

    ref = np.load(TINY / "reference.npz")
    batch, mask = ref["batch_input_ids"], ref["batch_attention_mask"]
    greedy = dict(do_sample=False, top_k=None, top_p=None, temperature=None)
    arrays = {}
    with torch.no_grad():
        # A row that stops early: the stop id is a token one row makes at step 1-4 and the other never makes;
        # the pad id is neither a stop id nor generation_config's (so a row that stopped is visibly padded).
        free = model.generate(torch.tensor(batch), attention_mask=torch.tensor(mask), max_new_tokens=12,
                              eos_token_id=None, pad_token_id=0, repetition_penalty=1.0, **greedy)[:, batch.shape[1]:]
        free = free.numpy()
        stop = next(int(free[r, k]) for r in (0, 1) for k in range(1, 5)
                    if free[r, k] not in free[r, :k] and free[r, k] not in free[1 - r])
        pad = next(i for i in range(3, 500) if i not in free and i != stop)
        early = model.generate(torch.tensor(batch), attention_mask=torch.tensor(mask), max_new_tokens=12,
                               eos_token_id=[stop], pad_token_id=pad, repetition_penalty=1.0, **greedy)
        arrays.update(early_stop_input_ids=batch, early_stop_attention_mask=mask,
                      early_stop_new=early[:, batch.shape[1]:].numpy(), early_stop_ids=np.array([stop]),
                      early_stop_pad=np.array(pad))

        # The repetition penalty and left padding: row 0 is padded with the very token it makes first, so
        # counting padding as "seen" would change its first step. transformers leaves padding out.
        width = batch.shape[1]
        row = batch[0][mask[0] == 1]
        alone = model.generate(torch.tensor([row]), attention_mask=torch.ones((1, len(row)), dtype=torch.long),
                               max_new_tokens=8, eos_token_id=None, pad_token_id=0, repetition_penalty=3.0,
                               **greedy)[0, len(row):].numpy()  # an explicit mask: the row holds id 0
        filler = int(alone[0])
        padded = batch.copy()
        padded[0, :width - len(row)] = filler
        out = model.generate(torch.tensor(padded), attention_mask=torch.tensor(mask), max_new_tokens=8,
                             eos_token_id=None, pad_token_id=0, repetition_penalty=3.0, **greedy)
        arrays.update(penalty_input_ids=padded, penalty_attention_mask=mask, penalty_new=out[:, width:].numpy(),
                      penalty_row0_alone_new=alone)
    np.savez_compressed(OUT / "generation.npz", **arrays)
    write_json("generation.json", resolved)


# ------------------------------------------------------------------------------------------------ sampling

SAMPLING_CASES = [
    ("top_p", 0.5, [0.0, 0.0, 0.0, 0.0]),  # four ties of 0.25: the cumulative mass hits 1 - p exactly
    ("top_p", 0.25, [0.0, 0.0, 0.0, 0.0]),
    ("top_p", 0.75, [0.0, 0.0, 0.0, 0.0]),
    ("top_p", 0.5, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
    ("top_p", 1e-9, [2.0, -1.0, 0.5, 3.0, 0.0, -3.0]),  # 1 - p rounds to 1.0 in float32: only the top stays
    ("min_p", 0.3, [2.0, -1.0, 0.5, 3.0, 0.0, -3.0]),  # scaled: 0.3 * p_max = 0.19 keeps token 0 (p 0.24)
    ("min_p", 1.0, [2.0, 2.0, 0.0, -1.0]),  # two tokens tied at the top: both exactly at the threshold
    ("top_k", 1, [2.0, -1.0, 0.5, 3.0, 0.0, -3.0]),
    ("top_k", 1, [1.0, 3.0, 3.0, 0.0]),  # ties with the k-th stay
]


def make_sampling(torch, transformers) -> None:
    from transformers.generation.logits_process import MinPLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warper = {"top_p": TopPLogitsWarper, "min_p": MinPLogitsWarper, "top_k": TopKLogitsWarper}
    cases = []
    for kind, value, logits in SAMPLING_CASES:
        scores = torch.tensor([logits], dtype=torch.float32)
        out = warper[kind](value)(torch.zeros((1, 1), dtype=torch.long), scores.clone())
        cases.append({"filter": kind, "value": value, "logits": logits,
                      "kept": [int(i) for i in torch.nonzero(torch.isfinite(out[0])).flatten()]})
    write_json("sampling.json", cases)


# ------------------------------------------------------------------------------------------------ templates

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "你好 <b>&amp; é"},
            {"role": "assistant", "content": "再见"}]
TOOLS = [{"type": "function", "function": {"name": "météo", "description": "Le temps à Paris, 北京 <3",
                                           "parameters": {"type": "object", "properties": {}}}}]
TEMPLATE_CASES = {
    "trim_blocks": ("{% for m in messages %}\n{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}\n", {}),
    "lstrip_blocks": ("{% for m in messages %}\n    {% if m['role'] == 'user' %}\n  U: {{ m['content'] }}\n"
                      "    {% else %}\n  A: {{ m['content'] }}\n    {% endif %}\n{% endfor %}", {}),
    "loop_controls": ("{% for m in messages %}{% if m['role'] == 'system' %}{% continue %}{% endif %}"
                      "{% if loop.index > 4 %}{% break %}{% endif %}[{{ loop.index }}:{{ m['content'] }}]"
                      "{% endfor %}", {}),
    "tojson_non_ascii": ("{{ messages[3] | tojson }}\n{{ tools | tojson(indent=2) }}\n"
                         "{{ tools[0]['function'] | tojson(separators=(',', ':')) }}", {"tools": TOOLS}),
    "special_token_variables": ("[{{ bos_token }}][{{ eos_token }}][{{ pad_token }}][{{ unk_token }}]", {}),
    "unset_variable_is_undefined": ("{% if enable_thinking is defined %}defined: {{ enable_thinking }}"
                                    "{% else %}undefined{% endif %}", {}),
    "generation_block": ("{% for m in messages %}{% if m['role'] == 'assistant' %}{% generation %}"
                         "{{ m['content'] }}{% endgeneration %}{% endif %}{% endfor %}", {}),
    "namespace_counter": ("{% set ns = namespace(n=0) %}{% for m in messages %}{% if m['role'] == 'user' %}"
                          "{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.n }} user turns", {}),
    "raise_exception": ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                        "{% endif %}", {}),
}

ADDED_TOKEN = {"__type": "AddedToken", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
TOKENIZER_CASES = {
    # tokenizer_config.json changes (on top of tiny-qwen2's) and an optional chat_template.jinja
    "special_tokens_as_objects": ({"eos_token": {"content": "<|im_end|>", **ADDED_TOKEN},
                                   "pad_token": {"content": "<|endoftext|>", **ADDED_TOKEN},
                                   "chat_template": "{{ messages[0]['content'] }}[{{ eos_token }}][{{ pad_token }}]"},
                                  None),
    "jinja_file_beside_config_template": ({"chat_template": "from tokenizer_config {{ messages[0]['content'] }}"},
                                          "from chat_template.jinja {{ messages[0]['content'] }}"),
    "named_templates": ({"chat_template": [{"name": "tool_use", "template": "tool_use {{ messages[0]['content'] }}"},
                                           {"name": "default", "template": "default {{ messages[0]['content'] }}"}]},
                        None),
}


def make_templates(transformers) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(TINY)
    renderings = {}
    for name, (template, kwargs) in TEMPLATE_CASES.items():
        try:
            text, error = tok.apply_chat_template(MESSAGES, chat_template=template, tokenize=False, **kwargs), None
        except Exception as e:  # raise_exception: transformers raises jinja2's TemplateError with the message
            text, error = None, str(e)
        renderings[name] = {"template": template, "kwargs": kwargs, "rendered": text, "error": error}

    base_config = json.loads((TINY / "tokenizer_config.json").read_text())
    tokenizers = {}
    for name, (changes, jinja) in TOKENIZER_CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            shutil.copy(TINY / "tokenizer.json", d)
            (d / "tokenizer_config.json").write_text(json.dumps({**base_config, **changes}))
            if jinja is not None:
                (d / "chat_template.jinja").write_text(jinja)
            t = transformers.AutoTokenizer.from_pretrained(d)
            tokenizers[name] = {"config_changes": changes, "chat_template_jinja": jinja,
                                "rendered": t.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False),
                                "eos_token_id": t.eos_token_id, "pad_token_id": t.pad_token_id}
    write_json("templates.json", {"messages": MESSAGES, "templates": renderings, "tokenizers": tokenizers})


def main() -> None:
    import torch
    import transformers

    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    make_rope_edges(torch, transformers)
    make_dynamic_model(torch, transformers)
    make_config_defaults(transformers)
    make_generation(torch, transformers)
    make_sampling(torch, transformers)
    make_templates(transformers)
    (OUT / "versions.json").write_text(json.dumps({"transformers": transformers.__version__,
                                                   "torch": torch.__version__}, indent=1) + "\n")
    print(f"wrote {sorted(p.name for p in OUT.iterdir())}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
