"""Is another process keeping a core busy? The one-row product (a decode step) asks before choosing its path.

Why it matters (model/fast_linear.py, rows_matmul): on a quiet machine OpenBLAS's threaded matrix-vector
product is the fastest way to multiply one row by a weight matrix (its threads spin between calls, so each of
a step's ~170 products starts at once on both cores: measured 11.1 tok/s on the real Qwen2.5-Coder-0.5B,
against 7.6 through minillm's own pool, whose sleeping helpers wake too late for products this short). On a
machine where another process keeps a core busy, those spinning threads are the problem: every product
waits for the busy core's next time slice (measured 4x slower), while the pool degrades to one core's speed.

So: the CPU time the whole machine used over the last interval (/proc/stat), minus this process's own
(os.times: every thread of it, OpenBLAS's spinning ones included), is what the other processes used. More than
half a core of it, and the next products go through the pool. Reading both costs about 20 us, done at most
every INTERVAL seconds. Where /proc/stat is missing (not Linux), the machine counts as quiet.

Both paths give the same numbers (each output is one dot product over the same row of W, by the same kernel:
tests/test_speculative.py checks the pool against x @ W.T), so this choice changes speed, never results.
"""

from __future__ import annotations

import os
import time

INTERVAL = 0.25  # seconds between two readings (25 ticks of 10 ms per core: enough to tell half a core)
BUSY_CORES = 0.5  # other processes using more than this many cores' worth of CPU: the machine is busy
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # /proc/stat's unit, ticks per second


def machine_cpu_seconds() -> float | None:
    """CPU seconds every core has spent busy since boot (user, nice, system, irq, softirq, steal), or None."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()  # b"cpu", user, nice, system, idle, iowait, irq, softirq, steal, ...
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != b"cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


def own_cpu_seconds() -> float:
    """CPU seconds this process (every thread of it) has used."""
    t = os.times()
    return t.user + t.system


def other_cores(machine: tuple[float, float], own: tuple[float, float], wall: float) -> float:
    """Cores' worth of CPU used by other processes over ``wall`` seconds, from the machine's and this process's
    CPU seconds at its start and end (each a pair). Never below 0 (the two clocks tick at different moments)."""
    return max(0.0, ((machine[1] - machine[0]) - (own[1] - own[0])) / wall)


class OtherLoad:
    """``busy()``: did other processes use more than BUSY_CORES over the last interval? (``clock``, ``machine``
    and ``own`` are the readings, replaceable in tests.)"""

    def __init__(self, clock=time.monotonic, machine=machine_cpu_seconds, own=own_cpu_seconds):
        self.clock, self.machine, self.own = clock, machine, own
        self.last = None  # (wall, machine, own) of the last reading
        self.state = False

    def busy(self) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last[0] < INTERVAL:
            return self.state
        machine = self.machine()
        if machine is None:
            return False
        reading = (now, machine, self.own())
        if self.last is not None:
            wall, m0, o0 = self.last
            self.state = other_cores((m0, reading[1]), (o0, reading[2]), now - wall) > BUSY_CORES
        self.last = reading
        return self.state


OTHER_LOAD = OtherLoad()  # the process's one detector (fast_linear asks it)
