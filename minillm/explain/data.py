"""The numbers behind the explainer page, computed with the library's own functions (float32, full precision).

One forward pass gives the hidden states (and the MoE router logits); each layer's internals are then
recomputed from that layer's input, with the same functions the model runs:

    attention   probs[h, t, s]   = softmax(q_h k_{h//(H/K)}^T / sqrt(Dh) + mask)      attention.attention_probs
    delta rule  decay[t, h]      = exp(g),  g = -exp(A_log) softplus(a + dt_bias)      gated_deltanet.py
                write[t, h]      = beta = sigmoid(b)
    router      weights, experts = top-k(softmax(x gate^T))                            router.top_k_routing
    logit lens  lens[l, t]       = softmax(lm_head(final_norm(hidden[l][t])))          transformer.lm_head
    next token  logits[t]        = the model's own logits at position t

``explain_data`` returns them as one ``ExplainData``; page.py quantises and embeds them. Shapes use the legend
of minillm/__init__.py (T tokens, L layers, H query heads, K key/value heads, Hv linear value heads, E experts,
k experts per token, V vocab).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..model.activations import softmax
from ..model.attention import attention_probs, project_qkv
from ..model.gated_attention import project_gated_qkv
from ..model.gated_deltanet import input_projections, write_strength_and_log_decay
from ..model.masks import causal_mask
from ..model.norm import rms_norm, zero_centred_rms_norm
from ..model.rope import rope_cos_sin
from ..model.router import top_k_routing
from ..model.transformer import lm_head

MAX_TOKENS = 512  # longer texts are refused: the attention maps grow as T^2 (see docs/EXPLAIN.md)
LENS_TOP = 5  # candidates kept per (layer, position) in the logit lens
NEXT_TOP = 256  # logits kept per position for the next-token view (temperature, top-k, top-p in the page)
MAX_ATTENTION_BYTES = 4_000_000  # attention weights kept at most, as the page's uint8 (about 5.3 MB of base64)
TAIL_BINS = 64  # the other V - NEXT_TOP logits, as a histogram: the page still knows the tail's mass at any T


@dataclass
class TokenPiece:
    """One token as the tokenizer cut it."""

    id: int
    text: str  # readable: the UTF-8 text of its bytes, whitespace made visible, or <hex> for a partial character
    raw: str  # the vocabulary entry as stored in tokenizer.json ('Ġworld'), or the special token's text
    special: bool = False


@dataclass
class ExplainData:
    """Everything the page shows, full precision. Layer-indexed lists hold None where a view does not apply."""

    model_name: str
    config: dict  # model_type, L, H, K, Dh, V, layer_types, E, k, Hk, Hv
    tokens: list[TokenPiece]  # [T]
    prompt_tokens: int  # the first prompt_tokens are the prompt, the rest were generated
    attention: list  # L x (probs [H, T, T] float32 | None): None for a linear-attention layer or one left out
    attention_omitted: list  # the attention layers left out (past max_attention_bytes)
    decay: list  # L x (exp(g) [T, Hv] | None): linear-attention layers only
    write: list  # L x (beta [T, Hv] | None)
    router_probs: list  # L x (softmax over experts [T, E] | None): MoE layers only
    experts: list  # L x (chosen experts [T, k] int | None), most probable first
    expert_weights: list  # L x (their weights [T, k] | None), as the layer uses them (renormalised or not)
    lens_ids: np.ndarray  # [L+1, T, LENS_TOP] int: row 0 the embeddings, row l after layer l-1, row L the output
    lens_probs: np.ndarray  # [L+1, T, LENS_TOP]
    lens_final_prob: np.ndarray  # [L+1, T]: probability each depth gives the model's final top-1 token
    next_ids: np.ndarray  # [T, n] the n largest logits' ids per position, largest first
    next_logits: np.ndarray  # [T, n]
    tail_counts: np.ndarray  # [T, TAIL_BINS] how many of the other logits fall in each bin
    tail_centres: np.ndarray  # [T, TAIL_BINS] each bin's log(mean(exp(logit)))
    vocab: dict = field(default_factory=dict)  # id -> TokenPiece of every id the page names


def explain_data(model, tok, ids, prompt_tokens: int | None = None, lens_top: int = LENS_TOP,
                 next_top: int = NEXT_TOP, max_attention_bytes: int = MAX_ATTENTION_BYTES) -> ExplainData:
    """Run ``model`` on ``ids`` [T] and collect what the explainer shows.

    Attention maps take H T (T + 1) / 2 bytes per layer on the page (float32 here: 8 times that); past
    ``max_attention_bytes`` only evenly spaced layers are computed (``attention_omitted`` lists the others).
    """
    cfg = model.config
    ids = np.asarray(ids, dtype=np.int64)  # [T]
    if ids.ndim != 1 or not 1 <= len(ids) <= MAX_TOKENS:
        raise InputError(f"explain takes one sequence of 1 to {MAX_TOKENS} tokens, found shape {list(ids.shape)} "
                         f"(the attention maps grow as tokens^2: shorten the text)")
    T, L = len(ids), cfg.num_hidden_layers
    out = model.forward(ids, output_hidden_states=True, output_router_logits=cfg.is_moe)
    logits, hidden = out[0], out[1]  # [T, V], L+1 x [T, D]
    routers = out[2] if cfg.is_moe else [None] * L  # L x ([T, E] | None)

    attention, decay, write = [], [], []
    cos, sin = _rope(model, T)  # [1, T, R]
    with_maps = [i for i in range(L) if not (cfg.is_hybrid and cfg.is_linear_attention(i))]
    kept = attention_layers_kept(with_maps, cfg.num_attention_heads * T * (T + 1) // 2, max_attention_bytes)
    for i, layer in enumerate(model.weights.layers):
        if i in with_maps and i not in kept:
            probs, dec, beta = None, None, None
        else:
            probs, dec, beta = layer_mixing(model, i, layer, hidden[i][None], cos, sin)
        attention.append(probs)
        decay.append(dec)
        write.append(beta)
    router_probs, experts, expert_weights = [], [], []
    for r in routers:  # [T, E] router logits, or None for a dense layer
        w, e = top_k_routing(r, cfg.num_experts_per_tok, cfg.norm_topk_prob) if r is not None else (None, None)
        router_probs.append(softmax(r.astype(np.float32)) if r is not None else None)  # [T, E]
        experts.append(e)  # [T, k]
        expert_weights.append(w)  # [T, k]

    lens_ids, lens_probs, lens_final = logit_lens(model, hidden, logits.argmax(-1), lens_top)
    next_ids, next_logits, tail_counts, tail_centres = top_logits(logits, next_top)

    added = added_token_ids(tok)
    pieces = [token_piece(tok, int(t), added) for t in ids]
    named = set(np.unique(lens_ids).tolist()) | set(np.unique(next_ids).tolist()) | set(ids.tolist())
    vocab = {i: token_piece(tok, i, added) for i in sorted(named)}
    return ExplainData(
        model_name=model.path.name if model.path else cfg.model_type, config=_config_summary(cfg), tokens=pieces,
        prompt_tokens=T if prompt_tokens is None else prompt_tokens, attention=attention,
        attention_omitted=[i for i in with_maps if i not in kept], decay=decay,
        write=write, router_probs=router_probs, experts=experts, expert_weights=expert_weights,
        lens_ids=lens_ids, lens_probs=lens_probs, lens_final_prob=lens_final, next_ids=next_ids,
        next_logits=next_logits, tail_counts=tail_counts, tail_centres=tail_centres, vocab=vocab)


def attention_layers_kept(layers: list[int], per_layer: int, budget: int) -> list[int]:
    """The attention layers to show: all if their maps fit in ``budget`` bytes, else evenly spaced ones that do."""
    fit = max(1, budget // max(per_layer, 1))
    if fit >= len(layers):
        return layers
    picks = np.unique(np.linspace(0, len(layers) - 1, fit).round().astype(int))
    return [layers[i] for i in picks]


def _rope(model, T: int) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [1, T, R] at positions 0..T-1, as Model.forward computes them (attention scaling included)."""
    inv_freq, scaling = model._rope_frequencies(T)  # [R/2]
    return rope_cos_sin(np.arange(T)[None], inv_freq, scaling)  # [1, T, R] each


def layer_mixing(model, i: int, layer, x: np.ndarray, cos: np.ndarray, sin: np.ndarray):
    """Layer i's token mixing, from its input x [1, T, D] (the residual stream before it).

    -> (attention probs [H, T, T], None, None) for an attention layer,
       (None, decay exp(g) [T, Hv], write strength beta [T, Hv]) for a linear-attention (Gated DeltaNet) one.
    """
    cfg, eps = model.config, model.config.rms_norm_eps
    T, H, K = x.shape[1], cfg.num_attention_heads, cfg.num_key_value_heads
    if cfg.is_hybrid and cfg.is_linear_attention(i):
        w = layer.linear_attn
        Hk, Hv, Dv = cfg.linear_num_key_heads, cfg.linear_num_value_heads, w.norm.shape[0]
        Dk = (w.conv1d.shape[0] - Hv * Dv) // (2 * Hk)  # C = 2 Hk Dk + Hv Dv
        normed = zero_centred_rms_norm(x, layer.input_layernorm, eps)  # [1, T, D]
        _, _, b, a = input_projections(normed, w, Hk, Hv, Dk, Dv)  # [1, T, Hv] each
        beta, g = write_strength_and_log_decay(b, a, w)  # [1, T, Hv] each
        return None, np.exp(g[0]), beta[0]  # [T, Hv] each
    window = cfg.sliding_window if cfg.uses_sliding_window(i) else None
    mask = causal_mask(T, 0, None, window)  # [1, 1, T, T]
    if cfg.is_hybrid:  # Qwen3.5 / Qwen3-Next full attention: gated, zero-centred q/k norms, partial RoPE
        normed = zero_centred_rms_norm(x, layer.input_layernorm, eps)  # [1, T, D]
        q, k, _, _ = project_gated_qkv(normed, layer.self_attn, H, K, eps, cos, sin)  # [1, H, T, Dh], [1, K, T, Dh]
    else:
        normed = rms_norm(x, layer.input_layernorm, eps)  # [1, T, D]
        q, k, _ = project_qkv(normed, layer.self_attn, H, K, eps, cos, sin)  # [1, H, T, Dh], [1, K, T, Dh]
    return attention_probs(q, k, mask).reshape(H, T, T), None, None  # [K, H/K, T, T] -> [H, T, T]


def logit_lens(model, hidden: list, final_top: np.ndarray, top: int):
    """Each depth's hidden state read out through the final norm and the LM head.

    hidden L+1 x [T, D] (hidden[L] already normed), final_top [T] -> ids [L+1, T, top], probs [L+1, T, top],
    final_prob [L+1, T] (the probability of final_top at each depth). One depth at a time: [T, V] each.
    """
    L = len(hidden) - 1
    ids, probs, final = [], [], []
    for i, h in enumerate(hidden):
        normed = h if i == L else model.final_norm(h)  # [T, D]
        p = softmax(lm_head(normed, model.weights.lm_head))  # [T, V]
        best = _top(p, top)  # [T, top]
        ids.append(best)
        probs.append(np.take_along_axis(p, best, -1))  # [T, top]
        final.append(p[np.arange(len(p)), final_top])  # [T]
    return np.stack(ids), np.stack(probs), np.stack(final)  # [L+1, T, top] x2, [L+1, T]


def top_logits(logits: np.ndarray, n: int):
    """The n largest logits per position, and a histogram of the rest.   logits [T, V] ->
    ids [T, n], values [T, n], tail counts [T, TAIL_BINS], each bin's log-mean-exp logit [T, TAIL_BINS]."""
    T, V = logits.shape
    n = min(n, V)
    ids = _top(logits, n)  # [T, n] largest first
    values = np.take_along_axis(logits, ids, -1)  # [T, n]
    counts = np.zeros((T, TAIL_BINS), np.int64)
    centres = np.zeros((T, TAIL_BINS), np.float32)
    if n < V:
        rest = np.ones_like(logits, bool)  # [T, V]
        np.put_along_axis(rest, ids, False, -1)
        for t in range(T):
            tail = logits[t][rest[t]]  # [V - n]
            edges = np.linspace(tail.min(), tail.max(), TAIL_BINS + 1)  # [TAIL_BINS + 1]
            which = np.clip(np.searchsorted(edges, tail, side="right") - 1, 0, TAIL_BINS - 1)  # [V - n]
            counts[t] = np.bincount(which, minlength=TAIL_BINS)
            # each bin's "centre" is the log of the mean of exp(logit): count * exp(centre) is then its exact mass
            # at temperature 1, and close at others (the logits of a bin differ by less than its width)
            top = tail.max()
            mass = np.bincount(which, weights=np.exp(tail.astype(np.float64) - top), minlength=TAIL_BINS)
            centres[t] = np.where(counts[t] > 0, np.log(np.maximum(mass, 1e-300) / np.maximum(counts[t], 1)) + top,
                                  edges[:-1])
    return ids, values, counts, centres


def _top(x: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest entries of each row, largest first (ties: lower index first).   [T, V] -> [T, n]"""
    part = np.argpartition(-x, n - 1, axis=-1)[:, :n] if n < x.shape[-1] else np.argsort(-x, -1, kind="stable")
    vals = np.take_along_axis(x, part, -1)  # [T, n]
    order = np.lexsort((part, -vals), axis=-1)  # by value, then index
    return np.take_along_axis(part, order, -1)  # [T, n]


# --------------------------------------------------------------------------------------------------------
# Token pieces: byte-level BPE stores bytes as printable characters (tokenizer.py explains why); show the text.

def _byte_decoder() -> dict[str, int]:
    """GPT-2's bytes_to_unicode, inverted: the printable character of each of the 256 byte values -> the byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + n)] = b
            n += 1
    return chars


BYTE_DECODER = _byte_decoder()
VISIBLE = {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5", "\r": "\u240d"}  # ␣ ↵ ⇥ ␍


def token_piece(tok, token_id: int, added: set[int] = frozenset()) -> TokenPiece:
    """Token id -> its readable piece: UTF-8 text with visible whitespace, or <e4 bd> for part of a character.

    ``added``: the ids of the tokenizer's added tokens (``added_token_ids``), shown as they are written.
    """
    raw = tok.id_to_token(token_id)
    if raw is None:  # an id past the tokenizer's vocabulary (the model's embedding may be padded)
        return TokenPiece(token_id, f"<unused {token_id}>", "", special=True)
    if token_id in added or any(c not in BYTE_DECODER for c in raw):  # special token, or not byte-level BPE
        return TokenPiece(token_id, raw, raw, special=token_id in added)
    data = bytes(BYTE_DECODER[c] for c in raw)
    try:
        text = "".join(VISIBLE.get(c, c) for c in data.decode("utf-8"))
    except UnicodeDecodeError:  # a piece of a multi-byte character: show its bytes
        text = "<" + " ".join(f"{b:02x}" for b in data) + ">"
    return TokenPiece(token_id, text, raw)


def added_token_ids(tok) -> set[int]:
    """The ids of the tokenizer's added tokens (<|im_start|>, <think>, ...): not byte-level pieces."""
    try:
        return set(tok.backend.get_added_tokens_decoder())
    except AttributeError:  # another tokenizer object: no added tokens known
        return set()


def _config_summary(cfg) -> dict:
    return dict(model_type=cfg.model_type, L=cfg.num_hidden_layers, H=cfg.num_attention_heads,
                K=cfg.num_key_value_heads, Dh=cfg.head_dim, V=cfg.vocab_size, D=cfg.hidden_size,
                layer_types=list(cfg.layer_types), E=cfg.num_experts if cfg.is_moe else 0,
                k=cfg.num_experts_per_tok if cfg.is_moe else 0,
                Hk=cfg.linear_num_key_heads if cfg.is_hybrid else 0,
                Hv=cfg.linear_num_value_heads if cfg.is_hybrid else 0,
                sliding_window=cfg.sliding_window, norm_topk_prob=bool(cfg.norm_topk_prob))
