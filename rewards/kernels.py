"""Compiled twins of the default reward's terms: each term's whole per-step computation in one
numba call (:mod:`duet_env.jit` explains the switch, the on-disk cache and the fallback).

In numpy a term is 10–30 tiny array operations on ``(B, 4)`` values, each paying microseconds of
dispatch; most of a step's 1.1 ms reward cost was that dispatch, not arithmetic. Here each term
is one loop over envs and frames. The numpy code in :mod:`rewards.terms` stays the definition:
every kernel repeats its arithmetic step by step, in the same float types (float32 where the
numpy code works on float32 joints, float64 where it converts), with the same formulas and
constants, and ``tests/test_jit.py`` checks term by term, on random and SynthDuet contexts, that
the two agree within 1e-6 (exactly, except where a transcendental function — exp, cos, atan2 —
rounds its last bit differently in numba's math library than in numpy's).

What is not here stays numpy on both paths: the ``half_body`` and ``learned`` terms (not in the
default reward), the skating term's foot-slide fallback (the env always has the root-velocity
prediction), and a user's own terms.
"""
from __future__ import annotations

import numpy as np

from duet_env.jit import jit_available, kernel

# The sigmoids' integer codes. Defined here, as literals, because numba's on-disk cache is keyed
# on this file alone: constants a kernel reads must live in the kernel's own file (and so must
# the kernels it calls), or a change elsewhere would leave stale machine code in the cache.
# rewards.primitives.tolerance_spec hands these codes out.
_GAUSSIAN, _HYPERBOLIC, _LONG_TAIL, _RECIPROCAL, _TANH_SQUARED, _LINEAR, _QUADRATIC, _COSINE = range(8)
SIGMOID_CODES: dict[str, int] = {"gaussian": _GAUSSIAN, "hyperbolic": _HYPERBOLIC, "long_tail": _LONG_TAIL,
                                 "reciprocal": _RECIPROCAL, "tanh_squared": _TANH_SQUARED, "linear": _LINEAR,
                                 "quadratic": _QUADRATIC, "cosine": _COSINE}

_PI32 = np.float32(np.pi)
_TWO_PI32 = np.float32(2.0 * np.pi)


def tolerance_value(x, lo, hi, margin, kind, k):
    """:func:`rewards.primitives.tolerance` of one float64 value; ``kind`` is the sigmoid's code
    (:data:`SIGMOID_CODES`) and ``k`` its constant
    (:func:`rewards.primitives.sigmoid_constant`, computed once by the caller)."""
    if lo <= x <= hi:
        return 1.0
    if margin == 0.0:
        return 0.0
    d = ((lo - x) if x < lo else (x - hi)) / margin
    if kind == _GAUSSIAN:
        return np.exp(-0.5 * (d * k) ** 2)
    if kind == _HYPERBOLIC:
        return 1.0 / np.cosh(d * k)
    if kind == _LONG_TAIL:
        return 1.0 / ((d * k) ** 2 + 1.0)
    if kind == _RECIPROCAL:
        return 1.0 / (abs(d) * k + 1.0)
    if kind == _TANH_SQUARED:
        return 1.0 - np.tanh(d * k) ** 2
    if kind == _LINEAR:
        return min(max(1.0 - d * k, 0.0), 1.0)
    if kind == _QUADRATIC:
        return min(max(1.0 - (d * k) ** 2, 0.0), 1.0)
    # cosine
    dk = d * k
    return (1.0 + np.cos(np.pi * min(dk, 1.0))) / 2.0 if dk < 1.0 else 0.0


def mean_tolerance(x, lo, hi, margin, kind, k):
    """``tolerance(x).mean(axis=1)`` of float32 values ``(B, n)``: each value rounded to float32,
    then summed and divided in float32, as numpy's mean of the float32 tolerance does."""
    b, n = x.shape
    out = np.empty(b, np.float32)
    for e in range(b):
        acc = np.float32(0.0)
        for i in range(n):
            acc += np.float32(tolerance_value(np.float64(x[e, i]), lo, hi, margin, kind, k))
        out[e] = acc / np.float32(n)
    return out


def overlap_penalty(depth, lo, hi, margin, kind, k):
    """:class:`rewards.terms.penetration.PenetrationTerm` from the overlap depths ``(B, n)``
    float64: −mean_f (1 − tolerance(depth_f)), all in float64 as the numpy code."""
    b, n = depth.shape
    out = np.empty(b)
    for e in range(b):
        acc = 0.0
        for i in range(n):
            acc += 1.0 - tolerance_value(depth[e, i], lo, hi, margin, kind, k)
        out[e] = -(acc / n)
    return out


def facing(follower, leader, expected, frames, lo, hi, margin, kind, k):
    """:class:`rewards.terms.facing.FacingTerm`: mean over the current frames of
    tolerance(|wrap(ψ_f − ψ_l − φ*)|), yaw ψ = atan2(−across_z, across_x), across = hips +
    shoulders (left − right) — :func:`rewards.primitives.body_heading` in float32."""
    b, f = follower.shape[0], follower.shape[1]
    err = np.empty((b, frames), np.float32)
    for e in range(b):
        for i in range(frames):
            fr = f - frames + i
            psi_f = _heading(follower[e, fr])
            psi_l = _heading(leader[e, fr])
            a = psi_f - psi_l - expected[e]
            err[e, i] = abs((a + _PI32) % _TWO_PI32 - _PI32)
    return mean_tolerance(err, lo, hi, margin, kind, k)


def _heading(joints):
    ax = (joints[1, 0] - joints[2, 0]) + (joints[16, 0] - joints[17, 0])
    az = (joints[1, 2] - joints[2, 2]) + (joints[16, 2] - joints[17, 2])
    return np.arctan2(-az, ax)


def _palm(joints, idx):
    """Mean of the joints ``idx`` (5 of them), summed in order and divided in float32."""
    out = np.zeros(3, np.float32)
    for c in range(3):
        acc = np.float32(0.0)
        for j in idx:
            acc += joints[j, c]
        out[c] = acc / np.float32(len(idx))
    return out


def contact(follower, leader, hold, frames, left_palm, right_palm, neutral, lo, hi, margin, kind, k):
    """:class:`rewards.terms.contact.ContactTerm`: where a hold is expected, mean over the current
    frames of tolerance(min palm-centre distance of the four hand pairs); ``neutral`` elsewhere."""
    b, f = follower.shape[0], follower.shape[1]
    dist = np.empty((b, frames), np.float32)
    for e in range(b):
        for i in range(frames):
            fr = f - frames + i
            best = np.float32(np.inf)
            for hand_f in range(2):
                pf = _palm(follower[e, fr], left_palm if hand_f == 0 else right_palm)
                for hand_l in range(2):
                    pl = _palm(leader[e, fr], left_palm if hand_l == 0 else right_palm)
                    dx, dy, dz = pf[0] - pl[0], pf[1] - pl[1], pf[2] - pl[2]
                    best = min(best, np.sqrt(dx * dx + dy * dy + dz * dz))
            dist[e, i] = best
    score = mean_tolerance(dist, lo, hi, margin, kind, k)
    for e in range(b):
        if not hold[e]:
            score[e] = np.float32(neutral)
    return score


def distance(follower, leader, ranges, frames, margin, kind, k):
    """:class:`rewards.terms.distance.DistanceTerm`: mean over the current frames of
    tolerance(|pelvis_f − pelvis_l|_xz, bounds = the env's distance range)."""
    b, f = follower.shape[0], follower.shape[1]
    out = np.empty(b, np.float32)
    d = np.empty((1, frames), np.float32)
    for e in range(b):
        for i in range(frames):
            fr = f - frames + i
            d[0, i] = np.hypot(follower[e, fr, 0, 0] - leader[e, fr, 0, 0], follower[e, fr, 0, 2] - leader[e, fr, 0, 2])
        out[e] = mean_tolerance(d, np.float64(ranges[e, 0]), np.float64(ranges[e, 1]), margin, kind, k)[0]
    return out


def root_velocity(follower, predicted, frames, lo, hi, margin, kind, k):
    """:class:`rewards.terms.skating.SkatingTerm` with a prediction: mean over the current frames
    of tolerance(|v̂_f − (p_f − p_f−1)|), pelvis displacement in metres per frame."""
    b, f = follower.shape[0], follower.shape[1]
    err = np.empty((b, frames), np.float32)
    for e in range(b):
        for i in range(frames):
            fr = f - frames + i
            acc = np.float32(0.0)
            for c in range(3):
                diff = predicted[e, i, c] - (follower[e, fr, 0, c] - follower[e, fr - 1, 0, c])
                acc += diff * diff
            err[e, i] = np.sqrt(acc)
    return mean_tolerance(err, lo, hi, margin, kind, k)


def jerk(follower, body, frames, fps3, lo, hi, margin, kind, k):
    """:class:`rewards.terms.smooth.SmoothTerm`: tolerance of :func:`rewards.terms.smooth.token_jerk`
    (mean |third backward difference| · fps³ of the body joints over the current frames, float64)."""
    b, f = follower.shape[0], follower.shape[1]
    out = np.empty(b)
    for e in range(b):
        acc = 0.0
        for i in range(frames):
            fr = f - frames + i
            for j in body:
                sq = 0.0
                for c in range(3):
                    x0 = np.float64(follower[e, fr, j, c])
                    x1 = np.float64(follower[e, fr - 1, j, c])
                    x2 = np.float64(follower[e, fr - 2, j, c])
                    x3 = np.float64(follower[e, fr - 3, j, c])
                    d3 = x0 - 3.0 * x1 + 3.0 * x2 - x3
                    sq += d3 * d3
                acc += np.sqrt(sq)
        out[e] = tolerance_value(acc / (frames * len(body)) * fps3, lo, hi, margin, kind, k)
    return out


if jit_available():  # compiled lazily on first use, cached on disk
    tolerance_value, _heading, _palm = kernel(tolerance_value), kernel(_heading), kernel(_palm)
    mean_tolerance, overlap_penalty = kernel(mean_tolerance), kernel(overlap_penalty)
    facing, contact, distance = kernel(facing), kernel(contact), kernel(distance)
    root_velocity, jerk = kernel(root_velocity), kernel(jerk)
