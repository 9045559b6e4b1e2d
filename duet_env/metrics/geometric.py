"""Geometric features (32-d): shares of frames in which 32 boolean pose/velocity relations hold.

Idea and source: the relational ("manual") features of Müller et al. 2005 ("Efficient content-based
retrieval of motion capture data"), used by Bailando (FID_g) and Duolando on the follower: boolean
relations between body points, thresholds in units of a body size, averaged over the frames.
The 32 templates below are this project's own design (not Bailando's list); the feature is::

    g_i = (1/T) Σ_t [ relation_i holds at frame t ]       ∈ [0, 1]

Units. ``L`` = the dancer's upper-arm length (median over frames of the mean shoulder–elbow
distance, ≈ 0.26 m for an adult), so thresholds scale with body size; speeds are in L per
second with the TRUE frame time 1/30 s (central differences). ``fwd`` = ground-plane facing
(:func:`duet_env.motion.heading_from_joints`), ``out`` = the body's left (+) / right (−) side
direction ``up × fwd`` signed per side, ``floor`` = the lowest foot-joint height of the clip.

Per side (left, right; 12 × 2 = 24, order: left then right for each):

 1. hand_above_head     wrist_y > head_y
 2. hand_in_front       (wrist − spine3)·fwd > 1.0 L
 3. hand_out_sideways   (wrist − shoulder)·out > 1.2 L
 4. elbow_bent          interior elbow angle < 110°
 5. hand_fast           |v_wrist − v_pelvis| > 4 L/s
 6. hand_rising         (v_wrist − v_pelvis)_y > 1.5 L/s
 7. foot_in_front       (ankle − other ankle)·fwd > 0.6 L
 8. foot_raised         ankle_y − other ankle_y > 0.5 L
 9. knee_bent           interior knee angle < 140°
10. foot_fast           |v_ankle| > 4 L/s
11. leg_out_sideways    (ankle − hip)·out > 0.8 L
12. hand_near_head      |wrist − head| < 1.0 L

Whole body (8):

25. hands_far_apart     |l_wrist − r_wrist| > 4 L
26. hands_together      |l_wrist − r_wrist| < 0.8 L
27. feet_far_apart      |l_ankle − r_ankle| > 2 L
28. feet_crossed        (l_ankle − r_ankle)·left < 0
29. root_fast           |v_pelvis, horizontal| > 3 L/s
30. airborne            min(foot joints)_y − floor > 0.4 L
31. torso_bent          angle(neck − pelvis, up) > 30°
32. crouched            pelvis_y − floor < 3.0 L

Departure from the reference code: Bailando's manual features use a different (Müller-derived)
template list, and its velocity relations use a hard-coded frame time of 1/120 s where we use
the true 1/30 s (docs/metrics.md).
"""
from __future__ import annotations

import numpy as np

from ..conventions import FRAME_TIME, joints as _j
from ..motion import heading_from_joints
from ._checks import check_joints

MIN_FRAMES = 2

_SIDE_TEMPLATES = (
    "hand_above_head", "hand_in_front", "hand_out_sideways", "elbow_bent", "hand_fast",
    "hand_rising", "foot_in_front", "foot_raised", "knee_bent", "foot_fast",
    "leg_out_sideways", "hand_near_head",
)
_BODY_TEMPLATES = (
    "hands_far_apart", "hands_together", "feet_far_apart", "feet_crossed", "root_fast",
    "airborne", "torso_bent", "crouched",
)
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{side}_{name}" for name in _SIDE_TEMPLATES for side in ("left", "right")
) + _BODY_TEMPLATES

# SMPL-X joint indices, (left, right) per pair.
PELVIS, SPINE3, NECK, HEAD = _j("pelvis", "spine3", "neck", "head")
HIP, KNEE, ANKLE, FOOT, SHOULDER, ELBOW, WRIST = (
    np.array(_j(f"left_{n}", f"right_{n}")) for n in ("hip", "knee", "ankle", "foot", "shoulder", "elbow", "wrist"))
OTHER = np.array([1, 0])  # index of the other side
SIDE_SIGN = np.array([1.0, -1.0])  # +left, −right along the body's left axis


def _interior_angle(a: np.ndarray, joint: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle at ``joint`` between the rays to ``a`` and ``b`` (radians), over (..., 3)."""
    u, v = a - joint, b - joint
    cos = np.sum(u * v, axis=-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-9)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def body_unit(joints: np.ndarray) -> float:
    """Body-size unit L: median over frames of the mean shoulder–elbow length (metres)."""
    arm = np.linalg.norm(joints[:, SHOULDER] - joints[:, ELBOW], axis=-1).mean(axis=1)
    return float(np.median(arm))


def geometric_relations(joints: np.ndarray, frame_time: float = FRAME_TIME) -> np.ndarray:
    """Per-frame booleans ``(T, 32)`` of the 32 templates (see the module docstring)."""
    x = check_joints(joints, "joints", MIN_FRAMES)
    unit = body_unit(x)
    if unit <= 1e-6:
        raise ValueError("joints: shoulder–elbow length is zero; cannot scale the geometric features")
    vel = np.gradient(x, frame_time, axis=0) / unit  # L per second
    fwd = heading_from_joints(x)  # (T, 3) unit, ground plane
    left = np.stack([fwd[:, 2], np.zeros(len(fwd)), -fwd[:, 0]], axis=-1)  # up × fwd
    out = SIDE_SIGN[None, :, None] * left[:, None, :]  # (T, 2, 3): outward direction per side
    floor = x[:, np.r_[ANKLE, FOOT], 1].min()

    wrist, ankle = x[:, WRIST], x[:, ANKLE]  # (T, 2, 3)
    v_rel_wrist = vel[:, WRIST] - vel[:, None, PELVIS]
    deg = np.pi / 180.0
    side = [
        wrist[..., 1] > x[:, None, HEAD, 1],
        np.sum((wrist - x[:, None, SPINE3]) * fwd[:, None], -1) / unit > 1.0,
        np.sum((wrist - x[:, SHOULDER]) * out, -1) / unit > 1.2,
        _interior_angle(x[:, SHOULDER], x[:, ELBOW], wrist) < 110 * deg,
        np.linalg.norm(v_rel_wrist, axis=-1) > 4.0,
        v_rel_wrist[..., 1] > 1.5,
        np.sum((ankle - ankle[:, OTHER]) * fwd[:, None], -1) / unit > 0.6,
        (ankle[..., 1] - ankle[:, OTHER, 1]) / unit > 0.5,
        _interior_angle(x[:, HIP], x[:, KNEE], ankle) < 140 * deg,
        np.linalg.norm(vel[:, ANKLE], axis=-1) > 4.0,
        np.sum((ankle - x[:, HIP]) * out, -1) / unit > 0.8,
        np.linalg.norm(wrist - x[:, None, HEAD], axis=-1) / unit < 1.0,
    ]  # each (T, 2)
    hands = np.linalg.norm(wrist[:, 0] - wrist[:, 1], axis=-1) / unit
    spine = x[:, NECK] - x[:, PELVIS]
    body = [
        hands > 4.0,
        hands < 0.8,
        np.linalg.norm(ankle[:, 0] - ankle[:, 1], axis=-1) / unit > 2.0,
        np.sum((ankle[:, 0] - ankle[:, 1]) * left, -1) < 0.0,
        np.linalg.norm(vel[:, PELVIS][:, [0, 2]], axis=-1) > 3.0,
        (x[:, np.r_[ANKLE, FOOT], 1].min(axis=1) - floor) / unit > 0.4,
        spine[:, 1] / np.maximum(np.linalg.norm(spine, axis=-1), 1e-9) < np.cos(30 * deg),
        (x[:, PELVIS, 1] - floor) / unit < 3.0,
    ]  # each (T,)
    per_side = np.stack(side, axis=1).reshape(len(x), -1)  # (T, 24): template-major, left/right
    return np.concatenate([per_side, np.stack(body, axis=1)], axis=1)


def geometric_features(joints: np.ndarray, frame_time: float = FRAME_TIME) -> np.ndarray:
    """32-d geometric feature vector: the share of frames each template holds (module docstring)."""
    return geometric_relations(joints, frame_time).mean(axis=0)
