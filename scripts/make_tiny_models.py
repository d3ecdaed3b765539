"""Make the tiny reference checkpoints in weights/, with transformers as the reference implementation.

    pip install -e ".[reference]"        # torch + transformers: needed by this script only
    python scripts/make_tiny_models.py   # rewrites weights/

For each tiny model this writes, in weights/<name>/:
  config.json, model.safetensors (or shards + index), generation_config.json,
  tokenizer.json + tokenizer_config.json (a tiny byte-level BPE trained here with `tokenizers`),
  reference.npz: transformers' float32 outputs (input ids, every hidden state, logits; a left-padded batch;
  greedy continuations) that the tests compare minillm against.
and weights/reference_meta.json (versions used), weights/rope_reference.npz (inv_freq of every RoPE type),
weights/chat_templates/*.json (transformers' renderings of the repo's Qwen-style chat templates).

Random weights are drawn LARGE on purpose (std 0.25 instead of the usual 0.02): with the default init a
tiny model's logits are nearly constant, and a wrong formula (swapped RoPE halves, tile-for-GQA) would
hide inside the tolerance. Here such mistakes move the logits by orders of magnitude more than 1e-4.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
sys.path.insert(0, str(ROOT))

SEED = 1234
QWEN_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                    r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# A small English + Chinese training text: enough for BPE to learn common English words, too little for it
# to merge most Chinese characters, so those stay split over 2-3 byte-level tokens (as rare ones do in Qwen).
CORPUS = """
The quick brown fox jumps over the lazy dog. A language model reads tokens and predicts the next one.
Attention lets every token look at the tokens before it. The cache keeps the keys and the values.
Rotary position embeddings rotate pairs of numbers by an angle that grows with the position.
Hello world! Hello, how are you today? I am fine, thank you. What is the capital of France? Paris.
Numbers like 12345 and 2024 are split into single digits. Models learn from text, one token at a time.
The user asks a question and the assistant answers it. The system message sets the rules of the chat.
你好，世界！今天天气很好。我们一起学习语言模型。注意力机制让每个词看到前面的词。
大家好，我是一个小模型。北京是中国的首都。谢谢你的帮助。学习使人进步。
""" * 3


# ----------------------------------------------------------------------------------------------------------
# tokenizer
# ----------------------------------------------------------------------------------------------------------

def train_tokenizer(vocab_size: int, extra_added: list[str], split_regex: str = QWEN_SPLIT_REGEX,
                    corpus: str = CORPUS):
    """A byte-level BPE with Qwen's normalizer, pre-tokenizer and decoder; ChatML specials appended last."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, \
        processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(corpus.strip().splitlines(), trainer=trainer)
    # As in Qwen, the special tokens come after the regular vocabulary.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    if extra_added:  # Qwen3's <think> / </think> are added tokens that are NOT special
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in extra_added])
    return tok


def tokenizer_config(tok, chat_template: str, qwen3: bool) -> dict:
    added = {}
    for token in SPECIAL_TOKENS + (["<think>", "</think>"] if qwen3 else []):
        added[str(tok.token_to_id(token))] = {
            "content": token, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": token in SPECIAL_TOKENS}
    return {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "bos_token": None,
        "chat_template": chat_template, "clean_up_tokenization_spaces": False, "eos_token": "<|im_end|>",
        "errors": "replace", "model_max_length": 131072, "pad_token": "<|endoftext|>",
        "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
    }


# ----------------------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------------------

MODELS = {
    # Qwen2.5-style: q/k/v biases, GQA (4 query heads over 2 KV heads), tied head, BF16, one file,
    # config.json rewritten in the transformers-4 layout the Hub ships (top-level rope_theta, torch_dtype).
    "tiny-qwen2": dict(
        model_type="qwen2", hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, use_sliding_window=False,
        sliding_window=None, max_window_layers=3, legacy_layout=True, shard=None,
        generation=dict(do_sample=True, temperature=0.7, top_p=0.8, top_k=20),  # no repetition_penalty:
        # greedy runs then agree whether or not a caller passes one (Qwen2.5-Instruct ships 1.1, and the
        # penalty changes greedy output too)
        template="qwen2.5"),
    # Qwen3-style: q/k-norm, head_dim 32 with H*Dh = 128 != D = 64, no biases, untied head, BF16, sharded,
    # transformers-5 config layout (rope_parameters, dtype, layer_types).
    "tiny-qwen3": dict(
        model_type="qwen3", hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=256, rms_norm_eps=1e-6,
        tie_word_embeddings=False, attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, use_sliding_window=False,
        sliding_window=None, max_window_layers=3, legacy_layout=False, shard="150KB",
        generation=dict(do_sample=True, temperature=0.6, top_p=0.95, top_k=20),
        template="qwen3"),
    # The less common switches, all at once: Qwen3 attention_bias (q, k, v AND o_proj), YaRN scaling,
    # sliding-window attention on the upper layers, 8 query heads over 2 KV heads (groups of 4).
    "tiny-qwen3-yarn-swa": dict(
        model_type="qwen3", hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=8,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=64, rms_norm_eps=1e-6,
        tie_word_embeddings=True, attention_bias=True,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 16},
        use_sliding_window=True, sliding_window=6, max_window_layers=1, legacy_layout=False, shard=None,
        generation=dict(do_sample=True, temperature=0.6, top_p=0.95, top_k=20),
        template="qwen3"),
}

PROMPT = "The quick brown fox 你好，世界！鱻 and 12 tokens: Hello"
BATCH_PROMPTS = ["Hello world!", "Attention lets every token look 北京"]


def randomize(model, torch, std: float = 0.25):
    """Large random weights so every formula matters (see the module docstring)."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))  # norm weights around 1, not all 1
            elif name.endswith("bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def legacy_config(cfg: dict) -> dict:
    """Rewrite a transformers-5 config.json into the transformers-4 layout that Hub checkpoints ship."""
    cfg = dict(cfg)
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp.pop("rope_theta")
    cfg["rope_scaling"] = None if rp.get("rope_type") == "default" else {"type": rp.pop("rope_type"), **rp}
    cfg["torch_dtype"] = cfg.pop("dtype")
    cfg.pop("layer_types", None)
    cfg["sliding_window"] = 32768  # inert: use_sliding_window is false (a real Qwen2.5 value)
    cfg["use_cache"] = True
    return cfg


def make_model(name: str, spec: dict, chat_templates: dict, torch, transformers) -> dict:
    out = WEIGHTS / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    qwen3 = spec["model_type"] == "qwen3"
    tok = train_tokenizer(vocab_size=500, extra_added=["<think>", "</think>"] if qwen3 else [])
    vocab_size = 512  # > len(tokenizer): padded rows, as in real Qwen (151936 > 151665)
    assert tok.get_vocab_size() <= vocab_size
    tok.save(str(out / "tokenizer.json"))
    template = chat_templates[spec["template"]]
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(tok, template, qwen3), indent=2,
                                                          ensure_ascii=False) + "\n")
    im_end, eot = tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")

    keys = {k: v for k, v in spec.items() if k not in ("legacy_layout", "shard", "generation", "template")}
    keys.update(vocab_size=vocab_size, bos_token_id=eot, eos_token_id=im_end, pad_token_id=None)
    cls = transformers.Qwen3Config if qwen3 else transformers.Qwen2Config
    config = cls(**{k: v for k, v in keys.items() if k != "model_type"})
    torch.manual_seed(SEED)
    model_cls = transformers.Qwen3ForCausalLM if qwen3 else transformers.Qwen2ForCausalLM
    model = model_cls(config).eval()
    randomize(model, torch)
    model = model.to(torch.bfloat16)  # stored in BF16, like every real Qwen checkpoint
    model.save_pretrained(out, max_shard_size=spec["shard"] or "50GB")
    cfg_path = out / "config.json"
    if spec["legacy_layout"]:
        cfg_path.write_text(json.dumps(legacy_config(json.loads(cfg_path.read_text())), indent=2) + "\n")
    gen = {"bos_token_id": eot, "pad_token_id": eot, "eos_token_id": [im_end, eot], **spec["generation"],
           "transformers_version": transformers.__version__}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")

    # The reference: reload the files as written, in float32, eager attention. dtype must be explicit:
    # transformers 5 loads a bf16 checkpoint in bf16 by default, and that would be a bf16 reference.
    ref = model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
    ids = tok.encode(PROMPT).ids
    if spec["sliding_window"]:
        ids = (ids * 2)[: 2 * spec["max_position_embeddings"] // 3 + 8]  # longer than the window and the YaRN span
    result = {"input_ids": np.array(ids, np.int64)}
    with torch.no_grad():
        o = ref(torch.tensor([ids]), output_hidden_states=True)
        result["logits"] = o.logits[0].float().numpy()
        for i, h in enumerate(o.hidden_states):
            result[f"hidden_{i}"] = h[0].float().numpy()

        # A left-padded batch, positions counted from each row's first real token (as generate does).
        rows = [tok.encode(p).ids for p in BATCH_PROMPTS]
        width = max(map(len, rows))
        batch = np.full((len(rows), width), eot, np.int64)
        mask = np.zeros((len(rows), width), np.int64)
        for r, row in enumerate(rows):
            batch[r, width - len(row):] = row
            mask[r, width - len(row):] = 1
        position_ids = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)
        ob = ref(torch.tensor(batch), attention_mask=torch.tensor(mask), position_ids=torch.tensor(position_ids))
        result.update(batch_input_ids=batch, batch_attention_mask=mask, batch_logits=ob.logits.float().numpy())

        # Greedy continuations. repetition_penalty=1.0 for the plain one (the generation_config's 1.1 would
        # change greedy output too: it is a processor, not a warper), and one with the penalty to check
        # its exact semantics.
        n_new = 16
        common = dict(do_sample=False, max_new_tokens=n_new, pad_token_id=eot, top_k=None, top_p=None,
                      temperature=None)
        short = ids[:10]
        result["greedy_prompt"] = np.array(short, np.int64)
        g = ref.generate(torch.tensor([short]), repetition_penalty=1.0, eos_token_id=[im_end, eot], **common)
        result["greedy_new"] = g[0, len(short):].numpy()  # may stop early on an eos id (included)
        g = ref.generate(torch.tensor(batch), attention_mask=torch.tensor(mask), repetition_penalty=1.0,
                         eos_token_id=[im_end, eot], **common)
        result["batch_greedy_new"] = g[:, width:].numpy()  # rows that stopped are padded with pad_token_id
        ref.generation_config.eos_token_id = None  # never stop: the full n_new tokens
        g = ref.generate(torch.tensor([short]), repetition_penalty=1.0, **common)
        result["greedy_nostop_new"] = g[0, len(short):].numpy()
        g = ref.generate(torch.tensor([short]), repetition_penalty=3.0, **common)
        result["greedy_nostop_penalty_3_new"] = g[0, len(short):].numpy()
    np.savez_compressed(out / "reference.npz", **result)
    logit_std = float(result["logits"].std())
    print(f"{name}: {len(ids)} tokens, logits std {logit_std:.3f}, vocab {len(tok.get_vocab())} + padding to "
          f"{vocab_size}, files {sorted(p.name for p in out.iterdir())}")
    return {"prompt_tokens": len(ids), "logits_std": logit_std}


def make_rope_reference(torch, transformers) -> None:
    """inv_freq and attention scaling of every RoPE type, from transformers' own functions."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    cases = {
        "linear": {"rope_type": "linear", "factor": 2.5},
        "dynamic": {"rope_type": "dynamic", "factor": 3.0},
        "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
        "yarn_mscale": {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 4096,
                        "mscale": 0.707, "mscale_all_dim": 1.0, "beta_fast": 16, "beta_slow": 2},
        "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192},
    }
    result, configs = {}, {}
    for case, rp in cases.items():
        cfg_dict = dict(hidden_size=1024, num_attention_heads=16, head_dim=128, max_position_embeddings=131072,
                        rope_parameters={"rope_theta": 1000000.0, **rp})
        config = transformers.Qwen3Config(**cfg_dict)
        for seq_len in ([None, 200000] if rp["rope_type"] == "dynamic" else [None]):
            inv_freq, scaling = ROPE_INIT_FUNCTIONS[rp["rope_type"]](config, "cpu", seq_len=seq_len)
            key = case if seq_len is None else f"{case}_seq{seq_len}"
            result[f"{key}_inv_freq"] = inv_freq.float().numpy()
            result[f"{key}_attention_scaling"] = np.array(scaling, np.float64)
        configs[case] = {"model_type": "qwen3", "vocab_size": 1000, "intermediate_size": 64, "num_hidden_layers": 1,
                         **cfg_dict}
    np.savez_compressed(WEIGHTS / "rope_reference.npz", **result)
    (WEIGHTS / "rope_reference_configs.json").write_text(json.dumps(configs, indent=2) + "\n")


# config.json of real checkpoints, as the Hub ships them (transformers-4 layout; values from copies of the
# Hub files found in public repositories, not downloaded here).
HUB_CONFIGS = {
    "qwen2.5-0.5b-instruct": {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
        "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
        "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
        "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": True,
        "use_sliding_window": False, "vocab_size": 151936},
    "qwen3-0.6b": {
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
        "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
        "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
        "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
        "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
        "use_sliding_window": False, "vocab_size": 151936},
}
# The long-context setting Qwen's model cards tell users to add by hand (legacy "type" key).
HUB_CONFIGS["qwen2.5-7b-instruct-yarn"] = {
    **HUB_CONFIGS["qwen2.5-0.5b-instruct"], "hidden_size": 3584, "intermediate_size": 18944,
    "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4, "vocab_size": 152064,
    "max_window_layers": 28, "tie_word_embeddings": False, "sliding_window": 131072,
    "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}}


def make_config_fixtures(transformers) -> None:
    """Each Hub config (v4 layout) next to what transformers 5 writes after loading it (v5 layout)."""
    import tempfile

    out = WEIGHTS / "configs"
    out.mkdir(exist_ok=True)
    for name, cfg in HUB_CONFIGS.items():
        (out / f"{name}.v4.json").write_text(json.dumps(cfg, indent=2) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "config.json").write_text(json.dumps(cfg))
            config = transformers.AutoConfig.from_pretrained(tmp)
            config.save_pretrained(tmp)
            (out / f"{name}.v5.json").write_text((Path(tmp) / "config.json").read_text())


def main() -> None:
    import torch
    import transformers

    torch.set_num_threads(1)
    WEIGHTS.mkdir(exist_ok=True)
    from chat_fixtures import CHAT_TEMPLATES, make_chat_fixtures  # scripts/chat_fixtures.py

    meta = {"transformers": transformers.__version__, "torch": torch.__version__,
            "tokenizers": __import__("tokenizers").__version__, "numpy": np.__version__,
            "python": platform.python_version(), "seed": SEED, "models": {}}
    for name, spec in MODELS.items():
        meta["models"][name] = make_model(name, spec, CHAT_TEMPLATES, torch, transformers)
    make_rope_reference(torch, transformers)
    make_config_fixtures(transformers)
    make_chat_fixtures(WEIGHTS / "tiny-qwen2", WEIGHTS / "chat_templates")
    (WEIGHTS / "reference_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
