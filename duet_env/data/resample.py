"""Resample SMPL-X motion to another frame rate: slerp of every joint's rotation, linear
interpolation of the translation.

The output keeps the first frame and spans the same duration: frame ``k`` is time ``k / dst_fps``
for ``k = 0 … floor((T − 1) · dst_fps / src_fps)``. Used by the motion readers of other formats
(:mod:`duet_env.data.amass`, :mod:`duet_env.data.bvh`), whose capture rates (60, 100, 120 fps …)
differ from the project's 30 fps.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..conventions import FPS

FPS_TOLERANCE = 1e-6  # rates closer than this are the same rate: no resampling


def resampled_length(frames: int, src_fps: float, dst_fps: float = FPS) -> int:
    """Number of frames of a ``frames``-long sequence at ``src_fps`` resampled to ``dst_fps``."""
    if frames < 1:
        raise ValueError(f"cannot resample an empty sequence ({frames} frames)")
    return int(np.floor((frames - 1) * dst_fps / src_fps + 1e-9)) + 1


def resample_motion(poses: np.ndarray, transl: np.ndarray, src_fps: float,
                    dst_fps: float = FPS) -> tuple[np.ndarray, np.ndarray]:
    """Axis-angle poses ``(T, 3J)`` and translation ``(T, 3)`` at ``src_fps`` -> the same at ``dst_fps``.

    Rotations are interpolated by spherical linear interpolation (scipy ``Slerp``), joint by
    joint; the translation linearly. Returns float32 arrays; a copy when the rates are equal.
    """
    poses = np.asarray(poses, np.float64)
    transl = np.asarray(transl, np.float64)
    if not (np.isfinite(src_fps) and src_fps > 0 and np.isfinite(dst_fps) and dst_fps > 0):
        raise ValueError(f"frame rates must be positive; got {src_fps} -> {dst_fps}")
    if poses.ndim != 2 or poses.shape[1] % 3 or transl.shape != (len(poses), 3):
        raise ValueError(f"poses must be (T, 3J) and transl (T, 3); got {poses.shape} and {transl.shape}")
    if abs(src_fps - dst_fps) < FPS_TOLERANCE:
        return poses.astype(np.float32), transl.astype(np.float32)
    n = resampled_length(len(poses), src_fps, dst_fps)
    src_t = np.arange(len(poses)) / src_fps
    dst_t = np.minimum(np.arange(n) / dst_fps, src_t[-1])  # guard the last frame against rounding
    if len(poses) == 1:
        return poses.astype(np.float32), transl.astype(np.float32)
    joints = poses.shape[1] // 3
    out = np.empty((n, joints, 3))
    aa = poses.reshape(len(poses), joints, 3)
    for j in range(joints):
        out[:, j] = Slerp(src_t, Rotation.from_rotvec(aa[:, j]))(dst_t).as_rotvec()
    new_transl = np.stack([np.interp(dst_t, src_t, transl[:, k]) for k in range(3)], axis=1)
    return out.reshape(n, -1).astype(np.float32), new_transl.astype(np.float32)
