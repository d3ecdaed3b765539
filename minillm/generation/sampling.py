"""Choosing the next token from the logits: repetition penalty, temperature, top-k, top-p, min-p.

Each step is a small pure function on logits [B, V], with transformers' exact semantics, applied in
transformers' order:

    repetition_penalty  ->  (only when sampling)  temperature  ->  top_k  ->  top_p  ->  min_p  ->  draw

A filter removes a token by setting its logit to -inf, so softmax gives it probability exactly 0.

Two words from transformers, which names its classes after them:
* a logits *processor* changes the scores for any decoding method, greedy included: here the repetition
  penalty, so it changes greedy output too;
* a logits *warper* reshapes the distribution only when sampling: temperature, top-k, top-p, min-p.
  Greedy decoding (temperature 0) skips them all and takes the argmax after the repetition penalty
  (argmax is unchanged by temperature, and top-k/top-p/min-p always keep the top token anyway).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model.activations import softmax


# What each setting may be. Temperature and repetition penalty divide or multiply float32 logits, so they
# stay within SCALE_RANGE: any real model's logits (far below 1e30) then stay finite after scaling.
SCALE_RANGE = (1e-6, 1e6)
SETTINGS = {  # name: (kind, check, what the message says is expected)
    "temperature": (float, lambda v: v == 0 or SCALE_RANGE[0] <= v <= SCALE_RANGE[1],
                    f"0 (greedy) or a number in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}]"),
    "top_k": (int, lambda v: v >= 0, "an integer >= 0 (0 = off)"),
    "top_p": (float, lambda v: 0 < v <= 1, "a number in (0, 1] (1 = off)"),
    "min_p": (float, lambda v: 0 <= v <= 1, "a number in [0, 1] (0 = off)"),
    "repetition_penalty": (float, lambda v: SCALE_RANGE[0] <= v <= SCALE_RANGE[1],
                           f"a number in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] (1 = off)"),
}


def check_setting(name: str, value, error: type[Exception] = InputError, where: str = ""):
    """One sampling setting, type and range checked; returned as a Python float or int."""
    kind, ok, expected = SETTINGS[name]
    integer = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    real = integer or isinstance(value, (float, np.floating))
    if not (integer if kind is int else real):
        raise error(f"{where}{name} must be {expected}, found {type(value).__name__} {value!r}")
    try:
        value = int(value) if kind is int else float(value)
    except OverflowError:  # an integer of hundreds of digits where a float belongs
        value = float("inf")
    if not ((kind is int or math.isfinite(value)) and ok(value)):
        raise error(f"{where}{name} must be {expected}, found {value!r}")
    return value


@dataclass(frozen=True)
class SamplingParams:
    """temperature 0 means greedy. top_k 0, top_p 1, min_p 0 and repetition_penalty 1 each mean "off"."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0

    def __post_init__(self):
        for name in SETTINGS:  # each checked, and stored as a Python number (not np.float16, not a str)
            object.__setattr__(self, name, check_setting(name, getattr(self, name)))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def apply_repetition_penalty(logits: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """Make every token already in the sequence (prompt included) less likely (CTRL, Keskar et al. 2019).

    logit / penalty if the logit is positive, logit * penalty if negative, for each id with seen True.
    logits [B, V], seen [B, V] bool -> [B, V]
    """
    if penalty == 1.0:
        return logits
    penalised = np.where(logits < 0, logits * np.float32(penalty), logits / np.float32(penalty))  # [B, V]
    return np.where(seen, penalised, logits)  # [B, V]


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """logits / T: T < 1 sharpens the distribution, T > 1 flattens it.   [B, V] -> [B, V]"""
    return logits / np.float32(temperature)


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the k largest logits per row (and any tied with the k-th); the rest -> -inf.   [B, V] -> [B, V]"""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = -np.partition(-logits, k - 1, axis=-1)[..., k - 1:k]  # [B, 1]: the k-th largest value
    return np.where(logits < kth, -np.inf, logits).astype(np.float32)  # [B, V]


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Nucleus sampling (Holtzman et al. 2019): keep the most likely tokens whose probability mass reaches p.

    As transformers computes it: sort ascending, cumulative softmax, drop tokens whose cumulative mass is
    <= 1 - p (the unlikely tail), always keep the most likely token.   [B, V] -> [B, V]
    """
    if p >= 1.0:
        return logits
    order = np.argsort(logits, axis=-1, kind="stable")  # [B, V] ascending
    sorted_logits = np.take_along_axis(logits, order, axis=-1)  # [B, V]
    cumulative = np.cumsum(softmax(sorted_logits), axis=-1)  # [B, V]
    remove_sorted = cumulative <= np.float32(1 - p)  # [B, V]
    remove_sorted[..., -1] = False  # the top token always stays
    remove = np.empty_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)  # back to vocabulary order
    return np.where(remove, -np.inf, logits).astype(np.float32)  # [B, V]


def min_p_filter(logits: np.ndarray, min_p: float) -> np.ndarray:
    """Keep tokens whose probability is at least min_p times the top token's (Nguyen et al. 2024).   [B, V]"""
    if min_p <= 0.0:
        return logits
    probs = softmax(logits)  # [B, V]
    threshold = np.float32(min_p) * probs.max(axis=-1, keepdims=True)  # [B, 1]
    remove = probs < threshold  # [B, V]
    remove[np.arange(len(logits)), logits.argmax(axis=-1)] = False  # the top token always stays
    return np.where(remove, -np.inf, logits).astype(np.float32)  # [B, V]


def process_logits(logits: np.ndarray, params: SamplingParams, seen: np.ndarray | None = None) -> np.ndarray:
    """All processors in transformers' order. For greedy, only the repetition penalty applies.

    logits [B, V] float32, seen [B, V] bool (ids present in each row so far) -> [B, V]
    """
    if seen is not None:
        logits = apply_repetition_penalty(logits, seen, params.repetition_penalty)
    if params.greedy:
        return logits
    if params.temperature != 1.0:
        logits = apply_temperature(logits, params.temperature)
    logits = top_k_filter(logits, params.top_k)
    logits = top_p_filter(logits, params.top_p)
    return min_p_filter(logits, params.min_p)


def sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator,
           seen: np.ndarray | None = None) -> np.ndarray:
    """One next token per row.   logits [B, V] -> ids [B] int64"""
    logits = process_logits(logits, params, seen)  # [B, V]
    if params.greedy:
        return logits.argmax(axis=-1)  # [B]: the first maximum on ties, as torch.argmax
    probs = softmax(logits.astype(np.float64))  # [B, V]; float64 here only so the CDF sums exactly
    cdf = np.cumsum(probs, axis=-1)  # [B, V]
    u = rng.random((len(probs), 1)) * cdf[:, -1:]  # [B, 1] uniform in [0, total)
    ids = (cdf <= u).sum(axis=-1)  # [B]: first index whose cdf exceeds u
    return np.minimum(ids, probs.shape[-1] - 1).astype(np.int64)  # [B]
