"""Mutation testing: break the code on purpose, one realistic single-line bug at a time, and see the tests fail.

    python scripts/mutation_test.py                      # every mutation, the whole suite after each (slow)
    python scripts/mutation_test.py --area sampling      # only the sampling mutations
    python scripts/mutation_test.py --only top-p -v      # mutations whose label contains "top-p", with pytest output
    python scripts/mutation_test.py --list               # the mutations, without running anything
    python scripts/mutation_test.py --report out.md      # also write the kill table as Markdown
    python scripts/mutation_test.py --skip test_training.py,test_backward.py   # a faster campaign
    python scripts/mutation_test.py --set fresh          # only the fresh mutants (scripts/mutants_fresh.py)
    python scripts/mutation_test.py --area-tests-only    # each mutant against its area's (or its own) tests only

Each mutation is (area, file, a fragment of one line, its replacement, a label). The tool copies the repository
to a temporary directory once, checks the unmutated suite passes there, then for each mutation writes the
mutated file into the copy, runs pytest (``-x``: the first failure is enough; the test files of the mutation's
area run first), and restores the file. Your working tree is never modified. A mutation whose fragment is not
found exactly once is reported as STALE: the code moved, so update the fragment.

Two sets: the list below ("existing") and scripts/mutants_fresh.py ("fresh": mutants of the modules added for
issue 31, written by someone reading those modules fresh, without sight of this list). ``--set`` picks them
(default: both). A fresh mutant names its own test files and runs only those; an existing one runs the whole
suite, its area's files first, unless ``--area-tests-only`` (then only its area's files: fast, but re-run any
survivor without it before calling it a survivor).

A mutant is KILLED when the suite fails (or times out), SURVIVED when it passes. Some mutants cannot be killed
because they do not change behaviour (an "equivalent" mutant, e.g. a bound check that a later check repeats);
those carry the reason in the list and are left out of the score: killed / (all - equivalent).

Not part of CI (a full campaign runs the suite ~80 times). Run it with ``nice -n 19`` on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    area: str
    file: str  # relative to the repository root
    original: str  # a fragment of one line (with the next line too where the line occurs twice); found once
    replacement: str
    label: str
    equivalent: str = ""  # why the mutant cannot change behaviour (left out of the score), if it cannot
    tests: tuple[str, ...] = ()  # run only these test files (tests/...), if given; else the suite, area first


M = Mutation
GEN, SAMP, CHAT = "minillm/generation/generate.py", "minillm/generation/sampling.py", "minillm/generation/chat.py"
CACHE, MODEL, ROPE = "minillm/model/cache.py", "minillm/model/transformer.py", "minillm/model/rope_scaling.py"
CONFIG, GENCFG = "minillm/checkpoint/config.py", "minillm/checkpoint/generation_config.py"
TOK, TEMPLATE = "minillm/text/tokenizer.py", "minillm/text/chat_template.py"
LOADING, ST, HUB = "minillm/checkpoint/loading.py", "minillm/checkpoint/safetensors_file.py", "minillm/checkpoint/hub.py"
PATHS = "minillm/checkpoint/paths.py"
ROUTER, TOPK = "minillm/model/router.py", "minillm/model/topk.py"
MOE, EXPERTS = "minillm/model/moe.py", "minillm/checkpoint/experts.py"
CLI, TRAINER, DATA = "minillm/tools/cli.py", "minillm/training/trainer.py", "minillm/training/data.py"

MUTATIONS: list[Mutation] = [
    # ---------------------------------------------------------------- generation: defaults, stop ids, bookkeeping
    M("generation", GEN, "first(gen.temperature, 1.0) if gen.do_sample else 0.0",
      "first(gen.temperature, 1.0 if gen.do_sample else 0.0)", "the file's temperature applies without do_sample"),
    M("generation", GEN, "top_k=first(top_k, gen.top_k, 50)", "top_k=first(top_k, gen.top_k, 0)",
      "top-k default 0 instead of transformers' 50"),
    M("generation", GEN, "top_p=first(top_p, gen.top_p, 1.0)", "top_p=first(top_p, 1.0)",
      "generation_config's top_p ignored"),
    M("generation", GEN, "min_p=first(min_p, gen.min_p, 0.0)", "min_p=first(min_p, 0.0)",
      "generation_config's min_p ignored"),
    M("generation", GEN, "first(repetition_penalty, gen.repetition_penalty, 1.0)", "first(repetition_penalty, 1.0)",
      "generation_config's repetition_penalty ignored"),
    M("generation", GEN, "set(model.generation_config.eos_token_ids) | set(model.config.eos_token_ids)",
      "set(model.generation_config.eos_token_ids) or set(model.config.eos_token_ids)",
      "stop ids: generation_config's list instead of the union with config.json's"),
    M("generation", GEN, "pad = gen.pad_token_id if gen.pad_token_id is not None else (int(stops[0]) if len(stops) else 0)",
      "pad = int(stops[0]) if len(stops) else 0", "a stopped row yields the first stop id, not the pad id"),
    M("generation", GEN, "rng = np.random.default_rng(None if seed is None else int(seed))",
      "rng = np.random.default_rng(0 if seed is None else int(seed))",
      "unseeded sampling always draws the same tokens"),
    M("generation", GEN, "seen[rows[valid_BT], ids_BT[valid_BT]] = True", "seen[rows, ids_BT] = True",
      "the repetition penalty counts left padding"),
    M("generation", GEN, "seen[~finished, token[~finished]] = True", "pass",
      "generated tokens are not penalised"),
    M("generation", GEN, "finished |= np.isin(token, stops)", "finished = np.isin(token, stops)",
      "a row that stopped starts again"),
    M("generation", GEN, "token = np.where(finished, pad, token)  # [B]", "pass",
      "a row that stopped keeps generating"),
    M("generation", GEN, "if finished.all() or step == max_new_tokens - 1:",
      "if finished.any() or step == max_new_tokens - 1:", "the batch ends when any row stops"),
    M("generation", GEN, "if finished.all() or step == max_new_tokens - 1:", "if step == max_new_tokens - 1:",
      "generation never ends early"),
    M("generation", GEN, "default_stop_ids(model) if stop_token_ids is None else check_stop_ids(stop_token_ids)",
      "check_stop_ids(stop_token_ids or default_stop_ids(model))", "stop_token_ids=[] falls back to the defaults"),
    M("generation", GEN, "elif cache.length + T + max_new_tokens > cache.capacity:",
      "elif cache.length + T > cache.capacity:", "a given cache too small for the new tokens is not refused upfront"),
    M("generation", GEN, "step = chunk_size or T", "step = T", "prefill_chunk_size is ignored (no chunking)"),
    M("generation", GEN, "chunk = slice(start, min(start + step, T))", "chunk = slice(start, start + step)",
      "chunk end not clamped", equivalent="slicing past the end already stops at T"),
    M("generation", GEN, "out = np.stack(steps, axis=1) if steps", "out = np.stack(steps, axis=0) if steps",
      "generate returns [N, B] instead of [B, N]"),
    M("generation", GEN, "if (np.diff(valid_BT.astype(np.int8), axis=1) < 0).any():",
      "if (np.diff(valid_BT.astype(np.int8), axis=1) > 0).any():", "left padding refused, right padding accepted"),
    M("generation", GEN, "if prompt_lookup_num_tokens is not None:  # transformers' switch",
      "if prompt_lookup_num_tokens is not None or max_matching_ngram_size is not None:  # transformers' switch",
      "the n-gram size alone switches prompt lookup on (issue 25)"),
    M("generation", MODEL, 'if isinstance(ids, (str, bytes, bytearray)) or arr.dtype.kind in "US":', "if False:",
      "text given as token ids is not told to go through the tokenizer (issue 25)"),
    # ---------------------------------------------------------------- sampling
    M("sampling", SAMP, "remove_sorted = cumulative <= np.float32(1 - p)", "remove_sorted = cumulative < np.float32(1 - p)",
      "top-p keeps a token whose cumulative mass is exactly 1 - p"),
    M("sampling", SAMP, "remove_sorted[..., -1] = False", "pass", "top-p may remove every token"),
    M("sampling", SAMP, 'order = np.argsort(logits, axis=-1, kind="stable")', 'order = np.argsort(-logits, axis=-1, kind="stable")',
      "top-p sorts descending"),
    M("sampling", SAMP, "threshold = np.float32(min_p) * probs.max(axis=-1, keepdims=True)",
      "threshold = np.float32(min_p)", "min-p not scaled by the top probability"),
    M("sampling", SAMP, "remove = probs < threshold  # [B, V]", "remove = probs <= threshold  # [B, V]",
      "min-p removes tokens exactly at the threshold"),
    M("sampling", SAMP, "remove[np.arange(len(logits)), logits.argmax(axis=-1)] = False", "pass",
      "min-p's top token not protected", equivalent="min_p <= 1, so the top token's probability is never below "
      "min_p times itself"),
    M("sampling", SAMP, "kth = -np.partition(-logits, k - 1, axis=-1)[..., k - 1:k]",
      "kth = -np.partition(-logits, k, axis=-1)[..., k:k + 1]", "top-k keeps k+1 tokens"),
    M("sampling", SAMP, "return np.where(logits < kth, -np.inf, logits).astype(np.float32)",
      "return np.where(logits <= kth, -np.inf, logits).astype(np.float32)", "top-k drops the k-th token"),
    M("sampling", SAMP, "if k <= 0 or k >= logits.shape[-1]:", "if k <= 1 or k >= logits.shape[-1]:",
      "top-k of 1 is treated as off"),
    M("sampling", SAMP, "penalised = np.where(logits < 0, logits * np.float32(penalty), logits / np.float32(penalty))",
      "penalised = np.where(logits <= 0, logits * np.float32(penalty), logits / np.float32(penalty))",
      "penalty: a zero logit on the negative side", equivalent="0 * p == 0 / p == 0"),
    M("sampling", SAMP, "penalised = np.where(logits < 0, logits * np.float32(penalty), logits / np.float32(penalty))",
      "penalised = np.where(logits < 0, logits / np.float32(penalty), logits * np.float32(penalty))",
      "penalty multiplies positive logits"),
    M("sampling", SAMP, "return np.where(seen, penalised, logits)  # [B, V]",
      "return np.where(seen, logits, penalised)  # [B, V]", "penalty applied to unseen ids"),
    M("sampling", SAMP, "if params.temperature != 1.0:", "if params.temperature > 1.0:",
      "temperatures below 1 ignored"),
    M("sampling", SAMP, "return min_p_filter(logits, params.min_p)",
      "return logits", "min-p never applied"),
    M("sampling", SAMP, "u = rng.random((len(probs), 1)) * cdf[:, -1:]", "u = rng.random((len(probs), 1))",
      "draw not scaled by the CDF total", equivalent="the float64 CDF total is 1 to ~1e-16"),
    M("sampling", SAMP, "return logits.argmax(axis=-1)  # [B]", "return logits.argmin(axis=-1)  # [B]",
      "greedy takes the least likely token"),
    M("sampling", SAMP, '"top_p": (float, lambda v: 0 < v <= 1,', '"top_p": (float, lambda v: 0 <= v <= 1,',
      "top_p = 0 accepted"),
    # ---------------------------------------------------------------- chat session
    M("chat", CHAT, "for a, b in zip(self.cached_ids, ids[:-1]):", "for a, b in zip(self.cached_ids, ids):",
      "the whole prompt may be reused, leaving nothing to compute"),
    M("chat", CHAT, "self.cache.truncate(reuse)", "pass", "the cache is not cut back to the common prefix"),
    M("chat", CHAT, "self.cached_ids = ids + new[:-1]", "self.cached_ids = ids + new",
      "the last sampled token counted as cached"),
    M("chat", CHAT, "if len(ids) + max_new_tokens <= self.cache.capacity:", "if len(ids) <= self.cache.capacity:",
      "room for the reply not checked upfront"),
    M("chat", CHAT, "reply = new[:-1] if new and new[-1] in self.stop_ids else new", "reply = new",
      "the stop token kept in the reply", equivalent="the reply is decoded with skip_special_tokens and the stop "
      "ids (config eos) are special tokens, so the text is the same"),
    M("chat", CHAT, "if len(users) < 2:  # only this turn's message is left", "if True:",
      "a conversation outgrowing the context is an error instead of dropping its oldest turns (issue 25)"),
    M("chat", CHAT, "model.config.max_position_embeddings if capacity is None else capacity",
      "4096 if capacity is None else capacity", "a chat holds 4096 positions by default, not the trained context "
      "(issue 25)"),
    M("chat", CLI, "except ConversationTooLong as e:", "except MinillmWarning as e:",
      "a chat turn too long for the context ends the chat (issue 25)"),
    # ---------------------------------------------------------------- the command line
    M("cli", CLI, 'and "enable_thinking" not in template_variables(tok.chat_template):', "and False:",
      "--thinking is silently ignored by a template without the switch (issue 25)"),
    M("cli", CLI, "if value is not None and not chat:", "if False:",
      "--system / --thinking silently ignored without --chat (issue 25)"),
    M("cli", CLI, "if args.ngram_size is not None and args.speculative is None:", "if False:",
      "--ngram-size without --speculative silently ignored (issue 25)"),
    M("cli", CLI, '+ (f" | decode {dec:.1f} tok/s" if n_dec else "")', '+ f" | decode {dec:.1f} tok/s"',
      "a decode rate printed with no decode step to time: nan / inf tok/s (issue 25)"),
    M("cli", CLI, 'sys.stdout.write("\\n")  # the text ends its line', "pass  #",
      "generate's text does not end its line (issue 25)"),
    # ---------------------------------------------------------------- training
    M("training", TRAINER, "if jump and not self.allow_schedule_change:", "if False:",
      "a resume that changes the trained steps' learning rates (a longer cosine) is not refused (issue 25)"),
    M("training", DATA, "if not self.path.exists():", "if False:",
      "a missing token file is reported as an unreadable .npy, without the script that makes it (issue 25)"),
    # ---------------------------------------------------------------- KV cache and the forward pass around it
    M("cache", CACHE, "self.next_position = self.key_valid[:, :length].sum(axis=1).astype(np.int64)",
      "self.next_position = np.full(self.batch_size, length, np.int64)",
      "truncate counts padding slots as positions"),
    M("cache", CACHE, "self.key_valid[:, length:] = False", "pass", "truncate leaves stale validity flags",
      equivalent="slots past the length are never read, and the next step overwrites their flags"),
    M("cache", CACHE, "self.next_position += valid.sum(axis=1)", "self.next_position += T",
      "padding advances the position"),
    M("cache", CACHE, "self.key_valid[:, self.length:self.length + T] = valid", "pass",
      "cached padding keys look valid"),
    M("cache", CACHE, "if self.length + num_new > self.capacity:", "if self.length + num_new >= self.capacity:",
      "a cache can never be filled to capacity"),
    M("cache", MODEL, "if T == 1 and key_valid is None:", "if T == 1:", "a decode step ignores padding in the cache"),
    M("cache", MODEL, "hidden[-1] = h if not logits_to_keep else self.final_norm(hidden[-1])",
      "hidden[-1] = h", "hidden states with logits_to_keep: the last one is cut to the kept positions"),
    M("cache", MODEL, "x = x[:, -logits_to_keep:]", "x = x[:, :logits_to_keep]", "logits_to_keep keeps the first positions"),
    M("rope", MODEL, "return rope_frequencies(cfg.rotary_dim, cfg.rope, cfg.max_position_embeddings, seq_len)",
      "self._rope = self._rope or rope_frequencies(cfg.rotary_dim, cfg.rope, cfg.max_position_embeddings, seq_len); "
      "return self._rope", "dynamic RoPE keeps the frequencies of its first call"),
    M("rope", MODEL, "rope_len = _rope_len or int(positions.max()) + 1", "rope_len = _rope_len or int(positions.max())",
      "dynamic RoPE sequence length off by one"),
    # ---------------------------------------------------------------- RoPE scaling
    M("rope", ROPE, "seq_len = max(seq_len or max_pos, max_pos)", "seq_len = seq_len or max_pos",
      "dynamic RoPE shrinks the base for short sequences"),
    M("rope", ROPE, "low, high = max(low, 0), min(high, head_dim - 1)", "low, high = max(low, 0), min(high, head_dim // 2 - 1)",
      "YaRN correction range clamped to half the head"),
    M("rope", ROPE, "if rope.attention_factor is not None:", "if False:", "YaRN ignores an explicit attention_factor"),
    M("rope", ROPE, "if rope.mscale and rope.mscale_all_dim:", "if rope.mscale:", "YaRN mscale used without mscale_all_dim"),
    M("rope", ROPE, "low, high = math.floor(low), math.ceil(high)", "low, high = math.floor(low), math.floor(high)",
      "YaRN correction range: floor instead of ceil"),
    M("rope", ROPE, "ramp = np.clip((np.arange(head_dim // 2, dtype=np.float32) - np.float32(low)) / np.float32(high - low),",
      "ramp = ((np.arange(head_dim // 2, dtype=np.float32) - np.float32(low)) / np.float32(high - low),",
      "YaRN ramp not clipped (stays a 2-tuple with the bounds)"),
    # ---------------------------------------------------------------- config.json precedence and defaults
    M("config", CONFIG, 'rp = raw.get("rope_scaling") or raw.get("rope_parameters") or {}',
      'rp = raw.get("rope_parameters") or raw.get("rope_scaling") or {}',
      "rope_parameters read before a v4 rope_scaling beside it"),
    M("config", CONFIG, 'original = get("original_max_position_embeddings", int, None, low=1) or original or max_pos',
      'original = original or get("original_max_position_embeddings", int, None, low=1) or max_pos',
      "original_max_position_embeddings inside the RoPE parameters wins over the top-level one"),
    M("config", CONFIG, 'original = get("original_max_position_embeddings", int, None, low=1) or original or max_pos',
      'original = get("original_max_position_embeddings", int, None, low=1) or max_pos',
      "original_max_position_embeddings inside the RoPE parameters ignored"),
    M("config", CONFIG, 'theta = sub("rope_theta", float, None, above=1)\n    if theta is None:\n'
      '        theta = get("rope_theta", float, 10000.0, above=1)\n',
      'theta = get("rope_theta", float, None, above=1)\n    if theta is None:\n'
      '        theta = get("rope_theta", float, 10000.0, above=1)\n',
      "top-level rope_theta wins over rope_parameters'"),
    M("config", CONFIG, "factor = max_pos / original  # transformers", "factor = original / max_pos  # transformers",
      "YaRN without factor: the ratio inverted"),
    M("config", "minillm/checkpoint/fields.py", "values = value if isinstance(value, list) else [value]",
      "values = value[:1] if isinstance(value, list) else [value]", "eos_token_id list cut to its first id"),
    M("config", CONFIG, 'sliding_window = get("sliding_window", int, None, low=1) if use_sliding_window else None',
      'sliding_window = get("sliding_window", int, None, low=1)', "sliding window used although use_sliding_window is false"),
    M("config", CONFIG, "if sliding_window is not None and i >= max_window_layers", "if sliding_window is not None and i > max_window_layers",
      "max_window_layers off by one"),
    M("config", CONFIG, 'tie_word_embeddings=get("tie_word_embeddings", bool, False),\n        qkv_bias=qkv_bias,',
      'tie_word_embeddings=get("tie_word_embeddings", bool, True),\n        qkv_bias=qkv_bias,',
      "tie_word_embeddings defaults to true"),
    M("config", CONFIG, 'rms_norm_eps=get("rms_norm_eps", float, 1e-6, low=FLOAT32_TINY, high=1.0),\n'
      '        max_position_embeddings=max_position_embeddings,',
      'rms_norm_eps=get("rms_norm_eps", float, 1e-5, low=FLOAT32_TINY, high=1.0),\n'
      '        max_position_embeddings=max_position_embeddings,', "rms_norm_eps default 1e-5"),
    M("config", CONFIG, 'max_window_layers = get("max_window_layers", int, 28)', 'max_window_layers = get("max_window_layers", int, 0)',
      "max_window_layers default 0"),
    M("config", CONFIG, 'kv_heads = get("num_key_value_heads", int, heads, low=1)', 'kv_heads = get("num_key_value_heads", int, 1, low=1)',
      "missing num_key_value_heads means one KV head"),
    # ---------------------------------------------------------------- generation_config.json
    M("gen-config", "minillm/checkpoint/fields.py", "values = value if isinstance(value, list) else [value]",
      "values = value if isinstance(value, list) else []", "a scalar eos_token_id dropped"),
    M("gen-config", GENCFG, 'do_sample=get("do_sample", bool, False)', 'do_sample=get("do_sample", bool, True)',
      "no do_sample in the file means sampling"),
    M("gen-config", GENCFG, 'pad_token_id=get("pad_token_id", int, None)', 'pad_token_id=get("bos_token_id", int, None)',
      "pad id read from bos_token_id"),
    M("gen-config", GENCFG, "sampling[name] = None if value is None else", "sampling[name] = None if True else",
      "generation_config's sampling settings all dropped"),
    # ---------------------------------------------------------------- tokenizer config
    M("tokenizer", TOK, "value = value.get(\"content\")", "value = value", "special tokens written as objects stay dicts"),
    M("tokenizer", TOK, "def decode(self, ids, skip_special_tokens: bool = False)",
      "def decode(self, ids, skip_special_tokens: bool = True)", "decode drops special tokens by default"),
    M("tokenizer", TOK, "            return text[len(done):]\n        return \"\"", "            return text\n        return \"\"",
      "streaming repeats text already emitted"),
    M("tokenizer", TOK, "if len(text) > len(done) and not text.endswith(REPLACEMENT):", "if len(text) > len(done):",
      "streaming emits half a character"),
    M("tokenizer", TOK, "if jinja_file is not None:", "if jinja_file is not None and template is None:",
      "tokenizer_config's template wins over chat_template.jinja"),
    M("tokenizer", TOK, 'template = named.get("default")', "template = template[0].get(\"template\")",
      "the first named template instead of 'default'"),
    M("tokenizer", TOK, 'for key in ("bos_token", "eos_token", "unk_token", "pad_token", "additional_special_tokens"):',
      'for key in ("bos_token", "eos_token", "unk_token", "additional_special_tokens"):',
      "pad_token not given to templates"),
    # ---------------------------------------------------------------- chat template environment
    M("template", TEMPLATE, "super().__init__(trim_blocks=True, lstrip_blocks=True,",
      "super().__init__(trim_blocks=False, lstrip_blocks=True,", "no trim_blocks"),
    M("template", TEMPLATE, "super().__init__(trim_blocks=True, lstrip_blocks=True,",
      "super().__init__(trim_blocks=True, lstrip_blocks=False,", "no lstrip_blocks"),
    M("template", TEMPLATE, "extensions=[_GenerationBlock, jinja2.ext.loopcontrols])",
      "extensions=[_GenerationBlock])", "no loop controls (break / continue)"),
    M("template", TEMPLATE, "def _tojson(x, ensure_ascii=False,", "def _tojson(x, ensure_ascii=True,",
      "tojson escapes non-ASCII text"),
    M("template", TEMPLATE, 'self.filters["tojson"] = _tojson', "pass", "Jinja's HTML-escaping tojson"),
    M("template", TEMPLATE, "return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)",
      "return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, sort_keys=sort_keys)",
      "tojson ignores separators"),
    M("template", TEMPLATE, 'self.globals["raise_exception"] = _raise_exception', "pass",
      "raise_exception undefined (the template's message is lost)"),
    M("template", TEMPLATE, "**{k: _plain(v) for k, v in variables.items() if v is not None},",
      "**{k: _plain(v) for k, v in variables.items()},",
      "a variable passed as None is defined (as None)"),
    # ---------------------------------------------------------------- loader safety
    M("loader", PATHS, "if not any(real == r or r in real.parents for r in roots):", "if False:",
      "checkpoint files may be symlinks leaving the checkpoint directory"),
    M("loader", PATHS, 'if PurePath(name).is_absolute() or ".." in PurePath(name).parts:',
      "if PurePath(name).is_absolute():", "'..' allowed in file names",
      equivalent="the resolved path is then checked against the directory anyway"),
    M("loader", PATHS, "return [real_repo] if real_repo in real.parents else", "return [real] if real_repo in real.parents else",
      "cache snapshots' symlinked files refused"),
    M("loader", LOADING, "if name not in shards[shard].tensors:", "if False:",
      "index naming the wrong shard for a tensor not checked"),
    M("loader", LOADING, "tied = same", "tied = True", "a stored head that differs from the embedding is ignored"),
    M("loader", LOADING, "if single is not None:  # transformers' order",
      "if single is not None and not (directory / INDEX_FILE).is_file():  # transformers' order",
      "the index wins over model.safetensors"),
    M("loader", ST, "if n > size - 8 or n > MAX_HEADER_BYTES:", "if n > size or n > MAX_HEADER_BYTES:",
      "header length checked against the file size, not what follows the 8 length bytes"),
    M("loader", ST, "for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):",
      "for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[2:]):", "overlap compared with the next-but-one tensor"),
    M("loader", ST, "        if b1 < e0:", "        if b1 + 2 < e0:", "overlaps of up to two bytes allowed"),
    M("loader", ST, "if not 0 <= begin <= end <= data_len:", "if not 0 <= begin <= end:",
      "offsets past the end of the data accepted"),
    M("loader", ST, "data_len = size - data_start", "data_len = size - 8", "data buffer size forgets the header"),
    # ---------------------------------------------------------------- models by Hub id
    M("hub", HUB, "if not isinstance(name_or_path, str) or exists:", "if not isinstance(name_or_path, str):",
      "a Hub id wins over an existing directory"),
    M("hub", HUB, "elif _COMMIT_HASH.fullmatch(revision):", "elif False:", "a commit hash revision not found"),
    M("hub", HUB, 'for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):', 'for var in ("HUGGINGFACE_HUB_CACHE",):',
      "HF_HUB_CACHE ignored"),
    M("hub", HUB, 'if _is_true(os.environ.get("HF_HUB_OFFLINE")) or', "if False or", "HF_HUB_OFFLINE ignored"),
    M("hub", HUB, '"tokenizer.json", "tokenizer_config.json", "chat_template.jinja",',
      '"tokenizer_config.json", "chat_template.jinja",', "the download leaves out tokenizer.json"),
    # ---------------------------------------------------------------- mixtures of experts
    M("moe", ROUTER, "    if normalize:", "    if False:", "no top-k renormalisation"),
    M("moe", TOPK, "        indices[row] = torch_cpu_topk_indices(values[row].tolist(), k)", "        pass",
      "ties broken lowest index first, not as torch.topk"),
    M("moe", TOPK, "    indices = order[:, :k]  #", "    indices = order[:, :k + 1]  #", "one expert too many per token"),
    M("moe", MOE, "    return gate * swiglu_mlp(x, w.shared_expert)", "    return swiglu_mlp(x, w.shared_expert)",
      "shared expert without its sigmoid gate"),
    M("moe", MOE, "        y[tokens] += weights.ravel()[mine, None] * out", "        y[tokens] = weights.ravel()[mine, None] * out",
      "an expert's output overwrites the others'"),
    M("moe", EXPERTS, '(("gate_proj", 0), ("up_proj", 1))', '(("gate_proj", 1), ("up_proj", 0))',
      "per-expert gate_proj and up_proj swapped when stacking"),
    M("moe", EXPERTS, "        files[name].read_into(stored(name), out[e, rows])",
      "        out[e, rows] = files[name].get_float32(stored(name))", "each expert read through a float32 copy"),
    M("moe", CONFIG, '"qwen3_moe": (128, 8, False, 768, 0)', '"qwen3_moe": (128, 8, True, 768, 0)',
      "Qwen3-MoE renormalises by default"),
    M("moe", CONFIG, "(layer_idx + 1) % self.decoder_sparse_step == 0", "layer_idx % self.decoder_sparse_step == 0",
      "decoder_sparse_step off by one"),
    M("moe", CONFIG, "norm_topk_prob=True if qwen35 else get(", "norm_topk_prob=get(", "Qwen3.5-MoE reads norm_topk_prob"),
    M("moe", "minillm/model/gated_deltanet.py", "    groups = qkvz.reshape(B, T, Hk, 2 * Dk + 2 * r * Dv)",
      "    groups = qkvz.reshape(B, T, 2 * Dk + 2 * r * Dv, Hk).swapaxes(-1, -2)",
      "Qwen3-Next's in_proj_qkvz groups read the wrong way round"),
    # issue 31: the guard on the new surfaces (tests/test_*_guard.py)
    M("hub", HUB, 'if ".." in revision.split("/") or revision.startswith("/") or', 'if ".." in revision.split("/") or',
      "issue 31: a revision @/absolute/path is not refused"),
    M("hub", PATHS, 'return path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--")',
      'return path.parent.name == "snapshots"', "issue 31: the models-- condition on a snapshots/ grandparent"),
    M("hub", HUB, "if not is_ref and (ref.exists() or ref.is_symlink()):", "if False:",
      "issue 31: a ref that is a FIFO or a device reaches snapshot_download"),
    M("training", "minillm/training/resume_checks.py", '"adam_step", path, 1 if step else 0, INT_MAX)',
      '"adam_step", path, -INT_MAX, INT_MAX)', "issue 31: resume accepts adam_step -1"),
    M("training", TRAINER, "        check_update(self.params, norm, self.step + 1, self._last_good)", "        pass",
      "issue 31: weights not checked after the update (a NaN checkpoint is saved)"),
    M("training", TRAINER, "grads[k] /= np.float32(cfg.accumulation)", "grads[k] *= np.float32(1)",
      "issue 31: gradient accumulation sums instead of averaging"),
    M("generation", "minillm/generation/speculative_checks.py", "    draft = draft[:max(0, max_tokens)]", "    pass",
      "issue 31: a drafter's extra drafts are not cut to max_tokens"),
]

# The tests to run first for each area (the rest of the suite follows).
AREA_TESTS = {
    "generation": ["test_speculative_guard.py", "test_behaviour_generation.py", "test_generation.py",
                   "test_speculative.py", "test_bad_input.py"],  # prompt lookup's switch; text given as ids
    "sampling": ["test_behaviour_generation.py", "test_sampling.py"],
    "chat": ["test_chat.py", "test_behaviour_cache.py", "test_cli.py"],  # the chat loop's errors are the CLI's
    "cache": ["test_behaviour_cache.py", "test_generation.py"],
    "rope": ["test_behaviour_config.py", "test_modules.py"],
    "config": ["test_behaviour_config.py", "test_config.py"],
    "gen-config": ["test_behaviour_generation.py", "test_generation.py"],
    "tokenizer": ["test_behaviour_text.py", "test_tokenizer.py"],
    "template": ["test_behaviour_text.py", "test_tokenizer.py"],
    "loader": ["test_behaviour_loader.py", "test_loader.py", "test_bad_input.py"],
    "hub": ["test_hub_guard.py", "test_hub.py"],
    "moe": ["test_moe_properties.py", "test_moe.py"],
    "cli": ["test_cli.py"],
    "training": ["test_resume_guard.py", "test_divergence_guard.py", "test_train_inputs_guard.py",
                 "test_training.py"],
}


sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants_fresh import fresh_mutations  # noqa: E402  (a sibling script, not a package)

FRESH: list[Mutation] = fresh_mutations(Mutation)
SETS = {"existing": MUTATIONS, "fresh": FRESH, "all": MUTATIONS + FRESH}


def copy_repository(dst: Path) -> None:
    """The tracked files (or, outside git, everything but caches and virtual environments)."""
    try:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()
                 and not {".git", ".venv", "__pycache__", "out"} & set(p.relative_to(ROOT).parts)]
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)


def test_files(repo: Path, area: str | None, skip: tuple[str, ...] = (), only: tuple[str, ...] = ()) -> list[str]:
    everything = sorted(p.name for p in (repo / "tests").glob("test_*.py") if p.name not in skip)
    if only:  # a mutant's own test files (or its area's, with --area-tests-only)
        return [f"tests/{t}" for t in everything if t in only]
    first = [t for t in AREA_TESTS.get(area, []) if t in everything]
    return [f"tests/{t}" for t in first + [t for t in everything if t not in first]]


def run_suite(repo: Path, area: str | None, timeout: float, verbose: bool,
              skip: tuple[str, ...] = (), only: tuple[str, ...] = ()) -> tuple[str, float, str]:
    """('killed' | 'survived' | 'timeout', seconds, the first failing test or '')."""
    env = {**os.environ, "PYTHONPATH": str(repo), "PYTHONDONTWRITEBYTECODE": "1", "CI": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *test_files(repo, area, skip, only)]
    start = time.perf_counter()
    try:
        run = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start, ""
    seconds = time.perf_counter() - start
    if verbose:
        print(run.stdout[-3000:], run.stderr[-2000:])
    failed = next((line.split(" ")[1] for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))), "")
    return ("survived" if run.returncode == 0 else "killed"), seconds, failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--area", help=f"only this area ({', '.join(sorted(AREA_TESTS))})")
    p.add_argument("--only", help="only mutations whose label contains this text (or one of several, a|b)")
    p.add_argument("--exclude", help="leave out mutations whose label contains this text (or one of several, a|b)")
    p.add_argument("--from", dest="start", type=int, default=1,
                   help="start at this mutation of the chosen ones (1-based; to continue a campaign)")
    p.add_argument("--timeout", type=float, default=600, help="seconds per suite run (a timeout counts as killed)")
    p.add_argument("--report", type=Path, help="also write the table as Markdown to this file")
    p.add_argument("--list", action="store_true", help="list the mutations and exit")
    p.add_argument("--skip", default="", help="test files to leave out, comma-separated (e.g. test_training.py); "
                   "re-run any survivor without it before calling it a survivor")
    p.add_argument("--set", choices=sorted(SETS), default="all",
                   help="existing: the list in this file; fresh: scripts/mutants_fresh.py; all (default): both")
    p.add_argument("--area-tests-only", action="store_true",
                   help="run each existing mutant against its area's test files only (fresh ones always run "
                        "their own): fast; re-run any survivor without it")
    p.add_argument("-v", "--verbose", action="store_true", help="show the tail of pytest's output")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so the temporary copy is removed when killed
    skip = tuple(filter(None, args.skip.split(",")))

    chosen = [m for m in SETS[args.set] if (not args.area or m.area == args.area)
              and (not args.only or any(o.lower() in m.label.lower() for o in args.only.split("|")))]
    chosen = [m for m in chosen[max(0, args.start - 1):]  # --from counts before --exclude
              if not (args.exclude and any(o.lower() in m.label.lower() for o in args.exclude.split("|")))]
    if args.list:  # also checks that every fragment is still found exactly once
        for i, m in enumerate(chosen, 1):
            found = (ROOT / m.file).read_text(encoding="utf-8").count(m.original)
            print(f"{i:3d} {m.area:<11} {m.file}: {m.label}" + (" (equivalent)" if m.equivalent else "")
                  + ("" if found == 1 else f"   STALE: fragment found {found} times"))
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="minillm-mutants-") as tmp:
        repo = Path(tmp)
        copy_repository(repo)
        wanted = {m: mutant_tests(m, args.area_tests_only) for m in chosen}
        baseline = () if not all(wanted.values()) else tuple(sorted(set().union(*wanted.values())))
        outcome, seconds, failed = run_suite(repo, None, 4 * args.timeout, args.verbose, skip, baseline)
        if outcome != "survived":
            print(f"the unmutated suite does not pass in the copy ({outcome}: {failed}); fix that first")
            return 2
        print(f"baseline: the {'tests used' if baseline else 'suite'} pass in {seconds:.0f} s; {len(chosen)} mutations"
              + (f"; leaving out {', '.join(skip)}" if skip else ""), flush=True)
        for i, m in enumerate(chosen, 1):
            path = repo / m.file
            source = path.read_text(encoding="utf-8")
            where = m.file
            if source.count(m.original) != 1:
                result, seconds, failed = "STALE", 0.0, f"fragment found {source.count(m.original)} times"
            else:
                where = f"{m.file}:{source[:source.index(m.original)].count(chr(10)) + 1}"
                path.write_text(source.replace(m.original, m.replacement), encoding="utf-8")
                try:
                    result, seconds, failed = run_suite(repo, m.area, args.timeout, args.verbose, skip, wanted[m])
                finally:
                    path.write_text(source, encoding="utf-8")
            if result == "survived" and m.equivalent:
                result = "equivalent"
            rows.append((m, result, seconds, failed, where))
            print(f"[{i:3d}/{len(chosen)}] {result.upper():<10} {seconds:5.0f} s  {m.area:<11} {m.label}"
                  + (f"  <- {failed}" if failed else ""), flush=True)

    table = format_table(rows)
    print("\n" + table)
    if args.report:
        args.report.write_text(table + "\n", encoding="utf-8")
    return 0


def mutant_tests(m: Mutation, area_only: bool) -> tuple[str, ...]:
    """The test files a mutant runs against: its own, else (with --area-tests-only) its area's; () = the suite."""
    return m.tests or (tuple(AREA_TESTS.get(m.area, ())) if area_only else ())


def format_table(rows) -> str:
    killed = sum(r[1] in ("killed", "timeout") for r in rows)
    equivalent = sum(r[1] == "equivalent" for r in rows)
    survived = [r for r in rows if r[1] == "survived"]
    stale = sum(r[1] == "STALE" for r in rows)
    scored = killed + len(survived)
    lines = ["| # | area | where | mutation | result | first failing test |", "|---|---|---|---|---|---|"]
    for i, (m, result, _, failed, where) in enumerate(rows, 1):
        note = f" ({m.equivalent})" if result == "equivalent" else ""
        lines.append(f"| {i} | {m.area} | `{where}` | {m.label}{note} | {result} | {failed.split('::')[-1] if failed else ''} |")
    lines.append("")
    lines.append(f"{len(rows)} mutations: {killed} killed, {len(survived)} survived, {equivalent} equivalent"
                 + (f", {stale} stale" if stale else "")
                 + (f"; {100 * killed / scored:.0f}% of the non-equivalent mutants killed" if scored else ""))
    if survived:
        lines.append("Survivors: " + "; ".join(r[0].label for r in survived))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
