"""The streaming decode step compiled with ``torch.compile`` (env config ``compile_decoder``).

Why: at batch 1 one decode step is about a hundred tiny torch ops (ten batched convolutions, the
Hermite frames, 6-D → matrix conversions, the heading frame and forward kinematics over 55
joints), each a few microseconds of dispatch for almost no arithmetic. Inductor fuses them into
a handful of C++ loops. Measured on this project's 2-core CPU
(``python benchmarks/decode_step.py``): batch 1 from about 1.6 ms to 0.6 ms a step; at batch 64
and 256, where the step is mostly arithmetic, the fused loops still save about 30 % (2026-11-28:
7.3 vs 5.1 ms at 64, 37.3 vs 26.0 ms at 256).

Modes (:func:`check_compile`):

* ``False`` — always the eager step (the reference; what the library's own rollouts use).
* ``True`` — compiled from the first step.
* ``"auto"`` (the env's default) — eager for the first :data:`AUTO_AFTER_STEPS` steps, then
  compiled, on CPU only and only for ``batch_size`` ≤ :data:`AUTO_MAX_BATCH`. A compile costs
  about 30 s the first time on a machine and about 4 s when inductor's on-disk cache holds it
  (each new process, each batch size); waiting for 1,000 steps means only a run that has
  already spent seconds stepping pays it, and a quick script or test never does.

Equality: the compiled step equals the eager one within 1e-5 (float reassociation only;
``tests/test_compiled_decode.py``). Any failure to compile (no C++ compiler, an unsupported
torch build or device) falls back to the eager step with one warning naming the cause; the
decoder's state is untouched by a failed attempt, so nothing is lost.

Threads: inductor's C++ kernels take their OpenMP thread count from ``torch.get_num_threads()``
when they are compiled; the env compiles and runs the step inside its ``torch_threads`` block
(default 1, :mod:`duet_env.threads`), so the compiled step keeps the env's thread policy.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from typing import Callable

import torch

AUTO_AFTER_STEPS = 1000  # eager steps before "auto" compiles
AUTO_MAX_BATCH = 256  # "auto" leaves larger batches eager: measured to gain up to 256 (docstring)

log = logging.getLogger(__name__)


def check_compile(value) -> bool | str:
    """``value`` as one of ``True``, ``False``, ``"auto"``, or a clear error."""
    if value is True or value is False or value == "auto":
        return value
    raise ValueError(f"compile_decoder must be True, False or 'auto'; got {value!r}")


def unavailable_reason(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot build the step here, or None when it can (as far as can be
    told without compiling): inductor needs a C++ compiler on CPU and triton on CUDA."""
    if not hasattr(torch, "compile"):
        return "this torch has no torch.compile"
    if device.type == "cpu":
        cxx = os.environ.get("CXX", "g++")
        if shutil.which(cxx) is None and shutil.which("c++") is None:
            return f"no C++ compiler found ({cxx!r} or 'c++' on PATH)"
        return None
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "triton is not installed"
        return None
    return f"device {device.type!r} is not supported"


class CompilableStep:
    """A step function run eagerly or compiled, by the mode of :func:`check_compile`.

    ``fn(*args)`` must be a pure tensor function (its outputs are new tensors); ``batch_size``
    and ``device`` decide what ``"auto"`` does.
    """

    def __init__(self, fn: Callable, mode: bool | str, batch_size: int, device: torch.device):
        self.eager = fn
        self.mode = check_compile(mode)
        self.batch_size, self.device = batch_size, torch.device(device)
        self.calls = 0  # steps done
        self._compiled: Callable | None = None
        self._failed: str | None = None  # why compiling failed (then the step stays eager)

    @property
    def wants_compiled(self) -> bool:
        if self.mode is False or self._failed is not None:
            return False
        if self.mode is True:
            return True
        return (self.device.type == "cpu" and self.batch_size <= AUTO_MAX_BATCH
                and self.calls >= AUTO_AFTER_STEPS)

    @property
    def is_compiled(self) -> bool:
        """Whether the compiled step is in use (it has been built and ran)."""
        return self._compiled is not None

    def __call__(self, *args):
        if self._compiled is not None:
            fn = self._compiled
        elif self.wants_compiled:
            fn = self._compile_and_run
        else:
            fn = self.eager
        out = fn(*args)
        self.calls += 1  # steps done (``calls`` before this one decide "auto")
        return out

    def _compile_and_run(self, *args):
        missing = unavailable_reason(self.device)
        if missing is not None:
            self._failed = missing
            if self.mode == "auto":  # "auto" means "where available": not worth a warning
                log.info("compile_decoder='auto': torch.compile is not available (%s); the decoder stays eager",
                         missing)
            else:
                self._warn(missing)
            return self.eager(*args)
        t0 = time.perf_counter()
        log.info("compiling the decode step (batch %d); about 30 s the first time on a machine, "
                 "a few seconds from inductor's cache", self.batch_size)
        try:
            fn = torch.compile(self.eager, dynamic=False)
            with warnings.catch_warnings():
                # inductor's own tracing copy-constructs a tensor and says so; not the user's concern
                warnings.filterwarnings("ignore", message="To copy construct from a tensor")
                out = fn(*args)
        except Exception as err:  # any compiler failure: fall back to eager and keep going
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            self._failed = f"{type(err).__name__}: {first_line}"
            self._warn(self._failed)
            return self.eager(*args)
        self._compiled = fn
        log.info("decode step compiled in %.1f s", time.perf_counter() - t0)
        return out

    @staticmethod
    def _warn(reason: str) -> None:
        warnings.warn(f"compile_decoder: torch.compile is not usable here ({reason}); the decoder "
                      f"runs eagerly (same results, slower at small batches)", RuntimeWarning, stacklevel=4)
