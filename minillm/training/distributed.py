"""Data parallelism on MPI: N processes train one model exactly as one process would, each on a slice of every batch.

    mpiexec -n N minillm train --config R --out D        # the same program, started N times; rank r = 0 .. N-1
    mpiexec -n N minillm finetune --model M --data J --out D          # fine-tuning too (finetune.py), LoRA or --full

    every rank, every step:
        draw the global batch's B window starts       the same seed on every rank -> the same B starts
        read its own rows  B*r//N .. B*(r+1)//N        [B_r, T] from the memory-mapped token file (data.py)
        loss_and_grads on them                         the mean over ITS n_r scored targets
        weigh by n_r / n                               n = every rank's n_r (one allreduce of the counts); the
                                                       gradients are weighed as they are packed into a bucket
        allreduce (sum) of the gradients, in buckets   now every rank holds one process's gradient ...
        clip + AdamW                                   ... so every rank takes the same step: replicas stay equal
    rank 0 alone: evaluation, the log, the checkpoints (the others wait at a barrier while it writes)

+--------------------------------------------------------------------------------------------------------+
| THE GLOBAL BATCH DOES NOT CHANGE WITH N. The recipe's batch_size is the batch of one optimizer step,   |
| split between the ranks, not a per-rank batch: the gradient is then the same number whatever N, the    |
| learning rate that suits it too, and a run resumes with another N. (Per-rank batches would make N part |
| of the recipe: twice the processes, twice the batch, a different run.)                                |
| THE MEAN IS OVER TOKENS, NOT RANKS. A rank's loss is the mean over its own scored targets; averaging   |
| the ranks' means would weigh a rank with few scored targets (labels of -100, in fine-tuning) as much   |
| as a full one. Weighing each by n_r / n gives the mean over the whole batch's tokens, as one process.   |
+--------------------------------------------------------------------------------------------------------+

Buckets: the gradients are summed through one fixed-size flat float32 buffer (``bucket_mb``, PyTorch DDP's
``bucket_cap_mb``): the tensors, flattened and laid end to end in checkpoint order, are cut into buckets; each
is packed, allreduced in place (a NumPy buffer: no pickling) and unpacked. Small tensors (norms) share a bucket,
so there is one call per bucket rather than per tensor, and a large model never needs a second copy of all its
gradients at once; a tensor larger than a bucket spans several.

ZeRO-1 (``zero1=True``): AdamW's two moments are 2/3 of the training state beyond the weights and gradients,
and every rank held the same copy. Instead each bucket is split into N parts, rank r owns part r of every
bucket, and keeps the moments of that part only:
    reduce-scatter the gradients        rank r receives the SUM of part r only (half an allreduce's traffic)
    clip                                 the global norm from one allreduce of each rank's sum of squares
    AdamW on part r                      adamw_update on each tensor slice in the part
    allgather the weights                every rank receives every part (the other half): replicas equal again
An allreduce is a reduce-scatter followed by an allgather, so ZeRO-1 moves the same bytes as plain data
parallelism and saves 8 bytes x parameters x (N-1)/N of memory per rank (docs/DISTRIBUTED.md).

Failure: a rank that raises prints its error (naming the rank) and calls MPI_Abort, which ends every rank;
otherwise the others would wait forever in their next collective. A checkpoint is written by rank 0 alone,
atomically (saving.py), while the others wait at a barrier, so a failure elsewhere cannot cut it short.

With one process (``Communicator``, no MPI at all) every collective is the identity and ``update`` is
``clip_grad_norm`` + ``adamw_step``: the trainer reads the same with and without MPI, bit for bit the same.
"""

from __future__ import annotations

import math
import os
import sys
import time
import traceback
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..checkpoint.config import QwenConfig
from ..checkpoint.weights import ModelWeights, build_weights, expected_shapes
from ..errors import InputError, MinillmError, TrainingError
from .adamw import AdamWState, adamw_step, adamw_update, clip_grad_norm, decays
from .loss import IGNORE_INDEX, next_token_targets

BUCKET_MB = 16.0  # the flat buffer the gradients are summed through (PyTorch DDP's default is 25 MB)
# Set by the launcher in every process it starts: MPICH's and Intel MPI's hydra (and Slurm's PMI), Open MPI.
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
ABORT_GRACE = 0.5  # seconds a failing rank waits, after printing its error, before MPI_Abort ends the job


class Communicator:
    """This process alone: every collective is the identity. ``MPICommunicator`` makes the same calls on N.

    Buffers are 1-D float32 NumPy arrays, changed in place; ``counts`` lists each rank's elements, in rank order.
    """

    rank, size = 0, 1

    def allreduce(self, buf: np.ndarray) -> None:
        """buf [n] <- the sum over every rank of buf."""

    def reduce_scatter(self, buf: np.ndarray, counts: list[int], out: np.ndarray) -> None:
        """out [counts[rank]] <- this rank's part of the sum over every rank of buf [n]."""
        out[...] = buf

    def allgather(self, buf: np.ndarray, counts: list[int]) -> None:
        """buf [n]: each rank's own part (the others' ignored) <- every rank's part, on every rank."""

    def gather(self, part: np.ndarray, buf: np.ndarray | None, counts: list[int]) -> None:
        """Rank 0's buf [n] <- every rank's part [counts[rank]] (others pass buf=None)."""
        buf[...] = part

    def scatter(self, buf: np.ndarray | None, counts: list[int], out: np.ndarray) -> None:
        """out [counts[rank]] <- this rank's part of rank 0's buf [n]."""
        out[...] = buf

    def broadcast(self, buf: np.ndarray) -> None:
        """buf (any shape) <- rank 0's buf."""

    def broadcast_object(self, obj):
        """Rank 0's obj (a small picklable object: the recipe, counters) on every rank."""
        return obj

    def allgather_object(self, obj) -> list:
        return [obj]

    def barrier(self) -> None:
        """Wait until every rank is here."""

    @contextmanager
    def failure_stops_every_rank(self):
        """Alone, an error simply propagates (the CLI prints it)."""
        yield


class MPICommunicator(Communicator):
    """MPI's COMM_WORLD through mpi4py's buffer interface (upper-case methods: NumPy memory, no pickling)."""

    def __init__(self, MPI):
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def allreduce(self, buf):
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)

    def reduce_scatter(self, buf, counts, out):
        self.comm.Reduce_scatter(buf, out, recvcounts=counts, op=self.MPI.SUM)

    def allgather(self, buf, counts):
        self.comm.Allgatherv(self.MPI.IN_PLACE, [buf, (counts, _offsets(counts))])

    def gather(self, part, buf, counts):
        self.comm.Gatherv(part, [buf, (counts, _offsets(counts))] if self.rank == 0 else None, root=0)

    def scatter(self, buf, counts, out):
        self.comm.Scatterv([buf, (counts, _offsets(counts))] if self.rank == 0 else None, out, root=0)

    def broadcast(self, buf):
        self.comm.Bcast(buf, root=0)

    def broadcast_object(self, obj):
        return self.comm.bcast(obj, root=0)

    def allgather_object(self, obj):
        return self.comm.allgather(obj)

    def barrier(self):
        self.comm.Barrier()

    @contextmanager
    def failure_stops_every_rank(self):
        """An error on this rank: print it, naming the rank, then MPI_Abort, which ends every rank of the job.

        Without the abort the other ranks would wait forever in their next collective for this one.
        """
        try:
            yield
        except (Exception, KeyboardInterrupt) as e:
            where = f"rank {self.rank} of {self.size}"
            if isinstance(e, MinillmError):
                print(f"minillm: error: {where}: {e}", file=sys.stderr)
            elif isinstance(e, KeyboardInterrupt):
                print(f"minillm: {where}: interrupted", file=sys.stderr)
            else:  # a bug, not bad input: the traceback is the useful part
                traceback.print_exc()
                print(f"minillm: error: {where} failed: {type(e).__name__}: {e}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            code = 130 if isinstance(e, KeyboardInterrupt) else 1
            # The launcher forwards each rank's stderr through a pipe and acts on Abort through another: both
            # ready at once, MPICH's hydra could end the job before forwarding the line above (seen once in a
            # whole-suite run on a loaded machine). A moment first, on the failure path only.
            time.sleep(ABORT_GRACE)
            self.comm.Abort(code)
            os._exit(code)  # MPICH's Abort may return while the launcher ends the job: never run the caller's next line


def add_data_parallel_flags(parser) -> None:
    """The flags ``minillm train`` and ``minillm finetune`` both take for a run under mpiexec."""
    parser.add_argument("--zero1", action="store_true", help="under mpiexec: shard AdamW's moments across the "
                        "processes (ZeRO-1), each keeps 1/N of them (docs/DISTRIBUTED.md)")
    parser.add_argument("--bucket-mb", type=float, help="under mpiexec: gradients are summed through a buffer of "
                        f"this many MB (default {BUCKET_MB:g})")


def world() -> Communicator:
    """Every process of this job: MPI's COMM_WORLD when started by mpiexec with N > 1, else this one alone."""
    size = next((int(os.environ[k]) for k in LAUNCHER_SIZE_VARIABLES if os.environ.get(k, "").isdigit()), 1)
    if size == 1:
        return Communicator()  # no MPI import: a plain `minillm train` never needs mpi4py
    try:
        from mpi4py import MPI
    except ImportError:
        raise InputError(f"this process is one of {size} started by mpiexec, but mpi4py is not installed: "
                         f"pip install 'minillm[mpi]' (or run minillm without mpiexec)") from None
    comm = MPICommunicator(MPI)
    if comm.size != size:  # e.g. a system Open MPI's mpiexec starting processes linked to the mpich wheel
        raise InputError(f"mpiexec started {size} processes but MPI counts {comm.size}: that mpiexec belongs to "
                         f"another MPI than mpi4py's; use the one beside python ({os.path.dirname(sys.executable)})")
    return comm


def _offsets(counts: list[int]) -> list[int]:
    return [sum(counts[:r]) for r in range(len(counts))]


def split(n: int, size: int) -> list[int]:
    """n elements (or rows) in ``size`` near-equal consecutive parts: part r is n*r//size .. n*(r+1)//size."""
    return [n * (r + 1) // size - n * r // size for r in range(size)]


# -- buckets: the gradients, flat, in fixed-size pieces --------------------------------------------------------

@dataclass
class Bucket:
    """One piece of the flat parameter space: the tensor slices it holds, and each rank's part (ZeRO-1)."""

    pieces: list[tuple[str, int, int]]  # (tensor name, first, stop): a range of the flattened tensor, in order
    size: int  # elements: the pieces' lengths summed
    counts: list[int]  # elements of each rank's part, rank order

    def part(self, rank: int) -> tuple[int, int]:
        """Rank ``rank``'s part of the bucket: [first, stop) in bucket coordinates."""
        first = sum(self.counts[:rank])
        return first, first + self.counts[rank]

    def slices(self, first: int = 0, stop: int | None = None):
        """(name, tensor first, tensor stop, bucket offset) of the pieces inside [first, stop) of the bucket."""
        stop = self.size if stop is None else stop
        at = 0
        for name, lo, hi in self.pieces:
            a, b = max(at, first), min(at + hi - lo, stop)  # the overlap, in bucket coordinates
            if a < b:
                yield name, lo + a - at, lo + b - at, a
            at += hi - lo


def make_buckets(shapes: dict[str, tuple[int, ...]], bucket_elements: int, size: int) -> list[Bucket]:
    """Lay the tensors end to end (checkpoint order) and cut them into buckets of ``bucket_elements``."""
    buckets, pieces, filled = [], [], 0
    for name, shape in shapes.items():
        n, first = math.prod(shape), 0
        while first < n:
            take = min(n - first, bucket_elements - filled)
            pieces.append((name, first, first + take))
            first, filled = first + take, filled + take
            if filled == bucket_elements:
                buckets.append(Bucket(pieces, filled, split(filled, size)))
                pieces, filled = [], 0
    if pieces:
        buckets.append(Bucket(pieces, filled, split(filled, size)))
    return buckets


def pack(bucket: Bucket, arrays: dict[str, np.ndarray], buf: np.ndarray, first: int = 0, stop: int | None = None,
         weight: float = 1.0):
    """buf[first:stop] <- the tensors' elements there (all of the bucket by default), times ``weight`` (in
    float32, as ``a *= np.float32(weight)`` would: the copy and the product in one pass).   -> buf[:bucket.size]"""
    for name, lo, hi, at in bucket.slices(first, stop):
        if weight == 1.0:
            buf[at:at + hi - lo] = _flat(arrays[name])[lo:hi]
        else:
            np.multiply(_flat(arrays[name])[lo:hi], np.float32(weight), out=buf[at:at + hi - lo])
    return buf[:bucket.size]


def unpack(bucket: Bucket, buf: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
    """The tensors' elements <- buf[:bucket.size]."""
    for name, lo, hi, at in bucket.slices():
        _flat(arrays[name])[lo:hi] = buf[at:at + hi - lo]


def _flat(a: np.ndarray) -> np.ndarray:
    """A 1-D view of a's elements: buckets write through it, so it must not be a copy."""
    if not a.flags.c_contiguous:
        raise TrainingError(f"a tensor of shape {list(a.shape)} is not contiguous; buckets need a flat view")
    return a.reshape(-1)


@dataclass
class ShardedAdamWState:
    """ZeRO-1: AdamW's step count and this rank's shard of both moments: its part of every bucket, end to end."""

    step: int
    m: np.ndarray  # [shard] float32
    v: np.ndarray  # [shard] float32


def blank_weights(config: QwenConfig) -> ModelWeights:
    """Arrays of the right shapes, contents undefined: a rank other than 0 receives rank 0's weights into them."""
    shapes = expected_shapes(config)
    return build_weights(config, lambda name: np.empty(shapes[name], np.float32))


class DataParallel:
    """The data-parallel side of a training step: which rows this rank reads, how its loss and gradients are
    weighed, then summed (in buckets) and applied, and what rank 0 broadcasts at the start and gathers to save.

    Used by training/trainer.py and training/finetune.py (labels of -100 on the prompts and the padding): ``rows``
    to slice each batch, ``token_shares`` on its labels, ``update`` with the share as ``weight``.
    """

    def __init__(self, comm: Communicator | None = None, zero1: bool = False, bucket_mb: float | None = None):
        bucket_mb = BUCKET_MB if bucket_mb is None else bucket_mb
        if not (bucket_mb > 0 and math.isfinite(bucket_mb)):
            raise InputError(f"--bucket-mb must be a number > 0, found {bucket_mb}")
        self.comm, self.zero1 = comm or Communicator(), zero1
        self.bucket_elements = max(1, int(bucket_mb * 2 ** 20) // 4)  # float32
        # of the last update: in collectives, waiting for the slowest rank, and in clip + AdamW
        self.comm_seconds = self.wait_seconds = self.optimizer_seconds = 0.0
        self.buckets: list[Bucket] = []

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def size(self) -> int:
        return self.comm.size

    @property
    def is_root(self) -> bool:
        return self.comm.rank == 0

    # -- the batch ---------------------------------------------------------------------------------------

    def rows(self, batch_size: int) -> slice | None:
        """This rank's rows of each global batch of ``batch_size`` windows (None alone: all of them)."""
        if self.size == 1:
            return None
        if batch_size < self.size and self.is_root:  # checked on rank 0 only: one message, its abort ends all
            raise TrainingError(f"batch_size {batch_size} is smaller than the {self.size} processes: each needs at "
                                f"least one window of the global batch (use fewer processes or a larger batch)")
        first = sum(split(batch_size, self.size)[:self.rank])
        return slice(first, first + split(batch_size, self.size)[self.rank])

    def token_shares(self, labels: list[np.ndarray]) -> list[float]:
        """n_r / n for each micro-batch: this rank's scored targets over the global batch's (1.0 alone).

        labels: one [B_r, T] array per micro-batch (the ids themselves when every next token is scored).
        Weighing the rank's mean loss by it gives the mean over every token of the global batch.
        """
        mine = np.array([(next_token_targets(x) != IGNORE_INDEX).sum() for x in labels], np.float64)  # [A]
        total = mine.copy()  # [A]
        self.comm.allreduce(total)
        return [float(a) / float(b) if b else 0.0 for a, b in zip(mine, total)]  # (nothing scored: loss_and_grads says so)

    def sum(self, value: float) -> float:
        """The sum over every rank of a number (the weighted losses: the global batch's mean loss)."""
        buf = np.array([value], np.float64)  # [1]
        self.comm.allreduce(buf)
        return float(buf[0])

    # -- the optimizer step --------------------------------------------------------------------------------

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], opt, lr: float,
               betas: tuple[float, float], eps: float, weight_decay: float, clip: float, weight: float = 1.0) -> float:
        """Sum ``grads`` over the ranks, each rank's first multiplied by its ``weight`` (its token share n_r / n,
        when the caller has not weighed them itself), clip by the global norm, take the AdamW step on ``params``
        in place. Returns the gradient norm before clipping.

        The weight is applied while the gradients are copied into the bucket buffer (``pack``): the same float32
        products as ``g *= weight`` beforehand, without a pass over every gradient of its own.
        """
        for name, g in grads.items():  # the buckets read and write the gradients through flat views
            if not g.flags.c_contiguous:
                grads[name] = np.ascontiguousarray(g)  # [shape]
        start = time.perf_counter()
        if self.size > 1:
            self.comm.barrier()  # the slowest rank's lag counts as waiting, not as the allreduce's cost
        synced = time.perf_counter()
        if self.zero1:
            norm = self._zero1_update(params, grads, opt, lr, betas, eps, weight_decay, clip, weight)
        else:
            self.allreduce(grads, weight)
            self.comm_seconds = time.perf_counter() - synced
            norm = clip_grad_norm(grads, clip)
            adamw_step(params, grads, opt, lr, betas, eps, weight_decay)
        self.wait_seconds = synced - start
        self.optimizer_seconds = time.perf_counter() - synced - self.comm_seconds
        return norm

    def allreduce(self, grads: dict[str, np.ndarray], weight: float = 1.0) -> None:
        """Each gradient <- the sum over the ranks of weight x it, in place, one bucket at a time."""
        if self.size == 1:
            if weight != 1.0:
                for g in grads.values():
                    g *= np.float32(weight)
            return  # the sum over one rank: the gradient itself
        buf = np.empty(min(self.bucket_elements, sum(b.size for b in self.buckets)), np.float32)  # [bucket]
        for bucket in self.buckets:
            self.comm.allreduce(pack(bucket, grads, buf, weight=weight))  # in place, on the buffer's memory
            unpack(bucket, buf, grads)

    def _zero1_update(self, params, grads, opt: ShardedAdamWState, lr, betas, eps, weight_decay, clip,
                      weight: float = 1.0) -> float:
        """Reduce-scatter the gradients, AdamW on this rank's part of each bucket, allgather the weights."""
        started = time.perf_counter()
        buf = np.empty(min(self.bucket_elements, sum(b.size for b in self.buckets)), np.float32)  # [bucket]
        g = np.empty_like(opt.m)  # [shard]: this rank's part of every bucket, summed over the ranks
        at = 0
        for bucket in self.buckets:
            n = bucket.counts[self.rank]
            self.comm.reduce_scatter(pack(bucket, grads, buf, weight=weight), bucket.counts, g[at:at + n])
            at += n
        squares = self.sum(sum(float(np.dot(g[a:a + hi - lo], g[a:a + hi - lo])) for _, lo, hi, a, _ in self.shard))
        communicated = time.perf_counter() - started
        norm = math.sqrt(squares)
        scale = clip / (norm + 1e-6)  # clip_grad_norm's rule, on the global norm
        if scale < 1.0:
            g *= np.float32(scale)
        opt.step += 1
        for name, lo, hi, a, decay in self.shard:  # each tensor slice of the shard: AdamW is element-wise
            adamw_update(_flat(params[name])[lo:hi], g[a:a + hi - lo], opt.m[a:a + hi - lo], opt.v[a:a + hi - lo],
                         lr, opt.step, betas, eps, weight_decay if decay else 0.0)
        started = time.perf_counter()
        for bucket in self.buckets:
            first, stop = bucket.part(self.rank)
            self.comm.allgather(pack(bucket, params, buf, first, stop), bucket.counts)  # send mine, receive theirs
            unpack(bucket, buf, params)
        self.comm_seconds = communicated + time.perf_counter() - started
        return norm

    # -- the start of a run, and its checkpoints -----------------------------------------------------------

    def start(self, params: dict[str, np.ndarray], opt: AdamWState, rng: np.random.Generator, counters: tuple):
        """Rank 0's run on every rank: its weights and the sampler's state (in place), its ``counters`` and its
        AdamW state (returned: the same, or under ZeRO-1 each rank's ShardedAdamWState). -> (opt, counters)"""
        self.buckets = make_buckets({k: p.shape for k, p in params.items()}, self.bucket_elements, self.size)
        self.shard = []  # (name, tensor first, stop, shard offset, weight decay?) of this rank's part of each bucket
        at = 0
        for bucket in self.buckets:
            for name, lo, hi, a in bucket.slices(*bucket.part(self.rank)):
                self.shard.append((name, lo, hi, at + a - bucket.part(self.rank)[0], decays(name, params[name])))
            at += bucket.counts[self.rank]
        layout = {k: (p.shape, p.dtype.str) for k, p in params.items()}  # the tensors every rank must hold alike
        theirs = self.comm.broadcast_object(layout)  # rank 0's: a mismatch here would garble the broadcasts below
        if theirs != layout:
            name = next((k for k in sorted(set(theirs) | set(layout)) if theirs.get(k) != layout.get(k)), "?")
            raise TrainingError(f"rank {self.rank}'s trained tensors differ from rank 0's: {name} is "
                                f"{layout.get(name, 'missing')} here, {theirs.get(name, 'missing')} on rank 0")
        for p in params.values():
            self.comm.broadcast(p)
        state = self.comm.broadcast_object({"rng": rng.bit_generator.state, "counters": counters,
                                            "adam_step": opt.step, "moments": list(opt.m)})
        rng.bit_generator.state = state["rng"]
        if self.zero1:
            return self._scatter_moments(params, opt, state["adam_step"], bool(state["moments"]), at), \
                state["counters"]
        if not self.is_root:
            opt = AdamWState(step=state["adam_step"], m={k: np.empty_like(params[k]) for k in state["moments"]},
                             v={k: np.empty_like(params[k]) for k in state["moments"]})
        for k in state["moments"]:
            self.comm.broadcast(opt.m[k])
            self.comm.broadcast(opt.v[k])
        return opt, state["counters"]

    def _scatter_moments(self, params, opt: AdamWState, step: int, resumed: bool, shard: int) -> ShardedAdamWState:
        """Rank 0's full moments (a resumed run's, else zeros) cut into each rank's shard."""
        sharded = ShardedAdamWState(step=step, m=np.zeros(shard, np.float32), v=np.zeros(shard, np.float32))
        if resumed:
            buf = np.empty(self.buckets[0].size, np.float32)  # [bucket]
            for full, mine in ((opt.m, sharded.m), (opt.v, sharded.v)):
                at = 0
                for bucket in self.buckets:
                    n = bucket.counts[self.rank]
                    packed = pack(bucket, full, buf) if self.is_root else None
                    self.comm.scatter(packed, bucket.counts, mine[at:at + n])
                    at += n
        return sharded

    def moments_to_save(self, params: dict[str, np.ndarray], opt) -> tuple[dict, dict] | None:
        """Every rank: check the replicas' weights are identical, then (ZeRO-1) send the moments' shards to rank
        0. -> ({name: m}, {name: v}) on rank 0, whole tensors as one process would save them; None elsewhere."""
        checksum = 0
        for p in params.values() if self.size > 1 else ():  # (alone: one replica, nothing to compare)
            checksum = zlib.crc32(_flat(p), checksum)  # exact: the bits themselves
        if len(set(self.comm.allgather_object(checksum))) > 1:
            raise TrainingError("the ranks' weights differ (the allreduce gave ranks different sums); stopped "
                                "before saving them")
        if not self.zero1:
            return (opt.m, opt.v) if self.is_root else None
        full = []
        buf = np.empty(self.buckets[0].size, np.float32) if self.is_root else None  # [bucket] on rank 0
        for mine in (opt.m, opt.v):
            arrays = {k: np.empty_like(p) for k, p in params.items()} if self.is_root else None
            at = 0
            for bucket in self.buckets:
                n = bucket.counts[self.rank]
                self.comm.gather(mine[at:at + n], buf[:bucket.size] if self.is_root else None, bucket.counts)
                if self.is_root:
                    unpack(bucket, buf, arrays)
                at += n
            full.append(arrays)
        return tuple(full) if self.is_root else None

    def log_fields(self) -> dict:
        """What the log records of each step: the number of processes, and their time in collectives."""
        if self.size == 1:
            return {"world_size": 1}
        return {"world_size": self.size, "comm_s": round(self.comm_seconds, 4), "wait_s": round(self.wait_seconds, 4),
                "optimizer_s": round(self.optimizer_seconds, 4)}
