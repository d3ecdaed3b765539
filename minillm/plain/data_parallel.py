"""Data parallelism on one screen: N workers, each the gradient of its rows; weighed and summed, one gradient.

    worker r takes rows B*r//N .. B*(r+1)//N of the batch            [B_r, T]
    it computes the mean loss over ITS n_r scored targets, and its gradient
    the allreduce: sum over workers of (n_r / n) x gradient_r       = the gradient of the whole batch's mean loss

Why n_r / n and not 1 / N: the loss is a mean over the batch's scored tokens (training/loss.py), and the workers
need not hold as many (uneven rows; labels of -100 on a prompt, in fine-tuning). The mean of the workers' means
would weigh a worker with 3 scored targets like one with 300. The engine (training/distributed.py) does the same
on N processes, the sum being MPI's allreduce.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = -100  # a label that is not scored (training/loss.py)


def data_parallel_loss_and_grads(loss_and_grads, model, ids: np.ndarray, labels: np.ndarray, workers: int):
    """The loss and gradients of the whole batch, computed as ``workers`` workers would, one after the other.

    ``loss_and_grads(model, ids, labels) -> (mean loss, {name: gradient})`` is what one worker runs
    (``minillm.loss_and_grads``). ids, labels [B, T] (labels -100 where not scored) -> (loss, {name: gradient})
    """
    B = ids.shape[0]
    firsts = [B * r // workers for r in range(workers + 1)]  # worker r: rows firsts[r] .. firsts[r+1]
    scored = [int((labels[a:b, 1:] != IGNORE_INDEX).sum()) for a, b in zip(firsts, firsts[1:])]  # n_r
    n = sum(scored)  # the whole batch's scored targets (one small allreduce in the engine)
    loss, grads = 0.0, {}
    for r in range(workers):
        if scored[r] == 0:
            continue  # nothing to score in these rows: this worker adds nothing (a weight of 0)
        rows = slice(firsts[r], firsts[r + 1])
        loss_r, grads_r = loss_and_grads(model, ids[rows], labels[rows])  # this worker's mean, its gradient
        share = scored[r] / n
        loss += share * loss_r
        for name, g in grads_r.items():  # the allreduce: a sum over the workers
            grads[name] = grads.get(name, 0) + share * g
    return loss, grads
