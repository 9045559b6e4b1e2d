"""Read AMASS-style ``.npz`` motion (SMPL-X ``poses`` / ``trans`` at any frame rate) as a DD100
motion dict at 30 fps.

Accepted keys (``np.load`` without pickle: a file cannot run code):

* ``poses`` ``(T, 165)`` SMPL-X axis-angle, or ``(T, 156)`` SMPL+H (AMASS's other body model:
  its 22 body and 30 hand joints are copied to the same SMPL-X joints; jaw and eyes stay at rest);
* ``trans`` (or ``transl``) ``(T, 3)`` metres;
* ``mocap_frame_rate`` (AMASS SMPL-X) or ``mocap_framerate`` (AMASS SMPL+H): capture rate in fps;
* optional ``betas`` (the first 10 are kept) and ``gender``.

The motion is resampled to 30 fps (:mod:`duet_env.data.resample`: slerp of the rotations,
linear translation). AMASS is z-up; this project is y-up (docs/design.md): the up axis is read
off the body (mean pelvis-to-head direction of the built-in skeleton's forward kinematics) and a
z-up motion is turned upright by −90° about x (root rotation and translation; the floor z = 0
becomes y = 0). A body that is neither y-up nor z-up is refused.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import skeleton
from ..conventions import FPS
from .dd100 import NUM_BETAS, DataError
from .resample import resample_motion

RATE_KEYS = ("mocap_frame_rate", "mocap_framerate")
TRANSL_KEYS = ("trans", "transl")
SMPLH_POSE_DIM = 156  # 52 joints: 22 body + 15 per hand
UP_COSINE = 0.7  # the mean pelvis-to-head direction must be this close to an axis
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # −90° about x


@dataclass
class MotionRead:
    """A motion read from another format, as a DD100 dict (``poses``, ``transl``, ``betas``,
    ``gender``) at 30 fps, with notes on what was converted (for logs and the run card)."""

    data: dict
    notes: list[str] = field(default_factory=list)


def smplh_to_smplx(poses: np.ndarray) -> np.ndarray:
    """SMPL+H axis-angle ``(T, 156)`` -> SMPL-X ``(T, 165)``: body and hands copied, jaw/eyes at rest."""
    out = np.zeros((len(poses), skeleton.POSE_DIM), poses.dtype)
    out[:, :66] = poses[:, :66]          # pelvis + 21 body joints
    out[:, 75:] = poses[:, 66:156]       # 15 left-hand then 15 right-hand joints
    return out


def up_axis(poses: np.ndarray, transl: np.ndarray, samples: int = 64) -> np.ndarray:
    """Mean unit pelvis-to-head direction of the body (built-in skeleton, up to ``samples`` frames)."""
    idx = np.unique(np.linspace(0, len(poses) - 1, min(samples, len(poses))).astype(int))
    joints = skeleton.forward_kinematics(poses[idx].astype(np.float64), transl[idx].astype(np.float64))
    up = (joints[:, skeleton.JOINT_INDEX["head"]] - joints[:, 0]).mean(0)
    return up / max(float(np.linalg.norm(up)), 1e-9)


def rotate_world(poses: np.ndarray, transl: np.ndarray, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same motion with the whole world turned by ``rotation`` (3×3) about the origin.

    The root rotation becomes ``rotation @ R_root``; the pelvis (``REST_OFFSETS[0] + transl``)
    turns with the world, so ``transl' = rotation (rest + transl) − rest``.
    """
    from scipy.spatial.transform import Rotation

    poses = np.array(poses, np.float64)
    root = Rotation.from_matrix(rotation) * Rotation.from_rotvec(poses[:, :3])
    poses[:, :3] = root.as_rotvec()
    rest = skeleton.REST_OFFSETS[0]
    new_transl = (np.asarray(transl, np.float64) + rest) @ np.asarray(rotation).T - rest
    return poses, new_transl


def _get(npz, key: str, path: Path):
    try:
        return npz[key]
    except ValueError as exc:  # an object array: it would need pickle, which is refused
        raise DataError(f"{path}: key {key!r} needs pickle to load, which is refused ({exc})") from exc


def read_amass(path: str | os.PathLike) -> MotionRead:
    """Read an AMASS-style ``.npz`` (module docstring); DataError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: motion file not found")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    with npz:
        keys = sorted(npz.files)
        transl_key = next((k for k in TRANSL_KEYS if k in keys), None)
        rate_key = next((k for k in RATE_KEYS if k in keys), None)
        missing = [name for name, k in (("poses", "poses" if "poses" in keys else None),
                                        ("trans", transl_key), ("mocap_frame_rate", rate_key)) if k is None]
        if missing:
            raise DataError(f"{path}: missing key(s) {missing} (AMASS-style .npz needs poses, trans and "
                            f"mocap_frame_rate or mocap_framerate); found keys {keys}")
        poses = np.asarray(_get(npz, "poses", path), np.float64)
        transl = np.asarray(_get(npz, transl_key, path), np.float64)
        rate = np.asarray(_get(npz, rate_key, path), np.float64)
        betas_raw = np.asarray(_get(npz, "betas", path), np.float64) if "betas" in keys else np.zeros(0)
        gender = "neutral"
        if "gender" in keys:
            try:
                g = npz["gender"]
                g = g.item() if g.size == 1 else g
                gender = (g.decode("latin1") if isinstance(g, bytes) else str(g)).lower()
            except ValueError:
                pass  # a pickled gender is ignored, never unpickled
    notes: list[str] = []
    if poses.ndim != 2 or poses.shape[1] not in (skeleton.POSE_DIM, SMPLH_POSE_DIM) or len(poses) < 2:
        raise DataError(f"{path}: 'poses' must have shape (T, {skeleton.POSE_DIM}) (SMPL-X) or (T, {SMPLH_POSE_DIM}) "
                        f"(SMPL+H) with T >= 2; got {poses.shape}")
    if transl.shape != (len(poses), 3):
        raise DataError(f"{path}: '{transl_key}' must have shape ({len(poses)}, 3) to match poses; got {transl.shape}")
    for key, arr in (("poses", poses), (transl_key, transl)):
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: '{key}' contains {int((~np.isfinite(arr)).sum())} NaN/inf values")
    if rate.size != 1 or not np.isfinite(rate).all() or float(rate.reshape(())) <= 0:
        raise DataError(f"{path}: '{rate_key}' must be one positive frame rate; got {rate!r}")
    src_fps = float(rate.reshape(()))
    if poses.shape[1] == SMPLH_POSE_DIM:
        poses = smplh_to_smplx(poses)
        notes.append("SMPL+H poses (156) mapped to SMPL-X (jaw and eyes at rest)")
    up = up_axis(poses, transl)
    if up[2] > UP_COSINE:
        poses, transl = rotate_world(poses, transl, Z_UP_TO_Y_UP)
        notes.append("z-up (AMASS) turned to y-up")
    elif up[1] <= UP_COSINE:
        raise DataError(f"{path}: cannot tell the up axis: the body's mean pelvis-to-head direction is "
                        f"{np.round(up, 2).tolist()}, neither +y nor +z")
    poses, transl = resample_motion(poses, transl, src_fps, FPS)
    if abs(src_fps - FPS) > 1e-6:
        notes.append(f"resampled from {src_fps:g} fps to {FPS} fps (slerp rotations, linear translation)")
    betas = np.zeros(NUM_BETAS, np.float32)
    flat = betas_raw.reshape(-1, betas_raw.shape[-1])[0] if betas_raw.ndim >= 1 and betas_raw.size else np.zeros(0)
    if flat.size and np.isfinite(flat).all():
        betas[:min(NUM_BETAS, flat.size)] = flat[:NUM_BETAS]
    return MotionRead({"poses": poses, "transl": transl, "betas": betas, "gender": gender}, notes)
