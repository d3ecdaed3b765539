"""What a run has learned, in its own words: text sampled from the trained model at the end of a run.

A recipe may ask for samples (``minillm train`` prints them and writes them to OUT/samples.txt):

    "samples": {"prompts": ["MACBETH.\\n"], "max_new_tokens": 80, "seed": 0}

Each prompt is continued with the recipe's ``generation_config`` (temperature, top_k, top_p; greedy when it
sets none), from the float32 weights the run ended with; a sample stops early at its eos id (<|endoftext|>).
The same seed gives the same text, so two runs of a recipe can be compared by eye.
"""

from __future__ import annotations

from ..checkpoint.fields import FieldReader
from ..errors import InputError

DEFAULTS = {"max_new_tokens": 80, "seed": 0}


def check_samples(raw: dict, source: str = "recipe") -> dict:
    """The ``samples`` setting of a recipe, checked: {"prompts": [str, ...], "max_new_tokens": int, "seed": int}."""
    where = f"{source}: samples"
    unknown = sorted(set(raw) - {"prompts", *DEFAULTS})
    if unknown:
        raise InputError(f"{where}: unknown setting(s) {unknown}; known: ['max_new_tokens', 'prompts', 'seed']")
    get = FieldReader(raw, where, InputError)
    prompts = get("prompts", list)
    if not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise InputError(f"{where}: prompts must be a non-empty list of non-empty strings, found {prompts!r}")
    return {"prompts": prompts, "max_new_tokens": get("max_new_tokens", int, DEFAULTS["max_new_tokens"], low=1),
            "seed": get("seed", int, DEFAULTS["seed"])}


def sample_texts(model, tokenizer, prompts: list[str], max_new_tokens: int = 80, seed: int = 0,
                 generation_config: dict | None = None) -> list[str]:
    """Each prompt followed by the model's continuation (special tokens dropped), one string per prompt."""
    from ..generation.generate import generate

    gen = generation_config or {}
    eos = gen.get("eos_token_id")
    stop = eos if isinstance(eos, list) else [eos] if eos is not None else None
    sampling = {k: gen[k] for k in ("temperature", "top_k", "top_p") if gen.get("do_sample") and k in gen}
    texts = []
    for prompt in prompts:
        new = generate(model, tokenizer.encode(prompt), max_new_tokens, stop_token_ids=stop, seed=seed,
                       **sampling)  # [N] the new ids
        texts.append(prompt + tokenizer.decode(new.tolist(), skip_special_tokens=True))
    return texts


def write_samples(trainer) -> str:
    """Sample the trainer's model as its recipe asks; write OUT/samples.txt and return its text."""
    from ..text.tokenizer import load_tokenizer

    cfg = trainer.cfg
    texts = sample_texts(trainer.model, load_tokenizer(trainer.out / "checkpoint"), cfg.samples["prompts"],
                         cfg.samples["max_new_tokens"], cfg.samples["seed"], cfg.generation_config)
    text = "".join(f"--- sample {n + 1} (step {trainer.step}) ---\n{t.rstrip()}\n\n" for n, t in enumerate(texts))
    (trainer.out / "samples.txt").write_text(text, encoding="utf-8")
    return text
