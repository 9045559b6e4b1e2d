"""Per-clip work spread over worker processes: the first ``gym.make`` on a fresh machine.

Why: a fresh cache means generating SynthDuet, extracting the music features and tokenizing
every clip. Each clip is independent and deterministic, so the work runs on all cores and the
results come back in input order, equal to the serial loop's (same functions, same inputs; the
tests compare the arrays byte for byte).

Worker count: ``workers=None`` means :func:`default_workers`: the environment variable
``DUET_WORKERS`` when set (a positive integer; ``1`` = the serial loop in the calling
process), else the cores this process may run on. On platforms without ``fork`` (Windows,
macOS) the default is 1: there workers are *spawned* and re-import the user's main script, which
breaks scripts without an ``if __name__ == "__main__":`` guard; ``DUET_WORKERS=N`` opts in.

Start method: ``fork`` where available. The workers inherit the parent's loaded modules (the
tokenizer, librosa's compiled numba kernels), so they start in milliseconds and never compile
into numba's on-disk cache at the same time (which crashes). Like torch's DataLoader workers
they set torch to one intra-op thread before any work (torch's thread pool does not survive a
fork, and N workers x M threads would oversubscribe the cores).
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence, TypeVar

ENV_VAR = "DUET_WORKERS"

T = TypeVar("T")
R = TypeVar("R")

_SHARED: Any = None  # what every task of the running map receives first (set before the pool starts)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def default_workers() -> int:
    """``$DUET_WORKERS`` if set, else :func:`available_cores` (1 where ``fork`` is unavailable)."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"{ENV_VAR} must be a positive integer (1 = no worker processes); got {raw!r}")
        return n
    return available_cores() if _can_fork() else 1


def resolve_workers(workers: int | None) -> int:
    """``workers`` checked (a positive integer), or :func:`default_workers` for None."""
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer or None (default: {ENV_VAR} or the cores); "
                         f"got {workers!r}")
    return workers


def _init_worker(shared: Any, pickled: bool) -> None:
    global _SHARED
    if pickled:  # spawned: the shared object came through initargs; forked: inherited already
        _SHARED = shared
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _call(fn: Callable[[Any, T], R], item: T) -> R:
    return fn(_SHARED, item)


def map_ordered(fn: Callable[[Any, T], R], items: Sequence[T], workers: int | None = None, *,
                shared: Any = None, desc: str | None = None, progress: bool = True,
                meanwhile: Callable[[], None] | None = None) -> list[R]:
    """``[fn(shared, item) for item in items]``, on ``workers`` processes (see the module docstring).

    ``fn`` must be a module-level function (workers find it by name). ``shared`` is passed to
    every call without being sent per task (forked workers inherit it). ``meanwhile`` runs in
    the calling process once the tasks are submitted (e.g. warming up what comes next); it runs
    in the serial path too, after the loop. In a daemonic process (which may not start children,
    e.g. a SubprocVecEnv worker) the serial loop runs whatever ``workers`` says. A task's
    exception is raised here, in input order, after the pending tasks are cancelled. A tqdm bar
    named ``desc`` counts finished items.
    """
    global _SHARED
    from tqdm.auto import tqdm

    n = resolve_workers(workers)
    items = list(items)
    bar = tqdm(total=len(items), desc=desc, unit="clip", disable=not progress)
    try:
        # A daemonic process (gymnasium's AsyncVectorEnv and SB3's SubprocVecEnv workers) may not
        # start children: it runs the serial loop.
        if n == 1 or len(items) <= 1 or multiprocessing.current_process().daemon:
            out = []
            for item in items:
                out.append(fn(shared, item))
                bar.update(1)
            if meanwhile is not None:
                meanwhile()
            return out
        fork = _can_fork()
        context = multiprocessing.get_context("fork" if fork else "spawn")
        _SHARED = shared
        pool = ProcessPoolExecutor(min(n, len(items)), mp_context=context, initializer=_init_worker,
                                   initargs=(None if fork else shared, not fork))
        try:
            futures = [pool.submit(_call, fn, item) for item in items]
            if meanwhile is not None:
                meanwhile()
            out = []
            for fut in futures:
                out.append(fut.result())
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return out
    finally:
        _SHARED = None
        bar.close()
