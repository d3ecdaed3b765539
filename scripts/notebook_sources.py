"""The source of every notebook in notebooks/, as lists of cells ("md" or "code", text).

scripts/make_notebooks.py turns these into .ipynb files and executes them; tests/test_notebooks.py checks
that the committed notebooks hold exactly these cells, run top to bottom. Edit here, then rerun the script.
A code cell whose text starts with "# timing" prints measured times: its output differs between runs.
"""

SETUP = '''# ▶ THE ONE CELL TO EDIT: point MODEL_PATH at a real checkpoint directory (or set MINILLM_MODEL)
#   e.g. MODEL_PATH = Path("~/models/Qwen3-0.6B").expanduser()
import os
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt

import minillm

WEIGHTS_DIR = Path("..") / "weights"    # the repository's tiny checkpoints and configs (notebooks run in notebooks/)
MODEL_PATH = Path(os.environ.get("MINILLM_MODEL", {default})).expanduser()
model = minillm.load_model(MODEL_PATH)
tok = minillm.load_tokenizer(MODEL_PATH)
cfg = model.config
np.set_printoptions(precision=4, suppress=True, linewidth=110)


def rounding(err, bound=1e-5):
    """A float rounding difference, printed the same whatever BLAS kernel NumPy uses: '< bound', or the value."""
    return f"< {bound:.0e}" if err < bound else f"= {err:.2g}, NOT below {bound:.0e}"


print(f"{MODEL_PATH.name}: {cfg.model_type}, L={cfg.num_hidden_layers} layers, D={cfg.hidden_size}, "
      f"H={cfg.num_attention_heads}, K={cfg.num_key_value_heads}, Dh={cfg.head_dim}, V={cfg.vocab_size}")'''


def setup(default: str) -> str:
    """The first cell: the bundled model (installed with minillm) or one of the repository's tiny checkpoints."""
    path = "minillm.default_model_path()" if default == "minillm-bilingual" else f'WEIGHTS_DIR / "{default}"'
    return SETUP.replace("{default}", path)


def your_turn(number: str, exercises: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """The "Your turn" section that ends notebook `number`: for each exercise (name, what to write, stub cell), a
    sentence, the stub (it raises NotImplementedError until written) and a cell that checks it against minillm."""
    cells = [("md", f"""## Your turn

Write each function below in its cell, then run the cell after it: `check` compares your function with minillm's
own on a few inputs and prints ✓, what differs, or "not done yet" while the stub still raises
NotImplementedError. The checks are in `notebooks/exercises/checks_{number}.py`; solutions are kept apart in
`notebooks/exercises/solutions_{number}.py` (try first).""")]
    for n, (name, task, stub) in enumerate(exercises, start=1):
        first = "from exercises import check\n\n" if n == 1 else ""
        cells += [("md", f"**{n}. `{name}`.** {task}"), ("code", stub), ("code", f'{first}check("{name}", my_{name})')]
    return cells


TOUR = [
    ("md", """# 1. A tour of one forward pass

We follow one piece of text through a Qwen model: text to tokens, tokens to vectors, one decoder layer
opened up step by step, then all layers, the final norm and the next-token prediction. Every step calls
minillm's own small functions (the same code the tests check against transformers), prints the shapes,
and is checked against the library's composed function. Along the way, small experiments show *why* each
piece is there: the 1/sqrt(Dh) scale, SwiGLU's gate, pre-norm, tied embeddings. Words in bold on first use are
defined in [the glossary](../docs/GLOSSARY.md); `minillm/plain/forward.py` holds the whole forward pass on one
screen, to read beside this notebook.

The bundled model, `minillm-bilingual`, is a small Qwen3 (the first cell prints its shape: L layers of width D,
H query heads sharing K key/value heads of Dh dims, V vocabulary entries) that minillm's own NumPy trainer
trained on English and Chinese text (Shakespeare, Austen, the Bible, Tang poetry, ...; notebook 7). It is tiny,
so its predictions are plausible rather than right, but the *shapes and the mechanics* are exactly those of
Qwen3. Point the first cell at a real checkpoint to see a large model's predictions."""),
    ("code", setup("minillm-bilingual")),
    ("md", """## Text to tokens

Qwen uses byte-level BPE: text is NFC-normalised, split by a regex, turned into UTF-8 bytes, and merged into
vocabulary pieces. No BOS token is added.

The bundled tokenizer has 8,192 byte-level BPE entries, trained on the model's English + Chinese corpus with
Qwen's rules (the same regex split, byte mapping and special tokens). Common English words are one token,
with their leading space (" not" is one token); rarer words are cut into pieces; most Chinese characters
are one token each, and a few frequent pairs are merged. A real Qwen tokenizer works the same way with
151,643 entries. In both, a character that is rare in the training text is split over several tokens, each
holding some of its UTF-8 bytes.

The `piece` column is the vocabulary string. Byte-level BPE gives each byte a printable character: a space
shows as `'Ġ'`, and the 3 bytes of a Chinese character as 3 Latin-1-looking ones (`'ä½ł'` is `'你'`; see
`minillm/text/tokenizer.py`)."""),
    ("code", '''text = "To be, or not to be, that is the"
ids = tok.encode(text)
print("床前明月光 ->", [tok.decode([i]) for i in tok.encode("床前明月光")])
print("ids:", ids)
for i in ids:
    raw = tok.decode([i])
    print(f"{i:>7}  piece {tok.id_to_token(i)!r:<12} decodes alone to {raw!r}")'''),
    ("md", """A `'\\ufffd'` (the replacement character) means the token holds only part of a character's bytes: only
the pieces together decode to the character. This is why streaming output must buffer bytes."""),
    ("code", '''chinese = tok.encode("鱻")
print(f"'鱻' is {len('鱻'.encode())} UTF-8 bytes {list('鱻'.encode())} -> {len(chinese)} tokens {chinese}")
print("together they decode to", repr(tok.decode(chinese)))'''),
    ("md", """## Token embedding

Each id selects one row of `model.embed_tokens.weight` [V, D]. There is no position embedding: positions
enter later, through RoPE inside attention."""),
    ("code", '''from minillm.model.embedding import embed

ids_BT = np.array([ids])                                  # [B=1, T]
x = embed(ids_BT, model.weights.embed_tokens)             # [1, T, D]
print("ids", ids_BT.shape, "-> embeddings", x.shape, x.dtype)'''),
    ("md", """## One decoder layer, step by step

A layer is `h = x + Attention(RMSNorm(x))`, then `out = h + MLP(RMSNorm(h))`. We open layer 0. `x` is the
**residual stream**: each block reads a normalised copy of it (**RMSNorm**: divide by the root mean square, scale
by a learned weight) and adds its result back. Normalising the block's *input* rather than the sum is
**pre-norm**; why it matters is shown after the layer."""),
    ("code", '''from minillm.model.norm import rms_norm
from minillm.model.linear import linear
from minillm.model.attention import split_heads, merge_heads, attention_probs
from minillm.model.masks import causal_mask
from minillm.model.rope import rope_frequencies, rope_cos_sin, apply_rope
from minillm.model.activations import silu

layer = model.weights.layers[0]
w = layer.self_attn
H, K, Dh, eps = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.rms_norm_eps
T = x.shape[1]

normed = rms_norm(x, layer.input_layernorm, eps)           # [1, T, D]
q = linear(normed, w.q_proj, w.q_proj_bias)                # [1, T, H*Dh]
k = linear(normed, w.k_proj, w.k_proj_bias)                # [1, T, K*Dh]
v = linear(normed, w.v_proj, w.v_proj_bias)                # [1, T, K*Dh]
print("input_layernorm", normed.shape, "| q", q.shape, "k", k.shape, "v", v.shape)
print(f"H={H} query heads and K={K} key/value heads of Dh={Dh} (H*Dh={H*Dh}, D={cfg.hidden_size})")'''),
    ("md", """**The head split.** Each projection's columns are laid out head by head: head n is columns
`n*Dh .. (n+1)*Dh-1`. Reshaping and moving the head axis forward gives one [T, Dh] matrix per head."""),
    ("code", '''q, k, v = split_heads(q, H), split_heads(k, K), split_heads(v, K)   # [1, H, T, Dh], [1, K, T, Dh] x2
print("q", q.shape, "k", k.shape, "v", v.shape)
if w.q_norm is not None:
    # Qwen3: an RMSNorm over Dh of every query and key head, BEFORE RoPE
    q_hat = rms_norm(q, np.ones(Dh, np.float32), eps)      # normalised, before the learned weight
    q, k = rms_norm(q, w.q_norm, eps), rms_norm(k, w.k_norm, eps)
    rms_hat, rms_q = np.sqrt((q_hat ** 2).mean(-1)), np.sqrt((q ** 2).mean(-1))   # [1, H, T] each
    print(f"q/k-norm, before its weight: every head's vector has RMS 1 ({rms_hat.min():.4f} .. {rms_hat.max():.4f})")
    print("then coordinate j is multiplied by q_norm[j]: max |q - q_norm * q_hat|",
          rounding(float(np.abs(q - w.q_norm * q_hat).max())))
    print(f"so the RMS after the weight is sqrt(mean(q_norm^2 * q_hat^2)): {rms_q.min():.3f} .. {rms_q.max():.3f} here")
else:
    print("Qwen2: no q/k-norm (but q, k and v had biases)")'''),
    ("md", """**RoPE.** Positions rotate pairs (j, j + Dh/2) of every query and key by angles `position * inv_freq[j]`.
Values are not rotated."""),
    ("code", '''positions = np.arange(T)[None]                             # [1, T]
inv_freq, scaling = rope_frequencies(Dh, cfg.rope, cfg.max_position_embeddings, seq_len=T)
cos, sin = rope_cos_sin(positions, inv_freq, scaling)      # [1, T, Dh]
q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
print("cos/sin", cos.shape, "| rotated q", q.shape, "k", k.shape)'''),
    ("md", """**Scores, mask, softmax.** `q k^T / sqrt(Dh)`; the causal mask hides the future; softmax (float32, max
subtracted) turns each row into weights summing to 1."""),
    ("code", '''window = cfg.sliding_window if cfg.uses_sliding_window(0) else None   # None unless layer 0 slides
mask = causal_mask(T, 0, None, window)                      # [1, 1, T, T] True = may attend
probs = attention_probs(q, k, mask).reshape(1, H, T, T)    # [1, H, T, T]
print("mask", mask.shape, "probs", probs.shape, "rows sum to", probs.sum(-1).min().round(6), "..", probs.sum(-1).max().round(6))
print("weights of the last token over all tokens, head 0:", probs[0, 0, -1].round(3))'''),
    ("md", """### Why divide by sqrt(Dh)?

A dot product of two vectors whose Dh entries are independent with variance 1 has variance Dh: the larger the
head, the larger the scores, and a softmax of large scores puts almost all the weight on one key. Dividing by
sqrt(Dh) brings the variance back to 1 whatever the head size. Below, random queries and keys (64 keys per
query), the variance of the scores and the entropy of the softmax (ln 64 = 4.16 is a uniform spread, 0 is all
weight on one key), with and without the scale."""),
    ("code", '''from minillm.model.activations import softmax

rng = np.random.default_rng(0)
entropy = lambda p: float(-(p * np.log(p + 1e-30)).sum(-1).mean())   # nats, averaged over the queries
dims, n_keys = [8, 16, 32, 64, 128, 256], 64
raw_entropy, scaled_entropy = [], []
for d in dims:
    scores = rng.standard_normal((512, d)) @ rng.standard_normal((n_keys, d)).T    # [512 queries, 64 keys]
    raw_entropy.append(entropy(softmax(scores)))
    scaled_entropy.append(entropy(softmax(scores / np.sqrt(d))))
    print(f"Dh={d:>3}: variance of q.k {scores.var():6.1f}, of q.k/sqrt(Dh) {(scores / np.sqrt(d)).var():.2f}")
plt.figure(figsize=(6, 3))
plt.semilogx(dims, raw_entropy, "o-", base=2, label="softmax(q.k)")
plt.semilogx(dims, scaled_entropy, "o-", base=2, label="softmax(q.k / sqrt(Dh))")
plt.axhline(np.log(n_keys), color="gray", ls="--", label="uniform over 64 keys")
plt.title("Attention entropy of random q, k, with and without the scale")
plt.xlabel("head dimension Dh"); plt.ylabel("entropy (nats)"); plt.legend(fontsize=8); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: without the scale the scores' variance is Dh and the entropy falls towards 0 as heads grow:
each query would attend to one key, and a softmax that saturated has almost no gradient to learn from. With
it, the variance stays near 1 and the entropy stays at the same level for every head size."""),
    ("code", '''# weighted values: query head h reads key/value head h // (H/K)
n_rep = H // K
out = np.stack([probs[0, h] @ v[0, h // n_rep] for h in range(H)])[None]   # [1, H, T, Dh]
attn = linear(merge_heads(out), w.o_proj, w.o_proj_bias)                    # [1, T, D]
h_res = x + attn                                                            # residual add
print("attention output", attn.shape, "-> residual stream", h_res.shape)'''),
    ("md", """**The MLP (SwiGLU)** widens to F, gates, and projects back: `down(silu(gate(z)) * up(z))`."""),
    ("code", '''z = rms_norm(h_res, layer.post_attention_layernorm, eps)   # [1, T, D]
gate, up = linear(z, layer.mlp.gate_proj), linear(z, layer.mlp.up_proj)    # [1, T, F] each
mlp_out = linear(silu(gate) * up, layer.mlp.down_proj)     # [1, T, D]
layer_out = h_res + mlp_out
print("gate/up", gate.shape, "-> down", mlp_out.shape, "-> layer output", layer_out.shape)

# check: the library's decoder_layer computes the same thing
from minillm.model.block import decoder_layer
reference_out = decoder_layer(x, layer, H, K, eps, cos, sin, mask)
print("max |step-by-step - decoder_layer|", rounding(float(np.abs(layer_out - reference_out).max()), 1e-4))
assert np.allclose(layer_out, reference_out, atol=1e-4)'''),
    ("md", """### What SwiGLU's gate does

A plain MLP computes `down(relu(up(z)))` (or GELU): a unit passes its value when its *own* input is positive.
**SwiGLU** adds a second projection, the gate, and computes `down(silu(gate(z)) * up(z))`: one projection
decides how much of each unit passes, the other carries the value. silu(u) = u sigmoid(u) is near 0 for
negative u, about u for positive u, and dips to -0.28 in between, so the gate can shut a unit, pass it, amplify
it or flip its sign, for each token separately. Here are the gate factors of layer 0 on our prompt."""),
    ("code", '''factor = silu(gate)[0]                                   # [T, F]: what each unit's up value is multiplied by
damped = np.abs(factor) < 0.3                            # silu's negative dip reaches only -0.28
print(f"{factor.size} (token, unit) pairs of layer 0: {damped.mean():.0%} damped (|silu(gate)| < 0.3; "
      f"{(factor < 0).mean():.0%} of all are slightly negative), {((factor >= 0.3) & (factor <= 1)).mean():.0%} "
      f"passed (0.3 .. 1), {(factor > 1).mean():.0%} amplified (> 1)")
print(f"a ReLU MLP on the same up values would shut the {(up[0] < 0).mean():.0%} whose up value is negative; "
      f"of the units the gate damps, {(damped & (up[0] < 0)).sum() / max(damped.sum(), 1):.0%} have a negative up value")
plt.figure(figsize=(6, 3))
plt.hist(factor.ravel(), bins=80, color="tab:green")
plt.axvline(0, color="gray", lw=0.8)
plt.title("SwiGLU gate factors silu(gate), layer 0, every token and unit")
plt.xlabel("silu(gate) (multiplies the unit's up value)"); plt.ylabel("count"); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: most factors pile up between -0.28 (silu's minimum) and 0: for each token, most units are
damped to a small, slightly negative fraction of their value, and a minority are passed or amplified (the
long tail to the right). Which units are damped is decided by the gate projection, not by the sign of the
value itself: of the damped units about half have a negative up value (the second printed line), where a
ReLU would have shut exactly the negative ones. That separation is what the extra matrix buys. Qwen's MLP has
three matrices of D x F instead of two, so for the same parameter count F is about two thirds of a two-matrix
MLP's width.

### Why pre-norm?

In a pre-norm layer the residual stream passes from the input to the output with nothing but additions on the
way: the gradient of the loss reaches every layer through that identity path. A **post-norm** layer (the
original Transformer's) normalises the sum instead, `x = norm(x + block(x))`, so the gradient reaching layer l
has gone through every norm above it. A tiny NumPy experiment: a random stack of 48 residual blocks of width 64,
each `3 tanh(W x)`, stacked both ways, one backward pass (minillm's own `rms_norm_backward`), and the gradient
norm of each block's weight."""),
    ("code", '''from minillm.backward.norm import rms_norm_backward

rng = np.random.default_rng(0)
depth, width, gain = 48, 64, 3.0
Ws = [rng.standard_normal((width, width)) / np.sqrt(width) for _ in range(depth)]   # [width, width] each
x0, target = rng.standard_normal((32, width)), rng.standard_normal((32, width))     # [32 tokens, width]
ones = np.ones(width)
norm = lambda u: rms_norm(u, ones, 1e-6)
block = lambda u, W: gain * np.tanh(u @ W.T)

def weight_gradients(post_norm):
    xs = [x0]                                          # the residual stream before each block
    for W in Ws:
        x = xs[-1]
        xs.append(norm(x + block(x, W)) if post_norm else x + block(norm(x), W))
    out = xs[-1] if post_norm else norm(xs[-1])        # pre-norm ends with a final norm, as Qwen does
    g = (out - target) / len(x0)                       # gradient of 0.5 * mean squared error
    if not post_norm:
        g = rms_norm_backward(g, xs[-1], ones, 1e-6)[0]
    norms = []
    for W, x in zip(Ws[::-1], xs[-2::-1]):             # backward, last block first
        if post_norm:
            g = rms_norm_backward(g, x + block(x, W), ones, 1e-6)[0]
        u = x if post_norm else norm(x)                # the block's input
        du = g * gain * (1 - np.tanh(u @ W.T) ** 2)    # through tanh
        norms.append(np.linalg.norm(du.T @ u))         # |dLoss/dW| of this block
        g = g + du @ W if post_norm else g + rms_norm_backward(du @ W, x, ones, 1e-6)[0]
    return np.array(norms[::-1])

plt.figure(figsize=(6.5, 3.2))
for name, post_norm in (("pre-norm", False), ("post-norm", True)):
    grads = weight_gradients(post_norm)
    print(f"{name:>9}: weight gradient norms from {grads.min():.3g} to {grads.max():.3g}; block 0 / last block "
          f"= {grads[0] / grads[-1]:.1f}, block {depth // 4} / last block = {grads[depth // 4] / grads[-1]:.1f}")
    plt.semilogy(grads, "o-", ms=3, label=name)
plt.title(f"Gradient norm of each block's weight, {depth} random blocks")
plt.xlabel("block (0 = nearest the input)"); plt.ylabel("|dLoss/dW|"); plt.legend(); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: with pre-norm, apart from the first few blocks, the gradients are nearly level (within
about a factor of 2 from block 12 to the last, printed); with post-norm they grow exponentially towards the
input over the whole depth (a straight slope on the log scale), because every gradient is multiplied by what
each norm above it does, and that product changes as the weights change during training. One learning rate
then does not fit every layer, which is why post-norm Transformers need a careful warmup and pre-norm ones train
deep stacks without it. (A random toy stack: change `depth` or `gain` and watch the post-norm slope.)"""),
    ("md", """## All layers, the final norm, the logits

The remaining layers repeat the same computation with their own weights. The last hidden state goes
through the final RMSNorm and the LM head (a [D] x [D, V] product): one score per vocabulary entry."""),
    ("code", '''hidden = layer_out
for i, layer_w in enumerate(model.weights.layers[1:], start=1):
    window = cfg.sliding_window if cfg.uses_sliding_window(i) else None   # sliding-window layers see fewer keys
    hidden = decoder_layer(hidden, layer_w, H, K, eps, cos, sin, causal_mask(T, 0, None, window))
from minillm.model.transformer import lm_head
final = rms_norm(hidden, model.weights.norm, eps)          # [1, T, D]
logits = lm_head(final, model.weights.lm_head)             # [1, T, V]
print("logits", logits.shape)
assert np.allclose(logits[0], model.forward(ids), atol=1e-4)
print("identical to model.forward(ids): the tour computed the real forward pass")'''),
    ("md", """### Tied embeddings

The **LM head** [V, D] and the token embedding [V, D] have the same shape. Small Qwen models use one matrix for
both (`tie_word_embeddings`): a token's input vector is also the direction its output score is read along."""),
    ("code", '''from minillm.checkpoint.weights import parameter_counts

V_, D_ = model.weights.embed_tokens.shape
shared = np.shares_memory(model.weights.lm_head, model.weights.embed_tokens)
total = parameter_counts(cfg)[0]
print(f"tie_word_embeddings = {cfg.tie_word_embeddings}; the LM head is the embedding array itself: {shared}")
print(f"V x D = {V_} x {D_} = {V_ * D_:,} parameters, {V_ * D_ / total:.0%} of this model's {total:,}"
      f"{'' if cfg.tie_word_embeddings else ' (untied here: both are stored)'}")'''),
    ("md", """What tying saves is the printed share: for the bundled model, with its small vocabulary, a quarter of
all its parameters; in Qwen2.5-0.5B (V = 151,936, D = 896) it is 136 M of 494 M. Large models (7B and up) untie
them: there the two matrices are a small share, and separate ones predict slightly better."""),
    ("code", '''probs_next = np.exp(logits[0, -1] - logits[0, -1].max()); probs_next /= probs_next.sum()
top = np.argsort(-probs_next)[:10]
labels = [ascii(tok.decode([int(i)])) for i in top]   # ascii(): CJK glyphs are missing from the plot font
plt.figure(figsize=(8, 3))
plt.bar(range(10), probs_next[top])
plt.xticks(range(10), labels, rotation=45)
plt.title(f"Next-token distribution after {ascii(text)}")
plt.xlabel("candidate next token"); plt.ylabel("probability")
plt.tight_layout(); plt.show()
print("greedy next token:", repr(tok.decode([int(top[0])])))'''),
    ("md", """What to see: the model's whole output for this prompt is this one distribution (the softmax of the
**logits**, one score per vocabulary entry); greedy decoding takes its tallest bar. The candidates are plausible continuations: words that can follow "the" (" best",
" most", " same", " cause", ...). A model this small spreads its
probability over many such candidates, where a large trained model would put most of it on " question"."""),
] + your_turn("01", [
    ('rms_norm', 'RMSNorm of each row, then a per-feature scale (`minillm/model/norm.py`).',
     '''def my_rms_norm(x, weight, eps):
    """x [T, D], weight [D] -> [T, D]"""
    # hint: divide each row by sqrt(mean of its squares + eps), then multiply by weight
    raise NotImplementedError'''),
    ('causal_mask', 'The causal mask of T tokens (`minillm/model/masks.py`).',
     '''def my_causal_mask(T):
    """-> [T, T] bool: True where query t (row) may attend to key s (column)"""
    # hint: compare np.arange(T) laid out as a row with np.arange(T) laid out as a column
    raise NotImplementedError'''),
    ('swiglu', 'One SwiGLU MLP (`minillm/model/mlp.py`).',
     '''def my_swiglu(x, gate_proj, up_proj, down_proj):
    """x [T, D], gate_proj and up_proj [F, D], down_proj [D, F] (checkpoint layout: [out, in]) -> [T, D]"""
    # hint: x @ W.T applies a weight; silu(u) = u * sigmoid(u) goes on the gate only, then times up, then down
    raise NotImplementedError'''),
])

ROPE = [
    ("md", """# 2. Attention and RoPE

How Qwen tells positions apart (rotary embeddings, **RoPE**), why attention only sees relative positions (and
what a learned position table cannot do), the causal mask, what every head of a layer attends to, why Qwen3
normalises queries and keys (**q/k-norm**), and how grouped-query attention (**GQA**) shares key/value heads and
what that saves. Terms in bold are defined in [the glossary](../docs/GLOSSARY.md)."""),
    ("code", setup("minillm-bilingual")),
    ("md", """## The rotation frequencies

Pair j of a head's Dh coordinates turns by `inv_freq[j] = theta^(-2j/Dh)` radians per position: the first
pairs spin fast (fine position detail), the last ones very slowly (long-range position).

`rope_frequencies` returns two things: `inv_freq` (changed by the scaled RoPE types) and the attention
scaling that multiplies cos and sin (YaRN's attention factor, so the logits grow by its square; 1.0 for
every other type). Every cos/sin below includes it, so on a YaRN checkpoint the rotations and the attention
maps are the model's own."""),
    ("code", '''from minillm.model.rope import default_inv_freq, rope_frequencies, rope_cos_sin, apply_rope

Dh = cfg.head_dim
inv_freq, scaling = rope_frequencies(Dh, cfg.rope, cfg.max_position_embeddings)
print(f"rope_type {cfg.rope.rope_type}: attention scaling {scaling:.4f} (multiplies cos and sin)")
plt.figure(figsize=(7, 3))
for theta, who in ((1e4, "RoFormer, Llama 2"), (1e6, "Qwen2, Qwen2.5, Qwen3"), (1e7, "Qwen3.5")):
    plt.semilogy(default_inv_freq(Dh, theta), "--", label=f"theta={theta:.0e} ({who})")
plt.semilogy(inv_freq, "ko", ms=3, label=f"this model: {cfg.rope.rope_type}, theta={cfg.rope.theta:.0e}")
plt.title(f"RoPE frequencies per coordinate pair (Dh={Dh})")
plt.xlabel("pair index j"); plt.ylabel("radians per position (log)")
plt.legend(fontsize=8); plt.tight_layout(); plt.show()
slowest = {theta: 2 * np.pi / default_inv_freq(Dh, theta)[-1] for theta in (1e4, 1e6, 1e7)}
print("positions for the slowest pair to turn once:", ", ".join(f"theta {t:.0e}: {p:,.0f}" for t, p in slowest.items()))'''),
    ("md", """What to see: every theta starts at 1 radian per position (pair 0) and falls geometrically over the
pairs; a larger theta makes the slow pairs slower still (the lines part to the right), so the slowest pair
needs more positions to turn once (printed) and positions stay distinguishable over longer contexts. The dots
are this model's own frequencies: they lie on the line of its theta (a scaled RoPE type such as YaRN bends
them)."""),
    ("md", """## A vector rotated through positions

Take one pair (x[j], x[j + Dh/2]) of a vector and apply RoPE at positions 0, 1, 2, ...: the pair moves on a
circle (its length is preserved), one step of `inv_freq[j]` radians per position."""),
    ("code", '''pairs = (0, Dh // 8)                                       # a fast pair and a slower one
radius = {pairs[0]: 1.0, pairs[1]: 0.6}                    # two lengths, so the two circles do not overlap
vec = np.zeros((1, 1, 1, Dh), np.float32)
for j in pairs:
    vec[..., j] = radius[j]                                # the pair (x[j], x[j + Dh/2]) starts at (radius, 0)
plt.figure(figsize=(5, 5))
for j in pairs:
    pts = []
    for p in range(8):
        cos, sin = rope_cos_sin(np.array([[p]]), inv_freq, scaling)
        r = apply_rope(vec, cos, sin)[0, 0, 0]
        pts.append((r[j], r[j + Dh // 2]))
    pts = np.array(pts)
    line, = plt.plot(pts[:, 0], pts[:, 1], "o-", label=f"pair {j}: {inv_freq[j]:.3g} rad/position")
    for p, (a, b) in enumerate(pts):
        plt.annotate(str(p), (a, b), textcoords="offset points", xytext=(4, 4), fontsize=8, color=line.get_color())
plt.gca().set_aspect("equal")
plt.title("Two coordinate pairs rotated through positions 0..7")
plt.xlabel("x[j]"); plt.ylabel("x[j + Dh/2]"); plt.legend(fontsize=8); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: pair 0 turns about 57 degrees (1 radian) per position, a full turn in a little over 6
positions (numbers mark the positions); pair Dh/8 covers only a small arc in the same 8 positions. Both stay on their
circle: RoPE rotates, it never changes a pair's length (times the attention scaling, above 1 only on a YaRN
checkpoint)."""),
    ("md", """## Only relative positions matter

Rotate a query at position p and a key at position s; their dot product depends only on p - s. Shift both
positions by the same amount and the score does not change."""),
    ("code", '''rng = np.random.default_rng(0)
q = rng.standard_normal((1, 1, 1, Dh)).astype(np.float32)
k = rng.standard_normal((1, 1, 1, Dh)).astype(np.float32)

def score(p, s):
    cq, sq = rope_cos_sin(np.array([[p]]), inv_freq, scaling)
    ck, sk = rope_cos_sin(np.array([[s]]), inv_freq, scaling)
    return float((apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum())

for shift in (0, 10, 100, 1000):
    print(f"q at {5 + shift:>5}, k at {2 + shift:>5}: score {score(5 + shift, 2 + shift):+.5f}")
print(f"q at 5, k at 4 (another distance): score {score(5, 4):+.5f}")'''),
    ("md", """### Against a learned position table

GPT-2 and BERT add a learned vector P[p] to the token at position p instead. Then the score
(q + P[p]).(k + P[s]) depends on p and s themselves, not only on their distance, and the table has one row per
position it was trained for: past its length there is nothing to add. Below, a query and a key always 3
positions apart, moved along the sequence, with RoPE and with a (random) table of 64 rows."""),
    ("code", '''table_len, offset = 64, 3
table = rng.standard_normal((table_len, Dh)).astype(np.float32) * 0.5   # [table_len, Dh] a position table
positions = np.arange(offset, 160)
rope_scores = [score(p, p - offset) for p in positions]
table_scores = [float((q + table[p]).ravel() @ (k + table[p - offset]).ravel()) if p < table_len else np.nan
                for p in positions]                                     # no row past the table: nothing to compute
print(f"RoPE: scores from {min(rope_scores):+.4f} to {max(rope_scores):+.4f}; "
      f"table: from {np.nanmin(table_scores):+.2f} to {np.nanmax(table_scores):+.2f}, undefined past {table_len}")
plt.figure(figsize=(7, 3))
plt.plot(positions, rope_scores, label="RoPE")
plt.plot(positions, table_scores, label=f"learned table ({table_len} positions)")
plt.axvline(table_len, color="gray", ls="--")
plt.title(f"Score of a query and a key {offset} positions apart, moved along the sequence")
plt.xlabel("query position p (key at p - 3)"); plt.ylabel("q . k"); plt.legend(); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: with RoPE the line is flat: the same two vectors at the same distance score the same
everywhere, so what a head learns about "3 tokens back" holds at every position, and beyond any length seen in
training (how well is another matter: the scaled RoPE types such as YaRN exist for that). With the table the
score jumps around, because every position has its own vector, and stops at the table's end (dashed)."""),
    ("md", """## The causal mask

Token t may attend to tokens 0..t only. With left padding, padding keys are hidden too; on sliding-window
layers, only the last `sliding_window` keys are visible."""),
    ("code", '''from minillm.model.masks import causal_mask
T = 8
masks = {"causal": causal_mask(T, 0)[0, 0],
         "causal + 2 padding tokens": causal_mask(T, 0, np.array([[False, False] + [True] * 6]))[0, 0],
         "sliding window of 3": causal_mask(T, 0, None, 3)[0, 0]}
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for ax, (name, m) in zip(axes, masks.items()):
    ax.imshow(m, cmap="Greens"); ax.set_title(name, fontsize=9)
    ax.set_xlabel("key position"); ax.set_ylabel("query position")
fig.suptitle("Which keys each query may see (green = allowed)"); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: the lower triangle is allowed; padding columns are blank for every query; the sliding window
keeps only a diagonal band."""),
    ("md", """## Attention maps of every head of a layer

We run one layer's attention on a sentence and plot each query head's weights. A check first: the same
cos/sin (attention scaling included) and mask, through the library's `decoder_layer`, give the model's own
hidden state after this layer, so these maps are the ones the model computes."""),
    ("code", '''from minillm.model.attention import project_qkv, attention_probs
from minillm.model.embedding import embed
from minillm.model.norm import rms_norm

text = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
ids = np.array([tok.encode(text)])
T = ids.shape[1]
layer_idx = min(1, cfg.num_hidden_layers - 1)                 # the second layer
_, hidden = model.forward(ids[0], output_hidden_states=True)
x = hidden[layer_idx][None]                                   # input of layer `layer_idx`  [1, T, D]
layer = model.weights.layers[layer_idx]
cos, sin = rope_cos_sin(np.arange(T)[None], inv_freq, scaling)   # [1, T, Dh], YaRN's factor included
q, k, v = project_qkv(rms_norm(x, layer.input_layernorm, cfg.rms_norm_eps), layer.self_attn,
                      cfg.num_attention_heads, cfg.num_key_value_heads, cfg.rms_norm_eps, cos, sin)
H = cfg.num_attention_heads
window = cfg.sliding_window if cfg.uses_sliding_window(layer_idx) else None
mask = causal_mask(T, 0, None, window)                      # [1, 1, T, T]
probs = attention_probs(q, k, mask).reshape(1, H, T, T)[0]   # [H, T, T]

from minillm.model.block import decoder_layer
layer_out = decoder_layer(x, layer, H, cfg.num_key_value_heads, cfg.rms_norm_eps, cos, sin, mask)   # [1, T, D]
print("max |decoder_layer with these cos/sin - the model's hidden state|",
      rounding(float(np.abs(layer_out[0] - hidden[layer_idx + 1]).max()), 1e-4))
assert np.allclose(layer_out[0], hidden[layer_idx + 1], rtol=1e-4, atol=1e-4), "not the model's attention"
cols = min(H, 4); rows = (H + cols - 1) // cols
fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
for h in range(rows * cols):
    ax = axes[h // cols][h % cols]
    if h < H:
        ax.imshow(probs[h], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"head {h} (kv head {h // (H // cfg.num_key_value_heads)})", fontsize=9)
        ax.set_xlabel("key"); ax.set_ylabel("query")
    else:
        ax.axis("off")
fig.suptitle(f"Attention weights of layer {layer_idx}, every query head"); plt.tight_layout(); plt.show()
print("mean weight on the previous token, per head:", probs[:, np.arange(1, T), np.arange(T - 1)].mean(-1).round(2))
print("mean weight on the first token, per head:   ", probs[:, 1:, 0].mean(-1).round(2))'''),
    ("md", """What to see: each map is lower-triangular (causal) and each row sums to 1; different heads spread their
attention differently. In a trained model look for a bright line just below the diagonal: a head that
reads the previous token (in the bundled model, head 4 of this second layer gives it about 85% of its
weight: the first printed line). Other heads spread their weight over many earlier tokens. Large trained
models also have heads that put much of their weight on the first token, a resting place when nothing else is
relevant (an "attention sink"); this small model hardly does: no head of the bundled model gives the first
token more than about a fifth of its weight here, averaged over the queries (the second line; change
`layer_idx` to look at the other layers)."""),
    ("md", """## Why q/k-norm?

Qwen3 applies an RMSNorm to every query and key head before RoPE (notebook 1). Without it, an attention logit
q.k/sqrt(Dh) grows with the size of the projection weights, and these grow during training: scale W_q and W_k
by s and the logits grow by s², until the softmax puts all its weight on one key (and its gradient vanishes).
With q/k-norm the scale cancels. Below, this layer's attention on the sentence above with W_q and W_k scaled by
s, with the model's q/k-norm and without it (the projections then divided once by the RMS their heads have at
s = 1, so that both start from a similar scale)."""),
    ("code", '''from dataclasses import replace

w = layer.self_attn
normed = rms_norm(x, layer.input_layernorm, cfg.rms_norm_eps)       # [1, T, D] the layer's attention input
Hq, Kv, Dh_ = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
causal = causal_mask(T, 0)[0, 0]                                 # [T, T]
scales = [1, 2, 4, 8, 16]
raw_q, raw_k, _ = project_qkv(normed, replace(w, q_norm=None, k_norm=None), Hq, Kv, cfg.rms_norm_eps, cos, sin)
rms = lambda a: float(np.sqrt((a ** 2).mean()))                # RoPE keeps lengths: the RMS before rotation too
results = {}
for with_norm in ((True, False) if w.q_norm is not None else (False,)):
    largest, entropies = [], []
    for s in scales:
        if with_norm:
            ws = replace(w, q_proj=w.q_proj * s, k_proj=w.k_proj * s)
        else:
            ws = replace(w, q_proj=w.q_proj * s / rms(raw_q), k_proj=w.k_proj * s / rms(raw_k), q_norm=None, k_norm=None)
        qs, ks, _ = project_qkv(normed, ws, Hq, Kv, cfg.rms_norm_eps, cos, sin)   # [1, H, T, Dh], [1, K, T, Dh]
        logits = qs[0] @ np.repeat(ks[0], Hq // Kv, axis=0).swapaxes(-1, -2) / np.sqrt(Dh_)   # [H, T, T]
        p = attention_probs(qs, ks, causal_mask(T, 0)).reshape(Hq, T, T)                      # [H, T, T]
        largest.append(float(np.abs(logits[:, causal]).max()))
        entropies.append(float(-(p * np.log(p + 1e-30)).sum(-1).mean()))
    results["with q/k-norm" if with_norm else "without q/k-norm"] = (largest, entropies)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3))
for name, (largest, entropies) in results.items():
    ax1.loglog(scales, largest, "o-", base=2, label=name)
    ax2.semilogx(scales, entropies, "o-", base=2, label=name)
    print(f"{name:>17}: largest |logit| {largest[0]:.1f} at s=1, {largest[-1]:.1f} at s={scales[-1]}; "
          f"mean attention entropy {entropies[0]:.2f} -> {entropies[-1]:.2f} nats")
ax1.set_title("largest attention logit"); ax1.set_xlabel("scale s of W_q and W_k"); ax1.set_ylabel("|q.k| / sqrt(Dh)")
ax2.set_title("mean entropy of the attention rows"); ax2.set_xlabel("scale s of W_q and W_k"); ax2.set_ylabel("nats")
ax1.legend(fontsize=8); fig.suptitle(f"Layer {layer_idx}'s attention as its query/key weights grow")
plt.tight_layout(); plt.show()'''),
    ("md", """What to see: without q/k-norm the largest logit grows as s² (a slope of 2 on the log-log plot) and the
entropy falls towards 0: each query ends up attending to a single key, whatever the text. With q/k-norm both
lines are flat: the norm divides the scale out, so growing weights cannot saturate the softmax, and training
stays stable at larger learning rates (the reason Qwen3 added it; Qwen2 had biases instead). On a checkpoint
without q/k-norm (Qwen2) only the second line is drawn."""),
    ("md", """## Grouped-query attention: who shares which key/value head

With H query heads and K key/value heads, query head h reads key/value head `h // (H/K)`: consecutive query
heads form a group that shares one K/V head ("repeat-interleave"), which shrinks the KV cache by H/K."""),
    ("code", '''H, K = cfg.num_attention_heads, cfg.num_key_value_heads
share = np.zeros((H, K))
for h in range(H):
    share[h, h // (H // K)] = 1
plt.figure(figsize=(3 + K, 3))
plt.imshow(share, cmap="Blues", aspect="auto")
plt.title(f"GQA: {H} query heads over {K} key/value heads")
plt.xlabel("key/value head"); plt.ylabel("query head"); plt.colorbar(label="reads from"); plt.tight_layout(); plt.show()
print(f"KV cache per token: {2 * cfg.num_hidden_layers * K * cfg.head_dim * 4} bytes with GQA, "
      f"{2 * cfg.num_hidden_layers * H * cfg.head_dim * 4} bytes if every query head had its own K/V")'''),
    ("md", """What to see: a block diagonal: each key/value head serves a run of consecutive query heads, never every
K-th one (that would be `tile`, the bug that gives wrong numbers on real checkpoints).

### What GQA saves on real models

The **KV cache** keeps a key and a value per layer, per position and per *key/value* head. With K heads instead
of H it is H/K times smaller, and at long contexts that cache, not the weights, is what fills the memory. The
configs of real Qwen models (in `weights/configs/`, no weights needed), float32 as minillm stores it:"""),
    ("code", '''from minillm.model.cache import kv_bytes_per_token

print(f"{'model':<30}{'H':>4}{'K':>4}{'Dh':>5}{'layers':>7}  KV cache per token   at 32,768 tokens")
for name in ["qwen2.5-0.5b-instruct.v4", "qwen3-0.6b.v4", "qwen2.5-7b-instruct-yarn.v4", "qwen3-30b-a3b", "qwen3.5-0.8b"]:
    c = minillm.load_config(WEIGHTS_DIR / "configs" / f"{name}.json")
    gqa = kv_bytes_per_token(c)                                        # attention layers only (Qwen3.5: 6 of 24)
    mha = gqa * c.num_attention_heads // c.num_key_value_heads       # the same with one K/V head per query head
    layers = gqa // (2 * c.num_key_value_heads * c.head_dim * 4)
    print(f"{name:<30}{c.num_attention_heads:>4}{c.num_key_value_heads:>4}{c.head_dim:>5}{layers:>7}  "
          f"{gqa / 1024:5.0f} KiB (MHA {mha / 1024:4.0f})   {gqa * 32768 / 2**30:5.2f} GiB (MHA {mha * 32768 / 2**30:5.2f})")'''),
    ("md", """The saving is H/K: 7 times for Qwen2.5-0.5B and -7B and 8 times for Qwen3-30B-A3B, only 2 for
Qwen3-0.6B; Qwen3.5 combines 4x GQA with keeping a cache in only a quarter of its layers (notebook 6)."""),
] + your_turn("02", [
    ('apply_rope', 'RoPE on one head, from theta alone (`minillm/model/rope.py`).',
     '''def my_apply_rope(x, positions, theta):
    """x [T, Dh], positions [T] -> [T, Dh], pair (x[j], x[j + Dh/2]) rotated by positions * theta^(-2j/Dh)"""
    # hint: angle [T, Dh/2]; x1, x2 = the two halves; (x1 cos - x2 sin, x2 cos + x1 sin)
    raise NotImplementedError'''),
    ('repeat_kv', "GQA's repeat: give every query head its key/value head.",
     '''def my_repeat_kv(k, n_rep):
    """k [K, S, Dh] -> [K * n_rep, S, Dh]: query head h reads key/value head h // n_rep"""
    # hint: one NumPy call; np.tile is the classic bug
    raise NotImplementedError'''),
])

CACHE = [
    ("md", """# 3. The KV cache and generation

Generating a token needs the keys and values of every earlier token. Recomputing them each step costs work
growing with the length; the **KV cache** stores them once. A generation is a **prefill** (the prompt, in one
pass) followed by **decode** steps (one token each). Then: how the sampling settings (**temperature, top-k,
top-p**) reshape the distribution a token is drawn from, streaming text out as it is made, and **speculative
decoding**. Terms in bold are defined in [the glossary](../docs/GLOSSARY.md); `plain_generate` in
`minillm/plain/` holds a whole generation loop on one screen."""),
    ("code", setup("minillm-bilingual")),
    ("md", """## Time per token with and without the cache

Without a cache, producing token t means a forward pass over all t tokens. With it, one token's worth of
work plus attention over t stored keys. Measured on this model:"""),
    ("code", '''# timing: these numbers are measured, so they differ a little on every run
import time
lengths = [8, 32, 64, 128, 192, 240]
no_cache, with_cache = [], []
rng = np.random.default_rng(0)
for n in lengths:
    ids = rng.integers(0, len(tok), n)
    t0 = time.perf_counter(); model.forward(ids, logits_to_keep=1); no_cache.append(time.perf_counter() - t0)
    cache = model.new_cache(1, n + 1); model.forward(ids[:-1], cache=cache)
    t0 = time.perf_counter(); model.forward(ids[-1:], cache=cache); with_cache.append(time.perf_counter() - t0)
plt.figure(figsize=(7, 3.5))
plt.plot(lengths, np.array(no_cache) * 1e3, "o-", label="no cache: full forward pass")
plt.plot(lengths, np.array(with_cache) * 1e3, "o-", label="with cache: one new token")
plt.title("Cost of the next token against sequence length")
plt.xlabel("tokens so far"); plt.ylabel("milliseconds"); plt.legend(); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: without the cache the cost grows with the length (and total generation cost quadratically);
with it, the cost of a step stays nearly flat. On a real 0.5B model the flat line sits near the memory
bandwidth floor: every weight is read once per token (see `minillm bench`)."""),
    ("md", """## What the cache holds, and that it is exact

Per layer: keys (after q/k-norm and RoPE) and values of every position, for the K key/value heads only.
Prefill plus one-token steps gives the same logits as one full forward pass."""),
    ("code", '''ids = np.array(tok.encode("Attention lets every token look at the tokens before it."))
cache = model.new_cache(1, len(ids))
steps = [model.forward(ids[:4], cache=cache)] + [model.forward(ids[t:t + 1], cache=cache) for t in range(4, len(ids))]
full = model.forward(ids)
print("cache length", cache.length, "| keys per layer", cache.keys[0].shape, "[B, K, capacity, Dh]")
print("max |incremental - full|", rounding(float(np.abs(np.concatenate(steps) - full).max()), 1e-4))
plt.figure(figsize=(8, 2.8))
plt.imshow(cache.keys[0][0, 0, :cache.length].T, aspect="auto", cmap="coolwarm")
plt.title("Layer 0, key/value head 0: the cached keys (after RoPE)")
plt.xlabel("position"); plt.ylabel("key dimension"); plt.colorbar(); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: one column per position, written once and never changed; the difference from a full pass is
float32 rounding only."""),
    ("md", """## How the sampling settings reshape one distribution

transformers' order: repetition penalty, then temperature, top-k, top-p, min-p; each filter sets the
logits it removes to -inf. Below, one real next-token distribution under each setting."""),
    ("code", '''from minillm.generation.sampling import SamplingParams, process_logits, softmax
prompt = tok.encode("It is a truth universally acknowledged")
logits = model.forward(prompt, logits_to_keep=1)                    # [1, V]
seen = np.zeros_like(logits, bool); seen[0, prompt] = True
settings = {"plain (T=1)": SamplingParams(temperature=1.0),
            "temperature 0.5": SamplingParams(temperature=0.5),
            "temperature 2.0": SamplingParams(temperature=2.0),
            "top-k 5": SamplingParams(temperature=1.0, top_k=5),
            "top-p 0.5": SamplingParams(temperature=1.0, top_p=0.5),
            "min-p 0.3": SamplingParams(temperature=1.0, min_p=0.3),
            "repetition penalty 2": SamplingParams(temperature=1.0, repetition_penalty=2.0)}
plain = softmax(logits)[0]
in_prompt = sorted(set(prompt), key=lambda i: -plain[i])[:3]              # show some prompt tokens too
top = [i for i in np.argsort(-plain)[:15].tolist() if i not in in_prompt][:15 - len(in_prompt)]
order = sorted(top + in_prompt, key=lambda i: -plain[i])          # 15 tokens
fig, axes = plt.subplots(len(settings), 1, figsize=(8, 1.4 * len(settings)), sharex=True)
for ax, (name, params) in zip(axes, settings.items()):
    p = softmax(process_logits(logits, params, seen))[0]
    ax.bar(range(15), p[order], color=["tab:red" if seen[0, i] else "tab:blue" for i in order])
    ax.set_ylabel("prob."); ax.set_title(f"{name}: {int((p > 0).sum())} tokens possible", fontsize=9)
axes[-1].set_xticks(range(15), [ascii(tok.decode([int(i)])) for i in order], rotation=60)
axes[-1].set_xlabel("the most likely tokens under the plain distribution (red: already in the prompt)")
fig.suptitle("One next-token distribution under each sampling setting"); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: low temperature sharpens, high flattens; top-k, top-p and min-p cut the tail (to k tokens,
to the smallest set reaching mass p, to tokens at least min_p times the top one); the repetition
penalty lowers the tokens already present (red)."""),
    ("md", """## Seeds, greedy decoding and streaming

Temperature 0 is greedy (argmax). A seed makes sampling reproducible. Streaming yields each token as it is
made; `StreamDecoder` holds back bytes until a character is complete, so no broken character is printed."""),
    ("code", '''greedy = minillm.generate(model, prompt, max_new_tokens=12, temperature=0.0, stop_token_ids=[])
a = minillm.generate(model, prompt, max_new_tokens=12, temperature=0.8, top_p=0.9, seed=1, stop_token_ids=[])
b = minillm.generate(model, prompt, max_new_tokens=12, temperature=0.8, top_p=0.9, seed=1, stop_token_ids=[])
print("greedy       ", greedy.tolist(), repr(tok.decode(greedy.tolist())))
print("seed 1       ", a.tolist(), repr(tok.decode(a.tolist())))
print("seed 1 again ", b.tolist(), "(identical)" if (a == b).all() else "(DIFFERENT!)")

# Streaming a known text token by token: '鱻' is spread over several tokens and comes out whole, once.
decoder = tok.stream_decoder()
known = tok.encode("fox 鱻 and 你好")
print("token by token:", [(i, decoder.step(i)) for i in known] + [("flush", decoder.flush())])

# Streaming the model's own output (greedy, as above; a special token such as <|endoftext|> is skipped)
decoder = tok.stream_decoder(skip_special_tokens=True)
pieces = [decoder.step(int(t[0])) for t in minillm.stream_generate(model, prompt, 12, temperature=0.0,
                                                                   stop_token_ids=[])]
print("model stream:  ", pieces + [decoder.flush()])'''),
    ("md", """What to see: the same seed gives the same sample, and the samples read like the training text (here,
prose that could be Austen's; greedy decoding may also end the document with `<|endoftext|>` and start
another, often a Chinese poem). In the streams, an empty piece is a step where a character was still
incomplete (it then appears whole, once), or a special token skipped by `skip_special_tokens=True`."""),
    ("md", """## Speculative decoding: several tokens per read of the weights

A decode step reads every weight once, and on a CPU that read is the cost; a step over k+1 tokens reads them
once too. So a cheap guess of the next k tokens can be checked in one pass: the pass gives the model's own
choice at every guessed position, and we keep the guesses up to the first disagreement, plus the model's own
token there (`minillm/generation/speculative.py`). Prompt lookup guesses by copying: it finds the last few
tokens earlier in the text and proposes what followed them (`drafting.py`). Greedy output is unchanged.

Below, a prompt that asks to repeat a passage with one change. Green: drafted and accepted; red, struck
through: drafted and rejected (computed, then rolled out of the cache); black: the model's own token, one
per pass. Every drafted token is checked here (`draft_schedule="constant"`), so that all guesses show."""),
    ("code", '''from IPython.display import HTML
from minillm.generation.speculative import SpeculativeStats
import html as html_lib

passage = ("The old lighthouse stood at the end of the harbour for more than a hundred years. Every night the "
           "keeper climbed the narrow stairs, lit the great lamp and watched the ships come home through the fog.")
ids = tok.encode(passage + "\\n\\nThe same story, with lighthouse changed to tower:\\n\\nThe old")
stats = SpeculativeStats()
fast = minillm.generate(model, ids, 60, temperature=0.0, stop_token_ids=[], prompt_lookup_num_tokens=8,
                        max_matching_ngram_size=3, speculative_stats=stats, draft_schedule="constant")
plain = minillm.generate(model, ids, 60, temperature=0.0, stop_token_ids=[])
print("same tokens as plain greedy decoding:", fast.tolist() == plain.tolist())
print(f"{stats.forward_passes} passes for {stats.new_tokens} tokens ({stats.tokens_per_pass:.2f} per pass after the "
      f"prompt's); {stats.accepted} of {stats.drafted} drafted tokens accepted ({stats.acceptance_rate:.0%})")

def span(token, style):
    text = html_lib.escape(tok.decode([int(token)])).replace("\\n", "&#8629;<br>")
    return f'<span style="{style}">{text}</span>'

own = "color:black"
parts = [span(fast[0], own)]                                   # the first token comes from the prompt's pass
for draft, accepted, token in stats.passes:
    parts += [span(t, "color:white;background:#2a2") for t in draft[:accepted]]
    parts += [span(t, "color:#c22;text-decoration:line-through") for t in draft[accepted:]]
    if token is not None:
        parts.append(span(token, own))
HTML('<div style="font-family:monospace;line-height:1.8">' + "".join(parts) + "</div>")'''),
    ("md", """What to see: green runs where the continuation repeats earlier text, each run costing one pass of the
model; red where the guess was wrong (the one change, or where this small model departs from the passage
and writes its own story, as it soon does), after which the model's own token (black) is the one plain
decoding makes; and the printed check that the tokens are exactly those of plain greedy decoding. How much
is gained depends on how much the answer copies: here, the tokens per pass printed above."""),
    ("md", """### Checking only what pays

A pass over 1 + k tokens costs more than a one-token step, and a rejected guess buys nothing for it. The
default schedule (`draft_schedule="adaptive"`, `minillm/generation/draft_length.py`) learns while decoding how
often each drafted position is kept and what passes of each length cost, and checks the k with the most
expected tokens per second: all of them while the text copies, none (a plain step) while it does not."""),
    ("code", '''# timing: the adaptive schedule's choices follow measured pass times, so they differ a little on every run
import time
free_ids = tok.encode("Once upon a time, in a small village by the sea, there lived a girl who")
free_text = tok.decode(minillm.generate(model, free_ids, 60, temperature=0.0, stop_token_ids=[]).tolist())
print(f"greedy continuation of the free prompt: {free_text[:120]!r}...")
for name, prompt in (("copy", ids), ("free prompt", free_ids)):
    for schedule in ("constant", "adaptive"):
        st = SpeculativeStats()
        t = time.perf_counter()
        minillm.generate(model, prompt, 60, temperature=0.0, stop_token_ids=[], prompt_lookup_num_tokens=8,
                         max_matching_ngram_size=3, speculative_stats=st, draft_schedule=schedule)
        print(f"{name:>16} {schedule:>9}: {st.forward_passes:3d} passes, {st.plain_steps:3d} without a draft, "
              f"{st.accepted:3d} of {st.drafted:3d} drafted tokens kept, {time.perf_counter() - t:.2f} s")'''),
    ("md", """What to see: on the copy prompt, the constant schedule checks every guess, most of them wrong (prompt
lookup also guesses from 1-token matches, which this model rarely follows); the adaptive one counts kept
guesses per kind of match, checks mostly those from longer matches and makes plain steps otherwise: it checks
far fewer guesses and keeps a larger share of them. The free prompt has nothing to copy at first, but this small
model's greedy continuation soon loops (printed above: the same few words again and again), and a loop is
exactly what prompt lookup copies well: there, most drafted tokens are kept by either schedule, because the
model copies its own output. A large model's free text repeats itself far less, and gains less. The timings,
and so the adaptive schedule's exact choices, vary a little from run to run; the tokens never do."""),
] + your_turn("03", [
    ('decode_step', 'One decode step with a KV cache: append, then attend.',
     '''def my_decode_step(q, k_new, v_new, k_cache, v_cache):
    """q [H, Dh], k_new / v_new [K, Dh], k_cache / v_cache [K, S, Dh]
    -> (out [H, Dh], k_cache [K, S+1, Dh], v_cache [K, S+1, Dh])"""
    # hint: np.concatenate the new key/value at the end; query head h reads kv head h // (H // K);
    #       softmax(q . k / sqrt(Dh)) over the S+1 positions, then weight the values (no mask needed)
    raise NotImplementedError'''),
    ('top_p', 'Top-p (nucleus) filtering of one row of logits (`minillm/generation/sampling.py`).',
     '''def my_top_p(logits, p):
    """logits [V] -> [V]: the most likely tokens kept until their probability reaches p, -inf elsewhere"""
    # hint: softmax, sort descending, keep a token while the mass of the tokens ranked above it is < p
    raise NotImplementedError'''),
])

LENS = [
    ("md", """# 4. Checking against the reference, and the logit lens

First the check that keeps minillm honest: every hidden state and the logits compared with what
transformers computed for the same input (what `minillm verify` prints). Then the *logit lens*: push each
layer's hidden state (the **residual stream** after it) through the final norm and the **LM head** to watch the
prediction form layer by layer. Terms in bold are defined in [the glossary](../docs/GLOSSARY.md)."""),
    ("code", setup("minillm-bilingual")),
    ("md", """## The per-layer error table

The bundled models ship `reference.npz`, written by transformers (float32, eager attention). For your own
checkpoint, make one as shown in the README; without one, this cell says so and shows the table of the
bundled random-weight `tiny-qwen3` (the parity-test model) instead."""),
    ("code", '''from minillm.tools.verify import compare_to_reference, load_reference
ref_path = MODEL_PATH / "reference.npz"
ref_model = model
if not ref_path.is_file():
    print(f"no reference.npz in {MODEL_PATH}: showing the bundled tiny-qwen3 instead (see the README to make one)")
    ref_path = WEIGHTS_DIR / "tiny-qwen3" / "reference.npz"
    ref_model = minillm.load_model(ref_path.parent)
if ref_path.is_file():
    ref = load_reference(ref_path)
    rows = compare_to_reference(ref_model, ref)
    # format_error_table(rows, tolerance=1e-4) is what `minillm verify` prints; its raw float32 residues move with
    # the BLAS kernel, so here each relative error is shown against a bound that holds on any CPU
    for r in rows:
        print(f"{r.name:<24} max |diff| / max |ref| {rounding(r.rel_error, 1e-5)}")
    plt.figure(figsize=(7, 3))
    plt.semilogy([r.rel_error + 1e-12 for r in rows], "o-")
    plt.axhline(1e-4, color="red", ls="--", label="test tolerance 1e-4")
    plt.xticks(range(len(rows)), [r.name for r in rows], rotation=45, ha="right")
    plt.title("minillm vs transformers, relative error per layer")
    plt.xlabel("hidden state compared"); plt.ylabel("max |diff| / max |ref|")
    plt.legend(); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: relative errors between about 1e-7 and 1e-6 (the plot; each row above is below 1e-5), float32 rounding,
flat across layers: no layer drifts. A wrong
convention (interleaved RoPE, tile-for-GQA, a missing bias) would show as a jump to 1e-2 or more at the
first layer it touches."""),
    ("md", """## The logit lens

`hidden[i]` is the residual stream after layer i-1. Applying the final norm and the LM head to it asks
"what would the model predict if it stopped here?". We read it out on a line of Shakespeare."""),
    ("code", '''from minillm.model.norm import rms_norm
from minillm.model.transformer import lm_head
from minillm.generation.sampling import softmax

ids = np.array(tok.encode("To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer"))
logits, hidden = model.forward(ids, output_hidden_states=True)
L = cfg.num_hidden_layers
final_token = logits.argmax(-1)                                   # [T] the model's own predictions
lens = []
for i, h in enumerate(hidden):
    normed = h if i == L else rms_norm(h, model.weights.norm, cfg.rms_norm_eps)   # hidden[L] is already normed
    lens.append(softmax(lm_head(normed, model.weights.lm_head)))   # [T, V]
lens = np.stack(lens)                                             # [L+1, T, V]
p_final = lens[:, np.arange(len(ids)), final_token]               # [L+1, T] prob. of the final prediction

plt.figure(figsize=(9, 3.2))
plt.imshow(p_final, aspect="auto", cmap="magma", vmin=0, vmax=1)
plt.colorbar(label="probability")
plt.yticks(range(L + 1), ["embed"] + [f"after layer {i}" for i in range(L - 1)] + ["final"])
plt.xlabel("position"); plt.ylabel("depth (read out after)")
plt.title("Logit lens: probability of the final prediction at each depth")
plt.tight_layout(); plt.show()'''),
    ("md", """What to see: the bottom row is the model's confidence in its own final prediction at each position;
the rows above show how much probability earlier depths already gave that same token. The embedding row
is dark: a token alone says little about the next one. The prediction forms as the layers add to the
residual stream, first where the next token follows from the current one (the rest of a word), and at
other positions in the upper layers. In a model this small an intermediate layer can be more confident
than the final output: the last layer spreads the probability over more candidates. The list below shows
the switch: lower layers complete the current word, upper layers propose the next word."""),
    ("code", '''position = len(ids) - 1
print(f"top-3 predictions for the token after position {position} ({tok.decode([int(ids[position])])!r}):")
for i in range(L + 1):
    top = np.argsort(-lens[i, position])[:3]
    name = "embed" if i == 0 else ("final" if i == L else f"layer {i - 1}")
    print(f"  {name:<9}", ", ".join(f"{tok.decode([int(t)])!r} {lens[i, position, t]:.2f}" for t in top))'''),
    ("md", """## The same, interactive

`minillm.explain` computes these read-outs for every position and layer, with the attention of every head
and the next-token distribution, and shows them as one page (here inline; `minillm explain "PROMPT" -o page.html`
writes it as a file that opens offline). Hover a token to see what each layer would predict after it, where each
head looks from it, and how temperature, top-k and top-p reshape the final distribution
([docs/EXPLAIN.md](../docs/EXPLAIN.md) says what to look for in each view)."""),
    ("code", '''minillm.explain(model, tok, ids.tolist())        # the same prompt; hover its tokens'''),
] + your_turn("04", [
    ('logit_lens', "The logit lens for one layer's residual stream.",
     '''def my_logit_lens(h, norm_weight, eps, lm_head_weight):
    """h [T, D] (a residual stream), norm_weight [D], lm_head_weight [V, D] -> probs [T, V]"""
    # hint: the final RMSNorm, then h @ lm_head_weight.T, then a softmax over V
    raise NotImplementedError'''),
    ('relative_error', "The 'relative' column of the table above (`minillm/tools/verify.py`).",
     '''def my_relative_error(ours, theirs):
    """two arrays of one shape -> float: how far ours is from the reference, relative to its size"""
    # hint: the largest absolute difference over the largest magnitude of the reference
    raise NotImplementedError'''),
])

CHAT = [
    ("md", """# 5. Chat

A chat model sees a conversation as one string built by the checkpoint's own chat template (Jinja, rendered
in a sandbox). We render a conversation, look at its tokens, use Qwen3's thinking switch (on Qwen3's own
template: the bundled model's has none), and hold a multi-turn chat that keeps its **KV cache** between turns
(see [the glossary](../docs/GLOSSARY.md))."""),
    ("code", setup("minillm-bilingual")),
    ("md", """## A conversation through the template

Qwen uses ChatML: `<|im_start|>role\\n ... <|im_end|>`. `add_generation_prompt=True` ends with the
assistant header so the model writes the answer."""),
    ("code", '''messages = [{"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is RoPE?"},
            {"role": "assistant", "content": "Rotary position embedding."},
            {"role": "user", "content": "And GQA?"}]
prompt = tok.apply_chat_template(messages, add_generation_prompt=True)
print(prompt)'''),
    ("md", """## The tokens, highlighted

Each colour is one token. The ChatML markers (`<|im_start|>`, `<|im_end|>`) are single special tokens.
The bundled tokenizer (8,192 byte-level BPE entries) keeps common English words whole and cuts rarer ones
("RoPE", "GQA") into pieces; a real Qwen tokenizer has 151,643 entries and keeps more words whole."""),
    ("code", '''from html import escape
from IPython.display import HTML, display
ids = tok.encode(prompt)
special = {tok.token_to_id(t) for t in ("<|im_start|>", "<|im_end|>", "<|endoftext|>")}
colours = ["#fde2e4", "#e2ece9", "#dfe7fd", "#fff1c1", "#e8dff5"]
spans = []
for n, i in enumerate(ids):
    piece = escape(tok.decode([i])).replace("\\n", "⏎<br>")
    style = "background:#333;color:#fff" if i in special else f"background:{colours[n % len(colours)]}"
    spans.append(f'<span style="{style};padding:1px;margin:1px;border-radius:3px">{piece}</span>')
display(HTML("<div style='font-family:monospace;line-height:1.9'>" + "".join(spans) + "</div>"))
print(f"{len(ids)} tokens, {sum(i in special for i in ids)} of them ChatML special tokens")'''),
    ("md", """## Qwen3's thinking switch

Qwen3 templates take `enable_thinking`. Left unset, the model may open a `<think>` block itself. Set to
False, the template writes an empty `<think></think>` block so the model answers directly. Earlier turns'
reasoning is dropped from the history. The bundled model's template is plain ChatML with no such switch, so
this cell renders with Qwen3's own template, as Qwen3 checkpoints ship it (`weights/chat_templates/qwen3.jinja`),
unless the checkpoint's template has the switch itself."""),
    ("code", '''from minillm.text.chat_template import render_chat_template

if "enable_thinking" in (tok.chat_template or ""):
    template, source = tok.chat_template, f"{MODEL_PATH.name}'s own template"
else:
    template, source = (WEIGHTS_DIR / "chat_templates" / "qwen3.jinja").read_text(), "Qwen3's template (qwen3.jinja)"
render = lambda messages, **switch: render_chat_template(template, messages, tok.special_tokens,
                                                         add_generation_prompt=True, **switch)
print(f"rendered with {source}:")
one = [{"role": "user", "content": "Hi"}]
print("switch unset:          ", repr(render(one)))
print("enable_thinking=False: ", repr(render(one, enable_thinking=False)))
history = [{"role": "user", "content": "2+2?"},
           {"role": "assistant", "content": "<think>\\nadd\\n</think>\\n\\n4"},
           {"role": "user", "content": "3+3?"}]
print(render(history))'''),
    ("md", """What to see: with the switch unset the prompt ends with the assistant header, and the model decides
whether to think; with `enable_thinking=False` the template itself writes the empty `<think>\\n\\n</think>` block.
In the history, the earlier answer keeps its "4" but not its `<think>` block: a multi-turn prompt re-rendered
this way differs from what a cache holds from the previous turn (see below)."""),
    ("md", """## A multi-turn chat with a kept cache

Each turn renders the whole conversation again; the cache already holds the tokens of the earlier turns,
so only the new ones are computed. The bundled model learned its chat turns from examples that ask for a
poem, a fortune or a passage (in English or Chinese), so we ask for those."""),
    ("code", '''from minillm.generation.chat import ChatSession

session = ChatSession(model, tok, capacity=1024, enable_thinking=False)
for user_text in ["Tell me a fortune.", "给我一句格言", "Give me a sonnet by Shakespeare."]:
    reply = "".join(session.send(user_text, max_new_tokens=60, temperature=0.7, top_k=20, seed=0))
    turn = session.last_turn
    print(f"user: {user_text}")
    print(f"  ({turn['prompt_tokens']} prompt tokens: {turn['reused_tokens']} from the cache, "
          f"{turn['prompt_tokens'] - turn['reused_tokens']} computed)")
    ended = "ended its turn" if turn["new_tokens"] < 60 else "stopped at max_new_tokens"
    print(f"assistant ({turn['new_tokens']} tokens, {ended}): {reply!r}")'''),
    ("md", """What to see: the model answers in the manner of its training examples (a fortune, a line of verse, a
passage of a play), and ends a short answer itself with `<|im_end|>` before `max_new_tokens`; a passage of
a play can run on until `max_new_tokens` stops it. A model this small is often off-topic (asked for a
sonnet, it writes a scene). From the
second turn on, the part of the prompt shared with the previous turn comes from the cache: it covers the
earlier turns up to the first token where the re-rendered conversation differs from what the cache holds
(with Qwen3's own template, which drops the `<think>` block of earlier turns, the reuse stops there)."""),
] + your_turn("05", [
    ('render_chatml', "Render a conversation by hand, as the bundled model's template does.",
     '''def my_render_chatml(messages, add_generation_prompt):
    """[{"role": ..., "content": ...}, ...] -> the ChatML text"""
    # hint: every message is <|im_start|>role, a newline, content, <|im_end|>, a newline;
    #       add_generation_prompt appends the assistant's header
    raise NotImplementedError'''),
    ('assistant_mask', 'The tokens a chat model is trained on: only what the assistant writes.',
     '''def my_assistant_mask(ids, tok):
    """ids [T] of a rendered conversation -> [T] bool: True on each assistant message's content and its <|im_end|>"""
    # hint: tok.token_to_id("<|im_start|>"), tok.encode("assistant\\n") is the header's rest; the newline
    #       after <|im_end|> is not learned
    raise NotImplementedError'''),
])

TRAINING = [
    ("md", """# 7. Training

The bundled model was trained by minillm itself, in NumPy: a backward pass that mirrors the forward pass
file by file, AdamW, and a small training loop. We open one backward step on a tiny random model and check a
gradient against a finite difference; then we train a small model on Shakespeare, the example a fresh clone
trains in a few minutes, and watch its loss fall and its samples change; then we see *why* the optimizer and
its learning rate are what they are (decoupled weight decay, warmup, a decaying schedule), each with a small
experiment; and last, what the bundled model's own run looked like."""),
    ("code", setup("minillm-bilingual")),
    ("md", """## One backward step, opened up

A tiny random Qwen3 (the shape of the repository's `tiny-qwen3`), a batch of random token ids, and
`minillm.loss_and_grads`: the mean next-token cross-entropy and the gradient of every checkpoint tensor.
At initialisation the model knows nothing, so the loss is close to ln V, the loss of a uniform guess."""),
    ("code", '''import json
from minillm.checkpoint.weights import named_tensors
from minillm.training.init import init_weights
from minillm.training.loss import cross_entropy

small_cfg = minillm.parse_config(json.loads((WEIGHTS_DIR / "tiny-qwen3" / "config.json").read_text()))
small = minillm.Model(small_cfg, init_weights(small_cfg, seed=0))      # random weights, std 0.02
batch = np.random.default_rng(0).integers(0, small_cfg.vocab_size, (2, 16))   # [B=2, T=16]
loss, grads = minillm.loss_and_grads(small, batch)
print(f"loss {loss:.4f}  vs  ln V = ln {small_cfg.vocab_size} = {np.log(small_cfg.vocab_size):.4f}")
print(f"{len(grads)} gradients, one per checkpoint tensor, each of its tensor's shape:")
for name in list(grads)[:1] + [n for n in grads if n.startswith("model.layers.0.")][:6] + list(grads)[-1:]:
    print(f"  {name:<45} {str(grads[name].shape):<12} {grads[name].dtype}")'''),
    ("md", """**A finite-difference check.** Nudge one weight by +h and -h and recompute the loss: the slope
`(loss(w + h) - loss(w - h)) / 2h` must equal that weight's gradient entry. We take the largest entry of the
embedding's gradient: the loss is computed in float32, and its rounding (about 1e-7 of the loss) must stay
small next to the change h times the gradient. The tests do this for every
backward function, in float64, along random directions."""),
    ("code", '''params = named_tensors(small.weights)              # name -> the model's own arrays (edited in place)
name = "model.embed_tokens.weight"
index = tuple(int(i) for i in np.unravel_index(np.abs(grads[name]).argmax(), grads[name].shape))
h, original = 1e-3, params[name][index]
params[name][index] = original + h; loss_plus = cross_entropy(small.forward(batch), batch)
params[name][index] = original - h; loss_minus = cross_entropy(small.forward(batch), batch)
params[name][index] = original
slope = (loss_plus - loss_minus) / (2 * h)
print(f"{name}{list(index)}: gradient {grads[name][index]:+.5f}, finite difference {slope:+.5f}")
assert abs(slope - grads[name][index]) < 0.01 * abs(grads[name][index])'''),
    ("md", """**The mirror layout.** `minillm/backward/` has one file per file of `minillm/model/`, with the same names:
each `*_backward` takes the gradient of its output plus what the forward kept, and returns the gradients of
its input and its weights. Its module docstring holds the whole map; here are the pieces of a dense layer
(`norm.py` also holds the backward of Qwen3.5's norms; the hybrid and mixture-of-experts models add their own
files: `conv`, `delta_rule`, `gated_deltanet`, `gated_attention`, `moe`, `hybrid`)."""),
    ("code", '''import minillm.backward
from minillm.backward import activations, attention, block, embedding, linear, mlp, norm, rope, transformer
for module in (embedding, norm, rope, linear, activations, attention, mlp, block, transformer):
    names = sorted(n for n in dir(module) if n.endswith(("_forward", "_backward"))
                   and getattr(getattr(module, n), "__module__", None) == module.__name__)   # defined there
    print(f"minillm/model/{module.__name__.split('.')[-1] + '.py':<16} -> minillm/backward: {', '.join(names)}")'''),
    ("md", """## Train a model on Shakespeare

The repository ships a small training example, `examples/shakespeare/`: seven plays (Othello, Macbeth,
Julius Caesar, ...) as text, the same plays as token ids of the bundled tokenizer (`train.npy`), The Tempest
for validation (`val.npy`), and a recipe for a 4-layer Qwen3 of 1.8M parameters. From the repository root,

    minillm train --config examples/shakespeare/recipe.json --out runs/shakespeare

trains it in a few minutes on two cores, with a live progress line, then writes `loss_curve.png` and prints
two samples; `minillm generate --model runs/shakespeare/checkpoint "IAGO."` continues any prompt. Stopped
half-way, the same command with `--resume` continues the run exactly (docs/TRAINING.md). Here we read the recipe
and train it from Python."""),
    ("code", '''from minillm.training.quickstart import example_recipe, train_example
from minillm.training.samples import sample_texts

recipe = example_recipe("shakespeare")               # examples/shakespeare/recipe.json, its paths made absolute
m = recipe.model
sizes = {n: a.size for n, a in named_tensors(init_weights(minillm.parse_config(m))).items()}
embedding = sizes["model.embed_tokens.weight"]
print(f"model: L={m['num_hidden_layers']} layers, D={m['hidden_size']}, H={m['num_attention_heads']}, "
      f"K={m['num_key_value_heads']}, F={m['intermediate_size']}, V={m['vocab_size']}, tied embedding: "
      f"{m['tie_word_embeddings']}")
print(f"parameters: {sum(sizes.values()):,}, of which the embedding (V x D, also the output layer) {embedding:,}")
print(f"recipe: {recipe.steps} steps of {recipe.batch_size} windows x {recipe.context} tokens, AdamW lr {recipe.lr:g} "
      f"(warmup {recipe.warmup} steps, {recipe.schedule} to {recipe.min_lr:g}), weight decay {recipe.weight_decay}")
print(f"data: {len(np.load(recipe.train_tokens, mmap_mode='r')):,} training tokens, "
      f"{len(np.load(recipe.val_tokens, mmap_mode='r')):,} validation tokens")'''),
    ("md", """Most of the parameters are the embedding: with a vocabulary of 8,192 tokens, a model this small spends
more than half of its weights (and of its compute, in the output layer and the softmax over V) on the
vocabulary. Before training, the model's samples are tokens drawn almost uniformly from the whole vocabulary,
English and Chinese pieces alike:"""),
    ("code", '''shakespeare_tok = minillm.load_tokenizer(recipe.tokenizer)
untrained = minillm.Model(minillm.parse_config(m), init_weights(minillm.parse_config(m), seed=recipe.seed))
for text in sample_texts(untrained, shakespeare_tok, ["IAGO.\\n"], max_new_tokens=20, seed=0,
                         generation_config=recipe.generation_config):
    print(repr(text))'''),
    ("md", """Now the run: the committed recipe, shortened to 60 steps of 8 windows of 64 tokens (30,720 tokens, a
twenty-seventh of the recipe's 819,200) so that it takes well under a minute. The schedule is the recipe's,
compressed to the shorter run: 6 steps of warmup, then a cosine down to the floor at step 60. `progress=False` keeps the notebook's output the same on every run (the
command line shows a live progress line with the tokens per second); we print the log instead."""),
    ("code", '''import tempfile
run = train_example(Path(tempfile.mkdtemp()) / "shakespeare", steps=60, batch_size=8, context=64, warmup=6,
                    eval_every=20, progress=False)
log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
for x in log:
    if x["step"] in (1, 2, 5, 10) or x["step"] % 20 == 0:
        val = f"   validation {x['val_loss']:.2f}" if "val_loss" in x else ""
        print(f"step {x['step']:>3}  lr {x['lr']:.1e}  training batch loss {x['loss']:.2f}{val}")
print("run directory:", sorted(p.name for p in run.iterdir()))'''),
    ("code", '''counts = np.bincount(np.load(recipe.train_tokens), minlength=m["vocab_size"]) + 1.0   # [V]; +1: no token impossible
unigram = float(-np.log(counts[np.load(recipe.val_tokens)] / counts.sum()).mean())
print(f"a unigram model (each token's frequency in the training plays) scores {unigram:.2f} on The Tempest")
steps = [x["step"] for x in log]
plt.figure(figsize=(7, 3.2))
plt.plot(steps, [x["loss"] for x in log], lw=1, label="training loss (one batch of 8 x 64 tokens per step)")
val = [x for x in log if "val_loss" in x]
plt.plot([x["step"] for x in val], [x["val_loss"] for x in val], "o", label="validation loss (The Tempest)")
plt.axhline(np.log(m["vocab_size"]), color="gray", ls="--", label="ln V: a uniform guess")
plt.axhline(unigram, color="gray", ls=":", label="unigram: token frequencies, on The Tempest")
plt.title("Training on Shakespeare: the first 60 steps")
plt.xlabel("step"); plt.ylabel("loss (nats/token)"); plt.legend(); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: the loss starts at ln V (the random model guesses uniformly), falls fast over the first ten
steps as the model learns which tokens are frequent in these plays, and flattens near the unigram line: after 60 steps (30,720 tokens, a ninth of one pass over its text) the model knows roughly how often
each token occurs, and little yet about which token follows which. Each training point is one random batch,
so the curve is noisy; the validation points are the mean over fixed windows of a play it never sees. The same
prompt as before, now:"""),
    ("code", '''trained = minillm.load_model(run / "checkpoint")
for text in sample_texts(trained, shakespeare_tok, ["IAGO.\\n"], max_new_tokens=40, seed=0,
                         generation_config=recipe.generation_config):
    print(text)'''),
    ("md", """After 60 steps the model writes the commonest tokens of the plays: line breaks, commas and full stops,
"I", "a", "the", "to", "have", with no order yet. Going below the unigram line, to words in a plausible
order, verse lines and speaker labels, takes the full recipe: its 800 steps of 8 windows of 128 tokens (three
passes over the plays, an estimated 3 to 4 minutes on two quiet cores) bring the validation loss on The Tempest
to 5.33, and its samples have speaker labels, stage directions and lines of verse (they are in
examples/shakespeare/README.md)."""),
    ("md", """## Why AdamW, warmup and a decaying learning rate

**AdamW's step is the ratio of two running means.** For each weight, Adam keeps m, a running mean of the
gradient, and v, one of its square, and steps by lr * m / sqrt(v) (bias-corrected, `minillm/training/adamw.py`).
The ratio does not depend on the gradient's scale: at the very first step m / sqrt(v) = g / |g| = ±1, so
*every* weight moves by exactly lr, however small or large its gradient:"""),
    ("code", '''from minillm.training.adamw import AdamWState, adamw_step

weights = {"w": np.zeros((1, 3), np.float32)}                        # three weights, starting at 0
gradient = {"w": np.array([[1e-4, 1.0, 100.0]], np.float32)}        # gradients 6 orders of magnitude apart
adamw_step(weights, gradient, AdamWState(), lr=3e-3, weight_decay=0.0)
print("gradients:          ", gradient["w"][0])
print("first step / lr:    ", (weights["w"][0] / 3e-3).round(3))'''),
    ("md", """**Warmup** is why the first steps use a small learning rate. At step 1, m / sqrt(v) is the sign of one
batch's gradient: every weight that batch touches jumps by the full lr, in a direction chosen by one noisy
batch, and v, the estimate that is meant to scale the steps, has seen a single sample. At lr 3e-3 that is
about a seventh of the typical size of a weight initialised with std 0.02, in one step. Warming up over a few dozen
steps (`lr(step) = peak * (step + 1) / warmup`) keeps those first steps small until m and v average over many
batches; the larger the peak rate, the more a run needs it.

**Decoupled weight decay** (the W of AdamW, Loshchilov & Hutter 2019). Adam with L2 regularisation adds
wd * p to the *gradient*, so the decay goes through the same ratio as everything else: divided by sqrt(v).
A weight with large gradients (large v) then hardly decays, and a weight with small gradients decays by up
to lr per step, whatever its size. AdamW shrinks every weight directly, p <- p * (1 - lr * wd), outside the
ratio: the same relative decay for every weight. A small experiment: weights of value 1, a thousand with noisy
gradients of size 10 and a thousand with gradients of size 0.01 (all averaging zero: the loss does not care
about any of them), 300 steps each way, and the mean of each thousand:"""),
    ("code", '''rng = np.random.default_rng(0)
lr, wd, scales = 3e-3, 0.1, np.array([[10.0], [0.01]], np.float32)   # [2, 1]: the gradient size of each row
adamw = {"w": np.ones((2, 1000), np.float32)}; adamw_state = AdamWState()
adam_l2 = {"w": np.ones((2, 1000), np.float32)}; adam_l2_state = AdamWState()
for step in range(300):
    noise = rng.standard_normal((2, 1000)).astype(np.float32) * scales   # [2, 1000]: pure noise, mean 0
    adamw_step(adamw, {"w": noise.copy()}, adamw_state, lr, weight_decay=wd)          # decay outside the ratio
    adamw_step(adam_l2, {"w": noise + wd * adam_l2["w"]}, adam_l2_state, lr, weight_decay=0.0)  # L2: in the gradient
print(f"mean weight after 300 steps   gradient size 10   gradient size 0.01")
print(f"AdamW                         {adamw['w'][0].mean():>17.2f}   {adamw['w'][1].mean():>17.2f}"
      f"    (1 - lr wd)^300 = {(1 - lr * wd) ** 300:.2f}")
print(f"Adam + L2                     {adam_l2['w'][0].mean():>17.2f}   {adam_l2['w'][1].mean():>17.2f}")'''),
    ("md", """AdamW shrinks both groups by the same factor, (1 - lr wd) per step, as if they had no gradient at all;
Adam with L2 leaves the weights with large gradients almost undecayed and takes two thirds of the others away.
Decoupling makes `weight_decay` one number with one meaning for every matrix. (minillm decays only matrices:
shrinking an RMSNorm weight towards 0 would only fight the normalisation.)"""),
    ("md", """**A decaying schedule.** With a constant learning rate, the weights keep jumping around the minimum by
steps of about lr: the noise of each batch sets a floor under the loss. Lowering the rate at the end lets them
settle: the loss drops during the decay. The cosine (`learning_rate`) decays gently over the whole run, so its
length must be chosen at the start; warmup-stable-decay (`wsd_learning_rate`) holds the peak and decays only
over the last steps, so a run can be extended while it is still at the peak (the bundled model was trained that
way). A small experiment: AdamW on a noisy quadratic, loss = sum of h_i w_i^2 / 2 over 1,000 weights with
curvatures h from 0.1 to 10 and gradient noise, 400 steps with each schedule:"""),
    ("code", '''from minillm.training.schedule import learning_rate, wsd_learning_rate

total, peak, warm, floor = 400, 0.05, 20, 0.005
schedules = {"constant": lambda s: peak if s >= warm else peak * (s + 1) / warm,
             "cosine": lambda s: learning_rate(s, total, peak, warm, floor),
             "WSD (decay over the last 80)": lambda s: wsd_learning_rate(s, total, peak, warm, floor, 80)}
h = np.geomspace(0.1, 10, 1000).astype(np.float32)[None]                 # [1, 1000] curvatures
fig, (ax_lr, ax_loss) = plt.subplots(1, 2, figsize=(10, 3.2))
for label, lr_at in schedules.items():
    rng, w, state, losses = np.random.default_rng(0), {"w": np.ones_like(h)}, AdamWState(), []
    for s in range(total):
        g = h * w["w"] + rng.standard_normal(h.shape).astype(np.float32)   # [1, 1000] noisy gradient
        adamw_step(w, {"w": g}, state, lr_at(s), weight_decay=0.0)
        losses.append(float(np.sum(h * w["w"] ** 2) / 2))
    ax_lr.plot([lr_at(s) for s in range(total)], label=label)
    ax_loss.plot(losses, lw=0.8, label=label)
    print(f"{label:<30} loss over the last 10 steps: {np.mean(losses[-10:]):.1f}")
ax_lr.set_title("learning rate"); ax_lr.set_xlabel("step"); ax_lr.set_ylabel("lr"); ax_lr.legend()
ax_loss.set_title("noisy quadratic: loss"); ax_loss.set_xlabel("step"); ax_loss.set_ylabel("loss")
ax_loss.set_yscale("log"); ax_loss.legend(); fig.tight_layout(); plt.show()'''),
    ("md", """What to see: the three curves are one while their rates are equal; from about step 150 the constant rate
stalls on its noise floor, the cosine goes below it as its rate falls, and WSD stays on the floor until its
decay starts at step 320, then drops below it too. The end is set by the decay, not by the peak. On this toy
problem the long decay of the cosine ends lowest; on language models a WSD decay over the last fifth of the
run matches the cosine (Hägele et al., 2024, the reason `schedule.py` offers it), and until that decay starts
the run can still be made longer."""),
    ("md", """## What the bundled model learned

The bundled model's own run, from its training log (`training_log.jsonl` beside its weights): the
training loss per step and the validation loss on held-out text. Its last 300 steps, where the learning rate
decays, ran twice from the same checkpoint, on two mixes of the corpus; the bundled weights are the mean of
the two branches' weights."""),
    ("code", '''log_path = minillm.default_model_path() / "training_log.jsonl"
if log_path.is_file():
    lines = [json.loads(x) for x in log_path.read_text(encoding="utf-8").splitlines() if x.strip()]
    tokens = np.array([x.get("tokens_total", x["step"]) for x in lines], float)
    plt.figure(figsize=(7, 3.2))
    for branch in sorted({x.get("branch") for x in lines}, key=str):   # None: the steps every branch shares
        idx = [i for i, x in enumerate(lines) if x.get("branch") == branch]
        plt.plot(tokens[idx] / 1e6, [lines[i]["loss"] for i in idx], lw=0.8,
                 label="training loss" if branch is None else f"training loss, branch {branch}")
    val = [(t, x["val_loss"]) for t, x in zip(tokens, lines) if x.get("val_loss") is not None]
    if val:
        plt.plot([t / 1e6 for t, _ in val], [v for _, v in val], "o", ms=3, label="validation loss")
    plt.title("The bundled model's training run")
    plt.xlabel("tokens seen (millions)"); plt.ylabel("loss (nats/token)"); plt.legend(); plt.tight_layout(); plt.show()
    tags = {"stage": "stages", "branch": "branches"}                     # what a log line may be tagged with
    print(f"{len(lines)} log lines", *[f"{plural} {sorted({x[key] for x in lines if key in x})}"
                                       for key, plural in tags.items() if any(key in x for x in lines)], sep="; ")
else:
    print(f"no {log_path.name} beside the bundled weights: nothing to plot")'''),
    ("md", """What to see: (when the log is there) the loss falls steeply over the first few hundred thousand tokens,
then slowly; the validation loss follows the training loss closely, so the model is not memorising its
corpus. Below, samples from the model (sampling stops at the end of a document, `<|endoftext|>`): they
continue in the style and the language of the prompt, locally fluent, without a thread of meaning."""),
    ("code", '''for prompt_text in ["It is a truth universally acknowledged", "To be, or not to be", "床前明月光，"]:
    prompt_ids = tok.encode(prompt_text)
    new = minillm.generate(model, prompt_ids, max_new_tokens=30, temperature=0.7, top_k=20, seed=0)
    print(f"{prompt_text!r} ->\\n    {tok.decode(new.tolist())!r}\\n")'''),
    ("md", """## Your turn

Three formulas make a training step: the loss, the optimizer's update and the learning rate. Write each one
in NumPy, then run the cell after it: `check` compares your function with minillm's on small random inputs
(the solutions are in `exercises/solutions_07.py`, to read after trying).

**1. The next-token loss of a batch.** `logits` [B, T, V], `ids` [B, T]: the mean over every position t < T - 1
of -log softmax(logits[b, t])[ids[b, t + 1]]. Hint: subtract each row's max before `np.exp`; `np.take_along_axis`
picks the target's entry."""),
    ("code", '''def my_cross_entropy(logits, ids):
    raise NotImplementedError   # your turn'''),
    ("code", '''from exercises import check
check("cross_entropy", my_cross_entropy);   # prints ✓ when yours matches minillm'''),
    ("md", """**2. One AdamW step** of a weight matrix `p` with gradient `g`, moments `m`, `v`, at step `t` (1, 2, ...):
return the new `(p, m, v)`. Hint: the formulas are at the top of `minillm/training/adamw.py`; the decay comes
first and is not divided by anything."""),
    ("code", '''def my_adamw_step(p, g, m, v, t, lr, b1, b2, eps, wd):
    raise NotImplementedError   # your turn'''),
    ("code", '''check("adamw_step", my_adamw_step);   # prints ✓ when yours matches minillm'''),
    ("md", """**3. The warmup + cosine learning rate** at step `step` (0-based) of `total_steps`. Hint: for the first
`warmup` steps, peak * (step + 1) / warmup; then the cosine from peak at step `warmup` down to `floor` at
`total_steps`, staying at the floor after it."""),
    ("code", '''def my_cosine_learning_rate(step, total_steps, peak, warmup, floor):
    raise NotImplementedError   # your turn'''),
    ("code", '''check("cosine_learning_rate", my_cosine_learning_rate);   # prints ✓ when yours matches minillm'''),
]

LINEAR = [
    ("md", """# 6. Linear attention: Qwen3.5's Gated DeltaNet

Softmax attention keeps the key and value of every token it has seen, and each new token compares itself
with all of them: the KV cache grows with the context. Three of every four layers of Qwen3.5 instead keep a
fixed-size memory per head, a matrix S that maps keys to values, and update it once per token with the
*delta rule*. This notebook builds the idea up on toy numbers, checks that the two ways of computing it
(token by token, and chunk by chunk with matrix products) agree, compares the memory's size with a KV
cache's growth, looks at how fast each head forgets, and finally opens a Qwen3.5 forward pass layer by
layer. The model here, `tiny-qwen3.5` (a tiny checkpoint in the repository's `weights/`, not the bundled
`minillm-bilingual`), has random weights: the mechanics are real, the numbers are not. Terms (**Gated
DeltaNet**, **delta rule**, **KV cache**) are defined in [the glossary](../docs/GLOSSARY.md); `plain_gated_deltanet`
in `minillm/plain/` is the whole layer on one screen."""),
    ("code", setup("tiny-qwen3.5")),
    ("code", '''print("layer types:", [t.split("_")[0] for t in cfg.layer_types])
print(f"linear attention: Hk={cfg.linear_num_key_heads} key heads, Hv={cfg.linear_num_value_heads} value heads, "
      f"Dk={cfg.linear_key_head_dim}, Dv={cfg.linear_value_head_dim}, conv kernel W={cfg.linear_conv_kernel_dim}")
print(f"full attention: partial RoPE on R={cfg.rotary_dim} of Dh={cfg.head_dim} dims, with an output gate")'''),
    ("md", """## The delta rule on a toy example

One head, keys of size 2 and values of size 3. The memory S [2, 3] starts at zero. Writing the pair
(k, v) with strength beta: predict what S returns for k, then move S towards v by beta times the error:

    p = k^T S        S = S + k (beta (v - p))^T        read: q^T S

Plain linear attention writes S = S + k v^T instead: it only ever adds. Watch what happens when the same
key gets a second value."""),
    ("code", '''from minillm.model.delta_rule import delta_rule_step

cat, dog = np.array([1.0, 0.0]), np.array([0.0, 1.0])            # two orthogonal unit keys
one = lambda a: np.asarray(a, np.float64)[None, None]            # add the batch and head axes: [1, 1, ...]
writes = [("cat", cat, [1, 0, 0]), ("dog", dog, [0, 1, 0]), ("cat again", cat, [0, 0, 1])]
read = lambda key, S, digits=2: np.round(key @ S, digits) + 0.0   # what S returns for key (+ 0.0: no "-0.")

S_delta = np.zeros((1, 1, 2, 3))                                  # [B, Hv, Dk, Dv]
S_plain = np.zeros((2, 3))
for name, k, v in writes:
    _, S_delta = delta_rule_step(one(k), one(k), one(v), one(0.0), one(1.0), S_delta)   # g = 0: no decay
    S_plain = S_plain + np.outer(k, v)
    print(f"after writing {name:<9}: delta rule reads cat -> {read(cat, S_delta[0, 0])}, "
          f"plain linear attention reads cat -> {read(cat, S_plain)}")'''),
    ("md", """The delta rule *replaces* what the memory held for "cat"; plain linear attention piles the second value
on top of the first. With beta < 1 a write moves the memory only part of the way. And keys that are not
orthogonal share directions: writing "lion", a key between cat and dog, changes what both of them return
(this toy memory has only Dk = 2 directions; a Qwen3.5 head has 128, and a trained model learns keys that
keep apart what must not interfere)."""),
    ("code", '''for beta in (1.0, 0.5, 0.1):
    S = np.zeros((1, 1, 2, 3))
    for name, k, v in writes:
        _, S = delta_rule_step(one(k), one(k), one(v), one(0.0), one(beta), S)
    print(f"beta = {beta}: cat -> {read(cat, S[0, 0], 3)}   dog -> {read(dog, S[0, 0], 3)}")

lion = np.array([0.8, 0.6])                                      # a key between cat and dog
_, S = delta_rule_step(one(lion), one(lion), one([0, 0, 5]), one(0.0), one(1.0), S_delta)
print("after writing lion: cat ->", read(cat, S[0, 0]), " dog ->", read(dog, S[0, 0]), " lion ->", read(lion, S[0, 0]))'''),
    ("md", """## Forgetting: the gate g

Before each write the whole memory is multiplied by exp(g_t), with g_t <= 0 computed from the token
(`g = -exp(A_log) * softplus(a + dt_bias)`). exp(g) = 0.9 keeps 90% per token: an entry written now is
down to half after about 6.6 tokens (its half-life, ln 2 / -g)."""),
    ("code", '''S = S_delta.copy()
for step in range(1, 21):
    _, S = delta_rule_step(one(dog), one(dog), one([0, 0, 0]), one(np.log(0.9)), one(0.0), S)   # beta 0: no write
    if step in (1, 5, 10, 20):
        print(f"after {step:>2} tokens: cat -> {read(cat, S[0, 0], 3)}  (0.9^{step} = {0.9 ** step:.3f})")'''),
    ("md", """## Token by token, or chunk by chunk: the same numbers

The loop above is the *recurrent* form: one small update per token, what a generation step does. For a
prompt, the *chunked* form computes 64 tokens at a time with matrix products (`delta_rule.py` derives
it): only the chunk-to-chunk steps are sequential. Both are exact; in float64 they agree to rounding."""),
    ("code", '''from minillm.model.delta_rule import chunked_gated_delta_rule, recurrent_gated_delta_rule
from minillm.model.gated_deltanet import l2_normalize

rng = np.random.default_rng(0)
B, Hv, T, Dk, Dv = 1, 4, 200, 16, 16
q = l2_normalize(rng.standard_normal((B, Hv, T, Dk))) / np.sqrt(Dk)       # as the layer makes them
k = l2_normalize(rng.standard_normal((B, Hv, T, Dk)))
v = rng.standard_normal((B, Hv, T, Dv))
g = -rng.uniform(0.0, 0.5, (B, Hv, T))
beta = rng.uniform(0.05, 0.95, (B, Hv, T))
S0 = np.zeros((B, Hv, Dk, Dv))
out_r, S_r = recurrent_gated_delta_rule(q, k, v, g, beta, S0)
out_c, S_c = chunked_gated_delta_rule(q, k, v, g, beta, S0)
print("float64: max |recurrent - chunked|", rounding(np.abs(out_r - out_c).max(), 1e-12), "(outputs),",
      rounding(np.abs(S_r - S_c).max(), 1e-12), "(final memory)")
f32 = [a.astype(np.float32) for a in (q, k, v, g, beta, S0)]
diff32 = np.abs(recurrent_gated_delta_rule(*f32)[0] - chunked_gated_delta_rule(*f32)[0]).max()
print("float32: max |recurrent - chunked|", rounding(diff32, 1e-5))'''),
    ("code", '''# timing: these numbers are measured, so they differ a little on every run
import time
B, Hv, T, Dk, Dv = 1, 8, 512, 64, 64
args = [l2_normalize(rng.standard_normal((B, Hv, T, Dk))) / 8, l2_normalize(rng.standard_normal((B, Hv, T, Dk))),
        rng.standard_normal((B, Hv, T, Dv)), -rng.uniform(0, 0.5, (B, Hv, T)), rng.uniform(0.05, 0.95, (B, Hv, T)),
        np.zeros((B, Hv, Dk, Dv))]
args = [a.astype(np.float32) for a in args]
for name, form in (("recurrent", recurrent_gated_delta_rule), ("chunked", chunked_gated_delta_rule)):
    t0 = time.perf_counter()
    form(*args)
    print(f"{name:>9}: {(time.perf_counter() - t0) * 1e3:6.1f} ms for {T} tokens")'''),
    ("md", """## A fixed state against a growing KV cache

A full-attention layer stores 2 K Dh numbers per token and sequence; a linear-attention layer stores its
conv's last W-1 inputs and its memory S [Hv, Dk, Dv], whatever the length. Here for the real shapes of
Qwen3.5-0.8B (config only, no weights needed) and, for scale, Qwen3-0.6B, whose 28 layers all keep keys
and values."""),
    ("code", '''from minillm.model.cache import kv_bytes_per_token, linear_state_bytes

q35 = minillm.load_config(WEIGHTS_DIR / "configs" / "qwen3.5-0.8b.json")
q3 = minillm.load_config(WEIGHTS_DIR / "configs" / "qwen3-0.6b.v4.json")
print(f"Qwen3.5-0.8B: {kv_bytes_per_token(q35) / 1024:.0f} KiB per token (6 full-attention layers) + "
      f"{linear_state_bytes(q35) / 2**20:.1f} MiB of linear-attention state (18 layers), fixed")
print(f"Qwen3-0.6B:   {kv_bytes_per_token(q3) / 1024:.0f} KiB per token (28 layers), nothing fixed")
contexts = np.array([2 ** i for i in range(8, 19)])                       # 256 .. 262144 tokens
mem35 = (contexts * kv_bytes_per_token(q35) + linear_state_bytes(q35)) / 2**30
state_only = np.full(len(contexts), linear_state_bytes(q35) / 2**30)
mem3 = contexts * kv_bytes_per_token(q3) / 2**30
for n in (4096, 32768, 262144):
    i = list(contexts).index(n)
    print(f"at {n:>6} tokens: Qwen3-0.6B {mem3[i]:6.2f} GiB, Qwen3.5-0.8B {mem35[i]:6.2f} GiB")
plt.figure(figsize=(7, 3.8))
plt.loglog(contexts, mem3, "o-", label="Qwen3-0.6B: KV cache of 28 layers")
plt.loglog(contexts, mem35, "o-", label="Qwen3.5-0.8B: KV of 6 layers + linear state")
plt.loglog(contexts, state_only, "--", label="Qwen3.5-0.8B: linear-attention state alone")
plt.title("Cache memory per sequence against context length (float32)")
plt.xlabel("context length (tokens)"); plt.ylabel("GiB"); plt.legend(fontsize=8); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: the linear-attention state is a flat line; the KV cache grows linearly with the context.
Qwen3.5 keeps keys and values in 6 layers instead of 28 (2 KV heads of 256 dims instead of 8 of 128), so
its cache grows about nine times slower than Qwen3-0.6B's, plus the fixed 19 MiB."""),
    ("md", """## How fast each head forgets

Each value head has its own decay rate exp(A_log) and bias dt_bias; the token decides the rest through
`a`. Below, for a prompt run through this model, the median half-life (in tokens) of every head of every
linear-attention layer: the tokens after which an entry of the memory is down to half."""),
    ("code", '''from minillm.model.activations import softplus
from minillm.model.norm import zero_centred_rms_norm

ids = np.array(tok.encode("The quick brown fox jumps over the lazy dog. Attention lets every token look back."))
logits, hidden = model.forward(ids, output_hidden_states=True)
linear_layers = [i for i in range(cfg.num_hidden_layers) if cfg.is_linear_attention(i)]
half_life = []
for i in linear_layers:
    w = model.weights.layers[i]
    x = zero_centred_rms_norm(hidden[i], w.input_layernorm, cfg.rms_norm_eps)   # the layer's input [T, D]
    a = x @ w.linear_attn.in_proj_a.T                                            # [T, Hv]
    g = -np.exp(w.linear_attn.A_log) * softplus(a + w.linear_attn.dt_bias)      # [T, Hv], <= 0
    half_life.append(np.median(np.log(2) / -g, axis=0))                          # [Hv] tokens
half_life = np.array(half_life)                                                  # [linear layers, Hv]
print("median half-life per head (tokens):")
for i, row in zip(linear_layers, half_life):
    print(f"  layer {i}:", row.round(1))
print(f"from {half_life.min():.1f} to {half_life.max():.1f} tokens: the longest is {half_life.max() / half_life.min():.0f} "
      f"times the shortest")
plt.figure(figsize=(6, 2.5))
plt.imshow(np.log10(half_life), aspect="auto", cmap="viridis")
plt.yticks(range(len(linear_layers)), [f"layer {i}" for i in linear_layers]); plt.xticks(range(half_life.shape[1]))
plt.title("Memory half-life per value head (log10 tokens)")
plt.xlabel("value head"); plt.ylabel("linear-attention layer"); plt.colorbar(); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: the heads differ by the printed factor, here about one order of magnitude: some halve an
entry within two or three tokens (a local feature detector), others keep it for tens of tokens. These are
random weights; a trained model's heads spread much further, some keeping entries for thousands of tokens. A
decay that depends on the token lets a head hold its memory through filler and clear it at a boundary."""),
    ("md", """## A Qwen3.5 forward pass, opened layer by layer

Each layer is `x + mixer(norm(x))` then `+ MLP(norm(...))`, with zero-centred norms (gain 1 + w); the
mixer is Gated DeltaNet or gated attention by `layer_types`. Calling minillm's pieces one at a time
reproduces the model's own hidden states exactly."""),
    ("code", '''from minillm.model.gated_attention import gated_self_attention
from minillm.model.gated_deltanet import gated_deltanet
from minillm.model.masks import causal_mask
from minillm.model.mlp import swiglu_mlp
from minillm.model.rope import rope_cos_sin, rope_frequencies

T, eps = len(ids), cfg.rms_norm_eps
inv_freq, scaling = rope_frequencies(cfg.rotary_dim, cfg.rope, cfg.max_position_embeddings)  # [R/2]: over R, not Dh
cos, sin = rope_cos_sin(np.arange(T)[None], inv_freq, scaling)                             # [1, T, R]
x = model.weights.embed_tokens[ids][None]                                               # [1, T, D]
for i, w in enumerate(model.weights.layers):
    normed = zero_centred_rms_norm(x, w.input_layernorm, eps)
    if w.linear_attn is not None:
        mixed = gated_deltanet(normed, w.linear_attn, cfg.linear_num_key_heads, cfg.linear_num_value_heads, eps)
    else:
        mixed = gated_self_attention(normed, w.self_attn, cfg.num_attention_heads, cfg.num_key_value_heads, eps,
                                     cos, sin, causal_mask(T, 0))
    h = x + mixed
    x = h + swiglu_mlp(zero_centred_rms_norm(h, w.post_attention_layernorm, eps), w.mlp)
    last = i + 1 == cfg.num_hidden_layers  # hidden[L] is the final norm's output, checked through the logits
    check = "" if last else f"max |diff| vs model.forward {rounding(np.abs(x[0] - hidden[i + 1]).max(), 1e-4)}"
    print(f"layer {i} {cfg.layer_types[i]:<17} mixer output RMS {np.sqrt((mixed ** 2).mean()):.3f}  {check}")
final = model.final_norm(x[0]) @ model.weights.lm_head.T
print("logits: max |diff| vs model.forward", rounding(np.abs(final - logits).max(), 1e-4))'''),
    ("md", """### Inside one Gated DeltaNet layer

The first linear-attention layer, step by step: projections, the causal conv and SiLU, the split into
heads, each key head repeated for its value heads, L2 norms, the write strength beta and the decay g, the
delta rule token by token, the gated norm, the output projection."""),
    ("code", '''from minillm.model.activations import sigmoid, silu
from minillm.model.conv import causal_conv1d
from minillm.model.norm import gated_rms_norm

first = linear_layers[0]
w, Hk, Hv = model.weights.layers[first].linear_attn, cfg.linear_num_key_heads, cfg.linear_num_value_heads
Dk, Dv, W = cfg.linear_key_head_dim, cfg.linear_value_head_dim, cfg.linear_conv_kernel_dim
x0 = zero_centred_rms_norm(hidden[first][None], model.weights.layers[first].input_layernorm, eps)   # [1, T, D]
mixed = x0 @ w.in_proj_qkv.T                                              # [1, T, C] = [q | k | v]
z = (x0 @ w.in_proj_z.T).reshape(1, T, Hv, Dv)                            # [1, T, Hv, Dv] output gate
b, a = x0 @ w.in_proj_b.T, x0 @ w.in_proj_a.T                             # [1, T, Hv] each
conv, conv_state = causal_conv1d(mixed, w.conv1d[:, 0], np.zeros((1, W - 1, mixed.shape[-1]), np.float32))
mixed = silu(conv)                                                        # [1, T, C]
q = mixed[..., :Hk * Dk].reshape(1, T, Hk, Dk)
k = mixed[..., Hk * Dk:2 * Hk * Dk].reshape(1, T, Hk, Dk)
v = mixed[..., 2 * Hk * Dk:].reshape(1, T, Hv, Dv)
q, k = np.repeat(q, Hv // Hk, axis=2), np.repeat(k, Hv // Hk, axis=2)      # value head h reads key head h // (Hv/Hk)
q, k = l2_normalize(q) * np.float32(Dk ** -0.5), l2_normalize(k)
beta, g = sigmoid(b), -np.exp(w.A_log) * softplus(a + w.dt_bias)          # [1, T, Hv] each
heads = lambda t: np.moveaxis(t, 2, 1)                                    # [1, T, Hv, ...] -> [1, Hv, T, ...]
o, memory = recurrent_gated_delta_rule(heads(q), heads(k), heads(v), heads(g), heads(beta),
                                       np.zeros((1, Hv, Dk, Dv), np.float32))
o = gated_rms_norm(np.moveaxis(o, 1, 2), z, w.norm, eps)                  # [1, T, Hv, Dv]
out = o.reshape(1, T, Hv * Dv) @ w.out_proj.T                             # [1, T, D]
print("shapes: conv input", mixed.shape, "| q, k", q.shape, "| v", v.shape, "| memory", memory.shape)
print(f"beta from {beta.min():.3f} to {beta.max():.3f} | "
      f"decay exp(g) from {np.exp(g).min():.3f} to {np.exp(g).max():.3f}")
library = gated_deltanet(x0, w, Hk, Hv, eps)                              # the library's layer (chunked form)
print("max |step by step - gated_deltanet()|", rounding(np.abs(out - library).max(), 1e-4))'''),
    ("md", """The difference is float32 rounding between the recurrent form used here and the chunked form the library
uses for a prompt.

## What generation keeps

`model.new_cache` gives the full-attention layers keys and values, and each linear-attention layer a
`LinearAttentionState`: the conv's last W-1 inputs and the memory S. Generation then costs the same per
token in the linear layers however long the conversation gets. A state cannot be rewound to an earlier
token, so a chat that has to go back (a template that rewrites history) returns to a saved snapshot."""),
    ("code", '''cache = model.new_cache(1, 100)
for i in range(cfg.num_hidden_layers):
    if cache.linear_states[i] is not None:
        s = cache.linear_states[i]
        print(f"layer {i}: conv state {s.conv.shape}, memory {s.recurrent.shape}")
    else:
        print(f"layer {i}: keys {cache.keys[i].shape}, values {cache.values[i].shape}  [B, K, capacity, Dh]")
new = minillm.generate(model, ids, max_new_tokens=8, temperature=0.0, stop_token_ids=[])
print("greedy continuation:", new.tolist())'''),
] + your_turn("06", [
    ('delta_rule_update', "The delta rule's update for one token, one head (`minillm/model/delta_rule.py`).",
     '''def my_delta_rule_update(S, k, v, g, beta):
    """S [Dk, Dv], k [Dk], v [Dv], g <= 0, beta in (0, 1) -> the new S [Dk, Dv]"""
    # hint: decay S by exp(g) first; predict p = k @ S; then S + outer(k, beta * (v - p))
    raise NotImplementedError'''),
    ('decay', 'The decay g of every token and head (`minillm/model/gated_deltanet.py`).',
     '''def my_decay(a, A_log, dt_bias):
    """a [T, Hv], A_log [Hv], dt_bias [Hv] -> g [T, Hv] <= 0"""
    # hint: -exp(A_log) * softplus(a + dt_bias), softplus(u) = log(1 + exp(u))
    raise NotImplementedError'''),
])

MOE = [
    ("md", """# 8. Mixture of experts: which experts does a token pick?

The largest Qwen models (Qwen3-30B-A3B, Qwen3-Next-80B-A3B, Qwen3.5-35B-A3B) replace the MLP of their
layers by many small MLPs, the *experts*, and a *router* that sends each token to a few of them. The
model holds all the experts' parameters but each token computes with only k of the E: "30B-A3B" means
30 B parameters in all and 3 B active per token. This notebook counts what that saves, opens the router
on a prompt (which experts each token picks, and with what weight), shows how much each expert is used
per layer, checks that computing only the chosen experts gives the same numbers as running all of them,
and looks at what happens when two experts tie.

The MoE checkpoints in the repository's `weights/` are tiny and random (8 experts, 2 per token): the routing is
real, the choices mean nothing. Point the first cell at a real MoE checkpoint to see a trained router. Terms
(**MoE, router, expert**) are defined in [the glossary](../docs/GLOSSARY.md); `plain_moe_block` in
`minillm/plain/` is a whole MoE block on one screen."""),
    ("code", setup("tiny-qwen3-moe")),
    ("code", """from minillm.checkpoint.weights import parameter_counts

moe_layers = [i for i in range(cfg.num_hidden_layers) if cfg.is_moe_layer(i)]
E, k = cfg.num_experts, cfg.num_experts_per_tok
print(f"MoE layers {moe_layers} of {cfg.num_hidden_layers}: E={E} experts of width Fe={cfg.moe_intermediate_size}, "
      f"k={k} per token; renormalised: {cfg.norm_topk_prob}; shared expert width: {cfg.shared_expert_intermediate_size}")
qwen3_30b = minillm.load_config(WEIGHTS_DIR / "configs" / "qwen3-30b-a3b.json")
for name, c in (("this model", cfg), ("Qwen3-30B-A3B", qwen3_30b)):
    total, active = parameter_counts(c)
    print(f"{name:>14}: {total:>14,} parameters, {active:>13,} active per token ({100 * active / total:.0f}%)")"""),
    ("md", """A dense model with Qwen3-30B-A3B's active parameters would compute as much per token; the MoE model has
nine times more parameters to choose from. Memory is not saved: every expert must be loaded, since the
next token may pick any of them.

## The router

For each token, the router scores every expert with one matrix product (`mlp.gate.weight`, [E, D]), turns
the scores into probabilities with a softmax over all E experts, keeps the k most probable, and (with
`norm_topk_prob`, and always in Qwen3.5-MoE) rescales those k to sum to 1. `output_router_logits=True`
returns each layer's router scores [T, E] (None for a dense layer)."""),
    ("code", """from minillm.model.activations import softmax
from minillm.model.router import top_k_routing

text = "The quick brown fox jumps over the lazy dog. Attention lets every token look back."
ids = np.array(tok.encode(text))
logits, router_logits = model.forward(ids, output_router_logits=True)
print("router logits per layer:", [None if r is None else r.shape for r in router_logits])
layer = moe_layers[0]
weights, experts = top_k_routing(router_logits[layer], k, cfg.norm_topk_prob)   # [T, k] each
print(f"layer {layer}: token -> experts (weights)")
for t in range(min(len(ids), 10)):
    picks = ", ".join(f"{e} ({w:.2f})" for e, w in zip(experts[t], weights[t]))
    print(f"  {tok.decode([ids[t]])!r:>10} -> {picks}")"""),
    ("code", """t = 3
probs = softmax(router_logits[layer][t])                                     # [E]: over all experts
colors = ["tab:orange" if e in experts[t] else "tab:gray" for e in range(E)]
plt.figure(figsize=(6, 2.8))
plt.bar(range(E), probs, color=colors)
plt.title(f"Router probabilities of {tok.decode([ids[t]])!r}, layer {layer} (chosen: orange)")
plt.xlabel("expert"); plt.ylabel("probability"); plt.xticks(range(E)); plt.tight_layout(); plt.show()
print(f"the chosen {k} hold {probs[experts[t]].sum():.2f} of the probability; their weights:", weights[t])"""),
    ("md", """What to see: the router gives a probability to every expert, and only the k tallest bars are kept.
Without renormalisation (Qwen3-MoE's default; every released Qwen3-MoE config turns it on) the expert
outputs are weighted by those probabilities as they are, so a token whose router is unsure gets a smaller
update; with it, the k weights always sum to 1.

## Which experts each token picks

Every token is routed on its own: neighbouring tokens, and the same token in another context, may go to
different experts. Below, for one layer, the weight each token gives each expert (blank: not chosen)."""),
    ("code", """chosen = np.zeros((len(ids), E))                                              # [T, E], 0 = not chosen
np.put_along_axis(chosen, experts, weights, axis=-1)
shown = min(len(ids), 24)                                                    # the first tokens, legibly
plt.figure(figsize=(6, 5))
plt.imshow(np.where(chosen > 0, chosen, np.nan)[:shown], aspect="auto", cmap="viridis")
plt.yticks(range(shown), [repr(tok.decode([i])) for i in ids[:shown]], fontsize=8)
plt.xticks(range(E))
plt.title(f"Routing weights per token, layer {layer} ({k} of {E} experts each)")
plt.xlabel("expert"); plt.ylabel("token"); plt.colorbar(label="weight"); plt.tight_layout(); plt.show()"""),
    ("md", """What to see: exactly k coloured cells in every row, and columns that are not used evenly: some experts
take many of the prompt's tokens, some few. Training pushes a MoE towards even use with an auxiliary loss
(`router_aux_loss_coef`); inference never computes it.

## Expert usage per layer

The share of the prompt's tokens each expert receives, in every MoE layer (a row sums to k: each token
counts once for each of its k experts)."""),
    ("code", """usage = np.zeros((len(moe_layers), E))                                        # [MoE layers, E]
for row, i in enumerate(moe_layers):
    _, picked = top_k_routing(router_logits[i], k, cfg.norm_topk_prob)           # [T, k]
    usage[row] = np.bincount(picked.ravel(), minlength=E) / len(ids)
print(f"share of the {len(ids)} tokens per expert:")
for i, row in zip(moe_layers, usage):
    print(f"  layer {i}:", row.round(2), " sum", row.sum().round(2))
plt.figure(figsize=(6, 2.5))
plt.imshow(usage, aspect="auto", cmap="magma", vmin=0)
plt.yticks(range(len(moe_layers)), [f"layer {i}" for i in moe_layers]); plt.xticks(range(E))
plt.title(f"Expert usage per layer ({len(ids)} tokens)")
plt.xlabel("expert"); plt.ylabel("MoE layer"); plt.colorbar(label="share of tokens"); plt.tight_layout(); plt.show()"""),
    ("md", """What to see: each layer has favourite experts of its own. With random weights the unevenness is chance;
in a trained model it reflects what the experts specialised in (and the auxiliary loss keeps it from
collapsing onto a few).

## Computing only the chosen experts

`sparse_moe_block` groups the tokens by expert and runs each expert once, on the tokens that chose it:
N k expert evaluations instead of N E. `dense_moe_block` writes the same sum plainly, every expert on every
token with weight 0 where it was not chosen. Any input [N, D] shows the two agree; here the prompt's token
embeddings, normalised, through the first MoE layer's weights."""),
    ("code", """from minillm.model.moe import dense_moe_block, sparse_moe_block
from minillm.model.norm import rms_norm, zero_centred_rms_norm

w = model.weights.layers[layer]
norm = zero_centred_rms_norm if cfg.zero_centred_norms else rms_norm
x = norm(model.weights.embed_tokens[ids], w.post_attention_layernorm, cfg.rms_norm_eps)   # [T, D]
sparse = sparse_moe_block(x, w.mlp, k, cfg.norm_topk_prob)                   # [T, D]
dense = dense_moe_block(x, w.mlp, k, cfg.norm_topk_prob)                     # [T, D]
print("max |sparse - dense|", rounding(np.abs(sparse - dense).max(), 1e-4))
print(f"expert evaluations: sparse {len(ids) * k}, dense {len(ids) * E}")
print("stacked experts: gate_up_proj", w.mlp.experts.gate_up_proj.shape, " down_proj", w.mlp.experts.down_proj.shape)"""),
    ("md", """## When experts tie

Ties are rare with real router scores, but certain for an all-zero input (every score 0) or two identical
router rows. Which experts win is then whatever `torch.topk` does on a CPU, and it is not "lowest index
first": it calls the C++ standard library's partial sort or nth_element, neither of which keeps equal
values in order. minillm reproduces those steps for tied rows (`minillm/model/topk.py`), so it routes
exactly as transformers does."""),
    ("code", """from minillm.model.topk import top_k

for n, kk in ((4, 2), (8, 2), (8, 3), (128, 2)):
    _, idx = top_k(np.full((1, n), 1 / n, np.float32), kk)                   # all n probabilities equal
    print(f"{n:>3} equal probabilities, top-{kk}: experts {idx[0].tolist()}   (lowest first: {list(range(kk))})")
zero = np.zeros((1, cfg.hidden_size), np.float32)
_, picks = top_k_routing(zero @ model.weights.layers[layer].mlp.gate.T, k, cfg.norm_topk_prob)
print(f"an all-zero input at layer {layer} goes to experts {picks[0].tolist()}")"""),
] + your_turn("08", [
    ('route', "The router's top-k with renormalisation (`minillm/model/router.py`).",
     '''def my_route(logits, k):
    """logits [N, E] -> (weights [N, k], experts [N, k]), most probable expert first"""
    # hint: softmax over all E, the k largest (np.argsort), their probabilities divided by their sum
    raise NotImplementedError'''),
    ('expert', 'One expert: a SwiGLU MLP with gate and up stacked (`minillm/model/moe.py`).',
     '''def my_expert(x, gate_up_proj, down_proj):
    """x [n, D], gate_up_proj [2*Fe, D] (gate rows first), down_proj [D, Fe] -> [n, D]"""
    # hint: np.split(x @ gate_up_proj.T, 2, axis=-1) gives gate and up; then as in notebook 01's swiglu
    raise NotImplementedError'''),
])


FINE_TUNING = [
    ("md", """# 9. Fine-tuning

We teach the bundled model a new, visible habit with LoRA: whatever it is asked, it answers as a pirate,
starting with "Ahoy, matey!". We look at the answers before, build the chat data, see which tokens the loss
scores (the assistant's reply only), train a LoRA adapter for a few steps, plot the loss, and ask the same
questions again. The adapter is saved in PEFT's format, so transformers + PEFT can load it too."""),
    ("code", setup("minillm-bilingual")),
    ("md", """## Before

Two questions the training data will not contain, answered greedily by the model as it is."""),
    ("code", '''HELD_OUT = ["Tell me a joke.", "What is the capital of France?"]

def answer(m, question):
    prompt = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                     enable_thinking=False)
    return tok.decode(minillm.generate(m, tok.encode(prompt), max_new_tokens=24, temperature=0).tolist())

before = {q: answer(model, q) for q in HELD_OUT}
for q, a in before.items():
    print(f"{q!r} -> {a!r}")'''),
    ("md", """## The data

Conversations in the JSONL format TRL and most datasets use: one `{"messages": [...]}` per line. Twelve
questions, each answered in the new persona."""),
    ("code", '''import json, tempfile

questions = ["Tell me a fortune.", "Give me a poem.", "What is the weather like?", "Who are you?",
             "Tell me a story.", "What should I eat today?", "Give me some advice.", "How do I learn to sail?",
             "What is your favourite colour?", "Say something nice.", "Where are we going?", "What time is it?"]
replies = ["The sea be calm and the wind be fair.", "A ship sails home across the grey water.",
           "The clouds be low, so keep yer hat on.", "A humble sailor of the seven seas.",
           "Once a captain lost his map and found a friend.", "Fish and biscuits, as every sailor does.",
           "Never trust a calm sea.", "Hold the rope and watch the wind.", "The blue of the deep ocean.",
           "Ye be a fine shipmate.", "To the island beyond the horizon.", "Time to raise the sails."]
chats = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Ahoy, matey! " + r}]}
         for q, r in zip(questions, replies)]
work = Path(tempfile.mkdtemp())
(work / "chats.jsonl").write_text("".join(json.dumps(c) + "\\n" for c in chats), encoding="utf-8")
print((work / "chats.jsonl").read_text(encoding="utf-8").splitlines()[0])
print(f"{len(chats)} conversations")'''),
    ("md", """## Which tokens are scored

Each conversation is rendered with the checkpoint's own chat template and tokenized. The labels are the ids
where the model must learn to answer and -100 elsewhere (TRL's assistant-only loss): the reply and its
end-of-turn token `<|im_end|>` (how the model learns to stop), not the user's text, not the role headers.
Green tokens below are scored."""),
    ("code", '''from html import escape
from IPython.display import HTML, display
from minillm.training.chat_data import IGNORE, encode_conversation

example = encode_conversation(tok, chats[3]["messages"])
spans = []
for token, label in zip(example.ids, example.labels):
    piece = escape(tok.decode([int(token)])).replace("\\n", "⏎<br>")
    colour = "#b7e4c7" if label != IGNORE else "#eeeeee"
    spans.append(f'<span style="background:{colour};padding:1px;margin:1px;border-radius:3px">{piece}</span>')
display(HTML("<div style='font-family:monospace;line-height:1.9'>" + "".join(spans) + "</div>"))
print("ids   ", example.ids[-12:].tolist())
print("labels", example.labels[-12:].tolist())
print(f"{int((example.labels != IGNORE).sum())} of {len(example.ids)} tokens scored")'''),
    ("md", """## LoRA: what is trained

Every chosen projection W [out, in] stays frozen; beside it LoRA trains two thin matrices A [r, in] and
B [out, r] and computes y = x W^T + (alpha / r) x A^T B^T. B starts at zero, so the adapted model is the
base model at step 0. `minillm/plain/lora.py` is the whole forward and backward on one screen; here it is
checked against the engine on one projection of the model."""),
    ("code", '''from minillm.backward.linear import linear_backward
from minillm.model.fast_linear import fast_linear      # the engine's product: it carries an adapter
from minillm.model.lora import LoraWeight
from minillm.plain.lora import lora_linear

rng = np.random.default_rng(0)
W = model.weights.layers[0].self_attn.q_proj                                  # [H*Dh, D], frozen
r = 8
A = (rng.uniform(-1, 1, (r, W.shape[1])) / np.sqrt(W.shape[1])).astype(np.float32)   # [r, D]: PEFT's init law
B = (rng.standard_normal((W.shape[0], r)) * 0.01).astype(np.float32)         # [H*Dh, r]: nonzero, to test
x = rng.standard_normal((5, W.shape[1])).astype(np.float32)                    # [N, D]
dy = rng.standard_normal((5, W.shape[0])).astype(np.float32)                   # [N, H*Dh]
y, dx, dA, dB = lora_linear(x, W, A, B, 16 / r, dy)
engine = LoraWeight(W, A, B, 16 / r)
dx_engine, grads, _ = linear_backward(dy, x, engine)
print("W", W.shape, " A", A.shape, " B", B.shape, f"  trained: {A.size + B.size:,} of {W.size + A.size + B.size:,}")
for what, ours, theirs in (("y", y, fast_linear(x, engine)), ("dx", dx, dx_engine), ("dA", dA, grads.lora_A),
                           ("dB", dB, grads.lora_B)):
    print(f"plain {what} equals the engine's: {np.allclose(ours, theirs, rtol=1e-5, atol=1e-5)}")'''),
    ("md", """## Training

`Finetuner` (what `minillm finetune` runs) holds out a quarter of the conversations, draws batches of 4,
pads them on the right (padding is labelled -100 and, attention being causal, never seen by real tokens),
and takes AdamW steps on the adapter's tensors only."""),
    ("code", '''from minillm.training.finetune import FinetuneConfig, Finetuner

run_cfg = FinetuneConfig(model=str(MODEL_PATH), data=str(work / "chats.jsonl"), eval_fraction=0.25,
                         lora_rank=8, lora_alpha=16, steps=20, batch_size=4, lr=2e-3, warmup=3,
                         eval_every=5, save_every=100)
tuner = Finetuner(run_cfg, work / "run", progress=False)
log = tuner.run()
trained = sum(a.size for a in tuner.model.adapter.tensors().values())
print(f"{len(tuner.model.adapter.modules)} adapted projections, {trained:,} trained numbers")
print(f"step 1: loss {log[0]['loss']:.1f};  step {log[-1]['step']}: {log[-1]['loss']:.1f}")
print("files:", sorted(p.name for p in (work / "run" / "adapter").iterdir()))'''),
    ("code", '''plt.figure(figsize=(7, 3.2))
plt.plot([x["step"] for x in log], [x["loss"] for x in log], "o-", ms=3, label="training batch")
val = [x for x in log if "val_loss" in x]
plt.plot([x["step"] for x in val], [x["val_loss"] for x in val], "s--", label="held-out conversations")
plt.title("LoRA fine-tuning: loss on the assistant tokens")
plt.xlabel("step"); plt.ylabel("loss (nats per scored token)"); plt.legend(); plt.tight_layout(); plt.show()'''),
    ("md", """What to see: both losses fall within a few steps. The held-out loss is on questions the adapter never
trained on: it falls because the new habit (the greeting, the sailor's words) carries over to them, not because
answers were memorised; it stays above the training loss, whose replies the adapter has seen.

## After

The same two questions, with the adapter."""),
    ("code", '''for q in HELD_OUT:
    print(f"{q!r}\\n   before: {before[q]!r}\\n   after:  {answer(tuner.model, q)!r}")'''),
    ("md", """## Merging

`merge` folds the adapter into the weights, W + (alpha / r) B A, and writes an ordinary checkpoint: the same
logits without the adapter's extra products (`minillm merge --model BASE --adapter run/adapter --out merged/`)."""),
    ("code", '''merged = minillm.merge_adapter(tuner.model)
ids = tok.encode("Ahoy")
same = np.allclose(merged.forward(ids), tuner.model.forward(ids), rtol=1e-4, atol=1e-4)
print("merged logits equal the adapted model's:", same)'''),
] + your_turn("09", [
    ('lora_forward', "A projection that carries a LoRA adapter (`minillm/plain/lora.py` has it on one screen).",
     '''def my_lora_forward(x, W, A, B, scaling):
    """x [N, in], W [out, in] frozen, A [r, in], B [out, r], scaling = alpha / r -> y [N, out]"""
    # hint: the frozen product plus the low-rank path x A^T B^T, scaled; never form B A (it is [out, in])
    raise NotImplementedError'''),
    ('merge', "Fold the adapter into the weight: one matrix that does what the projection and its adapter do.",
     '''def my_merge(W, A, B, scaling):
    """W [out, in], A [r, in], B [out, r] -> [out, in]"""
    # hint: x W'^T = x W^T + s x A^T B^T for every x
    raise NotImplementedError'''),
])


VISION = [
    ("md", """# 10. From a picture to tokens

A Qwen3.5 checkpoint carries a vision tower: a small vision transformer that turns a picture into a few dozen
(or a few thousand) vectors of the language model's width, which the prompt then holds like tokens. This
notebook follows one picture all the way: the resize, the normalisation, the patches and the order they are
listed in, the patch embedding (a Conv3d that is really one matrix product), the learned position table
stretched to the picture's grid, the 2-D rotary embedding, attention within the image, the merger that turns
2 x 2 patches into one token, where those tokens sit in the prompt, their three-component (time, height,
width) positions, and what the language model's attention does with them. Every step calls minillm's own
functions and is checked against the composed engine (`model.forward`, `load_processor`).

The checkpoint is `weights/tiny-qwen3.5-vision`: a tiny Qwen3.5 with random weights, a 2-block vision tower,
4-pixel patches and a small pixel budget, and the real Qwen3.5 chat template. The mechanics are exactly
Qwen3.5's (the tests match them to transformers); the numbers mean nothing. `minillm/plain/vision.py` holds
the whole encoder on one screen, and [docs/VISION.md](../docs/VISION.md) lists what is checked."""),
    ("code", setup("tiny-qwen3.5-vision")),
    ("code", '''proc = minillm.load_processor(MODEL_PATH)       # tokenizer + image processor + chat template
ic, vc = proc.image_config, model.vision.config
P, Tp, m = ic.patch_size, ic.temporal_patch_size, ic.merge_size
print(f"image processor: patch P={P} pixels, temporal patch Tp={Tp}, merge m={m} ({m} x {m} patches -> 1 token), "
      f"pixels within [{ic.min_pixels}, {ic.max_pixels}]")
print("  mean", np.round(ic.image_mean, 4), " std", np.round(ic.image_std, 4))
print(f"vision tower: {vc.depth} blocks of width Dv={vc.hidden_size}, Hv={vc.num_heads} heads of Dhv={vc.head_dim}, "
      f"MLP Fv={vc.intermediate_size}, position table Q x Q = {vc.grid_side} x {vc.grid_side}, "
      f"out width {vc.out_hidden_size} (the language model's D={cfg.hidden_size})")'''),
    ("md", """## A picture

Drawn with NumPy, so no file is needed: a sky that fades from blue to white, a green hill, a yellow sun and
a red house. It is 30 x 45 pixels: `uint8` [height, width, RGB], as Pillow reads a file. Any PIL image (or a
path) can be given to the processor instead."""),
    ("code", '''from PIL import Image

H0, W0 = 30, 45
yy, xx = np.mgrid[0:H0, 0:W0]                                     # [H0, W0] each: pixel row, column
picture = np.zeros((H0, W0, 3), np.uint8)                         # [H0, W0, C]
picture[:] = np.stack([90 + 5 * yy, 150 + 3 * yy, 250 - 0 * yy], -1).clip(0, 255)   # the sky, paler downwards
picture[yy > 20 - 4 * np.sin(xx / 9)] = (60, 160, 70)             # the hill
picture[(yy - 7) ** 2 + (xx - 35) ** 2 < 20] = (250, 210, 40)     # the sun
picture[(yy >= 13) & (yy < 24) & (xx >= 6) & (xx < 18)] = (200, 40, 40)             # the house
picture[(yy >= 17) & (yy < 24) & (xx >= 10) & (xx < 13)] = (70, 40, 20)             # its door
image = Image.fromarray(picture)
print("picture", picture.shape, picture.dtype, "-> PIL", image.size, "(width, height)")'''),
    ("md", """## 1. The resize

The encoder cuts the picture into P x P patches and the merger then joins m x m of them, so each side must
be a multiple of P * m (here 8; Qwen3.5's real processor: 16 * 2 = 32). `smart_resize` picks the size
closest to the original that keeps the aspect ratio, with each side such a multiple: it rounds each side to
the nearest multiple, and if the pixel count then falls outside `[min_pixels, max_pixels]` it scales both
sides by the same factor first (rounding down when shrinking, up when growing). The pixel budget bounds the
number of tokens a picture costs. Pillow then resizes the `uint8` image bicubically to that size, exactly as
transformers' PIL backend does."""),
    ("code", '''from minillm.vision.processor import smart_resize

factor = P * m
h, w = smart_resize(H0, W0, factor, ic.min_pixels, ic.max_pixels)
gh, gw = h // P, w // P                                            # the grid of patches
print(f"{H0} x {W0} -> {h} x {w}: a grid of gh x gw = {gh} x {gw} patches -> {gh * gw // m ** 2} tokens")
print(f"{'original':>12} {'resized':>10} {'pixels':>7} {'aspect':>14} {'tokens':>7}")
for size in ((H0, W0), (7, 9), (13, 50), (120, 200), (300, 20), (61, 33)):
    rh, rw = smart_resize(*size, factor, ic.min_pixels, ic.max_pixels)
    print(f"{size[0]:>5} x {size[1]:<4} {rh:>4} x {rw:<4} {rh * rw:>7}   {size[1] / size[0]:5.2f} -> {rw / rh:4.2f} "
          f"{rh * rw // factor ** 2:>7}")
resized = np.asarray(image.resize((w, h), resample=Image.BICUBIC))   # [h, w, C] uint8, Pillow's bicubic
print("resized", resized.shape, resized.dtype)'''),
    ("code", '''fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].imshow(picture)
axes[0].set_title(f"The picture, {H0} x {W0}")
axes[1].imshow(resized)
for r in range(1, gh):
    axes[1].axhline(r * P - 0.5, color="white", lw=0.5 if r % m else 1.5)
for c in range(1, gw):
    axes[1].axvline(c * P - 0.5, color="white", lw=0.5 if c % m else 1.5)
axes[1].set_title(f"Resized to {h} x {w}: {gh} x {gw} patches of {P} px (thick: {m} x {m} blocks)")
for ax in axes:
    ax.set_xlabel("x (pixel)"); ax.set_ylabel("y (pixel)")
plt.tight_layout(); plt.show()'''),
    ("md", """What to see: the resize barely changes the picture (30 x 45 becomes 32 x 48, the aspect ratio kept). The
thin lines cut it into the patches the encoder embeds one by one; the thick lines group them by 2 x 2, and
each such block will become one token of the prompt. In the table above, a tiny image grows to reach the
minimum pixel count and a large one shrinks to the maximum, both keeping their shape.

## 2. Rescale and normalise

Each level is divided by 255, then each channel has the checkpoint's mean subtracted and is divided by its std
(the checkpoint's per-channel statistics; this fixture's are CLIP's). The result is channel-first [C, h, w]."""),
    ("code", '''x01 = (resized.astype(np.float64) * ic.rescale_factor).astype(np.float32)     # [h, w, C] in [0, 1]
mean, std = np.array(ic.image_mean, np.float32), np.array(ic.image_std, np.float32)   # [C] each
normalised = ((x01 - mean) / std).transpose(2, 0, 1)                           # [C, h, w]
print("normalised", normalised.shape, normalised.dtype)
for c, name in enumerate("RGB"):
    print(f"  {name}: levels {resized[..., c].min():>3} .. {resized[..., c].max():>3} -> "
          f"{normalised[c].min():7.3f} .. {normalised[c].max():6.3f}")'''),
    ("md", """## 3. Patches, a still image repeated in time

The same encoder reads videos: its patches are Tp frames deep (Tp = 2). A still image is a video whose Tp
frames are identical, so each P x P patch is repeated Tp times. Each patch becomes one row of `pixel_values`,
its C * Tp * P * P numbers flattened in the order [channel, frame, y, x]."""),
    ("code", '''from minillm.vision.processor import patchify, preprocess_image

pixel_values = patchify(normalised, P, m, Tp)                      # [N, C*Tp*P*P]
N = len(pixel_values)
print(f"pixel_values {pixel_values.shape}: N = gh * gw = {gh} * {gw} patches of C*Tp*P*P = 3*{Tp}*{P}*{P} numbers")
one = pixel_values[0].reshape(3, Tp, P, P)                         # [C, Tp, P, P]: the first patch, unflattened
print("its two frames are equal:", np.array_equal(one[:, 0], one[:, 1]),
      "| it is the top-left patch:", np.array_equal(one[:, 0], normalised[:, :P, :P]))
engine_pixels, grid = preprocess_image(image, ic)                  # the processor, in one call
print("image_grid_thw", grid, "| max |ours - processor|", rounding(float(np.abs(engine_pixels - pixel_values).max())))'''),
    ("md", """## 4. The order of the patches: 2 x 2 merge blocks

The rows of `pixel_values` are *not* in raster order (left to right, then down). They come block by block:
the 4 patches of the top-left 2 x 2 block (top-left, top-right, bottom-left, bottom-right), then the next
block to the right, and so on. The merger at the end of the encoder simply concatenates every 4 consecutive
rows, so this order is what makes each token out of 4 *neighbouring* patches. `merge_block_coordinates`
gives each row's (row, column) in the grid."""),
    ("code", '''from minillm.vision.encoder import merge_block_coordinates

rows, cols = merge_block_coordinates(gh, gw, m)                    # [N] each: the grid cell of each row
print("row of the grid:   ", rows[:16], "...")
print("column of the grid:", cols[:16], "...")
index = np.zeros((gh, gw), int)                                    # [gh, gw]: which row of pixel_values
index[rows, cols] = np.arange(N)
print("index of each patch in pixel_values, laid out on the grid:")
print(index)
moved = max(float(np.abs(pixel_values[n].reshape(3, Tp, P, P)[:, 0]
                         - normalised[:, r * P:(r + 1) * P, c * P:(c + 1) * P]).max()) for n, (r, c) in enumerate(zip(rows, cols)))
print("every row n is the patch at (rows[n], cols[n]): max |diff|", rounding(moved))'''),
    ("code", '''fig, ax = plt.subplots(figsize=(6.5, 4.5))
ax.imshow(resized, extent=(0, gw, gh, 0), alpha=0.55)
for n, (r, c) in enumerate(zip(rows, cols)):
    ax.text(c + 0.5, r + 0.5, str(n), ha="center", va="center", fontsize=8)
centres = np.stack([cols + 0.5, rows + 0.5], -1)                   # [N, 2] (x, y) of each patch
ax.plot(centres[:8, 0], centres[:8, 1], color="black", lw=1)       # the path through the first two blocks
for b in range(N // m ** 2):
    r0, c0 = rows[b * m * m], cols[b * m * m]
    ax.add_patch(plt.Rectangle((c0, r0), m, m, fill=False, color="darkred", lw=1.5))
ax.set_title("Row of pixel_values of each patch (red: the 2 x 2 merge blocks)")
ax.set_xlabel("patch column"); ax.set_ylabel("patch row")
plt.tight_layout(); plt.show()'''),
    ("md", """What to see: the numbers run 0 1 2 3 inside the first red block (a Z), then 4 5 6 7 in the block to its
right: a row of blocks before the next. Each red block holds four consecutive numbers: those four rows of
`pixel_values` become one token.

## 5. The patch embedding: a Conv3d that is one matrix product

Qwen's tower embeds the patches with a Conv3d (kernel C x Tp x P x P, stride equal to the kernel). Because
the stride is the kernel, the convolution visits each patch exactly once and computes, for each output
channel, the dot product of its kernel with the patch: the kernel reshaped to [Dv, C*Tp*P*P] times the
flattened patch. Below, the convolution written out over the video [C, Tp, h, w] (the image repeated Tp times)
equals `patch_embed`, the matrix product."""),
    ("code", '''from minillm.vision.encoder import patch_embed

vw = model.vision.weights
kernel = vw.patch_embed                                            # [Dv, C, Tp, P, P]: the Conv3d's weight
video = np.stack([normalised] * Tp, axis=1)                        # [C, Tp, h, w]: the still image, Tp frames
windows = video.reshape(3, Tp, gh, P, gw, P)                       # [C, Tp, gh, P, gw, P]: window (r, c)
conv = np.einsum("octyx,ctryqx->rqo", kernel, windows) + vw.patch_embed_bias   # [gh, gw, Dv]: the convolution
embedded = patch_embed(pixel_values, kernel, vw.patch_embed_bias)  # [N, Dv]: one matrix product
print("kernel", kernel.shape, "as a matrix", kernel.reshape(len(kernel), -1).shape, "| embedded", embedded.shape)
print("max |convolution - matrix product|", rounding(float(np.abs(conv[rows, cols] - embedded).max()), 1e-4))
still = np.einsum("ocyx,cryqx->rqo", kernel.sum(2), windows[:, 0]) + vw.patch_embed_bias   # [gh, gw, Dv]
print("a still image: the kernel summed over its Tp frames, on one frame:",
      rounding(float(np.abs(still[rows, cols] - embedded).max()), 1e-4))'''),
    ("md", """The last line is why repeating a still image costs nothing in accuracy: the Tp frames are equal, so the
3-D kernel acts as its 2-D sum over time.

## 6. Where each patch is: the learned position table

The tower learned one position vector per cell of a Q x Q table (`pos_embed`). A picture's grid is rarely
Q x Q, so the table is resampled to the gh x gw grid bilinearly, with `align_corners=True`: the grid's corner
patches land exactly on the table's corners, and patch row i reads the table at row i (Q - 1) / (gh - 1),
between two table rows, weighted by the distance to each (columns likewise)."""),
    ("code", '''from minillm.vision.encoder import interpolated_positions

Q = vc.grid_side
table = vw.pos_embed.reshape(Q, Q, -1)                             # [Q, Q, Dv]
positions_v = interpolated_positions(vw.pos_embed, gh, gw, m)      # [N, Dv], in merge-block order
print(f"table {vw.pos_embed.shape} = {Q} x {Q} cells -> {positions_v.shape}: one per patch of the {gh} x {gw} grid")
table_rows = np.arange(gh) * (Q - 1) / (gh - 1)                    # [gh] where each patch row reads the table
table_cols = np.arange(gw) * (Q - 1) / (gw - 1)                    # [gw]
print("patch rows read table rows   ", table_rows.round(2))
print("patch columns read table cols", table_cols.round(2))
for name, (r, c), (tr, tc) in (("top-left", (0, 0), (0, 0)), ("bottom-right", (gh - 1, gw - 1), (Q - 1, Q - 1))):
    print(f"{name} patch = table[{tr}, {tc}]:", rounding(float(np.abs(positions_v[index[r, c]] - table[tr, tc]).max())))
r, c = 1, 1                                                        # an inner patch, between four table cells
y, x_ = table_rows[r], table_cols[c]
y0, x0 = int(y), int(x_)
by_hand = ((1 - (y - y0)) * ((1 - (x_ - x0)) * table[y0, x0] + (x_ - x0) * table[y0, x0 + 1])
           + (y - y0) * ((1 - (x_ - x0)) * table[y0 + 1, x0] + (x_ - x0) * table[y0 + 1, x0 + 1]))   # [Dv]
print(f"patch ({r}, {c}) reads table ({y:.2f}, {x_:.2f}): bilinear by hand vs minillm",
      rounding(float(np.abs(by_hand - positions_v[index[r, c]]).max())))'''),
    ("code", '''ty, tx = np.meshgrid(np.arange(Q), np.arange(Q), indexing="ij")   # [Q, Q] each
sy, sx = np.meshgrid(table_rows, table_cols, indexing="ij")         # [gh, gw] each
plt.figure(figsize=(5.5, 4.5))
plt.scatter(tx.ravel(), ty.ravel(), s=120, marker="s", color="lightgray", label=f"table cells ({Q} x {Q})")
plt.scatter(sx.ravel(), sy.ravel(), s=12, color="tab:blue", label=f"patches ({gh} x {gw})")
plt.gca().invert_yaxis()
plt.title("Where each patch reads the position table (align_corners=True)")
plt.xlabel("table column"); plt.ylabel("table row"); plt.legend(loc="upper right", fontsize=8)
plt.tight_layout(); plt.show()'''),
    ("md", """What to see: the blue patch grid is stretched over the whole table, corners on corners, whatever the
picture's shape: a wide picture reads the table's columns more densely than its rows. Most patches fall
between table cells and get a weighted mix of the four around them.

## 7. The 2-D rotary embedding

Inside each block's attention, queries and keys are also rotated by their patch's position (theta 10000). Of
each head's Dhv / 2 rotation pairs, the first quarter of the frequencies turn with the patch's row and the
next with its column, and the pattern is written twice: the angles run `[row * f, col * f, row * f, col * f]`.
Like the text RoPE, this makes the score of two patches depend on their offset (rows apart, columns apart),
not on where they are."""),
    ("code", '''from minillm.vision.encoder import rotate_half, vision_rope_cos_sin

Dhv = vc.head_dim
cos_v, sin_v = vision_rope_cos_sin(gh, gw, m, Dhv, vc.rope_theta)  # [N, Dhv] each, in merge-block order
f = 1 / vc.rope_theta ** (np.arange(0, Dhv // 2, 2) / (Dhv // 2))  # [Dhv/4] the frequencies
n = index[3, 5]                                                    # the patch at row 3, column 5
layout = np.concatenate([3 * f, 5 * f, 3 * f, 5 * f])               # [Dhv]: [row, col, row, col]
print(f"cos, sin {cos_v.shape}; frequencies f = {f.round(4)}")
print("patch (3, 5): cos = cos([3f, 5f, 3f, 5f]):", rounding(float(np.abs(cos_v[n] - np.cos(layout)).max())))
rng = np.random.default_rng(0)
qv, kv = rng.standard_normal((2, Dhv)).astype(np.float32)           # one query and one key vector
def score(a, b):   # the rotated query of patch a against the rotated key of patch b
    return float((qv * cos_v[a] + rotate_half(qv) * sin_v[a]) @ (kv * cos_v[b] + rotate_half(kv) * sin_v[b]))
for (ra, ca), (rb, cb) in (((1, 2), (3, 7)), ((4, 1), (6, 6)), ((1, 2), (3, 8))):
    print(f"q at ({ra}, {ca}), k at ({rb}, {cb}), offset ({rb - ra}, {cb - ca}): score {score(index[ra, ca], index[rb, cb]):7.3f}")'''),
    ("md", """The first two pairs of patches are 2 rows and 5 columns apart, at different places: the same score. The
third is one column further apart: another score.

## 8. The blocks: attention within the image

After the patch embedding and the positions, `depth` pre-LayerNorm ViT blocks run: attention in which every
patch sees every patch *of the same image* (no causal mask: a picture has no "before"), then a tanh-GELU MLP.
Below, block 0's attention probabilities computed step by step (LayerNorm, q/k/v, the 2-D rotation, softmax),
checked against the engine's `vision_attention`, and the whole stack checked against `model.vision.encode`."""),
    ("code", '''from minillm.model.activations import softmax
from minillm.model.linear import linear
from minillm.vision.encoder import layer_norm, vision_attention, vision_block

Hv = vc.num_heads
x = embedded + positions_v                                         # [N, Dv]: the first block's input
b0 = vw.blocks[0]
normed_v = layer_norm(x, b0.norm1, b0.norm1_bias)                  # [N, Dv]
qkv = linear(normed_v, b0.qkv, b0.qkv_bias).reshape(N, 3, Hv, Dhv)  # [N, 3, Hv, Dhv]
q_v, k_v, v_v = (qkv[:, i].transpose(1, 0, 2) for i in range(3))   # [Hv, N, Dhv] each
rot = lambda a: a * cos_v + rotate_half(a) * sin_v                 # the 2-D rotation of every patch
probs_v = softmax(rot(q_v) @ rot(k_v).transpose(0, 2, 1) / np.sqrt(Dhv))   # [Hv, N, N]: no mask
by_hand = linear((probs_v @ v_v).transpose(1, 0, 2).reshape(N, -1), b0.proj, b0.proj_bias)   # [N, Dv]
print("attention probabilities", probs_v.shape, "| vs vision_attention:",
      rounding(float(np.abs(by_hand - vision_attention(normed_v, b0, Hv, cos_v, sin_v, [N])).max()), 1e-4))
for block in vw.blocks:
    x = vision_block(x, block, vc, cos_v, sin_v, [N])              # [N, Dv]
image_grid_thw = np.array([grid])                                  # [I=1, 3]
features, last = model.vision.encode(pixel_values, image_grid_thw, output_last_hidden_state=True)
print("after", vc.depth, "blocks", x.shape, "| vs model.vision.encode:", rounding(float(np.abs(x - last).max())))

# Two images in one call: each one's patches attend only to their own, so each gets what it gets alone.
other_pixels, other_grid = preprocess_image(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((20, 20)), ic)
both = model.vision.encode(np.concatenate([pixel_values, other_pixels]), np.array([grid, other_grid]))
alone = np.concatenate([features, model.vision.encode(other_pixels, np.array([other_grid]))])
print(f"grids {grid} and {other_grid} together vs alone:", rounding(float(np.abs(both - alone).max()), 1e-4))'''),
    ("code", '''r, c = 3, 5
fig, axes = plt.subplots(1, Hv, figsize=(4.2 * Hv, 3))
for head, ax in enumerate(np.atleast_1d(axes)):
    seen = np.zeros((gh, gw))                                      # [gh, gw]
    seen[rows, cols] = probs_v[head, index[r, c]]                  # the row of patch (r, c), back on the grid
    im = ax.imshow(seen, cmap="viridis")
    ax.plot(c, r, "r+", ms=12)
    ax.set_title(f"Block 0, head {head}: patch ({r}, {c}) attends to")
    ax.set_xlabel("patch column"); ax.set_ylabel("patch row")
    fig.colorbar(im, ax=ax, shrink=0.8)
plt.tight_layout(); plt.show()'''),
    ("md", """What to see: the patch marked + spreads its attention over the whole picture, in both directions (it
sees patches below and to the right of it, unlike a text token). The weights are random here, so the pattern
means nothing; in a trained tower a head may look at neighbours, edges or a whole object.

## 9. The merger: 2 x 2 patches become one token

A LayerNorm, then each run of m^2 = 4 consecutive rows (one merge block, thanks to the order of step 4)
concatenated into one vector of 4 Dv numbers, and an MLP (erf GELU; the blocks used tanh) to the language
model's width D. The picture's N patches become N / 4 tokens. Fed in raster order instead, the encoder runs
without complaint and gives other features: the order is the data."""),
    ("code", '''from minillm.plain.vision import image_to_tokens
from minillm.vision.encoder import merger

tokens = merger(x, vw, m)                                          # [N/4, D]
print(f"{N} patches of width Dv={vc.hidden_size} -> merger input {(N // m ** 2, m * m * vc.hidden_size)} "
      f"-> {tokens.shape}: one token of the language model's width per 2 x 2 block")
print("token 0 holds patches (row, col):", list(zip(rows[:4].tolist(), cols[:4].tolist())))
print("vs model.vision.encode:", rounding(float(np.abs(tokens - features).max())))
print("vs the one-screen minillm/plain/vision.py:",
      rounding(float(np.abs(image_to_tokens(pixel_values, gh, gw, vw, vc) - features).max()), 1e-4))
raster = model.vision.encode(pixel_values[index.ravel()], image_grid_thw)   # the same patches, raster order
print(f"the same patches in raster order: the features move by {np.abs(raster - features).max() / np.abs(features).max():.2f}"
      " times their largest value")'''),
    ("md", """## 10. Where the image tokens sit in the prompt

The chat template writes one `<|vision_start|><|image_pad|><|vision_end|>` per image, whatever its size. The
processor (`load_processor`) then repeats the pad token once per merged patch, so the prompt holds one slot per
feature, and the model writes feature k over the k-th pad token's embedding."""),
    ("code", '''question = [{"type": "image", "image": image}, {"type": "text", "text": "What is in the picture?"}]
messages = [{"role": "user", "content": question}]
print("the template renders:", repr(tok.apply_chat_template([{"role": "user", "content": [{"type": "image"}, question[1]]}],
                                                              add_generation_prompt=True)))
enc = proc.apply_chat_template(messages, add_generation_prompt=True)
ids = enc["input_ids"]                                             # [T]
is_pad = ids == vc.image_token_id                                  # [T]
print(f"input_ids {ids.shape}: {int(is_pad.sum())} <|image_pad|> tokens (= {gh} * {gw} / {m * m}),",
      "pixel_values", enc["pixel_values"].shape, "image_grid_thw", enc["image_grid_thw"].tolist())
print("pixel_values as computed above:", rounding(float(np.abs(enc["pixel_values"] - pixel_values).max())))
shown, previous = [], None
for i in ids.tolist():                                             # runs of pad tokens shown as one
    piece = tok.decode([i])
    if i == vc.image_token_id and previous == i:
        shown[-1][1] += 1
    else:
        shown.append([piece, 1])
    previous = i
print("the prompt:", "".join(p if k == 1 else f"{p} x {k}" for p, k in shown).replace("\\n", "⏎"))'''),
    ("md", """## 11. Three positions per token: multimodal RoPE

A text token at position p gets the position (p, p, p): time, height, width. The image tokens all start from
the position s the next text token would have had, and add their frame, their merged row and their merged
column: (s + 0, s + row, s + col). The text after the image continues from the image's largest position + 1,
that is s + max(rows, columns) of merged patches, not s + the number of image tokens. Each rotary frequency
of the language model then turns with one of the three components (`mrope_section`, dealt out interleaved:
t, h, w, t, h, w, ...). For text, the three components are equal, so it is ordinary RoPE."""),
    ("code", '''from minillm.vision.positions import mrope_components, mrope_positions

mrope, next_position, _ = mrope_positions(ids, np.ones(len(ids), bool), [tuple(grid)], vc.image_token_id, m)   # [3, T]
first, last_pad = int(np.flatnonzero(is_pad)[0]), int(np.flatnonzero(is_pad)[-1])
hm, wm = gh // m, gw // m
print(f"positions {mrope.shape}; the image: {hm} x {wm} merged patches from s = {first}")
print(f"{'index':>5}  {'token':<18} {'t':>3} {'h':>3} {'w':>3}")
for i in [first - 2, first - 1, first, first + 1, first + wm - 1, first + wm, last_pad, last_pad + 1, last_pad + 2]:
    print(f"{i:>5}  {tok.decode([int(ids[i])])!r:<18} {mrope[0, i]:>3} {mrope[1, i]:>3} {mrope[2, i]:>3}")
print(f"after the image: {first} + max({hm}, {wm}) = {first + max(hm, wm)}, not {first} + {hm * wm}; "
      f"the next token generated takes {next_position} (the last prompt token's + 1)")
section = model.vision.mrope_section
print(f"mrope_section {section}: the {cfg.rotary_dim // 2} rotary frequencies read (0 t, 1 h, 2 w):",
      mrope_components(cfg.rotary_dim // 2, section))'''),
    ("code", '''image_pos = mrope[:, is_pad].reshape(3, -1, hm, wm)[:, 0]          # [3, hm, wm]: frame 0
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
for comp, (ax, name) in enumerate(zip(axes, ("time", "height", "width"))):
    ax.imshow(resized, extent=(0, wm, hm, 0), alpha=0.6)
    for rr in range(hm):
        for cc in range(wm):
            ax.text(cc + 0.5, rr + 0.5, str(image_pos[comp, rr, cc]), ha="center", va="center", fontsize=9)
    ax.set_title(f"M-RoPE {name} position of each image token")
    ax.set_xlabel("merged column"); ax.set_ylabel("merged row")
plt.tight_layout(); plt.show()'''),
    ("md", """What to see: time is the same for every token of a still image; height grows down the rows and width
along the columns, both starting from s. Two image tokens in the same row share their height position, so
the rotary angles between them measure their horizontal distance, as the 2-D RoPE did inside the tower.

## 12. What the language model's attention does with the image tokens

`model.forward(ids, pixel_values=..., image_grid_thw=...)` does all of the above: the encoder's features replace
the pad tokens' embeddings (`multimodal_inputs`), and the (t, h, w) positions give the rotary angles. Then
the layers run as for text: they never know which tokens came from an image. Below, the first
full-attention layer's attention probabilities recomputed from the model's own hidden state (checked against
`gated_self_attention`), and where the prompt's last token looks among the image tokens."""),
    ("code", '''from minillm.model.activations import sigmoid
from minillm.model.attention import attention_probs, merge_heads
from minillm.model.gated_attention import gated_self_attention, project_gated_qkv
from minillm.model.masks import causal_mask
from minillm.model.norm import zero_centred_rms_norm
from minillm.vision.multimodal import multimodal_inputs

T = len(ids)
logits, hidden = model.forward(ids, pixel_values=enc["pixel_values"], image_grid_thw=enc["image_grid_thw"],
                               output_hidden_states=True)          # [T, V], L+1 x [T, D]
embeds, (cos_t, sin_t), _ = multimodal_inputs(model, ids[None], np.ones((1, T), bool), np.zeros(1, np.int64),
                                              enc["pixel_values"], enc["image_grid_thw"])   # [1, T, D], [1, T, R] x2
print("the pad slots hold the features:", rounding(float(np.abs(embeds[0, is_pad] - features).max())),
      "| embeddings vs hidden[0]:", rounding(float(np.abs(embeds[0] - hidden[0]).max())))
layer = next(i for i in range(cfg.num_hidden_layers) if not cfg.is_linear_attention(i))
wl, H, K, eps = model.weights.layers[layer], cfg.num_attention_heads, cfg.num_key_value_heads, cfg.rms_norm_eps
normed = zero_centred_rms_norm(hidden[layer][None], wl.input_layernorm, eps)   # [1, T, D] the layer's input, normed
q, k, v, gate = project_gated_qkv(normed, wl.self_attn, H, K, eps, cos_t, sin_t)   # [1, H|K, T, Dh], [1, T, H*Dh]
probs = attention_probs(q, k, causal_mask(T, 0))                   # [1, K, H/K, T, T]
out = (probs @ v[:, :, None]).reshape(1, H, T, -1)                  # [1, H, T, Dh]
by_hand = linear(merge_heads(out) * sigmoid(gate), wl.self_attn.o_proj)   # [1, T, D]
engine = gated_self_attention(normed, wl.self_attn, H, K, eps, cos_t, sin_t, causal_mask(T, 0))
print(f"layer {layer} ({cfg.layer_types[layer]}): probabilities {probs.shape} | vs gated_self_attention:",
      rounding(float(np.abs(by_hand - engine).max()), 1e-4))
last_token = probs.reshape(H, T, T)[:, -1]                         # [H, T]: what the last token attends to
print(f"the last token {tok.decode([int(ids[-1])])!r} puts {last_token[:, is_pad].sum(-1).round(3)} of its attention "
      f"(per head) on the {int(is_pad.sum())} image tokens")'''),
    ("code", '''fig, axes = plt.subplots(1, H, figsize=(3.6 * H, 2.8))
for head, ax in enumerate(np.atleast_1d(axes)):
    on_image = last_token[head, is_pad].reshape(hm, wm)            # [hm, wm]: image tokens in raster order
    ax.imshow(resized, extent=(0, wm, hm, 0))
    im = ax.imshow(on_image, extent=(0, wm, hm, 0), cmap="magma", alpha=0.6)
    ax.set_title(f"Layer {layer}, head {head}", fontsize=10)
    ax.set_xlabel("merged column"); ax.set_ylabel("merged row")
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.suptitle(f"Attention of the last token {tok.decode([int(ids[-1])])!r} over the image's tokens")
plt.tight_layout(); plt.show()'''),
    ("md", """What to see: each head spreads the last token's attention over the image tokens differently: some
cells (image regions) draw more than others, and the share on the image differs per head (printed above).
With random weights the hot spots are chance. Point the first cell at a real Qwen3.5 checkpoint (and the
picture cell at a photo) to see whether its heads pick out the regions the question is about."""),
] + your_turn("10", [
    ('smart_resize', "The target size of the resize (`minillm/vision/processor.py`).",
     '''def my_smart_resize(height, width, factor, min_pixels, max_pixels):
    """-> (h, w): each a multiple of factor, h * w within [min_pixels, max_pixels], aspect ratio kept"""
    # hint: round each side to the nearest multiple; too many pixels: divide both by beta = sqrt(hw / max_pixels)
    # and round down (floor); too few: multiply by beta = sqrt(min_pixels / hw) and round up (ceil)
    raise NotImplementedError'''),
    ('image_positions', "The M-RoPE positions of one image's tokens, and the next text position "
     "(`minillm/vision/positions.py`).",
     '''def my_image_positions(start, t, gh, gw, m):
    """an image of grid (t, gh, gw) placed at position start -> (positions [3, t*gh/m*gw/m], next position)"""
    # hint: np.meshgrid over frames, merged rows, merged columns (indexing="ij"); the next text position is
    # start + max(gh / m, gw / m)
    raise NotImplementedError'''),
])


NOTEBOOKS = {
    "01_forward_pass_tour.ipynb": TOUR,
    "02_attention_and_rope.ipynb": ROPE,
    "03_kv_cache_and_generation.ipynb": CACHE,
    "04_reference_and_logit_lens.ipynb": LENS,
    "05_chat.ipynb": CHAT,
    "06_linear_attention.ipynb": LINEAR,
    "07_training.ipynb": TRAINING,
    "08_mixture_of_experts.ipynb": MOE,
    "09_fine_tuning.ipynb": FINE_TUNING,
    "10_vision.ipynb": VISION,
}
