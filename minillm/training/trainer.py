"""The training loop: windows from a token file -> loss_and_grads -> clip -> AdamW, with evaluation,
checkpoints that resume exactly, a JSONL log and a loss curve.

    for step in range(steps):
        lr    = learning_rate(step)                                # warmup + cosine or WSD (schedule.py)
        grads = mean over `accumulation` micro-batches of loss_and_grads(model, windows [B, T])
        clip_grad_norm(grads, clip)                                # one norm over the whole model (adamw.py)
        adamw_step(weights, grads, lr)                             # in place (adamw.py)
        every eval_every steps: mean loss on fixed windows of the validation file
        every save_every steps: OUT/checkpoint, a Qwen checkpoint + trainer_state/ (atomic)

A run directory OUT holds:
    recipe.json            the settings of the run (model config + training fields)
    checkpoint/            config.json, model.safetensors (BF16 or F32), generation_config.json, tokenizer files,
                           trainer_state/{master.safetensors (F32 weights), optimizer.safetensors (m, v), state.json}
    log.jsonl              one line per step (and per evaluation)
    loss_curve.png         written at the end (needs matplotlib)

Resuming restores the float32 master weights, both AdamW moments, the step and the data sampler's random
state, so N steps in one go and N/2 + N/2 with a restart in between give bit-identical weights. A resumed run
may change ``steps`` as long as the steps already trained keep their learning rates: with ``"schedule": "wsd"``
before its decay, that moves only the final decay; a cosine run's rates all depend on ``steps``, so changing it
is refused unless asked for (``allow_schedule_change``), as the rate would jump.

On N processes (``mpiexec -n N minillm train``, ``parallel=DataParallel(world())``) each rank computes the
gradient of its rows of every batch and ``parallel.update`` sums them before the step (distributed.py); rank 0
alone evaluates, logs and saves. Alone, ``parallel`` changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..backward.memory import check_activation_memory
from ..backward.transformer import ROUTER_AUX_LOSS_COEF, loss_and_grads
from ..checkpoint.config import parse_config
from ..checkpoint.generation_config import parse_generation_config
from ..checkpoint.fields import REQUIRED, FieldReader
from ..checkpoint.safetensors_file import SafetensorsFile
from ..checkpoint.saving import save_model_dir
from ..checkpoint.weights import build_weights, named_tensors
from ..errors import InputError, TrainingError
from ..model.transformer import Model
from .adamw import AdamWState
from .data import TokenFile
from .distributed import DataParallel, blank_weights
from .divergence import check_outputs, check_update
from .init import init_weights
from .run_dir import check_run_dir
from .resume_checks import (MASTER_FILE, MOMENTS_FILE, STATE_FILE, keep_log_until, read_master, read_moments,
                            read_state, run_file)
from .loss import cross_entropy
from .samples import check_samples
from .schedule import SCHEDULES, learning_rate, wsd_learning_rate


@dataclass
class TrainConfig:
    """Every setting of a run. ``model`` is a config.json dict (Qwen2, Qwen3, Qwen3.5, or a mixture of experts)."""

    model: dict
    train_tokens: str
    val_tokens: str | None = None
    tokenizer: str | None = None  # a directory whose tokenizer files are copied into each checkpoint
    init_from: str | None = None  # start from this checkpoint's weights (a second stage), not from random ones
    generation_config: dict = field(default_factory=dict)
    seed: int = 0
    steps: int = 1000
    batch_size: int = 8  # windows per micro-batch
    context: int = 256  # tokens per window
    accumulation: int = 1  # micro-batches per optimizer step
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    schedule: str = "cosine"  # or "wsd": warmup, the peak lr, then a linear decay over the last decay_steps
    decay_steps: int = 0  # wsd only: how many final steps decay from lr to min_lr
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    clip: float = 1.0
    eval_every: int = 100
    eval_windows: int = 16
    save_every: int = 100
    dtype: str = "bf16"  # of the saved model.safetensors: bf16 or f32
    output_router_logits: bool = False  # mixtures of experts: add the router's load-balancing loss (backward/moe.py)
    router_aux_loss_coef: float | None = None  # its weight; None: the model config's (transformers' default 0.001)
    samples: dict = field(default_factory=dict)  # prompts to continue at the end of the run (samples.py)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "recipe") -> "TrainConfig":
        """A recipe's JSON object, every setting type- and range-checked as it is read (checkpoint/fields.py)."""
        if not isinstance(raw, dict):
            raise InputError(f"{source}: expected a JSON object of settings, found {type(raw).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"{source}: unknown setting(s) {unknown}; known: {sorted(known)}")
        if "model" not in raw or "train_tokens" not in raw:
            raise InputError(f"{source}: 'model' (a config.json dict) and 'train_tokens' are required")
        for name in ("model", "generation_config", "samples"):
            if name in raw and not isinstance(raw[name], dict):
                raise InputError(f"{source}: {name} must be a JSON object, found {type(raw[name]).__name__}")
        get, defaults = FieldReader(raw, source, InputError), cls.__dataclass_fields__
        values = {name: raw[name] for name in ("model", "generation_config") if name in raw}
        if raw.get("samples"):
            values["samples"] = check_samples(raw["samples"], source)
        for name in ("train_tokens", "val_tokens", "tokenizer", "init_from", "dtype", "schedule"):
            values[name] = get(name, str, REQUIRED if name == "train_tokens" else defaults[name].default)
        for name in ("steps", "batch_size", "context", "accumulation", "eval_every", "eval_windows", "save_every"):
            values[name] = get(name, int, defaults[name].default, low=2 if name == "context" else 1)  # a window of
            # 1 token has no next token to score (its loss is a division by zero)
        values["seed"] = get("seed", int, 0)
        values["output_router_logits"] = get("output_router_logits", bool, False)
        values["router_aux_loss_coef"] = get("router_aux_loss_coef", float, None, low=0)
        values["warmup"] = get("warmup", int, defaults["warmup"].default)
        values["decay_steps"] = get("decay_steps", int, defaults["decay_steps"].default, low=0)
        for name in ("lr", "eps", "clip"):
            values[name] = get(name, float, defaults[name].default, above=0)
        values["min_lr"] = get("min_lr", float, defaults["min_lr"].default, low=0)
        values["weight_decay"] = get("weight_decay", float, defaults["weight_decay"].default, low=0)
        betas = raw.get("betas", list(defaults["betas"].default))
        if not (isinstance(betas, list) and len(betas) == 2):
            raise InputError(f"{source}: betas must be a list of two numbers in [0, 1), found {betas!r}")
        pair = FieldReader({"beta1": betas[0], "beta2": betas[1]}, f"{source}: betas", InputError)
        values["betas"] = tuple(pair(name, float, low=0, high=0.999999) for name in ("beta1", "beta2"))
        parse_generation_config(values.get("generation_config", {}), f"{source}: generation_config")  # as load_model
        cfg = cls(**values)
        cfg.check(source)
        return cfg

    def check(self, source: str = "recipe") -> None:
        for name in ("steps", "batch_size", "context", "accumulation", "eval_every", "eval_windows", "save_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{source}: {name} must be an integer >= 1, found {value!r}")
        if self.context < 2:
            raise InputError(f"{source}: context must be >= 2 (a window of 1 token has no next token to score), "
                             f"found {self.context}")
        if self.dtype not in ("bf16", "f32"):
            raise InputError(f"{source}: dtype must be 'bf16' or 'f32', found {self.dtype!r}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr and self.warmup >= 0 and self.clip > 0):
            raise InputError(f"{source}: need lr > 0, 0 <= min_lr <= lr, warmup >= 0, clip > 0")
        if self.schedule not in SCHEDULES:
            raise InputError(f"{source}: schedule must be one of {list(SCHEDULES)}, found {self.schedule!r}")
        if self.schedule == "wsd" and not 1 <= self.decay_steps <= self.steps - self.warmup:
            raise InputError(f"{source}: decay_steps must be 1 .. steps - warmup ({self.steps - self.warmup}) with "
                             f"schedule 'wsd', found {self.decay_steps}")
        if self.schedule == "cosine" and self.decay_steps:
            raise InputError(f"{source}: decay_steps is a setting of schedule 'wsd' (the cosine decays over the "
                             f"whole run), found {self.decay_steps} with schedule 'cosine'")
        limit = self.model.get("max_position_embeddings")
        if isinstance(limit, int) and self.context > limit:
            raise InputError(f"{source}: context {self.context} is longer than the model allows "
                             f"(max_position_embeddings {limit})")


SCHEDULE_FIELDS = ("schedule", "steps", "lr", "min_lr", "warmup", "decay_steps")  # what the learning rates depend on


def scheduled_lr(cfg: TrainConfig, step: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) under the run's schedule (schedule.py)."""
    if cfg.schedule == "wsd":
        return wsd_learning_rate(step, cfg.steps, cfg.lr, cfg.warmup, cfg.min_lr, cfg.decay_steps)
    return learning_rate(step, cfg.steps, cfg.lr, cfg.warmup, cfg.min_lr)


def schedule_jump(saved: TrainConfig, now: TrainConfig, step: int) -> str | None:
    """Why resuming at ``step`` under ``now``'s schedule is not the saved run's, or None if it is.

    It is the same run when every step already trained has the same rate under both schedules: a WSD run
    whose decay has not started may then change its length. Otherwise the new schedule would have trained those
    steps differently, and the rate jumps where the run resumes (a longer cosine goes back up).
    """
    if all(math.isclose(scheduled_lr(saved, s), scheduled_lr(now, s), rel_tol=1e-12) for s in range(step)):
        return None
    changed = ", ".join(f"{k} {getattr(saved, k)!r} -> {getattr(now, k)!r}" for k in SCHEDULE_FIELDS
                        if getattr(saved, k) != getattr(now, k))
    return (f"{changed} changes the learning-rate schedule of the steps already trained: the rate would jump from "
            f"{scheduled_lr(saved, step - 1):.2e} at step {step} (the last trained) to {scheduled_lr(now, step):.2e} "
            f"at step {step + 1}")


def evaluate(model: Model, windows: np.ndarray, batch_size: int) -> float:
    """Mean next-token loss (nats) over fixed windows [N, T]."""
    losses = [cross_entropy(model.forward(windows[n:n + batch_size]), windows[n:n + batch_size])
              for n in range(0, len(windows), batch_size)]
    return float(np.mean(losses))


class Trainer:
    """Holds a run: the model, the optimizer state, the data, the step. ``run()`` trains to the end."""

    def __init__(self, cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True,
                 allow_schedule_change: bool = False, parallel: DataParallel | None = None):
        self.dp = parallel or DataParallel()  # this process alone, or one rank of N (distributed.py)
        self.cfg, self.out, self.progress = cfg, Path(out), progress and self.dp.is_root
        check_run_dir(self.out)  # a file, /dev/null, a NUL byte, ... refused before anything is read or written
        self.allow_schedule_change = allow_schedule_change  # on resume: may the steps trained get other rates?
        self.config = parse_config(cfg.model, source="recipe model")
        # a micro-batch the memory cannot hold is refused now, not after drawing its [B, T] windows (2**20 rows)
        check_activation_memory(self.config, cfg.batch_size, cfg.context)
        self.train_data = TokenFile(cfg.train_tokens, self.config.vocab_size)
        self.rows = self.dp.rows(cfg.batch_size)  # this rank's rows of each batch (None: all of them)
        self.val_windows = None
        if cfg.val_tokens and self.dp.is_root:
            try:
                self.val_windows = TokenFile(cfg.val_tokens, self.config.vocab_size).fixed_windows(
                    cfg.eval_windows, cfg.context)  # [eval_windows, T]
            except MemoryError:
                raise TrainingError(f"{cfg.val_tokens}: {cfg.eval_windows} evaluation windows of {cfg.context} "
                                    f"tokens need more memory than this machine has; ask for fewer") from None
        ckpt = self.out / "checkpoint"
        if not self.dp.is_root:  # the other ranks receive rank 0's weights, moments, sampler and step below
            self.model, self.opt = Model(self.config, blank_weights(self.config)), AdamWState()
            self.rng, self.step, self.elapsed = np.random.default_rng(), 0, 0.0
        elif resume:
            if not ckpt.is_dir():
                raise TrainingError(f"{self.out}: nothing to resume (no checkpoint/ directory)")
            self._restore(ckpt)
        else:
            if self.out.exists() and any(self.out.iterdir()):
                raise TrainingError(f"{self.out}: directory is not empty; use --resume to continue that run, "
                                    f"or choose a new directory")
            try:
                self.out.mkdir(parents=True, exist_ok=True)
            except OSError as e:  # /proc/self/run, a dangling symlink: what check_run_dir cannot foresee
                raise InputError(f"run directory (--out) {self.out}: cannot be created ({e.strerror or e})") from None
            (self.out / "recipe.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n", encoding="utf-8")
            try:
                self.model = Model(self.config, self._initial_weights())
            except MemoryError:
                raise TrainingError(f"recipe model: its {self.config.num_hidden_layers} layers of hidden_size "
                                    f"{self.config.hidden_size} (vocab_size {self.config.vocab_size}) need more "
                                    f"memory than this machine has; choose a smaller model") from None
            self.opt = AdamWState()
            self.rng = np.random.default_rng(cfg.seed)
            self.step = 0
            self.elapsed = 0.0
        self.params = named_tensors(self.model.weights)  # name -> the model's own arrays (updated in place)
        self.opt, (self.step, self.elapsed) = self.dp.start(self.params, self.opt, self.rng, (self.step, self.elapsed))

    def _initial_weights(self):
        """Random weights (init.py), or those of ``init_from`` when this run continues an earlier one."""
        if not self.cfg.init_from:
            return init_weights(self.config, self.cfg.seed)
        from ..checkpoint.config import load_config
        from ..checkpoint.loading import load_model
        source = Path(self.cfg.init_from)
        theirs = dataclasses.replace(load_config(source), dtype=self.config.dtype)  # storage dtype may differ
        if theirs != self.config:
            raise TrainingError(f"init_from {source}: its config.json differs from the recipe's model "
                                f"(both must describe the same architecture)")
        master = source / "trainer_state" / "master.safetensors"
        if master.is_file():  # the float32 weights the earlier run ended with, not their BF16 rounding
            return build_weights(self.config, SafetensorsFile(master).get_float32)
        return load_model(source).weights

    # -- saving and resuming ------------------------------------------------------------------------------

    def save(self) -> Path | None:
        params = self.params
        probe = self.train_data.fixed_windows(1, min(self.cfg.context, 32))  # [1, T]: what a load would compute
        check_outputs(self.model, probe, self.step, self._last_good)  # every rank: the same weights, the same verdict
        moments = self.dp.moments_to_save(params, self.opt)  # every rank takes part (ZeRO-1: shards to rank 0)
        if not self.dp.is_root:
            return self.dp.comm.barrier()  # wait while rank 0 writes: nothing here can cut its write short
        state = {"step": self.step, "elapsed": self.elapsed, "adam_step": self.opt.step,
                 "rng": self.rng.bit_generator.state, "recipe": asdict(self.cfg)}
        trainer_state = {
            "trainer_state/master.safetensors": params,  # the float32 weights, whatever dtype the model file has
            "trainer_state/optimizer.safetensors": {**{"m." + k: a for k, a in moments[0].items()},
                                                    **{"v." + k: a for k, a in moments[1].items()}},
            "trainer_state/state.json": (json.dumps(state, indent=1) + "\n").encode("utf-8"),
        }
        model_config = dict(self.cfg.model)
        model_config.setdefault("architectures", [_architecture(self.config.model_type)])
        path = save_model_dir(self.out / "checkpoint", model_config, params,
                              "BF16" if self.cfg.dtype == "bf16" else "F32", self.cfg.generation_config or None,
                              self.cfg.tokenizer, trainer_state)
        self.dp.comm.barrier()
        return path

    def _restore(self, ckpt: Path) -> None:
        state = read_state(run_file(self.out, STATE_FILE), self.cfg.steps)  # every field and file checked
        #   (resume_checks.py), as are the files below
        saved = state["recipe"]
        for key in ("model", "seed", "batch_size", "context", "accumulation"):
            mine = asdict(self.cfg)[key]
            if saved.get(key) != mine:
                detail = key
                if key == "model":
                    detail = next(f"model.{k}" for k in sorted(set(saved["model"]) | set(mine))
                                  if saved["model"].get(k) != mine.get(k))
                raise TrainingError(f"{ckpt}: cannot resume: {detail} differs from the saved run "
                                    f"(saved {_get(saved, detail)!r}, now {_get(asdict(self.cfg), detail)!r})")
        schedule = {k: saved[k] for k in SCHEDULE_FIELDS if k in saved}  # the saved run's schedule settings
        jump = schedule_jump(dataclasses.replace(self.cfg, **schedule), self.cfg, state["step"])
        if jump and not self.allow_schedule_change:
            raise TrainingError(f"{ckpt}: cannot resume: {jump}. Pass --allow-schedule-change (Trainer("
                                f"allow_schedule_change=True)) to continue anyway, or keep the saved settings")
        self.model = Model(self.config, read_master(run_file(self.out, MASTER_FILE), self.config))
        shapes = {k: a.shape for k, a in named_tensors(self.model.weights).items()}
        m, v = read_moments(run_file(self.out, MOMENTS_FILE), shapes)
        self.opt = AdamWState(step=state["adam_step"], m=m, v=v)
        self.rng = state["rng"]
        self.step, self.elapsed = state["step"], state["elapsed"]
        keep_log_until(run_file(self.out, "log.jsonl"), self.step)  # the steps logged after the save are trained again

    # -- the loop -----------------------------------------------------------------------------------------

    def train_step(self) -> dict:
        cfg = self.cfg
        lr = scheduled_lr(cfg, self.step)
        batches = [self.train_data.random_windows(self.rng, cfg.batch_size, cfg.context, self.rows)  # [B_r, T] each
                   for _ in range(cfg.accumulation)]
        shares = self.dp.token_shares(batches)  # this rank's part of each batch's scored targets (alone: 1.0)
        total, grads = 0.0, None
        # One micro-batch: its weight n_r / n is applied as the gradients are packed for the allreduce (update's
        # ``weight``), saving a pass over them; with several, each is weighed here before they are added.
        weight = shares[0] if cfg.accumulation == 1 else 1.0
        for ids, share in zip(batches, shares):
            # A diverging run (a far too large lr) overflows float32 on its way to a non-finite loss, which is
            # reported just below, naming the step; NumPy's overflow warnings on the way would only be noise.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss, g = loss_and_grads(self.model, ids, **self._router_options())
            if not math.isfinite(loss):
                raise TrainingError(f"step {self.step + 1}: the loss is {loss}; stopped. The last good checkpoint "
                                    f"is {self._last_good()}")
            total += loss * share / cfg.accumulation
            if share != 1.0 and cfg.accumulation > 1:  # this rank's mean, weighed as its part of the global batch
                for k in g:
                    g[k] *= np.float32(share)
            if grads is None:
                grads = g
            else:
                for k in grads:
                    grads[k] += g[k]
        if cfg.accumulation > 1:
            for k in grads:
                grads[k] /= np.float32(cfg.accumulation)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # as above
            # sum the ranks' gradients, clip_grad_norm, adamw_step (ZeRO-1: on this rank's shard of the moments)
            norm = self.dp.update(self.params, grads, self.opt, lr, cfg.betas, cfg.eps, cfg.weight_decay, cfg.clip,
                                  weight)
        # the global batch's mean loss; summed after the update, so that a faster rank's wait for the slower one
        # is at update's barrier (wait_s in the log), not hidden in this sum
        total = self.dp.sum(total)
        check_update(self.params, norm, self.step + 1, self._last_good)  # the loss was checked before the update
        self.step += 1
        return {"step": self.step, "loss": total, "lr": lr, "grad_norm": norm}

    def _router_options(self) -> dict:
        """loss_and_grads' load-balancing options from the recipe (the coefficient defaults to the model's);
        none unless the recipe turns the loss on."""
        if not self.cfg.output_router_logits:
            return {}
        coef = self.cfg.router_aux_loss_coef
        if coef is None:
            coef = self.cfg.model.get("router_aux_loss_coef", ROUTER_AUX_LOSS_COEF)
        return {"output_router_logits": True, "router_aux_loss_coef": coef}

    def _last_good(self) -> str:
        return f"{self.out / 'checkpoint'} (step {self._saved_step()})"

    def _saved_step(self):
        try:
            return json.loads((self.out / "checkpoint" / "trainer_state" / "state.json").read_text())["step"]
        except (OSError, ValueError, KeyError):
            return None

    def run(self, max_steps: int | None = None) -> list[dict]:
        """Train until ``cfg.steps`` (or ``max_steps`` more steps); returns the log lines of this call."""
        return run_steps(self, max_steps, self._logged_step)

    def _logged_step(self) -> dict:
        """One step and its log line: tokens, speed, and the held-out loss every eval_every steps."""
        cfg = self.cfg
        tokens_per_step = cfg.batch_size * cfg.context * cfg.accumulation
        t0 = time.perf_counter()
        try:
            line = self.train_step()
            dt = time.perf_counter() - t0
            self.elapsed += dt
            line.update(tokens=self.step * tokens_per_step, tokens_per_s=tokens_per_step / dt,
                        elapsed=round(self.elapsed, 2), **self.dp.log_fields())
            if self.val_windows is not None and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # see train_step
                    line["val_loss"] = evaluate(self.model, self.val_windows, cfg.batch_size)
        except MemoryError:  # the activations of one micro-batch: sizes the recipe chose
            raise TrainingError(f"step {self.step + 1}: a micro-batch of batch_size {cfg.batch_size} x "
                                f"context {cfg.context} tokens needs more memory than this machine has; "
                                f"lower them (accumulation keeps the tokens per step)") from None
        return line


def run_steps(runner, max_steps: int | None, logged_step: Callable[[], dict]) -> list[dict]:
    """The run loop of both runners (Trainer here, finetune.Finetuner): until ``runner.cfg.steps`` (or
    ``max_steps`` more), take ``logged_step()`` (one step and its log line), append the line to OUT/log.jsonl
    (rank 0 logs, the other ranks write to os.devnull), save every ``cfg.save_every`` steps and at the stop,
    and show the progress bar; at the run's last step, rank 0 plots OUT/loss_curve.png. Returns this call's log
    lines."""
    cfg, lines = runner.cfg, []
    stop = cfg.steps if max_steps is None else min(cfg.steps, runner.step + max_steps)
    start_step, started = runner.step, time.perf_counter()
    path = runner.out / "log.jsonl" if runner.dp.is_root else os.devnull
    try:  # the progress bar ends its line whatever happens, so an error starts on a line of its own
        with open(path, "a", encoding="utf-8") as log:
            while runner.step < stop:
                line = logged_step()
                log.write(json.dumps(line) + "\n")
                log.flush()
                lines.append(line)
                if runner.step % cfg.save_every == 0 or runner.step == stop:
                    runner.save()
                if runner.progress:
                    show_progress(line, cfg.steps, stop, runner.step - start_step, time.perf_counter() - started)
    finally:
        if runner.progress:
            print(file=sys.stderr)
    if runner.step == cfg.steps and runner.dp.is_root:
        plot_loss_curve(runner.out / "log.jsonl", runner.out / "loss_curve.png")
    return lines


def show_progress(line: dict, steps: int, stop: int, done: int, seconds: float) -> None:
    """The progress bar: one line on stderr, rewritten in place after each step."""
    rate = done / seconds
    eta = (stop - line["step"]) / rate if rate else 0
    val = f" val {line['val_loss']:.3f}" if "val_loss" in line else ""
    print(f"\rstep {line['step']}/{steps}  loss {line['loss']:.3f}{val}  {line['tokens_per_s']:.0f} tok/s  "
          f"left {_clock(eta)}   ", end="", file=sys.stderr, flush=True)


def plot_loss_curve(log_path: Path, png_path: Path) -> bool:
    """Training and validation loss against tokens seen, from log.jsonl. False when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure  # no pyplot: the caller's backend (a notebook's inline plots) is left alone
    except ImportError:
        return False
    lines = [json.loads(x) for x in log_path.read_text(encoding="utf-8").splitlines() if x.strip()]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.plot([x["tokens"] / 1e6 for x in lines], [x["loss"] for x in lines], lw=0.8, label="training batch")
    val = [x for x in lines if "val_loss" in x]
    if val:
        ax.plot([x["tokens"] / 1e6 for x in val], [x["val_loss"] for x in val], "o-", label="validation")
    ax.set_xlabel("tokens seen (millions)")
    ax.set_ylabel("next-token loss (nats)")
    ax.set_title("minillm training run")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    return True


def _architecture(model_type: str) -> str:
    return {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "qwen3_moe": "Qwen3MoeForCausalLM",
            "qwen3_next": "Qwen3NextForCausalLM", "qwen3_5_text": "Qwen3_5ForCausalLM",
            "qwen3_5_moe_text": "Qwen3_5MoeForCausalLM"}.get(model_type, "Qwen3ForCausalLM")


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train(cfg: TrainConfig | dict, out: str | Path, resume: bool = False, progress: bool = True) -> Trainer:
    """Train (or resume) a run into ``out``; returns the Trainer (its ``model`` is the trained model)."""
    if isinstance(cfg, dict):
        cfg = TrainConfig.from_dict(cfg)
    trainer = Trainer(cfg, out, resume=resume, progress=progress)
    trainer.run()
    return trainer
