"""A capsule proxy of the body built from skeleton bones, and batched capsule–capsule gaps.

Used by the contact and penetration metrics when no SMPL-X mesh is available (Duolando measures
contact on SMPL-X meshes with torch-mesh-isect on GPU; this is the CPU, mesh-free stand-in).

A capsule is a segment (two body points) swept by a sphere of radius r. The gap between two
capsules is their surface distance::

    gap(A, B) = dist(segment_A, segment_B) − r_A − r_B        (metres; < 0 means overlap)

with the closest-point distance of two segments computed by the clamped-parameter method of
Ericson, *Real-Time Collision Detection* (2005), §5.1.9, vectorised over frames and pairs.

Radii are rounded adult values (metres) chosen for this project, not fitted to SMPL-X:
torso capsules 0.09–0.12 (chest/belly half-depth), head 0.09, neck 0.055, upper arm 0.05,
forearm 0.04, hand 0.035, thigh 0.075, shin 0.05, foot 0.04.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_pair

HEAD_TOP = -1  # synthetic end point: 8 cm above the head joint along neck → head

# name, start joint, end joint, radius (m), kind
CAPSULE_TABLE: tuple[tuple[str, int, int, float, str], ...] = (
    ("hips", 1, 2, 0.09, "torso"),
    ("lower_torso", 0, 6, 0.12, "torso"),
    ("upper_torso", 6, 12, 0.12, "torso"),
    ("shoulders", 16, 17, 0.06, "torso"),
    ("neck", 12, 15, 0.055, "head"),
    ("head", 15, HEAD_TOP, 0.09, "head"),
    ("left_upper_arm", 16, 18, 0.05, "upper_arm"),
    ("right_upper_arm", 17, 19, 0.05, "upper_arm"),
    ("left_forearm", 18, 20, 0.04, "forearm"),
    ("right_forearm", 19, 21, 0.04, "forearm"),
    ("left_hand", 20, 29, 0.035, "hand"),  # wrist → left middle finger, 2nd joint
    ("right_hand", 21, 44, 0.035, "hand"),  # wrist → right middle finger, 2nd joint
    ("left_thigh", 1, 4, 0.075, "thigh"),
    ("right_thigh", 2, 5, 0.075, "thigh"),
    ("left_shin", 4, 7, 0.05, "shin"),
    ("right_shin", 5, 8, 0.05, "shin"),
    ("left_foot", 7, 10, 0.04, "foot"),
    ("right_foot", 8, 11, 0.04, "foot"),
)
CAPSULE_NAMES = tuple(c[0] for c in CAPSULE_TABLE)
CAPSULE_RADII = np.array([c[3] for c in CAPSULE_TABLE])
CAPSULE_KINDS = tuple(c[4] for c in CAPSULE_TABLE)
NUM_CAPSULES = len(CAPSULE_TABLE)
_STARTS = np.array([c[1] for c in CAPSULE_TABLE])
_ENDS = np.array([c[2] for c in CAPSULE_TABLE])
_HEAD_TOP_OFFSET = 0.08
_FRAMES_PER_CHUNK = 1024  # bounds the temporary (chunk, C, C, 3) arrays to a few MB


def capsule_segments(joints: np.ndarray) -> np.ndarray:
    """Capsule end points ``(T, C, 2, 3)`` of a dancer from joints ``(T, 55, 3)``."""
    start = joints[:, _STARTS]
    end = joints[:, np.where(_ENDS == HEAD_TOP, 0, _ENDS)]
    neck_to_head = joints[:, 15] - joints[:, 12]
    up = neck_to_head / np.maximum(np.linalg.norm(neck_to_head, axis=-1, keepdims=True), 1e-9)
    end[:, _ENDS == HEAD_TOP] = (joints[:, 15] + _HEAD_TOP_OFFSET * up)[:, None]
    return np.stack([start, end], axis=-2)


def segment_distance(p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Closest distance between segments [p1, q1] and [p2, q2], batched over leading axes (..., 3).

    Ericson §5.1.9: minimise |p1 + s d1 − p2 − t d2| over s, t ∈ [0, 1] — the unclamped s of
    the infinite lines, clamped; t from s, clamped; s recomputed when t was clamped. Degenerate
    (zero-length) segments and parallel segments fall out of the same formulas via safe divisions.
    """
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = np.einsum("...k,...k->...", d1, d1)
    e = np.einsum("...k,...k->...", d2, d2)
    b = np.einsum("...k,...k->...", d1, d2)
    c = np.einsum("...k,...k->...", d1, r)
    f = np.einsum("...k,...k->...", d2, r)
    tiny = 1e-12
    a_safe, e_safe = np.maximum(a, tiny), np.maximum(e, tiny)
    denom = a * e - b * b
    s = np.where(denom > tiny, np.clip((b * f - c * e) / np.maximum(denom, tiny), 0.0, 1.0), 0.0)
    t = (b * s + f) / e_safe
    s = np.where(t < 0.0, np.clip(-c / a_safe, 0.0, 1.0), np.where(t > 1.0, np.clip((b - c) / a_safe, 0.0, 1.0), s))
    t = np.clip(t, 0.0, 1.0)
    gap = r + d1 * s[..., None] - d2 * t[..., None]
    return np.linalg.norm(gap, axis=-1)


def capsule_gaps(follower_joints: np.ndarray, leader_joints: np.ndarray, cutoff: float = 0.05) -> np.ndarray:
    """Surface distances ``(T, C, C)`` between follower capsule i and leader capsule j.

    Pairs whose bounding spheres (centre = segment midpoint, radius = half length + r) are more
    than ``cutoff`` apart cannot be closer than ``cutoff`` and are set to ``+inf`` without the
    exact test — on a typical duet this skips most of the 18×18 pairs.
    """
    f, l = check_pair(follower_joints, leader_joints, min_frames=1)
    out = np.full((len(f), NUM_CAPSULES, NUM_CAPSULES), np.inf)
    radii_sum = CAPSULE_RADII[:, None] + CAPSULE_RADII[None, :]
    for start in range(0, len(f), _FRAMES_PER_CHUNK):
        sf = capsule_segments(f[start:start + _FRAMES_PER_CHUNK])
        sl = capsule_segments(l[start:start + _FRAMES_PER_CHUNK])
        cf, cl = sf.mean(axis=-2), sl.mean(axis=-2)
        hf = 0.5 * np.linalg.norm(sf[..., 1, :] - sf[..., 0, :], axis=-1) + CAPSULE_RADII
        hl = 0.5 * np.linalg.norm(sl[..., 1, :] - sl[..., 0, :], axis=-1) + CAPSULE_RADII
        sphere_gap = np.linalg.norm(cf[:, :, None] - cl[:, None, :], axis=-1) - hf[:, :, None] - hl[:, None, :]
        t, i, j = np.nonzero(sphere_gap <= cutoff)
        if t.size:
            dist = segment_distance(sf[t, i, 0], sf[t, i, 1], sl[t, j, 0], sl[t, j, 1])
            out[start + t, i, j] = dist - radii_sum[i, j]
    return out
