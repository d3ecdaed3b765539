"""Make the tiny hybrid and mixture-of-experts reference checkpoints in weights/, with transformers as the reference.

    pip install -e ".[reference]"           # torch + transformers: needed by this script only
    python scripts/make_qwen35_fixtures.py  # rewrites the files below
    python scripts/make_qwen35_fixtures.py tiny-qwen3-moe tiny-qwen3-next   # only the checkpoints named

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
  weights/tiny-qwen3-moe/     Qwen3-MoE (``Qwen3MoeForCausalLM``): Qwen3 attention, 8 experts, top-2, layer 1 dense
                              (``mlp_only_layers``), one tensor per expert as save_pretrained writes them, config.json
                              as transformers 5 writes it (``num_local_experts``) minus ``norm_topk_prob`` (its
                              default, false, applies); Qwen2/3 tokenizer and chat template.
  weights/tiny-qwen3-next/    Qwen3-Next (``Qwen3NextForCausalLM``): hybrid with ``in_proj_qkvz`` / ``in_proj_ba``
                              grouped per key head (Hv = 2 Hk), MoE + gated shared expert in every layer, one tensor
                              per expert; config.json as the Hub's (``full_attention_interval`` instead of
                              ``layer_types``, top-level ``rope_theta`` / ``partial_rotary_factor``) without
                              ``norm_topk_prob`` (default true); Qwen2/3 tokenizer and chat template.
  weights/tiny-qwen3.5-moe/   Qwen3.5-MoE as the Hub ships it (``Qwen3_5MoeForConditionalGeneration``): multimodal
                              config and names, vision and ``mtp.*`` tensors, BF16 shards, untied head, and the
                              experts STACKED (``mlp.experts.gate_up_proj`` [E, 2 Fe, D], ``down_proj``
                              [E, D, Fe]) as Qwen3.5-35B-A3B's files hold them; its text_config also carries
                              ``norm_topk_prob: false`` and ``mlp_only_layers``, which Qwen3.5-MoE ignores.
  weights/configs/qwen3.5-0.8b.json      config.json of Qwen/Qwen3.5-0.8B
  weights/configs/qwen3.5-0.8b.v5.json   the same after a load + save by transformers 5
  weights/configs/qwen3-30b-a3b.json     config.json of Qwen/Qwen3-30B-A3B (and .v5.json, transformers 5's re-save)
  weights/configs/moe_reference.json     which layers transformers makes MoE for mlp_only_layers /
                                         decoder_sparse_step, and the parameter counts of Qwen3-30B-A3B
  weights/moe_topk_reference.npz         torch.topk on probability rows full of ties, and transformers' router
                                         (Qwen3MoeTopKRouter) on inputs that tie: the tie order to reproduce
Each tiny checkpoint also gets a tokenizer, a chat template, generation_config.json and reference.npz:
transformers' float32 outputs (every hidden state and the logits of a 72-token prompt, which crosses the
64-token chunk of the chunked delta rule; a left-padded batch; greedy continuations; the renderings of the
chat template and token ids of mark-heavy text). The MoE checkpoints add, per MoE layer, the router logits of
the prompt and the experts and weights transformers' router chose (``router_logits_{i}``, ``top_k_index_{i}``,
``top_k_weights_{i}``), and the layers that are MoE (``moe_layers``). Their random weights are redrawn until
every routing decision of the reference runs has a margin: the k-th and (k+1)-th router logits of every real
token are at least MIN_ROUTER_GAP apart, so float32 noise cannot flip a choice.

The random weights are drawn so that every formula matters: zero-centred norm weights around 0 (+-0.3, so a
missing "1 +" scales activations by ~0; plain norms around 1), the gated norm's plain gains around 1, decays
exp(g) from about 0.2 to 0.999 and write strengths beta from 0.02 to 0.98, projections with std 0.25.
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
from chat_fixtures import CHAT_TEMPLATES  # noqa: E402
from make_tiny_models import CORPUS, SEED, SPECIAL_TOKENS, train_tokenizer  # noqa: E402
from make_tiny_models import tokenizer_config as qwen3_tokenizer_config  # noqa: E402

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
MOE = dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=16)  # E = 8, k = 2, Fe = 16
MIN_ROUTER_GAP = 1e-3  # the smallest margin between the k-th and (k+1)-th router logit of any real token
# transformers' classes per family: (text config, causal LM, multimodal config, multimodal model)
FAMILIES = {
    "qwen3_5": ("Qwen3_5TextConfig", "Qwen3_5ForCausalLM", "Qwen3_5Config", "Qwen3_5ForConditionalGeneration"),
    "qwen3_5_moe": ("Qwen3_5MoeTextConfig", "Qwen3_5MoeForCausalLM", "Qwen3_5MoeConfig",
                    "Qwen3_5MoeForConditionalGeneration"),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", None, None),
    "qwen3_next": ("Qwen3NextConfig", "Qwen3NextForCausalLM", None, None),
}
MODELS = {
    "tiny-qwen3.5": dict(
        family="qwen3_5", layout="text", tie=False, shard=None,
        text=dict(COMMON, num_attention_heads=4, num_key_value_heads=2, head_dim=32, linear_num_key_heads=2,
                  linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=24,
                  layer_types=["linear_attention", "full_attention"] * 2,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000000, "partial_rotary_factor": 0.25})),
    "tiny-qwen3.5-hub": dict(
        family="qwen3_5", layout="hub", tie=True, shard="160KB",
        text=dict(COMMON, num_attention_heads=4, num_key_value_heads=1, head_dim=64, linear_num_key_heads=2,
                  linear_num_value_heads=6, linear_key_head_dim=16, linear_value_head_dim=16,
                  layer_types=["linear_attention"] * 3 + ["full_attention"],
                  rope_parameters={"rope_type": "default", "rope_theta": 10000000, "partial_rotary_factor": 0.25,
                                   "mrope_section": [3, 3, 2], "mrope_interleaved": True})),
    "tiny-qwen3-moe": dict(
        family="qwen3_moe", layout="text", tie=False, shard=None,
        text=dict(COMMON, **MOE, intermediate_size=96, mlp_only_layers=[1], num_attention_heads=4,
                  num_key_value_heads=2, head_dim=32, rope_parameters={"rope_type": "default", "rope_theta": 1e6})),
    "tiny-qwen3-next": dict(
        family="qwen3_next", layout="text", tie=False, shard=None,
        text=dict(COMMON, **MOE, shared_expert_intermediate_size=32, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=32, linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16,
                  linear_value_head_dim=24, layer_types=["linear_attention", "full_attention"] * 2,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000000, "partial_rotary_factor": 0.25})),
    "tiny-qwen3.5-moe": dict(
        family="qwen3_5_moe", layout="hub", tie=False, shard="100KB", stacked_experts=True,
        text=dict({k: v for k, v in COMMON.items() if k != "intermediate_size"}, **MOE,
                  shared_expert_intermediate_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                  linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=16,
                  layer_types=["linear_attention"] * 3 + ["full_attention"],
                  rope_parameters={"rope_type": "default", "rope_theta": 10000000, "partial_rotary_factor": 0.25,
                                   "mrope_section": [3, 3, 2], "mrope_interleaved": True})),
}
QWEN35_FAMILY = ("qwen3_5", "qwen3_5_moe")  # the new tokenizer and chat template; Qwen3-MoE / Next use Qwen3's
TINY_VISION = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, in_channels=3, patch_size=4,
                   spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=16)
# Keys the real text_config carries that transformers never reads: kept in the Hub fixture.
IGNORED_TEXT_KEYS = {"attn_output_gate": True, "mamba_ssm_dtype": "float32", "mtp_num_hidden_layers": 1,
                     "mtp_use_dedicated_embeddings": False, "full_attention_interval": 4, "mlp_only_layers": []}
# ... and routing keys of the other MoE families, which Qwen3_5MoeTextConfig has not: every layer stays MoE and
# the router always renormalises (a loader that reads them would diverge from transformers)
IGNORED_MOE_KEYS = {"norm_topk_prob": False, "mlp_only_layers": [1], "decoder_sparse_step": 2}

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

# config.json of Qwen/Qwen3-30B-A3B as the Hub ships it (transformers-4 layout, "num_experts"; from a public copy).
QWEN3_30B_A3B = {
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144, "max_position_embeddings": 40960,
    "max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": 768,
    "norm_topk_prob": True, "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8,
    "num_hidden_layers": 48, "num_key_value_heads": 4, "output_router_logits": False, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001, "sliding_window": None,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 151936}
# (num_hidden_layers, decoder_sparse_step, mlp_only_layers): which layers get experts, asked of transformers
LAYER_RULES = [(4, 1, []), (4, 2, []), (6, 3, []), (6, 2, [1, 3]), (5, 1, [0, 4]), (4, 1, [0, 1, 2, 3])]

CHAT_CASES = [
    ("thinking_default", [{"role": "user", "content": "Hi"}], {"add_generation_prompt": True}),
    ("thinking_off", [{"role": "user", "content": "Hi"}], {"add_generation_prompt": True, "enable_thinking": False}),
    ("multi_turn", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                    {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
                    {"role": "user", "content": "नमस्ते?"}], {"add_generation_prompt": True}),
]


def randomize(model, torch, zero_centred: bool = True, seed: int = SEED) -> None:
    """Large random weights so that every formula matters (see the module docstring)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "visual" in name:
                continue  # never used by a text-only forward; keep transformers' init
            randn = torch.randn(p.shape, generator=g)
            if name.endswith("linear_attn.norm.weight"):
                p.copy_(1.0 + 0.3 * randn)  # RMSNormGated: a plain gain around 1
            elif name.endswith("norm.weight"):
                p.copy_((0.0 if zero_centred else 1.0) + 0.3 * randn)  # zero-centred: the gain is 1 + w
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
    """Write one checkpoint and its reference; MoE checkpoints are redrawn (seed + 1, ...) until every routing
    decision has a margin of MIN_ROUTER_GAP."""
    for seed in range(SEED, SEED + 20):
        result = make_model_with_seed(name, spec, torch, transformers, seed)
        if result.get("min_router_gap", MIN_ROUTER_GAP) >= MIN_ROUTER_GAP:
            return result
        print(f"{name}: seed {seed}: a routing decision within {result['min_router_gap']:.1e}; redrawing")
    raise RuntimeError(f"{name}: no seed gave routing margins of {MIN_ROUTER_GAP}")


def make_model_with_seed(name: str, spec: dict, torch, transformers, seed: int) -> dict:
    out = WEIGHTS / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    family = spec["family"]
    moe = family != "qwen3_5"

    if family in QWEN35_FAMILY:
        tok = train_tokenizer(vocab_size=370, extra_added=["<think>", "</think>"], split_regex=QWEN35_SPLIT_REGEX,
                              corpus=CORPUS_35)
        (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(), indent=2) + "\n")
        (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    else:  # Qwen3-MoE and Qwen3-Next use the Qwen2/3 tokenizer and Qwen3's template
        tok = train_tokenizer(vocab_size=370, extra_added=["<think>", "</think>"])
        (out / "tokenizer_config.json").write_text(json.dumps(
            qwen3_tokenizer_config(tok, CHAT_TEMPLATES["qwen3"], qwen3=True), indent=2, ensure_ascii=False) + "\n")
    assert tok.get_vocab_size() <= COMMON["vocab_size"]  # < vocab_size: padded rows, as in real Qwen
    tok.save(str(out / "tokenizer.json"))
    im_end, eot = tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")

    text = dict(spec["text"], tie_word_embeddings=spec["tie"], eos_token_id=eot, pad_token_id=None,
                bos_token_id=None)
    text_config, causal_lm, wrapper_config, wrapper_model = (getattr(transformers, c) if c else None
                                                             for c in FAMILIES[family])
    torch.manual_seed(seed)
    if spec["layout"] == "text":
        model = causal_lm(text_config(**text)).eval()
    else:
        config = wrapper_config(text_config=text, vision_config=TINY_VISION, tie_word_embeddings=spec["tie"])
        model = wrapper_model(config).eval()
    randomize(model, torch, zero_centred=family != "qwen3_moe", seed=seed)
    if spec["tie"]:
        model.tie_weights()
    model = model.to(torch.bfloat16)  # stored in BF16, like every real Qwen3.5 checkpoint
    model.save_pretrained(out, max_shard_size=spec["shard"] or "50GB")
    if spec.get("stacked_experts"):
        stack_experts(out, torch)

    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if family == "qwen3_5" and spec["layout"] == "text":
        # No layer_types: a reader must derive them from full_attention_interval (as Qwen3-Next configs do).
        cfg.pop("layer_types")
        cfg["full_attention_interval"] = 2
    elif family == "qwen3_next":  # as the Hub's Qwen3-Next config: interval and top-level RoPE keys
        cfg.pop("layer_types")
        cfg["full_attention_interval"] = 2
        cfg.update(cfg.pop("rope_parameters"))
        cfg.pop("rope_type")
        cfg.pop("norm_topk_prob")  # its default (true) applies
    elif family == "qwen3_moe":
        cfg.pop("norm_topk_prob")  # its default (false) applies
    if spec["layout"] == "hub":
        add_fake_mtp_tensors(out, text)
        cfg["text_config"].update(IGNORED_TEXT_KEYS)  # as the real Qwen3.5-0.8B config
        cfg["vision_config"]["model_type"] = "qwen3_5"  # the real files carry this wrong type too
        if family == "qwen3_5_moe":
            cfg["text_config"].update(IGNORED_MOE_KEYS)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    gen = {"bos_token_id": eot, "pad_token_id": eot, "eos_token_id": [im_end, eot], "do_sample": True,
           "temperature": 0.6, "top_k": 20, "top_p": 0.95, "transformers_version": transformers.__version__}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")

    # The reference: reload the files as written, float32, eager attention, the text-only class (what
    # AutoModelForCausalLM builds from either layout: it strips model.language_model. and skips visual / mtp).
    ref = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager",
                                                            experts_implementation="eager").eval()
    assert type(ref) is causal_lm, type(ref)
    routers = RouterRecorder(ref) if moe else None
    ids = tok.encode(PROMPT).ids[:72]
    assert len(ids) > 64, len(ids)  # past the first 64-token chunk of the chunked delta rule
    result = {"input_ids": np.array(ids, np.int64)}
    with torch.no_grad():
        o = ref(torch.tensor([ids]), output_hidden_states=True)
        result["logits"] = o.logits[0].float().numpy()
        for i, h in enumerate(o.hidden_states):
            result[f"hidden_{i}"] = h[0].float().numpy()
        if moe:  # transformers' own routing of the prompt, per MoE layer
            result["moe_layers"] = np.array(sorted(routers.calls), np.int64)
            for i, calls in routers.calls.items():
                logits, weights, index = calls[-1]
                result.update({f"router_logits_{i}": logits, f"top_k_weights_{i}": weights, f"top_k_index_{i}": index})
        if spec["layout"] == "hub":  # the multimodal class on text gives the same logits
            mm = wrapper_model.from_pretrained(out, dtype=torch.float32, attn_implementation="eager",
                                               experts_implementation="eager").eval()
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

        if moe:  # the routing margin of every real token the tests run: prompt, batch, greedy sequences
            routers.calls.clear()
            ref(torch.tensor([ids]))
            ref(torch.tensor(batch), attention_mask=torch.tensor(mask), position_ids=torch.tensor(position_ids))
            for prompt, new in (("greedy_prompt", "greedy_new"), ("greedy_prompt", "greedy_nostop_new"),
                                ("input_ids", "greedy_long_nostop_new")):
                ref(torch.tensor(np.concatenate([result[prompt], result[new]])[None]))
            real = [np.ones(len(ids), bool), mask.astype(bool).ravel()] + [None] * 3
            gaps = [routers.min_gap(call, keep) for calls in routers.calls.values() for call, keep in zip(calls, real)]
            result["min_router_gap"] = np.float32(min(gaps))

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
    meta = {"prompt_tokens": len(ids), "transformers_float32_vs_float64": f32_error}
    if moe:
        meta.update(seed=seed, min_router_gap=float(result["min_router_gap"]))
        print(f"{name}: seed {seed}, smallest routing margin {meta['min_router_gap']:.2e}")
    return meta


class RouterRecorder:
    """Records what each MoE layer's router (``mlp.gate``, a TopKRouter) returns, through forward hooks:
    calls[layer] = [(router logits [N, E], weights [N, k], experts [N, k]) per forward]."""

    def __init__(self, model):
        self.calls: dict[int, list] = {}
        self.k = model.config.num_experts_per_tok
        for i, layer in enumerate(model.model.layers):
            if hasattr(layer.mlp, "experts"):
                layer.mlp.gate.register_forward_hook(self._hook(i))

    def _hook(self, i: int):
        def hook(module, inputs, outputs):
            self.calls.setdefault(i, []).append(tuple(o.detach().float().numpy() if o.is_floating_point() else
                                                      o.numpy() for o in outputs))
        return hook

    def min_gap(self, call, keep) -> float:
        """The smallest margin between the k-th and (k+1)-th router logit over the rows ``keep`` selects."""
        logits = -np.sort(-call[0], axis=-1)  # [N, E] descending
        gap = logits[:, self.k - 1] - logits[:, self.k]  # [N]
        return float(gap[keep].min() if keep is not None else gap.min())


def stack_experts(out: Path, torch) -> None:
    """Rewrite a checkpoint's per-expert tensors (what save_pretrained writes) into stacked ones, as the Hub's
    Qwen3.5-35B-A3B holds them: mlp.experts.gate_up_proj [E, 2 Fe, D] (rows [gate | up] per expert) and
    mlp.experts.down_proj [E, D, Fe]; shards rewritten, index updated."""
    import re

    from safetensors.torch import load_file, save_file

    index_path = out / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors.update(load_file(out / shard))
        (out / shard).unlink()
    pattern = re.compile(r"(.*\.mlp\.experts)\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight")
    per_expert: dict[str, dict[int, dict[str, object]]] = {}
    for name in [n for n in tensors if pattern.fullmatch(n)]:
        prefix, e, module = pattern.fullmatch(name).groups()
        per_expert.setdefault(prefix, {}).setdefault(int(e), {})[module] = tensors.pop(name)
    for prefix, experts in per_expert.items():
        order = [experts[e] for e in range(len(experts))]
        tensors[f"{prefix}.gate_up_proj"] = torch.stack([torch.cat([x["gate_proj"], x["up_proj"]]) for x in order])
        tensors[f"{prefix}.down_proj"] = torch.stack([x["down_proj"] for x in order])
    names = sorted(tensors)  # shards of about 100 KB, as save_pretrained would cut them
    shards, current, size = [], [], 0
    for name in names:
        current.append(name)
        size += tensors[name].numel() * tensors[name].element_size()
        if size > 100_000:
            shards.append(current)
            current, size = [], 0
    shards += [current] if current else []
    weight_map = {}
    for n, names_in_shard in enumerate(shards, 1):
        shard = f"model-{n:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: tensors[k].contiguous() for k in names_in_shard}, out / shard, metadata={"format": "pt"})
        weight_map.update({k: shard for k in names_in_shard})
    index["weight_map"] = weight_map
    index_path.write_text(json.dumps(index, indent=2) + "\n")


def make_config_fixtures(transformers) -> None:
    """The Qwen3.5-0.8B and Qwen3-30B-A3B config.json as the Hub ships them, and transformers 5's re-saves."""
    out = WEIGHTS / "configs"
    out.mkdir(exist_ok=True)
    for name, hub in (("qwen3.5-0.8b", QWEN35_08B), ("qwen3-30b-a3b", QWEN3_30B_A3B)):
        (out / f"{name}.json").write_text(json.dumps(hub, indent=2) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "config.json").write_text(json.dumps(hub))
            transformers.AutoConfig.from_pretrained(tmp).save_pretrained(tmp)
            (out / f"{name}.v5.json").write_text((Path(tmp) / "config.json").read_text())


def make_moe_fixtures(torch, transformers) -> None:
    """transformers' answers to the questions a MoE loader and router must get right, beyond the tiny models:

    * weights/configs/moe_reference.json: which layers are MoE for several mlp_only_layers / decoder_sparse_step
      settings (a Qwen3MoeForCausalLM built on the meta device), and Qwen3-30B-A3B's parameter counts, all and
      in experts (the same, from its config);
    * weights/moe_topk_reference.npz: torch.topk on probability rows full of ties (E and k on both sides of
      64 k <= E, where torch switches algorithm), and Qwen3MoeTopKRouter itself on inputs whose router logits
      tie (an all-zero row, duplicated router rows), with and without norm_topk_prob.
    """
    small = dict(hidden_size=16, num_attention_heads=2, num_key_value_heads=1, head_dim=8, intermediate_size=8,
                 moe_intermediate_size=4, num_experts=4, num_experts_per_tok=2, vocab_size=8)
    rules = []
    for layers, step, dense in LAYER_RULES:
        config = transformers.Qwen3MoeConfig(**small, num_hidden_layers=layers, decoder_sparse_step=step,
                                             mlp_only_layers=dense)
        with torch.device("meta"):
            model = transformers.Qwen3MoeForCausalLM(config)
        rules.append({"num_hidden_layers": layers, "decoder_sparse_step": step, "mlp_only_layers": dense,
                      "moe_layers": [i for i, layer in enumerate(model.model.layers) if hasattr(layer.mlp, "experts")]})
    with torch.device("meta"):
        fields = {k: v for k, v in QWEN3_30B_A3B.items() if k not in ("architectures", "torch_dtype",
                                                                      "transformers_version")}
        big = transformers.Qwen3MoeForCausalLM(transformers.Qwen3MoeConfig(**fields))
    counts = {"total": sum(p.numel() for p in big.parameters()),
              "experts": sum(p.numel() for n, p in big.named_parameters() if ".mlp.experts." in n)}
    (WEIGHTS / "configs" / "moe_reference.json").write_text(json.dumps(
        {"layer_rules": rules, "parameters": {"qwen3-30b-a3b": counts}}, indent=2) + "\n")

    rng = np.random.default_rng(SEED)
    result = {}
    for E, k in ((4, 2), (8, 2), (8, 8), (16, 4), (60, 10), (64, 1), (128, 2), (128, 8), (256, 8), (512, 8),
                 (512, 10)):
        levels = rng.integers(1, 5, (64, 1))  # rows with 1 to 4 distinct logits: many ties
        logits = torch.tensor((rng.integers(0, 4, (64, E)) % levels).astype(np.float32))
        probs = torch.softmax(logits, dim=-1)
        values, indices = torch.topk(probs, k, dim=-1)
        result.update({f"probs_{E}_{k}": probs.numpy(), f"values_{E}_{k}": values.numpy(),
                       f"indices_{E}_{k}": indices.numpy()})
    D, E, k = 8, 16, 4
    weight = torch.tensor(rng.standard_normal((E, D)).astype(np.float32))
    weight[5], weight[11], weight[12] = weight[3], weight[3], weight[7]  # experts 3, 5, 11 tie; 7 and 12 too
    x = torch.tensor(rng.standard_normal((32, D)).astype(np.float32))
    x[0] = 0.0  # an all-zero row: every router logit is 0, every expert ties
    result.update(router_x=x.numpy(), router_weight=weight.numpy(), router_k=np.int64(k))
    for norm in (True, False):
        config = transformers.Qwen3MoeConfig(hidden_size=D, num_experts=E, num_experts_per_tok=k, norm_topk_prob=norm)
        router = transformers.models.qwen3_moe.modeling_qwen3_moe.Qwen3MoeTopKRouter(config)
        with torch.no_grad():
            router.weight.copy_(weight)
            _, scores, index = router(x)
        suffix = "norm" if norm else "plain"
        result.update({f"router_weights_{suffix}": scores.numpy(), f"router_experts_{suffix}": index.numpy()})
    np.savez_compressed(WEIGHTS / "moe_topk_reference.npz", **result)


def main(selection: list[str]) -> None:
    import torch
    import transformers

    torch.set_num_threads(1)
    meta_path = WEIGHTS / "reference_meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"models": {}}
    for name, spec in MODELS.items():
        if not selection or name in selection:
            meta["models"][name] = make_model(name, spec, torch, transformers)
    if not selection or "configs" in selection:
        make_config_fixtures(transformers)
        make_moe_fixtures(torch, transformers)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
