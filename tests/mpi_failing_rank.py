"""`minillm train` with a failure injected on one rank, for tests/test_distributed.py (not a test itself).

    mpiexec -n 2 python tests/mpi_failing_rank.py RANK STEP train --config R --out D

Rank RANK raises an InputError (as a token file that cannot be read would) when it starts step STEP; every other
rank runs the real command. The job must end with that rank's error, without hanging.
"""

import sys

import minillm.training.trainer as trainer
from minillm.errors import InputError
from minillm.tools.cli import main
from minillm.training.distributed import world

rank, step = int(sys.argv[1]), int(sys.argv[2])
real = trainer.loss_and_grads
calls = []


def failing(model, ids, labels=None):
    calls.append(1)
    if world().rank == rank and len(calls) == step:  # accumulation 1: call k is step k
        raise InputError(f"injected failure: rank {rank} cannot read its windows at step {step}")
    return real(model, ids, labels)


trainer.loss_and_grads = failing
sys.exit(main(sys.argv[3:]))
