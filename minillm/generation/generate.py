"""Generating text: prefill the prompt once, then decode one token at a time through the KV cache.

    cache  = KVCache(capacity = prompt length + max_new_tokens)      # grown as needed: see below
    logits = model.forward(prompt, cache=cache, logits_to_keep=1)      # prefill: the whole prompt at once
    repeat:
        token  = sample(logits)                                         # sampling.py
        stop if token is a stop id (it is included in the output)
        logits = model.forward([token], cache=cache, logits_to_keep=1)  # decode: one new position

Only the last position's logits are computed ([B, 1, V], not [B, T, V]): that is all the next token needs.

Defaults follow transformers' ``generate``: any setting the caller leaves as None comes from the
checkpoint's generation_config.json (Qwen instruct models sample with T=0.7, top_p=0.8, top_k=20 by
default), and the stop ids are the union of generation_config's eos_token_id list and config.json's
eos_token_id. Passing ``temperature=0.0`` asks for greedy decoding; ``stop_token_ids=[]`` never stops.

Sizes that come from arguments are bounded: the cache generate makes starts with room for the prompt and
at most INITIAL_ROOM new tokens and doubles when full (so ``max_new_tokens=10**9`` costs memory only for
the tokens actually made); a long prompt is computed in pieces by ``Model.forward``; and a prompt or a
generation running past ``max_position_embeddings`` is allowed, as in transformers, with a warning (RoPE
extrapolates, the model was not trained there).
"""

from __future__ import annotations

import warnings
from typing import Iterator

import numpy as np

from ..errors import InputError, MinillmWarning
from ..checkpoint.generation_config import GenerationConfig
from ..model.transformer import check_attention_mask, check_cache, check_token_ids
from .draft_length import DraftLength
from .speculative_checks import MAX_DRAFT_TOKENS, check_drafter
from .drafting import PromptLookupDrafter, check_count
from .sampling import SamplingParams, sample
from .speculative import SpeculativeStats, speculative_decode

INITIAL_ROOM = 1024  # new-token slots a fresh cache starts with (it doubles when they run out)


def resolve_sampling(gen: GenerationConfig, temperature=None, top_k=None, top_p=None, min_p=None,
                     repetition_penalty=None) -> SamplingParams:
    """Each setting: the caller's value, else generation_config's, else transformers' library default.

    As in transformers, the file's sampling settings only apply when it says do_sample; without it (and
    without a caller temperature) decoding is greedy. top_k defaults to 50 when sampling, as there.
    """
    def first(*values):  # the first value that is set
        return next(v for v in values if v is not None)

    return SamplingParams(  # which checks each value's type and range
        temperature=first(temperature, first(gen.temperature, 1.0) if gen.do_sample else 0.0),
        top_k=first(top_k, gen.top_k, 50),
        top_p=first(top_p, gen.top_p, 1.0),
        min_p=first(min_p, gen.min_p, 0.0),
        repetition_penalty=first(repetition_penalty, gen.repetition_penalty, 1.0),
    )


def default_stop_ids(model) -> list[int]:
    """generation_config's eos_token_id list  ∪  config.json's eos_token_id: stop on any of them.

    The three files of a checkpoint disagree about "the" end token: instruct models end a turn with
    <|im_end|> (151645) but may also emit <|endoftext|> (151643), and base models' files name one or the
    other. Stopping on only one of them lets some models run on forever.
    """
    return sorted(set(model.generation_config.eos_token_ids) | set(model.config.eos_token_ids))


def check_draft_schedule(schedule, drafter) -> DraftLength | None:
    """draft_schedule: "adaptive" -> a new DraftLength, "constant" -> None (check every draft), or a DraftLength."""
    if isinstance(schedule, DraftLength):
        return schedule
    if isinstance(schedule, str) and schedule in ("adaptive", "constant"):
        if schedule == "constant":
            return None
        longest = getattr(drafter, "num_tokens", None)  # a drafter may say how long its drafts get
        return DraftLength(min(longest, MAX_DRAFT_TOKENS)) if longest is not None else DraftLength()
    raise InputError(f'draft_schedule must be "adaptive", "constant" or a DraftLength, found {schedule!r}')


def stream_generate(model, ids, max_new_tokens: int, *, attention_mask=None, temperature=None, top_k=None,
                    top_p=None, min_p=None, repetition_penalty=None, seed=None, stop_token_ids=None,
                    cache=None, prefill_chunk_size: int | None = None, prompt_lookup_num_tokens: int | None = None,
                    max_matching_ngram_size: int | None = None, drafter=None,
                    speculative_stats: SpeculativeStats | None = None,
                    draft_schedule="adaptive", pixel_values=None, image_grid_thw=None) -> Iterator[np.ndarray]:
    """Yield the next token of every row, one step at a time: arrays [B] int64.

    Stops after max_new_tokens steps, or as soon as every row has produced a stop id. A row that has
    stopped yields the pad id from then on. ``cache``: continue from an existing KVCache (multi-turn chat);
    it must have room for the prompt plus max_new_tokens.

    Speculative decoding (one sequence, B = 1; speculative.py): ``prompt_lookup_num_tokens=k`` drafts up to k
    tokens per step by prompt lookup (drafting.py; n-grams of up to ``max_matching_ngram_size`` tokens,
    default 2, as transformers), or pass any ``drafter``. Greedy output is the same as without it; sampled
    output has the same distribution (not the same draws for a seed). ``speculative_stats``: a
    SpeculativeStats to fill in (acceptance rate, tokens per pass, each pass's draft). ``draft_schedule``:
    "adaptive" checks only as many drafted tokens as pay for the longer pass, learned while decoding
    (draft_length.py: none at all on text with nothing to copy); "constant" checks every drafted token; or
    a DraftLength to share between calls.

    ``pixel_values`` / ``image_grid_thw`` (Qwen3.5 with a vision tower, from minillm.load_processor): the
    images of the prompt, encoded during the prefill; decoding then continues after their positions.
    """
    cfg = model.config
    ids_BT = check_token_ids(ids, cfg.vocab_size)  # [T] or [B, T]
    ids_BT = ids_BT[None] if ids_BT.ndim == 1 else ids_BT  # [B, T]
    valid_BT = check_attention_mask(attention_mask, ids_BT.shape)  # [B, T]
    if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, (bool, np.bool_)) or \
            max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be an integer >= 0, found {max_new_tokens!r}")
    max_new_tokens = int(max_new_tokens)  # np.int8(127) + a prompt length must not wrap around
    if (np.diff(valid_BT.astype(np.int8), axis=1) < 0).any():
        raise InputError("attention_mask must be left padding only (0s then 1s in each row)")
    gen = model.generation_config
    params = resolve_sampling(gen, temperature, top_k, top_p, min_p, repetition_penalty)
    stops = np.array(default_stop_ids(model) if stop_token_ids is None else check_stop_ids(stop_token_ids),
                     np.int64)
    pad = gen.pad_token_id if gen.pad_token_id is not None else (int(stops[0]) if len(stops) else 0)
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, (bool, np.bool_))
                             or seed < 0):
        raise InputError(f"seed must be None or an integer >= 0, found {type(seed).__name__} {seed!r}")
    rng = np.random.default_rng(None if seed is None else int(seed))
    B, T = ids_BT.shape
    if drafter is not None and (prompt_lookup_num_tokens is not None or max_matching_ngram_size is not None):
        raise InputError("give either prompt_lookup_num_tokens (prompt lookup) or a drafter, not both")
    if prompt_lookup_num_tokens is not None:  # transformers' switch for prompt lookup (the n-gram size is not one)
        settings = {"num_tokens": prompt_lookup_num_tokens, "max_ngram_size": max_matching_ngram_size}
        drafter = PromptLookupDrafter(**{k: v for k, v in settings.items() if v is not None})  # its own defaults
    elif max_matching_ngram_size is not None:
        check_count("max_matching_ngram_size", max_matching_ngram_size, 1)
        warnings.warn(f"max_matching_ngram_size={max_matching_ngram_size} does nothing without "
                      f"prompt_lookup_num_tokens: as in transformers, prompt lookup drafts only when that is given",
                      MinillmWarning, stacklevel=2)
    schedule = None
    if drafter is not None:
        check_drafter(drafter)  # speculative_checks.py: the drafter's output is checked at each pass too
        schedule = check_draft_schedule(draft_schedule, drafter)
    if speculative_stats is not None and not isinstance(speculative_stats, SpeculativeStats):
        raise InputError(f"speculative_stats must be a SpeculativeStats (or None), found "
                         f"{type(speculative_stats).__name__}")
    if drafter is not None and B != 1:
        raise InputError(f"speculative decoding (prompt_lookup_num_tokens / drafter) runs one sequence at a time: "
                         f"expected ids of 1 row, found {B}")
    if cache is not None:
        check_cache(cache, cfg, B)
    if max_new_tokens == 0:
        return

    if cache is None:  # ours: room for the prompt and the first new tokens; doubled when full (below)
        cache, grows = model.new_cache(B, T + min(max_new_tokens, INITIAL_ROOM)), True
    elif cache.length + T + max_new_tokens > cache.capacity:
        raise InputError(f"the KV cache holds {cache.length} positions and has capacity {cache.capacity}: no "
                         f"room for {T} prompt tokens + {max_new_tokens} new ones")
    else:
        grows = False
    end = int(cache.next_position.max()) + int(valid_BT.sum(axis=1).max())  # positions after the prompt
    if end > cfg.max_position_embeddings:
        _warn_past_context(f"the prompt reaches position {end}, beyond", cfg)

    # Ids already in each row, for the repetition penalty: as transformers penalises every id of input_ids,
    # that is the conversation already in the cache (earlier turns) plus this prompt, never padding.
    seen = np.zeros((B, cfg.vocab_size), bool)  # [B, V]
    for b, held in enumerate(cache.seen_ids()):
        seen[b, held] = True
    rows = np.repeat(np.arange(B), T).reshape(B, T)  # [B, T]
    seen[rows[valid_BT], ids_BT[valid_BT]] = True

    if pixel_values is not None or image_grid_thw is not None:
        if prefill_chunk_size is not None:
            raise InputError("prefill_chunk_size cannot split a prompt with images (an image's tokens go in "
                             "one piece): leave it unset")
        logits = model.forward(ids_BT, attention_mask=valid_BT.astype(np.int8), cache=cache, logits_to_keep=1,
                               pixel_values=pixel_values, image_grid_thw=image_grid_thw)[:, -1]  # [B, V]
    else:
        logits = prefill(model, ids_BT, valid_BT, cache, prefill_chunk_size)  # [B, V]
    if drafter is not None:  # one row: draft, check k tokens per pass, keep what the model agrees with
        history = list(cache.seen_ids()[0])  # [N]: the conversation so far, where prompt lookup searches
        tokens = speculative_decode(model, cache, logits, history, seen, params, rng, stops, max_new_tokens,
                                    drafter, grows, speculative_stats, schedule)
        for step, token in enumerate(tokens):
            if end + step == cfg.max_position_embeddings and step < max_new_tokens - 1:  # as below
                _warn_past_context("generation runs past", cfg)
            yield np.array([token], np.int64)  # [1]
        return
    finished = np.zeros(B, bool)  # [B]
    for step in range(max_new_tokens):
        token = sample(logits, params, rng, seen if params.repetition_penalty != 1.0 else None)  # [B]
        seen[~finished, token[~finished]] = True  # rows still going (a finished row's pad id may be any id)
        token = np.where(finished, pad, token)  # [B]
        finished |= np.isin(token, stops)
        yield token
        if finished.all() or step == max_new_tokens - 1:
            return
        if grows and cache.length == cache.capacity:
            cache.grow(min(2 * cache.capacity, cache.length + max_new_tokens - step))
        if end + step == cfg.max_position_embeddings:  # this token is the first past the trained context
            _warn_past_context("generation runs past", cfg)
        logits = model.forward(token[:, None], cache=cache, logits_to_keep=1)[:, -1]  # [B, 1] -> [B, V]


def check_stop_ids(stop_token_ids) -> list[int]:
    """Stop ids: one integer, or an iterable of them, each in 0 .. 2**63 - 1 (an id beyond the vocabulary
    is allowed and never matches)."""
    if isinstance(stop_token_ids, (int, np.integer)) and not isinstance(stop_token_ids, (bool, np.bool_)):
        stop_token_ids = [stop_token_ids]
    if isinstance(stop_token_ids, (str, bytes, dict)) or not hasattr(stop_token_ids, "__iter__"):
        raise InputError(f"stop_token_ids must be a list of token ids, found {type(stop_token_ids).__name__} "
                         f"{stop_token_ids!r}")
    ids = list(stop_token_ids.tolist() if isinstance(stop_token_ids, np.ndarray) else stop_token_ids)
    for i in ids:
        if not isinstance(i, (int, np.integer)) or isinstance(i, (bool, np.bool_)) or not 0 <= i < 2 ** 63:
            raise InputError(f"stop_token_ids must hold token ids (integers >= 0), found {i!r}")
    return [int(i) for i in ids]


def _warn_past_context(what: str, cfg) -> None:
    warnings.warn(f"{what} max_position_embeddings ({cfg.max_position_embeddings}): RoPE extrapolates "
                  f"where the model was not trained, and the text may degrade (transformers allows it too)",
                  MinillmWarning, stacklevel=3)


def prefill(model, ids_BT: np.ndarray, valid_BT: np.ndarray, cache, chunk_size: int | None = None) -> np.ndarray:
    """Run the prompt through the model into the cache; return the last position's logits [B, V].

    With ``chunk_size``, the prompt goes in pieces of that many tokens (chunked prefill: bounded memory
    for the attention scores of a long prompt); the result is the same.
    """
    T = ids_BT.shape[1]
    if chunk_size is not None and (not isinstance(chunk_size, (int, np.integer)) or
                                   isinstance(chunk_size, (bool, np.bool_)) or chunk_size < 1):
        raise InputError(f"prefill_chunk_size must be a positive integer, found {chunk_size!r}")
    step = chunk_size or T
    for start in range(0, T, step):
        chunk = slice(start, min(start + step, T))
        logits = model.forward(ids_BT[:, chunk], attention_mask=valid_BT[:, chunk].astype(np.int8),
                               cache=cache, logits_to_keep=1)  # [B, 1, V]
    return logits[:, -1]  # [B, V]


def generate(model, ids, max_new_tokens: int, temperature=None, stop_token_ids=None, *, attention_mask=None,
             top_k=None, top_p=None, min_p=None, repetition_penalty=None, seed=None, cache=None,
             prefill_chunk_size: int | None = None, prompt_lookup_num_tokens: int | None = None,
             max_matching_ngram_size: int | None = None, drafter=None,
             speculative_stats: SpeculativeStats | None = None, draft_schedule="adaptive",
             pixel_values=None, image_grid_thw=None) -> np.ndarray:
    """The new token ids only: ids [T] -> [N]; ids [B, T] (+ attention_mask, left padding) -> [B, N].

    N <= max_new_tokens: generation ends early once every row produced a stop id (the stop id is
    included; rows that stopped earlier are padded with generation_config's pad_token_id).
    ``prompt_lookup_num_tokens=k``: speculative decoding with prompt lookup (see ``stream_generate``).
    ``pixel_values`` / ``image_grid_thw``: the prompt's images (Qwen3.5 with a vision tower).
    """
    ids = check_token_ids(ids, model.config.vocab_size)  # [T] or [B, T]
    single = ids.ndim == 1
    steps = list(stream_generate(model, ids, max_new_tokens, attention_mask=attention_mask,
                                 temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                 repetition_penalty=repetition_penalty, seed=seed, stop_token_ids=stop_token_ids,
                                 cache=cache, prefill_chunk_size=prefill_chunk_size,
                                 prompt_lookup_num_tokens=prompt_lookup_num_tokens,
                                 max_matching_ngram_size=max_matching_ngram_size, drafter=drafter,
                                 speculative_stats=speculative_stats, draft_schedule=draft_schedule,
                                 pixel_values=pixel_values, image_grid_thw=image_grid_thw))
    B = 1 if single else len(ids)
    out = np.stack(steps, axis=1) if steps else np.zeros((B, 0), np.int64)  # [B, N]
    return out[0] if single else out
