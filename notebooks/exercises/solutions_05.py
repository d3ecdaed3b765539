"""Solutions to notebook 05's exercises. Try them yourself first."""

import numpy as np


def render_chatml(messages, add_generation_prompt):
    """ChatML: every message as <|im_start|>role\\ncontent<|im_end|>\\n, then the assistant's header if asked."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def assistant_mask(ids, tok):
    """[T] bool: True from just after each '<|im_start|>assistant\\n' header up to and including its <|im_end|>."""
    start, end = tok.token_to_id("<|im_start|>"), tok.token_to_id("<|im_end|>")
    header = tok.encode("assistant\n")
    mask = np.zeros(len(ids), bool)
    inside = False
    for t in range(len(ids)):
        if ids[t] == start and list(ids[t + 1:t + 1 + len(header)]) == header:
            inside, skip = True, len(header) + 1              # the header's tokens are not learned
        if inside:
            mask[t] = skip <= 0
            skip -= 1
            if ids[t] == end:
                inside = False
    return mask
