"""Where a training step's time goes, phase by phase, on one rank of `mpiexec -n N` or in one process alone.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \\
        .venv/bin/mpiexec -bind-to core -n 2 python benchmarks/mpi_phases.py [--steps 4] [--zero1]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 python benchmarks/mpi_phases.py

The bundled recipe's shape (scripts/bundled/recipe.json, random tokens), a Trainer run in this process with the
phases timed by wrapping the functions that do them: forward, loss (cross-entropy and its gradient), backward,
the small collectives (token shares, the loss's sum), the barrier before the gradients' sum, the allreduce,
clip, AdamW, the divergence check, and the rest. Each rank prints the median over the steps (the first left out)
of each phase's CPU time (``time.process_time``): unlike wall time it hardly moves when other jobs share the
cores, so it compares code before and after a change on a busy machine. (MPI waits by polling, so waiting in a
collective counts as CPU time too: on a quiet machine it is the imbalance between the ranks.) The wall time of
the step is printed beside it.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minillm.backward import transformer as backward  # noqa: E402
from minillm.training import distributed, trainer  # noqa: E402
from minillm.training.distributed import DataParallel, world  # noqa: E402

PHASES = ["forward", "loss", "backward", "small collectives", "barrier", "allreduce", "clip", "adamw", "check"]
spent: dict[str, float] = collections.defaultdict(float)  # phase -> CPU seconds in this step


def timed(owner, name: str, phase: str) -> None:
    """Replace owner.name by the same function, its CPU time added to ``spent[phase]``."""
    f = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            spent[phase] += time.process_time() - start
    setattr(owner, name, wrapper)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=4, help="steps (the first is not counted)")
    p.add_argument("--zero1", action="store_true")
    args = p.parse_args()
    for owner, name, phase in [(backward, "model_forward", "forward"), (backward, "cross_entropy", "loss"),
                               (backward, "cross_entropy_backward", "loss"), (backward, "model_backward", "backward"),
                               (DataParallel, "token_shares", "small collectives"),
                               (DataParallel, "sum", "small collectives"), (DataParallel, "allreduce", "allreduce"),
                               (distributed, "clip_grad_norm", "clip"), (distributed, "adamw_step", "adamw"),
                               (distributed, "adamw_update", "adamw"), (trainer, "check_update", "check")]:
        timed(owner, name, phase)
    comm = world()
    timed(comm, "barrier", "barrier")
    raw = json.loads((ROOT / "scripts" / "bundled" / "recipe.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens.npy"
        np.save(tokens, np.random.default_rng(0).integers(0, raw["model"]["vocab_size"], 200_000).astype(np.uint16))
        raw.update(train_tokens=str(tokens), val_tokens=None, tokenizer=None, steps=10_000, decay_steps=300)
        out = Path(tmp) / "run"  # rank 0's (the others write nothing)
        run = trainer.Trainer(trainer.TrainConfig.from_dict(raw), out, progress=False,
                              parallel=DataParallel(comm, zero1=args.zero1))
        steps = []
        for _ in range(args.steps):
            spent.clear()
            cpu, wall = time.process_time(), time.perf_counter()
            run.train_step()
            steps.append(dict(spent, total=time.process_time() - cpu, wall=time.perf_counter() - wall))
    steps = steps[1:]
    median = {k: float(np.median([s.get(k, 0.0) for s in steps])) for k in PHASES + ["total", "wall"]}
    median["rest"] = median["total"] - sum(median[k] for k in PHASES)
    print(f"rank {comm.rank} of {comm.size}{' (ZeRO-1)' if args.zero1 else ''}, CPU ms per step: "
          + ", ".join(f"{k} {median[k] * 1e3:.0f}" for k in PHASES + ["rest", "total"])
          + f"; wall {median['wall'] * 1e3:.0f} ms", flush=True)


if __name__ == "__main__":
    main()
