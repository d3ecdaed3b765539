"""Make the tiny Qwen3.5 reference checkpoints in weights/, with transformers as the reference implementation.

    pip install -e ".[reference]"           # torch + transformers: needed by this script only
    python scripts/make_qwen35_fixtures.py  # rewrites the files below

Writes:
  weights/tiny-qwen3.5/       the text-only layout (``Qwen3_5ForCausalLM.save_pretrained``): ``model.*`` names,
                              one BF16 file, untied head; its config.json has no ``layer_types`` (derived from
                              ``full_attention_interval: 2``: lin, full, lin, full); Hv = 2 Hk.
  weights/tiny-qwen3.5-hub/   the Hub's multimodal layout (``Qwen3_5ForConditionalGeneration``): the LM under
                              ``model.language_model.*``, a tiny vision tower (``model.visual.*``) and a few
                              ``mtp.*`` tensors, BF16, three shards and an index, tied head, config.json with
                              ``text_config`` / ``vision_config`` and the keys transformers ignores
                              (``attn_output_gate``, ``mamba_ssm_dtype``, ``mtp_*``, ``mrope_*``), as
                              Qwen/Qwen3.5-0.8B ships them; lin, lin, lin, full; Hv = 3 Hk.
  weights/configs/qwen3.5-0.8b.json      config.json of Qwen/Qwen3.5-0.8B
  weights/configs/qwen3.5-0.8b.v5.json   the same after a load + save by transformers 5
Each tiny checkpoint also gets a tokenizer (the Qwen3.5 pre-tokenizer regex), chat_template.jinja (thinking on
by default), generation_config.json and reference.npz: transformers' float32 outputs (every hidden state and
the logits of a 72-token prompt, which crosses the 64-token chunk of the chunked delta rule; a left-padded
batch; greedy continuations; the renderings of the chat template and token ids of mark-heavy text).

The random weights are drawn so that every formula matters: zero-centred norm weights
around 0 (+-0.3, so a missing "1 +" scales activations by ~0), the gated norm's plain gains around 1,
decays exp(g) from about 0.2 to 0.999 and write strengths beta from 0.02 to 0.98, projections with std 0.25.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
sys.path.insert(0, str(Path(__file__).parent))
from make_tiny_models import CORPUS, SEED, SPECIAL_TOKENS, train_tokenizer  # noqa: E402

# transformers' Qwen3_5Tokenizer regex: letters may carry combining marks (\p{M}), unlike Qwen2/3's.
QWEN35_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
                      r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
CORPUS_35 = CORPUS + """
नमस्ते दुनिया। भाषा मॉडल शब्दों को पढ़ता है। สวัสดีครับ โลก ภาษา
""" * 3
CHAT_TEMPLATE = (Path(__file__).parent / "chat_templates" / "qwen3.5.jinja").read_text()

PROMPT = ("The quick brown fox jumps over the lazy dog. 你好，世界！ नमस्ते दुनिया. Attention lets every token "
          "look at the tokens before it, and the cache keeps the keys and the values. 12345")
BATCH_PROMPTS = ["Hello world!", "Attention lets every token look 北京", "नमस्ते"]
MARK_TEXTS = ["नमस्ते दुनिया", "สวัสดีครับ", "Cafe\u0301 naïve"]  # tokenised by transformers for the tests

COMMON = dict(vocab_size=384, hidden_size=64, intermediate_size=64, num_hidden_layers=4, rms_norm_eps=1e-6,
              max_position_embeddings=1024, linear_conv_kernel_dim=4, hidden_act="silu")
MODELS = {
    "tiny-qwen3.5": dict(
        layout="text", tie=False, shard=None,
        text=dict(COMMON, num_attention_heads=4, num_key_value_heads=2, head_dim=32, linear_num_key_heads=2,
                  linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=24,
                  layer_types=["linear_attention", "full_attention"] * 2,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000000, "partial_rotary_factor": 0.25})),
    "tiny-qwen3.5-hub": dict(
        layout="hub", tie=True, shard="160KB",
        text=dict(COMMON, num_attention_heads=4, num_key_value_heads=1, head_dim=64, linear_num_key_heads=2,
                  linear_num_value_heads=6, linear_key_head_dim=16, linear_value_head_dim=16,
                  layer_types=["linear_attention"] * 3 + ["full_attention"],
                  rope_parameters={"rope_type": "default", "rope_theta": 10000000, "partial_rotary_factor": 0.25,
                                   "mrope_section": [3, 3, 2], "mrope_interleaved": True})),
}
TINY_VISION = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, in_channels=3, patch_size=4,
                   spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=16)
# Keys the real text_config carries that transformers never reads: kept in the Hub fixture.
IGNORED_TEXT_KEYS = {"attn_output_gate": True, "mamba_ssm_dtype": "float32", "mtp_num_hidden_layers": 1,
                     "mtp_use_dedicated_embeddings": False, "full_attention_interval": 4, "mlp_only_layers": []}

# config.json of Qwen/Qwen3.5-0.8B as the Hub ships it (from a public copy of the file).
QWEN35_08B = {
    "architectures": ["Qwen3_5ForConditionalGeneration"], "image_token_id": 248056, "model_type": "qwen3_5",
    "text_config": {
        "attention_bias": False, "attention_dropout": 0.0, "attn_output_gate": True, "dtype": "bfloat16",
        "eos_token_id": 248044, "full_attention_interval": 4, "head_dim": 256, "hidden_act": "silu",
        "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3584,
        "layer_types": ["linear_attention"] * 3 + ["full_attention"],  # x 6 below
        "linear_conv_kernel_dim": 4, "linear_key_head_dim": 128, "linear_num_key_heads": 16,
        "linear_num_value_heads": 16, "linear_value_head_dim": 128, "max_position_embeddings": 262144,
        "mlp_only_layers": [], "model_type": "qwen3_5_text", "mtp_num_hidden_layers": 1,
        "mtp_use_dedicated_embeddings": False, "num_attention_heads": 8, "num_hidden_layers": 24,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "tie_word_embeddings": True, "use_cache": True,
        "vocab_size": 248320, "mamba_ssm_dtype": "float32",
        "rope_parameters": {"mrope_interleaved": True, "mrope_section": [11, 11, 10], "rope_type": "default",
                            "rope_theta": 10000000, "partial_rotary_factor": 0.25}},
    "tie_word_embeddings": True, "transformers_version": "4.57.0.dev0", "video_token_id": 248057,
    "vision_config": {"deepstack_visual_indexes": [], "depth": 12, "hidden_act": "gelu_pytorch_tanh",
                      "hidden_size": 768, "in_channels": 3, "initializer_range": 0.02, "intermediate_size": 3072,
                      "model_type": "qwen3_5", "num_heads": 12, "num_position_embeddings": 2304,
                      "out_hidden_size": 1024, "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2},
    "vision_end_token_id": 248054, "vision_start_token_id": 248053}
QWEN35_08B["text_config"]["layer_types"] = QWEN35_08B["text_config"]["layer_types"] * 6

CHAT_CASES = [
    ("thinking_default", [{"role": "user", "content": "Hi"}], {"add_generation_prompt": True}),
    ("thinking_off", [{"role": "user", "content": "Hi"}], {"add_generation_prompt": True, "enable_thinking": False}),
    ("multi_turn", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                    {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
                    {"role": "user", "content": "नमस्ते?"}], {"add_generation_prompt": True}),
]


def randomize(model, torch) -> None:
    """Large random weights so that every formula matters (see the module docstring)."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "visual" in name:
                continue  # never used by a text-only forward; keep transformers' init
            randn = torch.randn(p.shape, generator=g)
            if name.endswith("linear_attn.norm.weight"):
                p.copy_(1.0 + 0.3 * randn)  # RMSNormGated: a plain gain around 1
            elif name.endswith("norm.weight"):
                p.copy_(0.3 * randn)  # zero-centred: the gain is 1 + w
            elif name.endswith("A_log"):
                p.copy_(torch.log(torch.empty(p.shape).uniform_(0.01, 0.5, generator=g)))
            elif name.endswith("dt_bias"):
                p.copy_(0.5 * randn)
            elif name.endswith("conv1d.weight"):
                p.copy_(0.5 * randn)
            else:
                p.copy_(0.25 * randn)


def tokenizer_config() -> dict:
    return {"add_bos_token": False, "add_prefix_space": False, "bos_token": None, "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 262144, "pad_token": "<|endoftext|>",
            "split_special_tokens": False, "tokenizer_class": "Qwen3_5Tokenizer", "unk_token": None,
            "extra_special_tokens": ["<|im_start|>", "<|im_end|>"]}


def add_fake_mtp_tensors(out: Path, text: dict) -> None:
    """A few mtp.* tensors (as the real files hold a multi-token-prediction head) in a shard of their own."""
    from safetensors import TensorSpec, serialize_file

    D = text["hidden_size"]
    rng = np.random.default_rng(SEED)
    bf16 = lambda shape: (rng.standard_normal(shape, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    tensors = {"mtp.fc.weight": bf16((D, 2 * D)), "mtp.norm.weight": bf16((D,)),
               "mtp.pre_fc_norm_embedding.weight": bf16((D,)), "mtp.pre_fc_norm_hidden.weight": bf16((D,))}
    specs = {n: TensorSpec(dtype="bfloat16", shape=a.shape, data_ptr=a.ctypes.data, data_len=a.nbytes)
             for n, a in tensors.items()}
    shard = "model-mtp.safetensors"
    serialize_file(specs, str(out / shard), metadata={"format": "pt"})
    index_path = out / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"].update({n: shard for n in tensors})
    index_path.write_text(json.dumps(index, indent=2) + "\n")


def make_model(name: str, spec: dict, torch, transformers) -> dict:
    out = WEIGHTS / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    tok = train_tokenizer(vocab_size=370, extra_added=["<think>", "</think>"], split_regex=QWEN35_SPLIT_REGEX,
                          corpus=CORPUS_35)
    assert tok.get_vocab_size() <= COMMON["vocab_size"]  # < vocab_size: padded rows, as in real Qwen
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    im_end, eot = tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")

    text = dict(spec["text"], tie_word_embeddings=spec["tie"], eos_token_id=eot, pad_token_id=None,
                bos_token_id=None)
    torch.manual_seed(SEED)
    if spec["layout"] == "text":
        config = transformers.Qwen3_5TextConfig(**text)
        model = transformers.Qwen3_5ForCausalLM(config).eval()
    else:
        config = transformers.Qwen3_5Config(text_config=text, vision_config=TINY_VISION,
                                            tie_word_embeddings=spec["tie"])
        model = transformers.Qwen3_5ForConditionalGeneration(config).eval()
    randomize(model, torch)
    if spec["tie"]:
        model.tie_weights()
    model = model.to(torch.bfloat16)  # stored in BF16, like every real Qwen3.5 checkpoint
    model.save_pretrained(out, max_shard_size=spec["shard"] or "50GB")

    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if spec["layout"] == "text":
        # No layer_types: a reader must derive them from full_attention_interval (as Qwen3-Next configs do).
        cfg.pop("layer_types")
        cfg["full_attention_interval"] = 2
    else:
        add_fake_mtp_tensors(out, text)
        cfg["text_config"].update(IGNORED_TEXT_KEYS)  # as the real Qwen3.5-0.8B config 
        cfg["vision_config"]["model_type"] = "qwen3_5"  # the real files carry this wrong type too
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    gen = {"bos_token_id": eot, "pad_token_id": eot, "eos_token_id": [im_end, eot], "do_sample": True,
           "temperature": 0.6, "top_k": 20, "top_p": 0.95, "transformers_version": transformers.__version__}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")

    # The reference: reload the files as written, float32, eager attention, the text-only class (what
    # AutoModelForCausalLM builds from either layout: it strips model.language_model. and skips visual / mtp).
    ref = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32,
                                                            attn_implementation="eager").eval()
    assert type(ref).__name__ == "Qwen3_5ForCausalLM"
    ids = tok.encode(PROMPT).ids[:72]
    assert len(ids) > 64, len(ids)  # past the first 64-token chunk of the chunked delta rule
    result = {"input_ids": np.array(ids, np.int64)}
    with torch.no_grad():
        o = ref(torch.tensor([ids]), output_hidden_states=True)
        result["logits"] = o.logits[0].float().numpy()
        for i, h in enumerate(o.hidden_states):
            result[f"hidden_{i}"] = h[0].float().numpy()
        if spec["layout"] == "hub":  # the multimodal class on text gives the same logits
            mm = transformers.Qwen3_5ForConditionalGeneration.from_pretrained(
                out, dtype=torch.float32, attn_implementation="eager").eval()
            np.testing.assert_array_equal(mm(torch.tensor([ids])).logits[0].float().numpy(), result["logits"])
            del mm
        # transformers' own float32 error: the same model in float64 (its chunked delta rule included); the last
        # 16 positions, past the first chunk, are enough to measure it
        result["logits_float64_tail"] = ref.to(torch.float64)(torch.tensor([ids])).logits[0, -16:].numpy().astype(
            np.float32)
        ref = ref.to(torch.float32)

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

        n_new = 16
        common = dict(do_sample=False, max_new_tokens=n_new, pad_token_id=eot, top_k=None, top_p=None,
                      temperature=None, repetition_penalty=1.0)
        short = ids[:10]
        result["greedy_prompt"] = np.array(short, np.int64)
        g = ref.generate(torch.tensor([short]), eos_token_id=[im_end, eot], **common)
        result["greedy_new"] = g[0, len(short):].numpy()
        g = ref.generate(torch.tensor(batch), attention_mask=torch.tensor(mask), eos_token_id=[im_end, eot],
                         **common)
        result["batch_greedy_new"] = g[:, width:].numpy()
        ref.generation_config.eos_token_id = None  # never stop: the full n_new tokens
        g = ref.generate(torch.tensor([short]), **common)
        result["greedy_nostop_new"] = g[0, len(short):].numpy()
        g = ref.generate(torch.tensor([ids]), **common)  # a cached prefill past the first chunk, then decoding
        result["greedy_long_nostop_new"] = g[0, len(ids):].numpy()

    # What transformers' tokenizer and chat template make of mark-heavy text and of a conversation.
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    texts = {"mark_texts": MARK_TEXTS, "mark_ids": [hf_tok.encode(t, add_special_tokens=False) for t in MARK_TEXTS],
             "chat": [{"case": case, "messages": messages, "kwargs": kwargs,
                       "rendered": hf_tok.apply_chat_template(messages, tokenize=False, **kwargs)}
                      for case, messages, kwargs in CHAT_CASES]}
    (out / "reference_text.json").write_text(json.dumps(texts, indent=2, ensure_ascii=False) + "\n")
    np.savez_compressed(out / "reference.npz", **result)

    scale = np.abs(result["logits_float64_tail"]).max()
    f32_error = float(np.abs(result["logits"][-16:] - result["logits_float64_tail"]).max() / scale)
    print(f"{name}: {len(ids)} tokens, logits std {result['logits'].std():.3f}, transformers float32 vs float64 "
          f"{f32_error:.2e} relative; files {sorted(p.name for p in out.iterdir())}")
    return {"prompt_tokens": len(ids), "transformers_float32_vs_float64": f32_error}


def make_config_fixtures(transformers) -> None:
    """The Qwen3.5-0.8B config.json as the Hub ships it, and transformers 5's re-save of it."""
    out = WEIGHTS / "configs"
    out.mkdir(exist_ok=True)
    (out / "qwen3.5-0.8b.json").write_text(json.dumps(QWEN35_08B, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(QWEN35_08B))
        transformers.AutoConfig.from_pretrained(tmp).save_pretrained(tmp)
        (out / "qwen3.5-0.8b.v5.json").write_text((Path(tmp) / "config.json").read_text())


def main() -> None:
    import torch
    import transformers

    torch.set_num_threads(1)
    meta_path = WEIGHTS / "reference_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"models": {}}
    for name, spec in MODELS.items():
        meta["models"][name] = make_model(name, spec, torch, transformers)
    make_config_fixtures(transformers)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
