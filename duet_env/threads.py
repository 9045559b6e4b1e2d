"""The env's own torch thread count, set around its decode and restored after (config ``torch_threads``).

Why: one env step decodes one token for B envs — a few thousand tiny torch ops of a few
microseconds each. Spreading such ops over several intra-op threads buys nothing, and when the
threads outnumber the free cores (another process, a second env, a busy CI box) each op waits
for a descheduled thread: a single env was measured at 44 steps/s instead of 550 that way.
So the env runs its decode with ``torch_threads`` threads (default 1) and gives the user's
setting back afterwards: ``torch.get_num_threads()`` outside ``env.step`` is what the user set.

Cost: ``torch.set_num_threads`` is only called when the wanted count differs from the current
one (then twice a step: set and restore; 0.2–0.4 µs a pair on this machine).
``benchmarks/env_throughput.py`` prints its cost per step next to the step time; a process that runs only envs can call
``torch.set_num_threads(1)`` once and pay nothing. ``torch_threads=None`` leaves the count alone.
The default is 1 for the vector env too: a 64-env vector env ran 3,000–3,100 env-steps/s on one
thread and 140–380 on torch's two (this 2-core machine at load average 2.3); on an idle machine
with many cores a large vector env may gain from more (measure with ``torch_threads=None``).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def check_torch_threads(value) -> int | None:
    """``value`` as a positive thread count, or None (use the caller's setting); a clear error otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"torch_threads must be a positive integer or None (keep torch's setting); got {value!r}")
    return int(value)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, then restore the previous count (also on error).

    ``n`` None, or equal to the current count: nothing is set (no cost beyond one
    ``torch.get_num_threads()``).
    """
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
