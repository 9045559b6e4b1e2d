"""Input validation shared by the metrics: one clear ValueError per kind of bad input."""
from __future__ import annotations

import numpy as np

from ..skeleton import NUM_JOINTS


def check_joints(joints, name: str, min_frames: int = 2) -> np.ndarray:
    """Return ``joints`` as a float64 ``(T, 55, 3)`` array, or raise a ValueError naming ``name``.

    Rejects wrong shapes, non-finite values and sequences shorter than ``min_frames``
    (the longest window the calling metric needs).
    """
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"{name} must have shape (T, {NUM_JOINTS}, 3); got {arr.shape}")
    if arr.shape[0] < min_frames:
        raise ValueError(
            f"{name} has {arr.shape[0]} frames; this metric needs at least {min_frames} frames"
        )
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr).all(axis=(1, 2))))
        raise ValueError(f"{name} contains NaN or infinite values (in {bad} frames)")
    return arr


def check_pair(follower, leader, min_frames: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validate a follower/leader pair: both ``(T, 55, 3)``, finite, the same length."""
    f = check_joints(follower, "follower_joints", min_frames)
    l = check_joints(leader, "leader_joints", min_frames)
    if f.shape[0] != l.shape[0]:
        raise ValueError(
            f"follower_joints has {f.shape[0]} frames but leader_joints has {l.shape[0]}; "
            "a duet needs both dancers over the same frames"
        )
    return f, l


def check_beats(beats, num_frames: int, name: str = "music_beats") -> np.ndarray:
    """Return beat frame indices as a sorted int64 array inside ``[0, num_frames)``."""
    arr = np.asarray(beats)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of frame indices; got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.all(np.isfinite(arr.astype(np.float64))):
        raise ValueError(f"{name} contains NaN or infinite values")
    rounded = np.round(arr.astype(np.float64))
    if np.any(np.abs(rounded - arr) > 1e-6):
        raise ValueError(f"{name} must hold integer frame indices; got non-integer values")
    if rounded.min() < 0 or rounded.max() >= num_frames:
        raise ValueError(
            f"{name} must lie in [0, {num_frames}) for a {num_frames}-frame clip; "
            f"got range [{int(rounded.min())}, {int(rounded.max())}]"
        )
    return np.sort(rounded.astype(np.int64))


def check_features(features, name: str, dim: int | None = None) -> np.ndarray:
    """Return a feature set as a float64 ``(N, D)`` array of finite values."""
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-d (N, D) feature array; got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns; got {arr.shape[1]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
