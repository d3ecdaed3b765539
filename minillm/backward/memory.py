"""How much memory a training step's activations need, checked against what the process can still allocate.

The backward keeps every layer's activations until it has used them: for a [B, T] batch, per layer, about
B*T*(2D + 2H*Dh + 2K*Dh + 2F) floats plus the attention probabilities B*H*T*(T+1)/2, and the logits and their
gradient, 2*B*T*V floats (transformer.minimum_activation_bytes counts this floor). A [3000, 256] batch on even
a tiny model is some 14 GiB: allocated piece by piece, it would end in a MemoryError deep in the forward after
minutes of swapping. So the public ``loss_and_grads`` compares the floor with the memory left first.
"""

from __future__ import annotations

import os

from ..errors import InputError


def available_bytes() -> int:
    """What this process may still allocate: the kernel's MemAvailable (else the physical memory), and no more
    than what is left of the address-space limit (``ulimit -v``, RLIMIT_AS) when one is set: the limit minus
    the address space the process already maps (/proc/self/statm), not the limit itself."""
    budget = None
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f.read(1 << 16).decode("ascii", "replace").splitlines():
                if line.startswith("MemAvailable:"):
                    budget = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if budget is None:
        try:
            budget = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            budget = 1 << 62  # unknown: do not refuse
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            budget = min(budget, max(0, soft - _mapped_bytes()))
    except (ImportError, OSError, ValueError):
        pass
    return budget


def _mapped_bytes() -> int:
    """The address space this process maps now (what RLIMIT_AS counts); 0 when /proc does not say."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read(4096).split()[0])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def check_activation_memory(cfg, batch_size: int, seq_len: int) -> None:
    """Refuse a [batch_size, seq_len] step whose activations alone need more than the memory left."""
    from .transformer import minimum_activation_bytes

    need = minimum_activation_bytes(cfg, batch_size, seq_len) + 2 * batch_size * seq_len * cfg.vocab_size * 4
    have = available_bytes()
    if need > have:
        raise InputError(f"ids [{batch_size}, {seq_len}]: the backward keeps at least {need / 2 ** 30:.1f} GiB of "
                         f"activations, more than the {have / 2 ** 30:.1f} GiB this process can allocate; use fewer "
                         f"rows or shorter ones (the trainer's accumulation keeps the tokens per step)")
