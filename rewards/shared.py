"""The shared per-step pass: quantities several reward terms read, computed once per step, lazily.

Every term of a composite sees the same :class:`~rewards.context.StepContext`; ``ctx.shared``
is a :class:`SharedPass` bound to that one context. Its attributes are computed the first time a
term reads them and kept for the other terms of the same step; a new step builds a new context,
hence a new pass (nothing is carried from one step to the next). A term that never reads
``ctx.shared`` — e.g. a user's plain ``fn(ctx)`` — works unchanged and pays nothing.

Quantities (``B`` envs, ``F`` context frames, ``k`` = ``token_frames`` current frames)::

    follower_heading, leader_heading   (B, k)    yaw ψ = atan2(−across_z, across_x) of the current
                                                 frames, across = hips + shoulders (left − right)
    follower_palms, leader_palms       (B, k, 2, 3)  left and right palm centres, current frames
    capsule_gaps                       (B, k, C, C)  gap(i, j) = dist(seg_i, seg_j) − r_i − r_j,
                                                 follower capsule i against leader capsule j
                                                 (for a user's term; the penetration term skips
                                                 the full table: its ``cached("penetration_depth")``
                                                 (B, k) is duet_env.capsules.deepest_overlap)
    follower_body                      (B, F, 22, 3) the follower's body joints (BODY_JOINTS)
    follower_body_speed                (B, F−1)  mean_j |x_f,j − x_f−1,j| · fps, frames 1 … F−1
    dance_beats(sigma, radius, depth, half_window)   (B, F) bool, from follower_body_speed
    follower_jerk                      (B,)      mean jerk of follower_body over the current frames

Every quantity is the exact computation the terms made on their own before (same functions,
same inputs), so sharing changes no value; ``tests/test_reward_sharing.py`` checks this against
values saved from the unshared code. Arrays are returned as is: **read them, never write into
them** (another term reads the same array).

With the compiled kernels on (the default; :mod:`rewards.kernels`) the built-in default terms
compute in one numba call each and do not read the pass; it serves their numpy path and a
user's own terms.

:func:`sharing` switches sharing off (``ctx.shared`` is then a fresh pass at every access, so
each term computes everything itself, as before): for benchmarks and tests of the old path.
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Callable, Hashable

import numpy as np

from duet_env.capsules import capsule_gaps
from duet_env.conventions import BODY_JOINTS

from .primitives import body_heading
from .terms.beat import BODY_SLICE, beats_from_speed, mean_joint_speed
from .terms.contact import palms
from .terms.smooth import token_jerk

# The first 22 joints as a slice (a view, not a copy) when they are contiguous, as they are.
_BODY = BODY_SLICE if BODY_SLICE is not None else list(BODY_JOINTS)
_state = threading.local()


def sharing_enabled() -> bool:
    """Whether ``ctx.shared`` keeps its values for the step (the default) in this thread."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def sharing(enabled: bool):
    """Turn the shared pass on or off within the block (this thread only), then restore it.

    Off, every ``ctx.shared`` access returns a new :class:`SharedPass`, so every term recomputes
    each quantity itself — the old, unshared cost, kept so the saving can be measured.
    """
    before = sharing_enabled()
    _state.enabled = bool(enabled)
    try:
        yield
    finally:
        _state.enabled = before


class SharedPass:
    """Lazily computed quantities of one :class:`~rewards.context.StepContext` (module docstring)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self._memo: dict[Hashable, Any] = {}

    def cached(self, key: Hashable, fn: Callable[[Any], Any]) -> Any:
        """``fn(ctx)`` computed once per step under ``key`` — for a term's own quantity that
        another term (or another instance of it) may also need. ``key`` must name everything
        ``fn`` depends on besides the context (e.g. the term's options)."""
        if key not in self._memo:
            self._memo[key] = fn(self.ctx)
        return self._memo[key]

    # ---- current frames: headings, palms, capsules ---------------------------------------
    @functools.cached_property
    def follower_heading(self) -> np.ndarray:
        return body_heading(self.ctx.current(self.ctx.follower_joints))

    @functools.cached_property
    def leader_heading(self) -> np.ndarray:
        return body_heading(self.ctx.current(self.ctx.leader_joints))

    @functools.cached_property
    def follower_palms(self) -> np.ndarray:
        return palms(self.ctx.current(self.ctx.follower_joints))

    @functools.cached_property
    def leader_palms(self) -> np.ndarray:
        return palms(self.ctx.current(self.ctx.leader_joints))

    @functools.cached_property
    def capsule_gaps(self) -> np.ndarray:
        return capsule_gaps(self.ctx.current(self.ctx.follower_joints), self.ctx.current(self.ctx.leader_joints))

    # ---- the follower's body over the whole context: speeds, beats, jerk -------------------
    @functools.cached_property
    def follower_body(self) -> np.ndarray:
        return self.ctx.follower_joints[:, :, _BODY]

    @functools.cached_property
    def follower_body_speed(self) -> np.ndarray:
        return mean_joint_speed(self.follower_body, self.ctx.fps)

    def dance_beats(self, sigma: float, radius: int, depth: float = 0.0, half_window: int = 4) -> np.ndarray:
        """Dance beats (B, F) of the follower's body (:func:`rewards.terms.beat.dance_beats`), per option set."""
        key = ("dance_beats", float(sigma), int(radius), float(depth), int(half_window))
        return self.cached(key, lambda ctx: beats_from_speed(self.follower_body_speed, sigma, radius, depth,
                                                             half_window))

    @functools.cached_property
    def follower_jerk(self) -> np.ndarray:
        return token_jerk(self.follower_body, self.ctx.fps, self.ctx.token_frames)
