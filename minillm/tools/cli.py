"""The ``minillm`` command: generate, chat, inspect, verify, bench, explain. ``python -m minillm`` works too.

Every command runs offline on the bundled tiny model by default; ``--model`` takes any Qwen2 / Qwen2.5 / Qwen3 /
Qwen3.5 / Qwen MoE checkpoint directory, or a Hub id such as ``Qwen/Qwen2.5-0.5B-Instruct`` (``@revision``
optional), read from the local Hugging Face cache (checkpoint/hub.py).

Every failure ends as one line on stderr, ``minillm: error: ...`` (naming the file, tensor, field or
argument), with exit status 1 (2 for a bad command line), never a traceback; warnings are one line each,
``minillm: warning: ...``. A write error on stdout (a full disk) is such an error too; a closed pipe
(``minillm generate ... | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path


from ..checkpoint.bundled import default_model_path
from ..checkpoint.hub import resolve_model_path
from ..errors import InputError, MinillmError, MinillmWarning
from ..training.schedule import SCHEDULES

BUNDLED_MODEL = default_model_path()  # the offline default (checkpoint/bundled.py)
MODEL_HELP = ("checkpoint directory, or Hub id org/name[@revision] from the local Hugging Face cache "
              "(default: the bundled tiny model, %(default)s)")


class OutputError(MinillmError):
    """stdout cannot be written (a full disk, a closed file)."""


class _Stdout:
    """sys.stdout while a command runs: a failed write becomes an OutputError, text that cannot be encoded
    (a lone surrogate in a file name) is written with backslash escapes instead of failing."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(self.stream, "encoding", None) or "utf-8"
            return self.stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"cannot write the output ({e.strerror or e})") from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"cannot write the output ({e.strerror or e})") from None

    def __getattr__(self, name):
        return getattr(self.stream, name)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in minillm's one-line format (and exit status 2)."""

    def error(self, message: str):
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(2, f"minillm: error: {command}{message} (see {self.prog} --help)\n")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = str(message) if issubclass(category, MinillmWarning) else f"{category.__name__}: {message}"
    print(f"minillm: warning: {text}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    real_stdout = sys.stdout
    sys.stdout = _Stdout(real_stdout)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            parser = build_parser()
            try:
                args = parser.parse_args(argv)
            except SystemExit:  # --help, or a bad command line (already reported on one line)
                sys.stdout.flush()
                raise
            if not getattr(args, "command", None):
                parser.print_usage(sys.stderr)
                print(f"minillm: error: choose a command: {', '.join(COMMANDS)}", file=sys.stderr)
                return 2
            code = args.run(args) or 0
            sys.stdout.flush()  # a write error surfaces here, not in the interpreter's exit
            return code
    except MinillmError as e:
        print(f"minillm: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, and keep the exit quiet too
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), real_stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 0
    finally:
        sys.stdout = real_stdout


COMMANDS = ("generate", "chat", "inspect", "verify", "bench", "explain")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="minillm", description="Qwen inference in pure NumPy.")
    sub = p.add_subparsers(dest="command")

    def model_arg(sp):
        sp.add_argument("--model", default=BUNDLED_MODEL, help=MODEL_HELP)
        sp.add_argument("--adapter", help="a PEFT LoRA adapter directory to apply (e.g. a finetune run's adapter/)")

    def sampling_args(sp):
        g = sp.add_argument_group("decoding (unset values come from the checkpoint's generation_config.json)")
        g.add_argument("--max-new-tokens", type=int, default=64)
        g.add_argument("--temperature", type=float, help="0 = greedy")
        g.add_argument("--top-k", type=int)
        g.add_argument("--top-p", type=float)
        g.add_argument("--min-p", type=float)
        g.add_argument("--repetition-penalty", type=float)
        g.add_argument("--seed", type=int, help="seed for reproducible sampling")
        g.add_argument("--system", help="system message (with --chat / in chat)")
        g.add_argument("--thinking", choices=["on", "off"],
                       help="Qwen3 / Qwen3.5: enable_thinking (default: the template's; Qwen3.5 thinks by default)")
        g.add_argument("--speculative", type=int, metavar="K",
                       help="speculative decoding by prompt lookup: draft up to K tokens copied from earlier in the "
                            "text, check them in one pass (same greedy output; faster when the answer repeats its "
                            "input). transformers' prompt_lookup_num_tokens")
        g.add_argument("--ngram-size", type=int, metavar="N",
                       help="with --speculative: match the last N tokens (then fewer) when looking up (default 2)")
        g.add_argument("--draft-schedule", choices=["adaptive", "constant"], default="adaptive",
                       help="with --speculative: check only as many drafted tokens as pay for the longer pass, "
                            "learned while decoding (adaptive, the default), or every drafted token (constant)")

    g = sub.add_parser("generate", help="continue a prompt, streaming the text")
    g.add_argument("prompt")
    model_arg(g)
    sampling_args(g)
    g.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template as a user turn")
    g.set_defaults(run=cmd_generate)

    c = sub.add_parser("chat", help="interactive multi-turn chat (reads stdin; /reset, Ctrl-D)")
    model_arg(c)
    sampling_args(c)
    c.add_argument("--context", type=int, help="positions the conversation may take; when it would not fit, the "
                   "oldest turns are dropped (default: the model's max_position_embeddings, what it was trained on)")
    c.add_argument("--image", action="append", default=[], metavar="PATH",
                   help="an image for the first message (Qwen3.5 with a vision tower; repeatable); "
                        "/image PATH attaches one inside the chat")
    c.set_defaults(run=cmd_chat)

    i = sub.add_parser("inspect", help="config, parameter counts, tensors and memory of a checkpoint")
    i.add_argument("path", nargs="?", default=BUNDLED_MODEL, help=MODEL_HELP)
    i.add_argument("--tensors", type=int, default=40, help="list at most this many tensors (0: all)")
    i.set_defaults(run=cmd_inspect)

    v = sub.add_parser("verify", help="layer-by-layer error table against a reference .npz")
    v.add_argument("path", help="checkpoint directory or Hub id org/name[@revision]")
    v.add_argument("reference", type=Path)
    v.add_argument("--tolerance", type=float, help="relative error allowed (default 1e-4; 1e-3 for Qwen3.5, whose "
                                                    "float32 reference is itself good to about 1e-4)")
    v.set_defaults(run=cmd_verify)

    tr = sub.add_parser("train", help="train a Qwen model in NumPy from a recipe (resumable)")
    tr.add_argument("--config", type=Path, required=True, help="recipe JSON: model config + training settings")
    tr.add_argument("--out", type=Path, required=True, help="run directory (checkpoint/, log.jsonl, loss_curve.png)")
    tr.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    tr.add_argument("--max-steps", type=int, help="stop after this many more steps (the schedule is unchanged)")
    for name, kind in (("steps", int), ("batch-size", int), ("context", int), ("accumulation", int), ("lr", float),
                       ("min-lr", float), ("warmup", int), ("decay-steps", int), ("weight-decay", float),
                       ("clip", float), ("eval-every", int), ("save-every", int), ("seed", int), ("train-tokens", str),
                       ("val-tokens", str), ("tokenizer", str)):
        tr.add_argument(f"--{name}", type=kind, help="overrides the recipe")
    tr.add_argument("--dtype", choices=["bf16", "f32"], help="of the saved weights (overrides the recipe)")
    tr.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule (overrides the recipe); "
                    "wsd: the peak until the last --decay-steps, so --steps can change on --resume")
    tr.add_argument("--allow-schedule-change", action="store_true", help="with --resume: continue even when the "
                    "new settings give the steps already trained other learning rates (the rate jumps)")
    from ..training.distributed import add_data_parallel_flags
    add_data_parallel_flags(tr)
    tr.set_defaults(run=cmd_train)

    e = sub.add_parser("explain", help="write an interactive HTML page: attention, logit lens, next token, ...")
    e.add_argument("prompt")
    model_arg(e)
    e.add_argument("-o", "--output", type=Path, default=Path("explain.html"), help="the page (default %(default)s)")
    e.add_argument("--generate", type=int, default=0, metavar="N", help="also show N greedily generated tokens")
    e.set_defaults(run=cmd_explain)

    from .bench import add_bench_arguments  # the benchmark's options live with the benchmark
    add_bench_arguments(sub.add_parser("bench", help="load, prefill and decode speed vs this machine's floors"))
    from ..training.finetune import add_finetune_arguments  # `finetune` and `merge` live with the fine-tuning
    add_finetune_arguments(sub)
    return p


# ----------------------------------------------------------------------------------------------------------


def load(name: str | Path, with_tokenizer: bool = True, adapter: str | None = None):
    """Model and tokenizer (or None), with a progress line on stderr for large checkpoints."""
    from ..checkpoint.loading import CheckpointWarning, load_model
    from ..text.tokenizer import load_tokenizer

    path = resolve_model_path(name)  # a directory, or a Hub id found in (or downloaded to) the HF cache
    label = path.name if path == Path(name).expanduser() else str(name)  # a snapshot's name is a commit hash
    size = _weights_size(path)
    show = size > 50_000_000
    start = time.perf_counter()

    def progress(done, total):
        if show:
            print(f"\rloading {label}: {done}/{total} tensors", end="", file=sys.stderr, flush=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CheckpointWarning)
        model = load_model(path, progress, adapter=adapter)
    for w in caught:
        print(f"minillm: warning: {w.message}", file=sys.stderr)
    if show:
        print(f"\rloaded {label} in {time.perf_counter() - start:.1f} s" + " " * 20, file=sys.stderr)
    return model, (load_tokenizer(path) if with_tokenizer else None)


def _weights_size(path: Path) -> int:
    """Bytes of the safetensors files (to decide whether to draw a progress line); 0 when unknown."""
    try:
        return sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))
    except (OSError, ValueError, RuntimeError):  # the loader reports what is wrong with the path
        return 0


def sampling_kwargs(args) -> dict:
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                repetition_penalty=args.repetition_penalty, seed=args.seed,
                prompt_lookup_num_tokens=args.speculative,
                max_matching_ngram_size=args.ngram_size if args.speculative is not None else None,  # (warned)
                draft_schedule=args.draft_schedule)


def thinking(args):
    return None if args.thinking is None else args.thinking == "on"


def warn_ignored_flags(args, tok) -> None:
    """A flag that would change nothing is named in a warning, never silently dropped."""
    from ..text.chat_template import template_variables

    if args.ngram_size is not None and args.speculative is None:  # as transformers: the draft length is the switch
        warnings.warn(f"--ngram-size {args.ngram_size} does nothing without --speculative K (prompt lookup drafts "
                      f"only when told how many tokens to draft); decoding plainly", MinillmWarning)
    chat = args.command == "chat" or args.chat
    for flag, value in (("--system", args.system), ("--thinking", args.thinking)):
        if value is not None and not chat:
            warnings.warn(f"{flag} is ignored without --chat: it goes into the chat template, and without --chat "
                          f"the prompt is continued as plain text", MinillmWarning)
    if chat and args.thinking is not None and tok.chat_template is not None \
            and "enable_thinking" not in template_variables(tok.chat_template):
        warnings.warn(f"--thinking {args.thinking} is ignored: the chat template of {args.model} has no "
                      f"enable_thinking switch (the model was not trained to think)", MinillmWarning)


def stream_text(model, tok, ids: list[int], args) -> tuple[list[int], dict]:
    """Generate after ``ids``, printing text as it is made. Returns the new ids and timing figures."""
    from ..generation.generate import stream_generate
    from ..generation.speculative import SpeculativeStats

    out = sys.stdout
    decoder = tok.stream_decoder(skip_special_tokens=True)  # no <|im_end|> in the printed text
    new: list[int] = []
    t0 = time.perf_counter()
    t_first = None
    kwargs = sampling_kwargs(args)
    speculative = SpeculativeStats() if kwargs["prompt_lookup_num_tokens"] is not None else None
    for token in stream_generate(model, ids, args.max_new_tokens, speculative_stats=speculative, **kwargs):
        if t_first is None:
            t_first = time.perf_counter()
        new.append(int(token[0]))
        out.write(decoder.step(int(token[0])))
        out.flush()
    out.write(decoder.flush())
    out.flush()
    t_end = time.perf_counter()
    stats = {"prompt_tokens": len(ids), "new_tokens": len(new),
             "prefill_s": (t_first or t_end) - t0, "decode_s": t_end - (t_first or t_end)}
    if speculative is not None:
        stats.update(drafted=speculative.drafted, acceptance_rate=speculative.acceptance_rate,
                     tokens_per_pass=speculative.tokens_per_pass, plain_steps=speculative.plain_steps,
                     passes=speculative.forward_passes)
    return new, stats


def print_stats(stats: dict) -> None:
    """One line on stderr; a rate only where something was timed (no prefill ran for 0 new tokens, and the first
    new token comes out of the prefill, so 1 new token has no decode step)."""
    pre = stats["prompt_tokens"] / stats["prefill_s"] if stats["prefill_s"] > 0 else float("inf")
    n_dec = max(stats["new_tokens"] - 1, 0)
    dec = n_dec / stats["decode_s"] if stats["decode_s"] > 0 else float("inf")
    print(f"[{stats['prompt_tokens']} prompt tokens, {stats['new_tokens']} new tokens"
          + (f" | prefill {pre:.1f} tok/s ({stats['prefill_s'] * 1000:.0f} ms)" if stats["new_tokens"] else "")
          + (f" | decode {dec:.1f} tok/s" if n_dec else "")
          + (f" | speculative: {stats['acceptance_rate']:.0%} of {stats['drafted']} drafted tokens accepted, "
             f"{stats['tokens_per_pass']:.2f} tokens per pass, {stats['plain_steps']} of {stats['passes']} passes "
             f"without a draft" if "drafted" in stats else "") + "]", file=sys.stderr)


def cmd_generate(args) -> int:
    model, tok = load(args.model, adapter=args.adapter)
    warn_ignored_flags(args, tok)
    if args.chat:
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
                   [{"role": "user", "content": args.prompt}]
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, enable_thinking=thinking(args),
                                      tokenize=True)
    else:
        ids = tok.encode(args.prompt)
    if not ids:
        raise MinillmError("the prompt encodes to no tokens; give some text")
    _, stats = stream_text(model, tok, ids, args)
    sys.stdout.write("\n")  # the text ends its line (the figures go to stderr)
    print_stats(stats)
    return 0


def cmd_chat(args) -> int:
    """An interactive multi-turn chat; the KV cache is kept across turns (see chat.py)."""
    from ..generation.chat import ChatSession, ConversationTooLong

    model, tok = load(args.model, adapter=args.adapter)
    warn_ignored_flags(args, tok)
    settings = dict(system=args.system, capacity=args.context, enable_thinking=thinking(args))
    if args.image or getattr(model, "vision", None) is not None:  # a model that sees (minillm/vision/session.py)
        from ..vision.chat import load_processor
        from ..vision.session import VisionChatSession
        session = VisionChatSession(model, tok, load_processor(model.path), **settings)
        for image in args.image:
            session.attach(image)
    else:
        session = ChatSession(model, tok, **settings)
    interactive = sys.stdin.isatty()
    if interactive:
        print("minillm chat: type a message; /reset starts over; "
              + ("/image PATH attaches a picture; " if hasattr(session, "attach") else "") + "Ctrl-D quits.",
              file=sys.stderr)
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:  # Ctrl-D / end of the pipe
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if text.strip() == "/reset":
            session.reset()
            print("[conversation reset]", file=sys.stderr)
            continue
        if text.strip().startswith("/image"):
            path = text.strip()[len("/image"):].strip()
            try:
                if not hasattr(session, "attach"):
                    raise InputError(f"{args.model}: this model has no vision tower, so /image cannot be used")
                session.attach(path)
                print(f"[image attached to your next message: {path}]", file=sys.stderr)
            except MinillmError as e:  # a wrong path or a corrupt file: say so and keep chatting
                print(f"minillm: error: {e}", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        try:
            for piece in session.send(text, args.max_new_tokens, **sampling_kwargs(args)):
                sys.stdout.write(piece)
                sys.stdout.flush()
        except ConversationTooLong as e:  # this turn's error; the conversation goes on (/reset, a shorter message)
            print(f"minillm: error: {e}", file=sys.stderr)
            continue
        print()
        turn = session.last_turn
        if turn.get("dropped_turns"):  # a chat with images keeps every turn (vision/session.py)
            print(f"[dropped the oldest {turn['dropped_turns']} turn(s) to fit the context of "
                  f"{session.cache.capacity} tokens]", file=sys.stderr)
        if interactive:
            print(f"[{turn['prompt_tokens']} prompt tokens ({turn['reused_tokens']} from the cache), "
                  f"{turn['new_tokens']} new tokens, {time.perf_counter() - t0:.2f} s]", file=sys.stderr)
    return 0


def cmd_inspect(args) -> int:
    from ..checkpoint.config import load_config
    from ..checkpoint.experts import per_expert_sources
    from ..checkpoint.loading import check_layer_count, language_model_tensors, open_checkpoint
    from ..checkpoint.weights import expected_shapes, parameter_counts
    from ..model.cache import kv_bytes_per_token, linear_state_bytes

    if args.tensors < 0:
        raise InputError(f"--tensors must be >= 0 (0 lists all), found {args.tensors}")
    path = resolve_model_path(args.path)
    cfg = load_config(path)
    files = open_checkpoint(path)
    lm_files, stored, _ = language_model_tensors(files)  # Qwen3.5 Hub files: the LM is model.language_model.*
    check_layer_count(lm_files, cfg, path)
    c = cfg
    print(f"{args.path}" + (f" ({path})" if str(path) != str(args.path) else ""))
    print(f"  model_type {c.model_type}: L={c.num_hidden_layers} layers, D={c.hidden_size}, "
          f"H={c.num_attention_heads} query heads, K={c.num_key_value_heads} KV heads (groups of {c.n_rep}), "
          f"Dh={c.head_dim}, F={c.intermediate_size}, V={c.vocab_size}")
    print(f"  RoPE {c.rope.rope_type} theta={c.rope.theta:g}" + (f" factor={c.rope.factor:g}" if
                                                                  c.rope.rope_type != "default" else "")
          + (f" on R={c.rotary_dim} of Dh={c.head_dim} dims" if c.rotary_dim != c.head_dim else "")
          + f"; rms_norm_eps={c.rms_norm_eps:g}; max_position_embeddings={c.max_position_embeddings}")
    if c.is_hybrid:
        n_linear = sum(map(c.is_linear_attention, range(c.num_hidden_layers)))
        print(f"  layers {layer_pattern(c.layer_types)}: {n_linear} linear attention (Gated DeltaNet), "
              f"{c.num_hidden_layers - n_linear} full attention (with output gate)")
        print(f"  linear attention: Hk={c.linear_num_key_heads} key heads, Hv={c.linear_num_value_heads} value "
              f"heads, Dk={c.linear_key_head_dim}, Dv={c.linear_value_head_dim}, conv kernel "
              f"W={c.linear_conv_kernel_dim} over C={c.linear_conv_channels} channels; norms zero-centred (1 + w)")
    if c.is_moe:
        moe_layers = [i for i in range(c.num_hidden_layers) if c.is_moe_layer(i)]
        dense = [i for i in range(c.num_hidden_layers) if i not in moe_layers]
        print(f"  mixture of experts in {len(moe_layers)} of {c.num_hidden_layers} layers"
              + (f" (dense MLP F={c.intermediate_size} in layers {dense})" if dense else "")
              + f": E={c.num_experts} experts of width Fe={c.moe_intermediate_size}, k={c.num_experts_per_tok} "
              f"per token, weights {'renormalised' if c.norm_topk_prob else 'not renormalised'}"
              + (f"; a shared expert of width Fs={c.shared_expert_intermediate_size} behind a sigmoid gate"
                 if c.shared_expert_intermediate_size else ""))
    print(f"  q/k/v bias {c.qkv_bias}, o_proj bias {c.o_proj_bias}, q/k-norm {c.qk_norm}, "
          f"tied embeddings {c.tie_word_embeddings}, sliding window {c.sliding_window}, "
          f"stored dtype {c.dtype}, eos {list(c.eos_token_ids)}")

    expected = expected_shapes(c, with_lm_head=(not c.tie_word_embeddings) or "lm_head.weight" in lm_files)
    used = {stored(n): shape for n, shape in expected.items()}
    per_expert, _ = per_expert_sources(lm_files, expected, stored)  # experts stored one tensor per expert
    used.update({stored(part): None for parts in per_expert.values() for _, _, part in parts})
    from ..vision.encoder import vision_shapes
    from ..vision.tower import usable_vision_config
    vision = usable_vision_config(path, c)  # Qwen3.5's vision tower, when minillm runs it (minillm/vision)
    if vision is not None and any(n.startswith("model.visual.") for n in files):
        v = vision[0]
        used.update(vision_shapes(v))
        print(f"  vision tower: {v.depth} blocks, Dv={v.hidden_size}, Hv={v.num_heads}, Fv={v.intermediate_size}, "
              f"patch {v.patch_size} x {v.patch_size} x {v.temporal_patch_size} frames, merge "
              f"{v.spatial_merge_size} x {v.spatial_merge_size} -> D={v.out_hidden_size}")
    groups: dict[str, int] = {}
    for name in files:
        info = files[name].tensors[name]
        n = math.prod(info.shape)
        part = (("vision" if name in used else "vision (unused)") if name.startswith("model.visual.") else "mtp (unused)" if name.startswith("mtp.")
                else "embedding" if "embed_tokens" in name else "lm_head" if name.startswith("lm_head") else
                "attention" if "self_attn" in name else "linear attn" if "linear_attn" in name else
                "experts" if ".mlp.experts." in name else "shared expert" if ".mlp.shared_expert" in name else
                "router" if name.endswith(".mlp.gate.weight") else
                "mlp" if ".mlp." in name else "norms" if "norm" in name else "other")
        groups[part] = groups.get(part, 0) + n
    total = sum(groups.values())
    print("\n  parameters by component:")
    for part, n in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"    {part:<15} {n:>14,}  {100 * n / total:5.1f}%")
    print(f"    {'total':<15} {total:>14,}  (stored in {len({id(f) for f in files.values()})} file(s))")
    f32 = 4 * sum(math.prod(s) for s in expected.values())
    if c.tie_word_embeddings and "lm_head.weight" not in lm_files:
        print("    (lm_head is tied to the embedding: no extra memory)")
    if c.is_moe:
        total, active = parameter_counts(c)
        print(f"    language model {total:,} parameters in all, {active:,} active per token "
              f"({100 * active / total:.1f}%): each token runs through {c.num_experts_per_tok} of the {c.num_experts} "
              f"experts of a MoE layer")
    print(f"\n  memory in float32: {f32 / 1e9:.3f} GB of weights; KV cache "
          f"{kv_bytes_per_token(c) / 1024:.1f} KiB per token" + (
              f" (full-attention layers only) + linear-attention state {linear_state_bytes(c) / 2 ** 20:.2f} MiB "
              f"per sequence, the same at any context length" if c.is_hybrid else ""))

    names = list(files)
    shown = names if args.tensors == 0 else names[:args.tensors]
    print(f"\n  tensors ({len(names)}):")
    for name in shown:
        info = files[name].tensors[name]
        flag = "" if name in used else "   (not used)"
        print(f"    {name:<52} {info.dtype:<5} {list(info.shape)}{flag}")
    if len(shown) < len(names):
        print(f"    ... {len(names) - len(shown)} more (--tensors 0 lists all)")
    return 0


def cmd_verify(args) -> int:
    from .verify import compare_to_reference, format_error_table, load_reference

    if args.tolerance is not None and (not math.isfinite(args.tolerance) or args.tolerance < 0):
        raise InputError(f"--tolerance must be a number >= 0, found {args.tolerance}")
    model, _ = load(args.path, with_tokenizer=False)
    rows = compare_to_reference(model, load_reference(args.reference))
    if args.tolerance is None:  # not given (an explicit 0 stays 0)
        tolerance = 1e-3 if model.config.is_hybrid else 1e-4
    else:
        tolerance = args.tolerance
    print(format_error_table(rows, tolerance))
    worst = max(r.rel_error for r in rows)
    ok = worst <= tolerance
    print(f"\n{'OK' if ok else 'FAILED'}: worst relative error {worst:.2e} (tolerance {tolerance:g})")
    return 0 if ok else 1


def cmd_explain(args) -> int:
    from ..explain import explain

    model, tok = load(args.model)
    page = explain(model, tok, args.prompt, generate=args.generate).save(args.output)
    print(f"wrote {page} ({page.stat().st_size / 1e6:.2f} MB): open it in a browser, no network needed")
    return 0


def cmd_train(args) -> int:
    from ..checkpoint.jsonfile import read_json_object
    from ..training.distributed import DataParallel, world
    from ..training.trainer import TrainConfig, Trainer

    def recipe() -> TrainConfig:  # read by rank 0 alone (a bad one is reported once), then sent to every rank
        raw = read_json_object(args.config, InputError)
        for key in ("steps", "batch_size", "context", "accumulation", "lr", "min_lr", "warmup", "decay_steps",
                    "weight_decay", "clip", "eval_every", "save_every", "seed", "train_tokens", "val_tokens",
                    "tokenizer", "dtype", "schedule"):
            if getattr(args, key) is not None:
                raw[key] = getattr(args, key)
        return TrainConfig.from_dict(raw, source=str(args.config))

    comm = world()  # `mpiexec -n N minillm train ...`: this is one of N ranks; else the process alone
    with comm.failure_stops_every_rank():  # under mpiexec: an error here ends every rank, naming this one
        cfg = comm.broadcast_object(recipe() if comm.rank == 0 else None)
        parallel = DataParallel(comm, zero1=args.zero1, bucket_mb=args.bucket_mb)
        trainer = Trainer(cfg, args.out, resume=args.resume, parallel=parallel,
                          allow_schedule_change=args.allow_schedule_change)
        trainer.run(max_steps=args.max_steps)
    if comm.rank == 0:
        curve = args.out / "loss_curve.png"
        print(f"step {trainer.step}/{cfg.steps}: checkpoint in {args.out / 'checkpoint'}"
              + (f", loss curve in {curve}" if trainer.step == cfg.steps and curve.is_file() else ""))
        if trainer.step == cfg.steps and cfg.samples:  # the recipe asks to see what the finished run writes
            from ..training.samples import write_samples
            print("\n" + write_samples(trainer), end="")
    return 0


def layer_pattern(layer_types: tuple[str, ...]) -> str:
    """The shortest repeating block: "[linear, linear, linear, full] x 6"."""
    short = [t.split("_")[0] for t in layer_types]
    n = len(short)
    period = next(p for p in range(1, n + 1) if n % p == 0 and short == short[:p] * (n // p))
    return f"[{', '.join(short[:period])}] x {n // period}"


if __name__ == "__main__":
    sys.exit(main())
