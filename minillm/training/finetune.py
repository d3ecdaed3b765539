"""Supervised fine-tuning of a real checkpoint on chat data: LoRA (default) or every weight (--full).

    minillm finetune --model Qwen/Qwen3-0.6B --data chats.jsonl --out run/ [--lora-rank 16 --lora-alpha 32
                     --target q,k,v,o,gate,up,down | --full]

    conversations (JSONL) -> chat template -> ids + assistant-only labels (chat_data.py)
    held out: the last eval_fraction of them (shuffled once with the seed), or --eval-data
    for step in range(steps):
        batch  = batch_size conversations drawn at random, right-padded       [B, T], labels -100 on padding
        loss, grads = loss_and_grads(model, ids, labels)   LoRA: the adapter's tensors only (base frozen)
        clip_grad_norm(grads, clip); adamw_step(params, grads, lr)   warmup + cosine (schedule.py)

A run directory OUT holds:
    finetune.json          the settings
    checkpoint/            adapter/ (PEFT files) or model/ (a full F32 checkpoint), and trainer_state/
                           {optimizer.safetensors, state.json}: written whole or not at all; --resume continues it
    adapter/ or model/     the result at the end: ``minillm chat --model BASE --adapter OUT/adapter``
    log.jsonl              one line per step, with the held-out loss every eval_every steps
    loss_curve.png         at the end (needs matplotlib)

Resuming restores the adapter (or the F32 weights), both AdamW moments, the step and the sampler's random state,
so a resumed run continues exactly where the checkpoint was written. What it reads back is checked as the
trainer's resume checks it (resume_checks.py: state.json's fields, log.jsonl's lines, the moments' names and
shapes against the weights trained), so a damaged file is refused naming the file and the field.

On N processes (``mpiexec -n N minillm finetune ...``, ``parallel=DataParallel(world())``, training/distributed.py,
as `minillm train`): every rank draws the same batch_size conversations and pads and trains ITS rows of them
(``rows``), weighs its gradient by its share of the batch's scored tokens (``token_shares``: the -100 labels of
prompts and padding are not counted), and ``update`` sums the trained tensors' gradients (with LoRA the adapter's
alone: the frozen base has none) before the same AdamW step on every rank. Rank 0 alone evaluates, logs and
saves; a resume may change N; --zero1 shards the moments. Alone, ``parallel`` changes nothing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..backward.transformer import loss_and_grads
from ..checkpoint.adapter import attach_lora, load_adapter, save_adapter
from ..checkpoint.loading import CheckpointWarning, load_model
from ..checkpoint.saving import save_model_dir, write_safetensors
from ..checkpoint.weights import named_tensors
from ..errors import CheckpointError, InputError, TrainingError
from ..text.tokenizer import load_tokenizer
from ..training.loss import cross_entropy
from .adamw import AdamWState
from .chat_data import encode_conversations, pad_batch, read_conversations
from ..backward.memory import check_activation_memory
from .distributed import DataParallel, add_data_parallel_flags
from .divergence import check_outputs, check_update
from .run_dir import check_run_dir
from .schedule import learning_rate
from .resume_checks import MOMENTS_FILE, STATE_FILE, keep_log_until, read_moments, read_settings, read_state, run_file
from .trainer import run_steps

BETAS, EPS = (0.9, 0.999), 1e-8  # AdamW's moment decays and denominator guard: torch.optim.AdamW's defaults


@dataclass
class FinetuneConfig:
    """Every setting of a fine-tuning run (the command's flags)."""

    model: str  # the base checkpoint: a directory or a Hub id
    data: str  # JSONL conversations
    eval_data: str | None = None  # held-out conversations; default: eval_fraction of ``data``
    eval_fraction: float = 0.1
    full: bool = False  # train every weight instead of a LoRA adapter
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    use_rslora: bool = False
    target: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                       "up_proj", "down_proj"])
    steps: int = 100
    batch_size: int = 4
    max_length: int = 1024
    lr: float | None = None  # default: 2e-4 for LoRA, 1e-5 for full fine-tuning
    warmup: int = 10
    weight_decay: float = 0.0
    clip: float = 1.0
    eval_every: int = 20
    save_every: int = 50
    seed: int = 0
    gradient_checkpointing: bool = False

    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-5 if self.full else 2e-4)

    def check(self) -> None:
        for name in ("steps", "batch_size", "max_length", "eval_every", "save_every", "lora_rank"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"finetune: {name} must be a positive integer, found {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise InputError(f"finetune: seed must be a non-negative integer, found {self.seed!r}")
        if not (0.0 <= self.eval_fraction < 1.0):
            raise InputError(f"finetune: eval_fraction must be in [0, 1), found {self.eval_fraction!r}")
        if self.learning_rate() <= 0 or not math.isfinite(self.learning_rate()):
            raise InputError(f"finetune: lr must be a positive number, found {self.lr!r}")


class Finetuner:
    """A fine-tuning run: the model (with its adapter), the data, the optimizer, the step."""

    def __init__(self, cfg: FinetuneConfig, out: str | Path, resume: bool = False, progress: bool = True,
                 parallel: DataParallel | None = None):
        cfg.check()
        self.dp = parallel or DataParallel()  # one process, unless `mpiexec -n N` (cmd_finetune: world())
        self.cfg, self.out, self.progress = cfg, Path(out), progress and self.dp.is_root
        check_run_dir(self.out)  # a file, /dev/null, a NUL byte, ...: refused before anything is read or written
        ckpt = self.out / "checkpoint"
        self.rows = self.dp.rows(cfg.batch_size)  # this rank's rows of each batch (None: all of them)
        root = self.dp.is_root  # rank 0 alone checks and writes the run directory; the others get its state (dp.start)
        if resume and root:
            if not ckpt.is_dir():
                raise TrainingError(f"{self.out}: nothing to resume (no checkpoint/ directory)")
            saved = read_settings(run_file(self.out, "finetune.json"))
            for key in ("model", "data", "full", "seed", "batch_size", "max_length", "eval_data", "eval_fraction"):
                if saved.get(key) != asdict(cfg)[key]:
                    raise TrainingError(f"{ckpt}: cannot resume: {key} differs from the saved run "
                                        f"(saved {saved.get(key)!r}, now {asdict(cfg)[key]!r})")
            state = read_state(run_file(self.out, STATE_FILE), cfg.steps, counters=("tokens",),
                               recipe=False)  # before the model is loaded
        elif root and not resume and self.out.exists() and any(self.out.iterdir()):
            raise TrainingError(f"{self.out}: directory is not empty; use --resume to continue that run, "
                                f"or choose a new directory")

        if not root:
            self.dp.comm.barrier()  # a Hub id: rank 0 downloads it once (just below), then the others read its cache
        self.tokenizer = load_tokenizer(_base_dir(cfg.model))
        if root:
            self.dp.comm.barrier()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CheckpointWarning)  # a stored tied head, ...: not the user's concern here
            if resume and cfg.full and root:
                self.model = load_model(ckpt / "model")
                self.model.path = _base_dir(cfg.model)
            else:
                self.model = load_model(cfg.model)
        if cfg.full:
            self.params = named_tensors(self.model.weights)  # every weight, the model's own arrays
        else:
            spec = (cfg.lora_rank, cfg.lora_alpha, cfg.target, cfg.lora_dropout, cfg.use_rslora)
            if resume and root:
                adapter = load_adapter(self.model, ckpt / "adapter")
                c = adapter.config
                spec = (c.r, c.lora_alpha, c.target_modules, c.lora_dropout, c.use_rslora)
            # On N ranks, the adapter rank 0 has (a resumed run's, as saved) is the one every rank attaches; its
            # values are rank 0's too (dp.start, below)
            spec = self.dp.comm.broadcast_object(spec)
            if not (resume and root):
                adapter = attach_lora(self.model, *spec, seed=cfg.seed)
            self.params = adapter.tensors()  # the adapter's arrays, updated in place
        self.pad_id = self.model.config.eos_token_ids[0] if self.model.config.eos_token_ids else 0
        self.max_length = min(cfg.max_length, self.model.config.max_position_embeddings)  # the model's context
        self.train_set, self.eval_set = self._data()
        longest = max((len(ex.ids) for ex in self.train_set), default=1)  # a batch: padded to its longest
        check_activation_memory(self.model.config, cfg.batch_size, longest)  # before a step allocates [B, T]
        if resume and root:
            self._restore(state)
        else:
            if root:
                try:
                    self.out.mkdir(parents=True, exist_ok=True)
                except OSError as e:  # /proc/self/run, a dangling symlink: what check_run_dir cannot foresee
                    raise InputError(f"run directory (--out) {self.out}: cannot be created "
                                     f"({e.strerror or e})") from None
                (self.out / "finetune.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n", encoding="utf-8")
            self.opt, self.rng, self.step, self.elapsed = AdamWState(), np.random.default_rng(cfg.seed), 0, 0.0
            self.tokens = 0
        # rank 0's trained tensors, moments, sampler and counters on every rank (alone: nothing changes)
        self.opt, (self.step, self.elapsed, self.tokens) = self.dp.start(self.params, self.opt, self.rng,
                                                                          (self.step, self.elapsed, self.tokens))

    def _data(self):
        cfg = self.cfg
        conversations = read_conversations(cfg.data)
        if cfg.eval_data:
            held = read_conversations(cfg.eval_data)
        else:
            order = np.random.default_rng(cfg.seed).permutation(len(conversations))
            n_eval = int(len(conversations) * cfg.eval_fraction)
            held = [conversations[i] for i in order[len(order) - n_eval:]]
            conversations = [conversations[i] for i in order[:len(order) - n_eval]]
        train = encode_conversations(self.tokenizer, conversations, self.max_length, cfg.data)
        test = encode_conversations(self.tokenizer, held, self.max_length, cfg.eval_data or cfg.data) if held else []
        return train, test

    # -- saving and resuming ------------------------------------------------------------------------------

    def save(self) -> Path | None:
        """OUT/checkpoint/, whole or not at all: the adapter (or model), the optimizer and the state."""
        probe = np.asarray(self.train_set[0].ids[:32])[None]  # [1, T]: what a load would compute
        check_outputs(self.model, probe, self.step, lambda: str(self.out / "checkpoint"))  # every rank alike
        moments = self.dp.moments_to_save(self.params, self.opt)  # every rank takes part (ZeRO-1: shards to rank 0)
        if not self.dp.is_root:
            return self.dp.comm.barrier()  # wait while rank 0 writes: nothing here can cut its write short
        final = self.out / "checkpoint"
        tmp = self.out / f"checkpoint.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.cfg.full:
            save_model_dir(tmp / "model", json.loads((self.model.path / "config.json").read_text()), self.params,
                           "F32", tokenizer_dir=self.model.path)
        else:
            save_adapter(self.model, tmp / "adapter")
        (tmp / "trainer_state").mkdir()
        write_safetensors(tmp / "trainer_state" / "optimizer.safetensors",
                          {**{"m." + k: a for k, a in moments[0].items()},
                           **{"v." + k: a for k, a in moments[1].items()}})
        state = {"step": self.step, "elapsed": self.elapsed, "adam_step": self.opt.step, "tokens": self.tokens,
                 "rng": self.rng.bit_generator.state}
        (tmp / "trainer_state" / "state.json").write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
        old = self.out / f"checkpoint.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        self.dp.comm.barrier()
        return final

    def _restore(self, state: dict) -> None:
        """The optimizer, sampler and counters from ``state`` (read_state: checked); the moments are checked
        against the weights trained (the adapter's, or every weight with --full)."""
        shapes = {name: a.shape for name, a in self.params.items()}
        m, v = read_moments(run_file(self.out, MOMENTS_FILE), shapes)
        self.opt, self.rng = AdamWState(step=state["adam_step"], m=m, v=v), state["rng"]
        self.step, self.elapsed, self.tokens = state["step"], state["elapsed"], state["tokens"]
        keep_log_until(run_file(self.out, "log.jsonl"), self.step)

    # -- the loop -----------------------------------------------------------------------------------------

    def evaluate(self) -> float:
        """Mean loss per scored token over the held-out conversations (no dropout)."""
        total, count = 0.0, 0
        for start in range(0, len(self.eval_set), self.cfg.batch_size):
            ids, labels = pad_batch(self.eval_set[start:start + self.cfg.batch_size], self.pad_id)  # [B, T]
            n = int((labels[:, 1:] != -100).sum())
            total += cross_entropy(self.model.forward(ids), labels) * n
            count += n
        return total / count

    def train_step(self) -> dict:
        cfg = self.cfg
        lr = learning_rate(self.step, cfg.steps, cfg.learning_rate(), min(cfg.warmup, cfg.steps - 1), 0.0)
        rows = self.rng.integers(0, len(self.train_set), cfg.batch_size)  # every rank draws the same B
        mine = rows if self.rows is None else rows[self.rows]  # ... and trains its own rows of them
        ids, labels = pad_batch([self.train_set[r] for r in mine], self.pad_id)  # [B_r, T_r] (padded to its longest)
        share, = self.dp.token_shares([labels])  # n_r / n: this rank's part of the batch's scored targets
        adapter = self.model.adapter
        if adapter is not None:  # the same masks in forward and backward; on N ranks, each rank its own draws
            adapter.set_dropout_seed((cfg.seed * 1_000_003 + self.step) * self.dp.size + self.dp.rank)
        try:
            if share == 0.0 and self.dp.size > 1:  # its rows score nothing (another rank's do): adds 0, weight 0
                loss, grads = 0.0, {k: np.zeros_like(p) for k, p in self.params.items()}
            else:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    loss, grads = loss_and_grads(self.model, ids, labels=labels,
                                                 checkpoint=cfg.gradient_checkpointing)
        finally:
            if adapter is not None:
                adapter.set_dropout_seed(None)
        if not math.isfinite(loss):
            raise TrainingError(f"step {self.step + 1}: the loss is {loss}; stopped (lower --lr)")
        # sum the ranks' gradients, each weighed by its share; clip_grad_norm; AdamW
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked just below
            norm = self.dp.update(self.params, grads, self.opt, lr, BETAS, EPS, cfg.weight_decay, cfg.clip,
                                  share)
        check_update(self.params, norm, self.step + 1, lambda: str(self.out / "checkpoint"))  # as the trainer
        loss = self.dp.sum(loss * share)  # the mean over the global batch's scored targets (alone: the loss)
        self.step += 1
        tokens = ids.size if self.dp.size == 1 else int(self.dp.sum(ids.size))  # padded ids, every rank's
        return {"step": self.step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens_in_batch": tokens}

    def run(self, max_steps: int | None = None) -> list[dict]:
        """Train until cfg.steps (or ``max_steps`` more); write the result at the end."""
        lines = run_steps(self, max_steps, self._logged_step)
        if self.step == self.cfg.steps and self.dp.is_root:
            result = self.out / ("model" if self.cfg.full else "adapter")
            shutil.rmtree(result, ignore_errors=True)
            shutil.copytree(self.out / "checkpoint" / result.name, result)
        return lines

    def _logged_step(self) -> dict:
        """One step and its log line: tokens, speed, and the held-out loss every eval_every steps (rank 0)."""
        t0 = time.perf_counter()
        line = self.train_step()
        dt = time.perf_counter() - t0
        self.elapsed += dt
        self.tokens += line["tokens_in_batch"]
        line.update(tokens_per_s=line["tokens_in_batch"] / dt, elapsed=round(self.elapsed, 2), tokens=self.tokens,
                    **self.dp.log_fields())
        if self.eval_set and self.dp.is_root and (self.step % self.cfg.eval_every == 0 or self.step == self.cfg.steps):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a diverging run: the next
                line["val_loss"] = self.evaluate()  # step's loss check stops it, naming the step
        return line


def _base_dir(model: str) -> Path:
    from ..checkpoint.hub import resolve_model_path
    from ..checkpoint.paths import checkpoint_directory
    return checkpoint_directory(resolve_model_path(model), CheckpointError)


def finetune(cfg: FinetuneConfig | dict, out: str | Path, resume: bool = False, progress: bool = True) -> Finetuner:
    """Fine-tune (or resume) into ``out``; returns the Finetuner (its ``model`` is the fine-tuned model)."""
    if isinstance(cfg, dict):
        cfg = FinetuneConfig(**cfg)
    tuner = Finetuner(cfg, out, resume=resume, progress=progress)
    tuner.run()
    return tuner


# -- the commands: `minillm finetune` and `minillm merge` (cli.py only adds these parsers) ----------------------

def add_finetune_arguments(sub) -> None:
    """The `finetune` and `merge` sub-commands of the minillm CLI."""
    d = FinetuneConfig("", "")
    f = sub.add_parser("finetune", help="fine-tune a checkpoint on chat data (JSONL): LoRA, or --full (resumable)")
    f.add_argument("--model", required=True, help="base checkpoint directory or Hub id")
    f.add_argument("--data", required=True, help='JSONL, one {"messages": [{"role": ..., "content": ...}, ...]} a line')
    f.add_argument("--out", type=Path, required=True, help="run directory (adapter/ or model/, checkpoint/, log.jsonl)")
    f.add_argument("--eval-data", help=f"held-out conversations (default: {d.eval_fraction * 100:.0f}%% of --data)")
    f.add_argument("--eval-fraction", type=float, default=d.eval_fraction)
    f.add_argument("--full", action="store_true", help="train every weight instead of a LoRA adapter")
    f.add_argument("--lora-rank", type=int, default=d.lora_rank)
    f.add_argument("--lora-alpha", type=float, default=d.lora_alpha)
    f.add_argument("--lora-dropout", type=float, default=d.lora_dropout)
    f.add_argument("--rslora", action="store_true", help="scale by alpha/sqrt(r) instead of alpha/r (rsLoRA)")
    f.add_argument("--target", default="q,k,v,o,gate,up,down", help="the projections to adapt (default: all seven)")
    for name, kind in (("steps", int), ("batch-size", int), ("max-length", int), ("warmup", int),
                       ("weight-decay", float), ("clip", float), ("eval-every", int), ("save-every", int),
                       ("seed", int)):
        f.add_argument(f"--{name}", type=kind, default=getattr(d, name.replace("-", "_")))
    f.add_argument("--lr", type=float, help="peak learning rate (default 2e-4 with LoRA, 1e-5 with --full)")
    f.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute each layer's activations in the backward: less memory, about 1/3 more time")
    f.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    f.add_argument("--max-steps", type=int, help="stop after this many more steps (the schedule is unchanged)")
    add_data_parallel_flags(f)
    f.set_defaults(run=cmd_finetune)

    m = sub.add_parser("merge", help="fold a LoRA adapter into its base model: a full checkpoint directory")
    m.add_argument("--model", required=True, help="base checkpoint directory or Hub id")
    m.add_argument("--adapter", required=True, help="PEFT LoRA adapter directory")
    m.add_argument("--out", type=Path, required=True, help="the merged checkpoint directory to write")
    m.add_argument("--dtype", choices=["bf16", "f32"], default="bf16", help="of the saved weights (default bf16)")
    m.set_defaults(run=cmd_merge)


def cmd_finetune(args) -> int:
    from ..checkpoint.adapter import parse_targets

    from .distributed import world

    fields = FinetuneConfig.__dataclass_fields__
    chosen = {k: v for k, v in vars(args).items() if k in fields and k != "target"}
    comm = world()  # `mpiexec -n N minillm finetune ...`: this is one of N ranks; else the process alone
    with comm.failure_stops_every_rank():  # under mpiexec: an error here ends every rank, naming this one
        cfg = FinetuneConfig(**chosen, target=parse_targets(args.target), use_rslora=args.rslora)
        parallel = DataParallel(comm, zero1=args.zero1, bucket_mb=args.bucket_mb)
        tuner = Finetuner(cfg, args.out, resume=args.resume, parallel=parallel)
        tuner.run(max_steps=args.max_steps)
    if comm.rank != 0:
        return 0
    result = args.out / ("model" if cfg.full else "adapter")
    done = tuner.step == cfg.steps
    print(f"step {tuner.step}/{cfg.steps}: " + (f"{'model' if cfg.full else 'adapter'} in {result}" if done else
                                                f"checkpoint in {args.out / 'checkpoint'} (--resume to go on)"))
    if done and not cfg.full:
        print(f"talk to it: minillm chat --model {cfg.model} --adapter {result}")
    return 0


def cmd_merge(args) -> int:
    from ..checkpoint.adapter import save_merged

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        model = load_model(args.model, adapter=args.adapter)
    save_merged(model, args.out, "BF16" if args.dtype == "bf16" else "F32")
    print(f"merged {args.adapter} into {args.model}: {args.out}")
    return 0
