"""Bounded smooth reward primitives and the small geometry helpers the terms share.

:func:`tolerance` follows the idea of dm_control's ``rewards.tolerance`` (Tassa et al. 2018,
"DeepMind Control Suite", §"Reward"): 1 inside ``bounds``, decaying smoothly with the distance
outside them, so that the value at ``margin`` outside is ``value_at_margin``. Written from that
description for this project.
"""
from __future__ import annotations

import functools

import numpy as np

# The segment distances live with the shared capsule body model; re-exported for the terms.
from duet_env.capsules import pairwise_segment_distance, segment_distance  # noqa: F401

# The sigmoids' integer codes, for the compiled twins of the terms.
from .kernels import SIGMOID_CODES

_SIGMOIDS = ("gaussian", "linear", "quadratic", "cosine", "hyperbolic", "long_tail",
             "reciprocal", "tanh_squared")
# These reach exactly 0 at a finite distance, so value_at_margin may be 0.
_FINITE_SUPPORT = ("linear", "quadratic", "cosine")
_TINY = float(np.nextafter(0.0, 1.0))


def sigmoid_constant(kind: str, value_at_margin: float) -> float:
    """The scale ``k`` of sigmoid ``kind`` that puts ``value_at_margin`` at distance 1 (formulas in
    :func:`_sigmoid`), as a float64."""
    v = value_at_margin
    if kind == "gaussian":
        return np.sqrt(-2.0 * np.log(v))
    if kind == "hyperbolic":
        return np.arccosh(1.0 / v)
    if kind == "long_tail":
        return np.sqrt(1.0 / v - 1.0)
    if kind == "reciprocal":
        return 1.0 / v - 1.0
    if kind == "tanh_squared":
        return np.arctanh(np.sqrt(1.0 - v))
    if kind == "linear":
        return 1.0 - v
    if kind == "quadratic":
        return np.sqrt(1.0 - v)
    if kind == "cosine":
        return np.arccos(2.0 * v - 1.0) / np.pi
    raise ValueError(f"unknown sigmoid {kind!r}; known: {', '.join(_SIGMOIDS)}")


def _sigmoid(x: np.ndarray, value_at_margin: float, kind: str) -> np.ndarray:
    """A decreasing map of the normalised distance ``x >= 0`` with ``s(0) = 1`` and ``s(1) = value_at_margin``."""
    k = sigmoid_constant(kind, value_at_margin)
    if kind == "gaussian":  # exp(-½ (x k)²), k = sqrt(-2 ln v)
        return np.exp(-0.5 * (x * k) ** 2)
    if kind == "hyperbolic":  # 1 / cosh(x k), k = arccosh(1/v)
        return 1.0 / np.cosh(x * k)
    if kind == "long_tail":  # 1 / ((x k)² + 1), k = sqrt(1/v − 1)
        return 1.0 / ((x * k) ** 2 + 1.0)
    if kind == "reciprocal":  # 1 / (|x| k + 1), k = 1/v − 1
        return 1.0 / (np.abs(x) * k + 1.0)
    if kind == "tanh_squared":  # 1 − tanh(x k)², k = arctanh(sqrt(1 − v))
        return 1.0 - np.tanh(x * k) ** 2
    if kind == "linear":  # 1 − x k clipped at 0, k = 1 − v
        return np.clip(1.0 - x * k, 0.0, 1.0)
    if kind == "quadratic":  # 1 − (x k)² clipped at 0, k = sqrt(1 − v)
        return np.clip(1.0 - (x * k) ** 2, 0.0, 1.0)
    # cosine: (1 + cos(π x k)) / 2 for x k < 1, else 0; k = arccos(2v − 1)/π
    xk = x * k
    return np.where(xk < 1.0, (1.0 + np.cos(np.pi * np.minimum(xk, 1.0))) / 2.0, 0.0)


@functools.lru_cache(maxsize=1024)
def tolerance_spec(low: float, high: float, margin: float = 0.0, sigmoid: str = "gaussian",
                   value_at_margin: float = 0.1) -> tuple[float, float, float, int, float]:
    """Scalar :func:`tolerance` options, checked, as ``(low, high, margin, sigmoid code, k)`` floats
    for the compiled terms (:mod:`rewards.kernels`); cached, so a term may call it every step.
    Raises ValueError on bad options, with :func:`tolerance`'s messages."""
    if not low <= high:
        raise ValueError(f"tolerance: bounds must be (low, high) with low <= high; got {(low, high)}")
    if margin < 0:
        raise ValueError(f"tolerance: margin must be >= 0; got {margin}")
    if sigmoid not in _SIGMOIDS:
        raise ValueError(f"tolerance: unknown sigmoid {sigmoid!r}; known: {', '.join(_SIGMOIDS)}")
    low_ok = 0.0 if sigmoid in _FINITE_SUPPORT else _TINY
    if not (low_ok <= value_at_margin < 1.0):
        raise ValueError(f"tolerance: value_at_margin must be in [{'0' if low_ok == 0 else '>0'}, 1) "
                         f"for sigmoid {sigmoid!r}; got {value_at_margin}")
    return (float(low), float(high), float(margin), SIGMOID_CODES[sigmoid],
            float(sigmoid_constant(sigmoid, value_at_margin)))


def tolerance(x, bounds: tuple[float, float] = (0.0, 0.0), margin: float = 0.0,
              sigmoid: str = "gaussian", value_at_margin: float = 0.1) -> np.ndarray:
    """1 where ``bounds[0] <= x <= bounds[1]``, else ``s(d / margin)`` with ``d`` the distance to the bounds.

    ``s`` is the chosen sigmoid, scaled so ``s(0) = 1`` and ``s(1) = value_at_margin``:
    gaussian ``exp(−½(xk)²)``, linear ``max(0, 1 − x(1−v))``, quadratic, cosine, hyperbolic,
    long_tail, reciprocal, tanh_squared. With ``margin = 0`` the result is the indicator of the
    bounds. ``bounds`` entries may be arrays broadcasting against ``x`` (per-env bounds).
    Output in [0, 1], the broadcast shape, float32 for float32 input.
    Source: dm_control ``rewards.tolerance`` (Tassa et al. 2018), reimplemented.
    """
    lo, hi = bounds[0], bounds[1]
    # Scalar bounds (every built-in term's) are checked once per option set (tolerance_spec's
    # cache) and used as float64 scalars — as strongly typed as the 0-d arrays of the general
    # path, so the arithmetic is the same — because the checks cost more than the rest of the
    # call on the env's small batches.
    if np.ndim(lo) == 0 and np.ndim(hi) == 0:
        tolerance_spec(float(lo), float(hi), float(margin), sigmoid, float(value_at_margin))
        lo, hi = np.float64(lo), np.float64(hi)
    else:
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        if np.any(lo > hi):
            raise ValueError(f"tolerance: bounds must be (low, high) with low <= high; got {bounds}")
        tolerance_spec(0.0, 0.0, float(margin), sigmoid, float(value_at_margin))
    x = np.asarray(x)
    out_dtype = x.dtype if x.dtype.kind == "f" else np.float64
    in_bounds = (lo <= x) & (x <= hi)
    if margin == 0:
        return in_bounds.astype(out_dtype)
    d = np.where(x < lo, lo - x, x - hi) / margin
    return np.where(in_bounds, 1.0, _sigmoid(d, value_at_margin, sigmoid)).astype(out_dtype)


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angle wrapped to [−π, π)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi


def ground_forward(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Unit ground-plane forward ``(..., 2)`` as (x, z) from a left and a right point ``(..., 3)``.

    forward = (left − right) × up, the convention of :func:`duet_env.motion.heading_from_joints`
    (rest pose faces +z). Degenerate (vertical) lines give (0, 0).
    """
    across = left - right
    fwd = np.stack([-across[..., 2], across[..., 0]], axis=-1)
    norm = np.linalg.norm(fwd, axis=-1, keepdims=True)
    return np.where(norm > 1e-9, fwd / np.maximum(norm, 1e-9), 0.0)


def body_heading(joints: np.ndarray) -> np.ndarray:
    """Yaw (radians, atan2(x, z), 0 = +z) of joints ``(..., 55, 3)`` — numpy twin of
    :func:`duet_env.motion.heading_from_joints`: across = hips + shoulders (left − right)."""
    across = (joints[..., 1, :] - joints[..., 2, :]) + (joints[..., 16, :] - joints[..., 17, :])
    # forward = across × up = (−across_z, 0, across_x); yaw = atan2(fwd_x, fwd_z)
    return np.arctan2(-across[..., 2], across[..., 0])
