"""One training step on one screen: the loss and every gradient, then one AdamW update.

``plain_loss_and_grads`` equals ``minillm.loss_and_grads`` (minillm/backward/, training/loss.py) and
``plain_adamw_step`` equals ``training.adamw.adamw_step`` on the bundled model (tests/test_plain.py). The
engine adds batches, labels with ignored positions (-100), gradient clipping and the trainer's schedule.
"""

from __future__ import annotations

import numpy as np

from .backward import plain_layer_backward, rms_norm_backward
from .forward import plain_forward
from .ops import rms_norm, rope_cos_sin


def plain_loss_and_grads(weights, config, ids):
    """Mean next-token cross-entropy of one sequence and its gradient for every checkpoint tensor.

    ids [T] -> loss (float), {checkpoint tensor name: gradient of that tensor's shape}
    Why: the logits at position t are scored against token t + 1, loss = mean of -log softmax(z_t)[y];
    its gradient is (softmax(z) - onehot(y)) / N. From there the chain rule runs every forward line in
    reverse: the head, the final norm, the layers from the top down, and the embedding (a scatter-add: a
    token seen twice gets both rows). Tied embeddings: one matrix read twice gets the SUM of both
    gradients, and there is no separate lm_head.weight.
    """
    c, w = config, weights
    ids = np.asarray(ids)  # [T]
    T, eps = len(ids), c.rms_norm_eps
    hidden = []
    logits = plain_forward(w, c, ids, hidden=hidden)  # [T, V]; hidden: L + 1 x [T, D], each layer's input, last output
    z = logits[:-1] - logits[:-1].max(axis=-1, keepdims=True)  # [T-1, V]: the last position predicts nothing
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # [T-1, V] log softmax
    loss = float(-log_probs[np.arange(T - 1), ids[1:]].mean())
    dlogits = np.zeros_like(logits)  # [T, V]
    dlogits[:-1] = np.exp(log_probs)  # softmax
    dlogits[np.arange(T - 1), ids[1:]] -= 1  # - onehot(next token)
    dlogits /= T - 1  # the mean over N = T - 1 targets

    grads = {}
    h = rms_norm(hidden[-1], w.norm, eps)  # [T, D] what the head read
    d_head = dlogits.T @ h  # [V, T] @ [T, D] -> [V, D]
    dx, grads["model.norm.weight"] = rms_norm_backward(dlogits @ w.lm_head, hidden[-1], w.norm, eps)  # [T, D], [D]
    cos, sin = rope_cos_sin(np.arange(T), c.head_dim, c.rope.theta)  # [T, Dh] each
    for n in reversed(range(len(w.layers))):
        dx, layer_grads = plain_layer_backward(w.layers[n], c, hidden[n], dx, cos, sin)  # [T, D]
        grads.update({f"model.layers.{n}.{name}": grad for name, grad in layer_grads.items()})
    d_embed = np.zeros_like(w.embed_tokens)  # [V, D]
    np.add.at(d_embed, ids, dx)  # row ids[t] += dx[t], repeated ids summed
    if w.lm_head is w.embed_tokens:
        d_embed += d_head  # tied: the embedding's gradient and the head's, one matrix
    else:
        grads["lm_head.weight"] = d_head  # [V, D]
    grads["model.embed_tokens.weight"] = d_embed
    return loss, grads


def plain_adamw_step(params, grads, m, v, step, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01) -> None:
    """One AdamW update, in place, of every tensor in ``params`` ({name: array}); ``step`` counts from 1.

    m, v ({name: array}, empty at first): running means of the gradient and of its square. Why AdamW: each
    coordinate moves by about lr * mean / RMS of its recent gradients, whatever their scale. m and v start
    at 0, so early on they are too small: dividing by 1 - beta^step corrects that (bias correction). The
    weight decay is decoupled: the weight shrinks by lr * weight_decay, outside the Adam ratio, and only
    matrices decay (a norm gain or a bias shrunk toward 0 would only fight the normalisation).
    """
    b1, b2 = betas
    for name, p in params.items():
        g = grads[name]  # [shape of p]
        if p.ndim >= 2:
            p *= 1 - lr * weight_decay  # decoupled weight decay, matrices only
        m[name] = b1 * m.get(name, 0) + (1 - b1) * g  # [shape]
        v[name] = b2 * v.get(name, 0) + (1 - b2) * g * g  # [shape]
        m_hat, v_hat = m[name] / (1 - b1 ** step), v[name] / (1 - b2 ** step)  # bias-corrected
        p -= lr * m_hat / (np.sqrt(v_hat) + eps)  # [shape]
