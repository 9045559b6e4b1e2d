"""Kinematic building blocks of SynthDuet: eased keyframes, yaw/pitch/roll matrices, frame
alignment and analytic two-bone IK. All numpy, vectorised over frames.

Easing: between keys k and k+1 at times t_k < t_{k+1}, u = (t - t_k) / (t_{k+1} - t_k) and
s(u) a cubic smoothstep with a short still margin at both ends (:func:`smoothstep`), so every
eased signal has zero velocity at every key time. SynthDuet puts its keys on the music beats, which is what puts the dancers' kinematic
beats (minima of joint speed) on the music beats.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from .. import motion, skeleton


BEAT_HOLD = 0.18  # share of each beat interval, at either end, spent still on the beat


def smoothstep(u: np.ndarray, hold: float = BEAT_HOLD) -> np.ndarray:
    """Eased phase: s(u) = 3w² - 2w³ with w = clip((u - hold) / (1 - 2 hold), 0, 1).

    s(0) = 0, s(1) = 1, s' = 0 on [0, hold] and [1 - hold, 1]: the motion pauses briefly on
    every key (beat), which keeps the smoothed joint-speed minimum on the beat even when the
    neighbouring beats carry unequal amounts of motion."""
    u = np.clip((np.asarray(u, np.float64) - hold) / (1.0 - 2.0 * hold), 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


@dataclass(frozen=True)
class KeyPhase:
    """Where each frame time falls between keys: interval index ``idx`` (key idx -> idx+1),
    linear phase ``u`` and eased phase ``s``. Before the first key s = 0 at key 0; after the
    last key s = 1 at the last key, so signals hold still outside the keyed span."""

    idx: np.ndarray
    u: np.ndarray
    s: np.ndarray

    @classmethod
    def of(cls, key_times: np.ndarray, times: np.ndarray) -> "KeyPhase":
        kt = np.asarray(key_times, np.float64)
        if kt.ndim != 1 or kt.size < 2 or np.any(np.diff(kt) <= 0):
            raise ValueError("key_times must be a strictly increasing 1-d array with at least 2 keys")
        idx = np.clip(np.searchsorted(kt, times, side="right") - 1, 0, kt.size - 2)
        u = np.clip((times - kt[idx]) / (kt[idx + 1] - kt[idx]), 0.0, 1.0)
        return cls(idx, u, smoothstep(u))

    def ease(self, keys: np.ndarray) -> np.ndarray:
        """Eased interpolation of ``keys`` (K, ...) at the frames: v_k + (v_{k+1} - v_k) s.

        Equal neighbouring keys give exactly v_k (the difference is exactly zero), which is
        what keeps planted feet bit-for-bit still."""
        keys = np.asarray(keys, np.float64)
        s = self.s.reshape(self.s.shape + (1,) * (keys.ndim - 1))
        return keys[self.idx] + (keys[self.idx + 1] - keys[self.idx]) * s

    def arc(self, heights: np.ndarray) -> np.ndarray:
        """Swing-arc height h_{k+1} sin(π s): zero with zero slope at both ends of interval k."""
        return np.asarray(heights, np.float64)[self.idx + 1] * np.sin(np.pi * self.s)


def _axis_rot(angle: np.ndarray, i: int, j: int) -> np.ndarray:
    a = np.asarray(angle, np.float64)
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    k = 3 - i - j
    out[..., k, k] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def rot_x(angle) -> np.ndarray:
    """Rotation about x (pitch; positive tips +z towards -y, i.e. a forward bow of a +z body)."""
    return _axis_rot(angle, 1, 2)


def rot_y(angle) -> np.ndarray:
    """Rotation about the up axis (yaw), as :func:`duet_env.motion.rotation_about_y`."""
    return _axis_rot(angle, 2, 0)


def rot_z(angle) -> np.ndarray:
    """Rotation about z (roll; positive tips +x towards +y)."""
    return _axis_rot(angle, 0, 1)


def yaw_apply(yaw: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Rotate body-frame vectors (..., 3) (x = body's left, z = forward) into the world by yaw."""
    yaw = np.asarray(yaw, np.float64)
    v = np.asarray(local, np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    x, y, z = np.broadcast_arrays(v[..., 0], v[..., 1], v[..., 2], c)[:3]
    return np.stack([c * x + s * z, y + 0.0 * c, -s * x + c * z], -1)


def unit(v: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def _frame(direction: np.ndarray, ref: np.ndarray) -> np.ndarray:
    e1 = unit(direction)
    e2 = unit(ref - np.sum(ref * e1, -1, keepdims=True) * e1)
    e3 = np.cross(e1, e2)
    return np.stack([e1, e2, e3], -1)


def align(rest_dir, rest_ref, target_dir, target_ref) -> np.ndarray:
    """Rotation taking the rest bone direction to ``target_dir`` and the rest reference
    (twist) direction to ``target_ref`` (both Gram-Schmidt orthogonalised): F_t F_rᵀ."""
    rest_dir = np.broadcast_to(np.asarray(rest_dir, np.float64), np.shape(target_dir))
    rest_ref = np.broadcast_to(np.asarray(rest_ref, np.float64), np.shape(target_dir))
    return _frame(target_dir, target_ref) @ np.swapaxes(_frame(rest_dir, rest_ref), -1, -2)


def two_bone_ik(root: np.ndarray, target: np.ndarray, l1: float, l2: float, pole: np.ndarray,
                max_reach: float = 0.995, max_flex_deg: float = 145.0):
    """Analytic two-bone IK (law of cosines).

    The root-target distance d is clamped to [d_min, max_reach (l1 + l2)], where d_min keeps
    the middle joint's flexion <= ``max_flex_deg``; the middle joint lies in the plane of the
    root-target line and ``pole``, on the pole's side:
    a = (l1² - l2² + d²) / (2d), h = sqrt(l1² - a²), mid = root + a v̂ + h n̂.
    Returns (mid, end, hinge): the reached end point and the hinge axis n̂ × v̂ (the axis about
    which the first bone turns towards the second).
    """
    v = target - root
    d = np.linalg.norm(v, axis=-1, keepdims=True)
    vh = v / np.maximum(d, 1e-9)
    interior = np.deg2rad(180.0 - max_flex_deg)
    d_min = np.sqrt(l1 * l1 + l2 * l2 - 2 * l1 * l2 * np.cos(interior))
    dc = np.clip(d, d_min, max_reach * (l1 + l2))
    a = (l1 * l1 - l2 * l2 + dc * dc) / (2 * dc)
    h = np.sqrt(np.maximum(l1 * l1 - a * a, 0.0))
    n = unit(pole - np.sum(pole * vh, -1, keepdims=True) * vh)
    mid = root + vh * a + n * h
    end = root + vh * dc
    return mid, end, unit(np.cross(n, vh))


def fk_numpy(local: np.ndarray, pelvis: np.ndarray, upto: int = skeleton.NUM_JOINTS):
    """Global rotations and positions of joints 0..upto-1 from local rotations (T, 55, 3, 3)
    and the pelvis world position (T, 3): R_j = R_parent R_local_j,
    p_j = p_parent + R_parent offset_j (the skeleton module's FK, for numpy staging)."""
    off = skeleton.REST_OFFSETS
    rots = np.empty(local.shape[:1] + (upto, 3, 3))
    pos = np.empty(local.shape[:1] + (upto, 3))
    rots[:, 0] = local[:, 0]
    pos[:, 0] = pelvis
    for j in range(1, upto):
        p = skeleton.PARENTS[j]
        rots[:, j] = rots[:, p] @ local[:, j]
        pos[:, j] = pos[:, p] + rots[:, p] @ off[j]
    return rots, pos


def local_to_axis_angle(local: np.ndarray) -> np.ndarray:
    """(T, 55, 3, 3) local rotations -> (T, 165) float32 axis-angle."""
    # scipy's rotation-vector conversion: the same axis-angle as motion.matrix_to_axis_angle
    # (angle in [0, π]) at a fraction of the cost for ~10⁵ matrices.
    aa = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec()
    return aa.reshape(local.shape[0], -1).astype(np.float32)


def axis_rotation(axis, angle: np.ndarray) -> np.ndarray:
    """Rotation by ``angle`` (T,) about a fixed unit ``axis`` (3,) (Rodrigues)."""
    axis = unit(np.asarray(axis, np.float64))
    return motion.axis_angle_to_matrix(np.asarray(angle, np.float64)[..., None] * axis)
