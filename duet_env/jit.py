"""Compiled (numba) kernels for the per-step hot loops, with the numpy code as their reference.

A single env's step scores 7 reward terms on 4 frames of one env. In numpy that is some 400
tiny array operations, each paying microseconds of dispatch for a few hundred flops: the
default reward cost 0.8–1.1 ms a step, half the decoder's own step (issue 10). The capsule
overlap test (here, in :mod:`duet_env.capsules`), the dance-beat detector
(:mod:`rewards.terms.beat`) and each default reward term (:mod:`rewards.kernels`) also exist as
numba kernels that do the same float arithmetic in one call: 61 µs for the whole default reward.

Rules every kernel follows:

* The numpy function stays the definition and the fallback. The kernel reproduces its
  arithmetic operation by operation (same float types, same order of additions), and
  tests/test_jit.py checks the two on random and SynthDuet inputs: bit for bit, or within 1e-6
  where exp, cos or atan2 round their last bit differently in numba's math library.
* Kernels are compiled on first use and cached on disk (numba ``cache=True``: in the package's
  ``__pycache__``, else numba's per-user cache directory), so only the very first reward on a
  machine pays the compile (about 8 s for all of them on this 2-core machine); later processes
  load them from the cache (about 0.4 s). Compiles across processes are serialised by a file
  lock (:func:`kernel`), so vector-env workers or test workers starting together are safe.
* A kernel reads constants from, and calls other kernels of, its own file only: numba's cache
  is keyed on the kernel's own source file, so code inlined from another file could go stale.
* No numba, ``DUET_JIT=0`` in the environment, or :func:`use_jit` ``(False)`` selects the numpy
  path. Values are the same either way, only the speed differs.

numba is already installed with librosa (its dependency); the kernels use no parallelism and no
threads of their own (``parallel=False``), so they add no thread pool beside torch's.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

try:  # numba comes with librosa; the package still works (slower) without it
    import numba
except ImportError:  # pragma: no cover - exercised only where numba is missing
    numba = None

_state = threading.local()
_DEFAULT = os.environ.get("DUET_JIT", "1").strip().lower() not in ("0", "false", "no", "off")


def jit_available() -> bool:
    """Whether numba is importable here."""
    return numba is not None


def jit_enabled() -> bool:
    """Whether the compiled kernels are used in this thread (numba present and not switched off)."""
    return numba is not None and getattr(_state, "enabled", _DEFAULT)


@contextlib.contextmanager
def use_jit(enabled: bool):
    """Use the compiled kernels (True) or the numpy reference (False) within the block, this
    thread only; restored afterwards. For benchmarks and the kernels' equality tests."""
    before = getattr(_state, "enabled", _DEFAULT)
    _state.enabled = bool(enabled)
    try:
        yield
    finally:
        _state.enabled = before


def kernel(fn: Callable) -> Callable | None:
    """``fn`` compiled in nopython mode with an on-disk cache, or ``None`` without numba.

    IEEE arithmetic (no ``fastmath``): the kernels must round exactly as the numpy code does.
    Every compile (or load from the cache) of a new signature runs under :func:`compile_lock`:
    numba picks a cache file's name from the index it read, so two processes compiling
    different signatures of one function at once can leave an index pointing at the other's
    machine code (numba issues #4807, #10128: segfaults). The lock wraps only the dispatcher's
    compile path (``_compile_for_args``, taken when no compiled overload matches), so calls
    that find their overload pay nothing.
    """
    if numba is None:  # pragma: no cover
        return None
    dispatcher = numba.njit(cache=True, nogil=True, fastmath=False)(fn)
    compile_for_args = dispatcher._compile_for_args

    def locked_compile(*args, **kwargs):
        with compile_lock():
            return compile_for_args(*args, **kwargs)

    dispatcher._compile_for_args = locked_compile
    return dispatcher


_lock_state = threading.local()


@contextlib.contextmanager
def compile_lock():
    """Hold an exclusive lock shared by this user's processes on this machine (``flock`` on
    ``<tmp>/duet-numba-<uid>.lock``) for the block; re-entrant within a thread. Without ``fcntl``
    (Windows) it is a no-op."""
    if getattr(_lock_state, "depth", 0) > 0 or fcntl is None:
        _lock_state.depth = getattr(_lock_state, "depth", 0) + 1
        try:
            yield
        finally:
            _lock_state.depth -= 1
        return
    path = os.path.join(tempfile.gettempdir(), f"duet-numba-{os.getuid()}.lock")
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        _lock_state.depth = 1
        try:
            yield
        finally:
            _lock_state.depth = 0
            fcntl.flock(fh, fcntl.LOCK_UN)
