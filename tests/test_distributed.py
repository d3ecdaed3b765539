"""Data parallelism: `mpiexec -n 2 minillm train` ends with one process's weights (plain AdamW and ZeRO-1, and
across a resume that changes the number of processes), a failing rank ends the whole job with its error, and
the buckets and shards cover every weight exactly once.

THE TOLERANCE. One process sums each weight's gradient over all the batch's rows inside one BLAS product and
divides by the token count inside the loss; N ranks each sum their own rows, weigh their sum by n_r / n, and MPI
adds the ranks' sums. Same terms, another order: float32 rounding differs, about 1e-7 of the terms' size. The
loss and the gradient norm (sums of many terms) agree within float32's bound for that regrouping (LOSS_RTOL
below: 5.7e-6, derived, not measured). The weights agree to 1e-4 absolute
after 4 steps of lr 1e-3, a tenth of one step (measured: 1.5e-5), the moments to 1e-3 of each tensor's largest
(measured: 5e-5), because AdamW divides each gradient by its own running RMS: where a weight's gradient nearly
cancels to zero, a 1e-7 difference in the terms is a large part of it, and of that weight's step. Every bug
this test is for (a rank reading the wrong rows, a mean over ranks instead of tokens, a misplaced shard) moves
weights by whole steps (~1e-3) and the loss by far more than LOSS_RTOL.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minillm
from minillm.checkpoint.safetensors_file import SafetensorsFile
from minillm.training.distributed import Bucket, DataParallel, make_buckets, split
from minillm.training.finetune import BETAS, FinetuneConfig
from minillm.training.trainer import TrainConfig, Trainer
from conftest import ROOT, WEIGHTS

WEIGHT_ATOL, MOMENT_RTOL = 1e-4, 1e-3
# The loss and the gradient norm are float32 sums over the step's B x T = 3 x 16 tokens (every gradient entry is
# one too), and splitting the batch between ranks regroups those sums: a sum of n terms regrouped moves by at most
# (n - 1) rounding units of its terms' magnitude, and the norm sums squares of those entries again (two sums:
# 2 x 48 units = 48 float32 eps = 5.7e-6 relative). Which grouping each BLAS kernel uses decides where in that
# bound a run lands: measured 1.2e-6 (10 eps) under OpenBLAS's Haswell kernels, under 1e-6 under others. A bug
# (a mean over ranks instead of the token shares, another rank's rows) moves them by far more: measured, a mean over
# ranks moved the loss by 7e-4 to 1e-2 and the gradient norm by 1e-2 to 6e-2 (LoRA fine-tuning, 4 steps).
LOSS_RTOL = 3 * 16 * float(np.finfo(np.float32).eps)
TIMEOUT = 300  # seconds for one mpiexec job: a few seconds normally, minutes on a loaded machine; never a hang


def recipe(tmp_path: Path, **overrides) -> Path:
    """A tiny Qwen3; 3 windows per batch (split 1 + 2 between two ranks: unequal shares), 2 micro-batches."""
    cfg = json.loads((WEIGHTS / "tiny-qwen3" / "config.json").read_text())
    tokens = tmp_path / "tokens.npy"
    np.save(tokens, np.random.default_rng(0).integers(0, cfg["vocab_size"], 4000).astype(np.uint16))
    raw = dict(model=cfg, train_tokens=str(tokens), val_tokens=str(tokens), steps=4, batch_size=3, context=16,
               accumulation=2, warmup=1, eval_every=2, eval_windows=2, save_every=2, seed=3, dtype="f32")
    raw.update(overrides)
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(raw))
    return path


def mpiexec() -> str:
    """The mpiexec of the `mpi` extra (the mpich wheel puts it beside this Python), else one on PATH."""
    pytest.importorskip("mpi4py", reason="the mpi extra is not installed: pip install -e '.[mpi]'")
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.is_file() else shutil.which("mpiexec")
    if not found:
        pytest.fail("mpi4py is installed but no mpiexec was found beside python or on PATH")
    return found


def run_mpi(n: int, *args: str, script: list[str] | None = None) -> subprocess.CompletedProcess:
    """``mpiexec -n n python -m minillm ARGS`` (or a script), one BLAS thread per rank."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    command = [mpiexec(), "-n", str(n), sys.executable, *(script or ["-m", "minillm"]), *args]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                           start_new_session=True)  # its own process group: a hang is ended whole, ranks too
    try:
        out, err = job.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        raise
    return subprocess.CompletedProcess(command, job.returncode, out, err)


def train_mpi(n: int, config: Path, out: Path, *flags: str) -> None:
    done = run_mpi(n, "train", "--config", str(config), "--out", str(out), *flags)
    assert done.returncode == 0, done.stderr


def state(run: Path) -> tuple[dict, dict, list[dict]]:
    """The run's float32 weights, AdamW moments and log records."""
    folder = run / "checkpoint" / "trainer_state"
    tensors = [SafetensorsFile(folder / name) for name in ("master.safetensors", "optimizer.safetensors")]
    weights, moments = ({k: f.get_float32(k) for k in f.tensors} for f in tensors)
    return weights, moments, [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]


def assert_same_run(ours: Path, reference: Path, world_sizes: list[int]) -> None:
    (w, m, log), (w1, m1, log1) = state(ours), state(reference)
    assert sorted(w) == sorted(w1) and sorted(m) == sorted(m1)
    for name in w1:
        np.testing.assert_allclose(w[name], w1[name], rtol=0, atol=WEIGHT_ATOL, err_msg=name)
    for name in m1:
        np.testing.assert_allclose(m[name], m1[name], rtol=0, atol=MOMENT_RTOL * np.abs(m1[name]).max(), err_msg=name)
    assert [x["step"] for x in log] == [x["step"] for x in log1]
    np.testing.assert_allclose([x["loss"] for x in log], [x["loss"] for x in log1], rtol=LOSS_RTOL)
    np.testing.assert_allclose([x["grad_norm"] for x in log], [x["grad_norm"] for x in log1], rtol=LOSS_RTOL)
    np.testing.assert_allclose([x["val_loss"] for x in log if "val_loss" in x],
                               [x["val_loss"] for x in log1 if "val_loss" in x], rtol=LOSS_RTOL)
    assert [x["world_size"] for x in log] == world_sizes


def one_process(config: Path, out: Path) -> Path:
    Trainer(TrainConfig.from_dict(json.loads(config.read_text())), out, progress=False).run()
    return out


@pytest.mark.parametrize("zero1", [False, True], ids=["adamw", "zero1"])
@pytest.mark.parametrize("accumulation", [2, 1], ids=["2-micro-batches", "1-micro-batch"])
def test_two_processes_end_with_the_weights_of_one_process_on_the_same_global_batch(tmp_path, zero1, accumulation):
    """With one micro-batch a rank's weight n_r / n is applied as its gradients are packed for the allreduce;
    with two, to each micro-batch's gradients before they are added."""
    config = recipe(tmp_path, accumulation=accumulation)
    # 0.01 MB buckets: 2621 floats, so tensors share buckets, span several, and ZeRO-1's parts cut through them
    train_mpi(2, config, tmp_path / "two", "--bucket-mb", "0.01", *(["--zero1"] if zero1 else []))
    assert_same_run(tmp_path / "two", one_process(config, tmp_path / "one"), world_sizes=[2] * 4)


@pytest.mark.parametrize("first, then", [((2, "--zero1"), (1,)), ((1,), (2, "--zero1"))],
                         ids=["2-zero1-then-1", "1-then-2-zero1"])
def test_a_run_resumed_with_another_number_of_processes_is_the_one_process_run(tmp_path, first, then):
    """Two steps on one count, two more on another: the 4 steps of one process (the checkpoint holds whole
    moments, gathered from the shards and cut again, and the sampler's state, which every rank shares)."""
    config = recipe(tmp_path)
    train_mpi(first[0], config, tmp_path / "run", "--max-steps", "2", "--bucket-mb", "0.01", *first[1:])
    train_mpi(then[0], config, tmp_path / "run", "--resume", "--bucket-mb", "0.01", *then[1:])
    assert_same_run(tmp_path / "run", one_process(config, tmp_path / "one"), world_sizes=[first[0]] * 2 + [then[0]] * 2)


def test_a_rank_that_fails_mid_run_ends_the_job_with_its_error_and_the_last_checkpoint_intact(tmp_path):
    config = recipe(tmp_path, accumulation=1)
    out = tmp_path / "run"
    done = run_mpi(2, "1", "3", "train", "--config", str(config), "--out", str(out),
                   script=[str(ROOT / "tests" / "mpi_failing_rank.py")])  # rank 1 fails at step 3 (within TIMEOUT)
    assert done.returncode != 0
    assert "minillm: error: rank 1 of 2: injected failure: rank 1 cannot read its windows at step 3" in done.stderr
    saved = json.loads((out / "checkpoint" / "trainer_state" / "state.json").read_text())
    assert saved["step"] == 2  # the checkpoint of step 2, whole
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "log.jsonl", "recipe.json"]  # no *.tmp-* left
    assert [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_more_processes_than_windows_in_a_batch_is_refused_once(tmp_path, command):
    if command == "train":
        args = ["--config", str(recipe(tmp_path, batch_size=1))]
    else:
        args = finetune_args(tmp_path, batch_size=1)
    done = run_mpi(2, command, *args, "--out", str(tmp_path / "run"))
    assert done.returncode != 0
    assert done.stderr.count("batch_size 1 is smaller than the 2 processes") == 1
    assert "Traceback" not in done.stderr  # the aborting rank stops there, not at the caller's next line
    assert not (tmp_path / "run").exists()  # refused before anything is written


# -- without MPI: the same code on one process -------------------------------------------------------------

def test_zero1_on_one_process_takes_the_same_steps_as_plain_adamw(tmp_path):
    """One rank owns every part: the shard code (flat slices, one adamw_update per tensor piece) alone."""
    config = recipe(tmp_path)
    cfg = TrainConfig.from_dict(json.loads(config.read_text()))
    Trainer(cfg, tmp_path / "zero1", progress=False, parallel=DataParallel(zero1=True, bucket_mb=0.01)).run()
    assert_same_run(tmp_path / "zero1", one_process(config, tmp_path / "one"), world_sizes=[1] * 4)


@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=6), bucket=st.integers(1, 40), ranks=st.integers(1, 5))
def test_buckets_cover_every_element_once_in_order_and_ranks_split_each_bucket_evenly(sizes, bucket, ranks):
    shapes = {f"t{i}": (n,) for i, n in enumerate(sizes)}
    buckets = make_buckets(shapes, bucket, ranks)
    flat = [(name, k) for b in buckets for name, lo, hi in b.pieces for k in range(lo, hi)]
    assert flat == [(name, k) for name, (n,) in shapes.items() for k in range(n)]  # each element once, in order
    assert all(b.size == bucket for b in buckets[:-1]) and 0 < buckets[-1].size <= bucket
    for b in buckets:
        assert sum(b.counts) == b.size and max(b.counts) - min(b.counts) <= 1
        parts = [list(b.slices(*b.part(r))) for r in range(ranks)]  # each rank's pieces: together, the bucket
        assert [(n, k) for part in parts for n, lo, hi, _ in part for k in range(lo, hi)] == \
            [(n, k) for n, lo, hi in b.pieces for k in range(lo, hi)]


def test_the_rows_of_a_batch_are_split_into_consecutive_near_equal_parts():
    assert split(8, 3) == [2, 3, 3] and split(3, 2) == [1, 2] and split(5, 1) == [5]
    assert Bucket([("a", 0, 5)], 5, split(5, 2)).part(1) == (2, 5)


# -- the plain layer: the two ideas on one screen each -----------------------------------------------------

@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_workers_weighed_by_their_scored_tokens_give_the_whole_batch_loss_and_gradient(workers):
    """In float64, so the only difference left is the order of the additions (1e-12, not 1e-6)."""
    from minillm.plain.data_parallel import data_parallel_loss_and_grads
    from test_backward import float64_copy
    from conftest import tiny_model
    model = float64_copy(tiny_model("tiny-qwen3"))
    ids = np.random.default_rng(2).integers(0, model.config.vocab_size, (4, 9))  # [B, T]
    labels = ids.copy()
    labels[0, :7] = -100  # row 0 scores 1 target, the others 8 each: a mean of means would be wrong
    labels[1, :] = -100  # row 1 scores none: with 4 workers, one of them has nothing to add
    loss, grads = minillm.loss_and_grads(model, ids, labels)
    ours, our_grads = data_parallel_loss_and_grads(minillm.loss_and_grads, model, ids, labels, workers)
    assert ours == pytest.approx(loss, rel=1e-12)
    for name, g in grads.items():
        np.testing.assert_allclose(our_grads[name], g, rtol=0, atol=1e-12 * np.abs(g).max(), err_msg=name)


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 8])
def test_the_ring_allreduce_leaves_every_worker_the_sum_and_sends_2_n_minus_1_over_n_of_a_buffer(workers):
    from minillm.plain.ring_allreduce import ring_allreduce
    buffers = [np.random.default_rng(r).standard_normal(48) for r in range(workers)]  # N x [n], n = 48
    results, sent = ring_allreduce(buffers)
    for result in results:
        np.testing.assert_allclose(result, np.sum(buffers, axis=0), rtol=1e-12, atol=1e-12)
    assert sent == 2 * (workers - 1) * 48 // workers  # 48 divides into any of these counts of chunks


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_zero1_workers_each_updating_their_part_take_exactly_the_adamw_step(workers):
    """Bit for bit: AdamW is element-wise, so the same float32 operations on the same elements, in parts."""
    from minillm.plain.zero1 import zero1_adamw_step
    from minillm.training.adamw import AdamWState, adamw_step
    rng = np.random.default_rng(0)
    shapes = {"a.weight": (5, 3), "norm.weight": (4,), "b.weight": (2, 7)}  # 1-D: no weight decay
    params = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    ours = {k: p.copy() for k, p in params.items()}
    total = sum(p.size for p in params.values())
    shards = [{"m": np.zeros(n, np.float32), "v": np.zeros(n, np.float32)} for n in split(total, workers)]
    state = AdamWState()
    for step in range(1, 4):
        grads = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        adamw_step(params, grads, state, 1e-2, (0.9, 0.95), 1e-8, 0.1)
        zero1_adamw_step(ours, grads, shards, step, 1e-2, (0.9, 0.95), 1e-8, 0.1)
        for k in params:
            np.testing.assert_array_equal(ours[k], params[k], err_msg=k)
    assert sum(s["m"].size for s in shards) == total  # each moment held once, by one worker


# -- fine-tuning: `mpiexec -n 2 minillm finetune` -------------------------------------------------------------

QUESTIONS = ["Hi", "What is two plus two?", "Name a color", "Where is Paris?", "Tell me a joke", "How are you?",
             "What time is it?", "Say something"]  # of different lengths: each rank pads its rows to its longest


def finetune_args(tmp_path: Path, **overrides) -> list[str]:
    """3 conversations per batch (ranks hold 1 and 2, with different numbers of scored tokens), 4 steps."""
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                      {"role": "assistant", "content": "Arr, matey!"}]}) + "\n"
                             for q in QUESTIONS))
    flags = dict(model=str(WEIGHTS / "tiny-qwen3"), data=str(chats), eval_fraction=0.25, lora_rank=8,
                 lora_alpha=16, steps=4, batch_size=3, lr=1e-3, warmup=1, eval_every=2, save_every=2,
                 weight_decay=0.1)
    flags.update(overrides)
    return [x for k, v in flags.items() for x in ([f"--{k.replace('_', '-')}"] if v is True else
                                                  [f"--{k.replace('_', '-')}", str(v)])]


def finetune_state(run: Path, full: bool) -> tuple[dict, dict, list[dict]]:
    """The run's trained tensors (the adapter's, or every weight), AdamW moments and log records."""
    folder = run / "checkpoint"
    trained = SafetensorsFile(folder / "model" / "model.safetensors" if full else
                              folder / "adapter" / "adapter_model.safetensors")
    moments = SafetensorsFile(folder / "trainer_state" / "optimizer.safetensors")
    return ({k: trained.get_float32(k) for k in trained.tensors}, {k: moments.get_float32(k) for k in moments.tensors},
            [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()])


def finetune_one_process(args: list[str], out: Path) -> Path:
    from minillm.tools.cli import main
    assert main(["finetune", *args, "--out", str(out)]) == 0
    return out


def assert_same_finetune(ours: Path, reference: Path, world_sizes: list[int], full: bool = False) -> None:
    """As assert_same_run, but the weights and the moments each in two clauses: all but 1 in 1000 entries within
    the tolerance of assert_same_run (WEIGHT_ATOL, a tenth of a step at lr 1e-3; MOMENT_RTOL of the tensor's
    largest), and every one within what AdamW's definition lets two runs differ by (below). LoRA's B starts at 0,
    so at the first steps many of A's gradient entries are sums that nearly cancel: there a 1e-7 rounding
    difference is a sizable part of the entry, of its moments, and (AdamW divides by the entry's own RMS, or eps)
    of that entry's step. Measured: 1 entry of the adapter's 29,184 moved by 0.14 of a step, the rest under
    1.2e-5; under OpenBLAS's Sandybridge kernels 3 first-moment entries of one lora_A (of 512) 1.1e-6 apart, its
    largest 1.08e-3. A bug (other rows, a mean over ranks) moves the loss by more than LOSS_RTOL and most entries
    by whole steps: 10k to 19k of the 29k weights."""
    (w, m, log), (w1, m1, log1) = finetune_state(ours, full), finetune_state(reference, full)
    assert sorted(w) == sorted(w1) and sorted(m) == sorted(m1)
    b1, b2 = BETAS
    apart = np.concatenate([np.abs(w[name] - w1[name]).ravel() for name in sorted(w1)])  # [every trained element]
    worst = max(w1, key=lambda name: np.abs(w[name] - w1[name]).max())
    assert (apart > WEIGHT_ATOL).mean() <= 1e-3, f"{(apart > WEIGHT_ATOL).sum()} of {apart.size} elements apart"
    # Adam moves an element by at most lr (1 - beta1) / sqrt(1 - beta2) a step (Kingma & Ba 2015, section 2.1;
    # torch's betas 0.9, 0.999: 3.16 lr), so two runs end at most twice the sum of those apart, whatever rounding
    # did to a gradient that nearly cancels (measured: 1.004e-3 under OpenBLAS's Sandybridge kernels)
    bound = 2 * (1 - b1) / math.sqrt(1 - b2) * sum(x["lr"] for x in log1)
    assert apart.max() <= bound, f"{worst}: {apart.max()} apart, more than Adam's steps can move it ({bound})"
    # The moments: after clipping, no gradient entry exceeds G_s = min(grad_norm_s, clip) (an entry is at most the
    # norm of them all), so at the last step t, m = (1 - b1) sum_s b1^(t-s) g_s of two runs differ by at most
    # (1 - b1) sum_s b1^(t-s) 2 G_s, and v = (1 - b2) sum_s b2^(t-s) g_s^2 (both >= 0) by at most
    # (1 - b2) sum_s b2^(t-s) G_s^2, whatever rounding did to an entry that nearly cancels
    steps = [(x, y) for x, y in zip(log, log1) if "grad_norm" in y]
    G = [min(max(x["grad_norm"], y["grad_norm"]), FinetuneConfig.clip) for x, y in steps]  # [steps]
    t = len(G)
    reach = {"m": (1 - b1) * sum(b1 ** (t - s) * 2 * G[s - 1] for s in range(1, t + 1)),
             "v": (1 - b2) * sum(b2 ** (t - s) * G[s - 1] ** 2 for s in range(1, t + 1))}
    far = np.concatenate([(np.abs(m[name] - m1[name]) > MOMENT_RTOL * np.abs(m1[name]).max()).ravel()
                          for name in sorted(m1)])  # [every moment entry]: beyond MOMENT_RTOL of its tensor
    assert far.mean() <= 1e-3, f"{far.sum()} of {far.size} moment entries beyond {MOMENT_RTOL} of their largest"
    for name in m1:
        most = reach[name.split(".", 1)[0]]
        assert np.abs(m[name] - m1[name]).max() <= most, f"{name}: more than two runs' gradients can make ({most})"
    assert [x["step"] for x in log] == [x["step"] for x in log1]
    for key in ("loss", "grad_norm", "val_loss"):
        np.testing.assert_allclose([x[key] for x in log if key in x], [x[key] for x in log1 if key in x],
                                   rtol=LOSS_RTOL, err_msg=key)
    assert [x["world_size"] for x in log] == world_sizes


@pytest.mark.parametrize("flags", [(), ("--zero1",), ("--full",)], ids=["lora", "lora-zero1", "full"])
def test_two_processes_finetune_to_the_adapter_of_one_process(tmp_path, flags):
    """LoRA: only the adapter's gradients are summed (0.001 MB buckets: they span several); --full: every weight."""
    args = finetune_args(tmp_path)
    done = run_mpi(2, "finetune", *args, "--out", str(tmp_path / "two"), "--bucket-mb", "0.001", *flags)
    assert done.returncode == 0, done.stderr
    reference = finetune_one_process(args + [x for x in flags if x == "--full"], tmp_path / "one")
    assert_same_finetune(tmp_path / "two", reference, world_sizes=[2] * 4, full="--full" in flags)


def test_a_finetune_resumed_with_another_number_of_processes_is_the_one_process_run(tmp_path):
    args = finetune_args(tmp_path)
    out = str(tmp_path / "run")
    done = run_mpi(2, "finetune", *args, "--out", out, "--max-steps", "2", "--bucket-mb", "0.001", "--zero1")
    assert done.returncode == 0, done.stderr
    finetune_one_process(args + ["--resume"], tmp_path / "run")  # the last two steps alone
    assert_same_finetune(tmp_path / "run", finetune_one_process(args, tmp_path / "one"), world_sizes=[2, 2, 1, 1])


def test_finetune_help_names_the_data_parallel_flags(capsys):
    from minillm.tools.cli import main
    with pytest.raises(SystemExit) as done:
        main(["finetune", "--help"])
    assert done.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "--zero1" in shown and "--bucket-mb" in shown and "(default: 10% of --data)" in shown
