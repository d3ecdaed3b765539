"""Training a Qwen model in NumPy: the loss here; the gradients of every weight in ``minillm.backward``.

    loss.py    cross_entropy(logits, labels) and cross_entropy_backward: next-token loss, as transformers has it

``minillm.loss_and_grads(model, ids, labels)`` puts the pieces together: a forward pass that keeps what the
backward needs, this loss, and the backward of every layer, returning one gradient per checkpoint tensor.
"""
