"""Contact frequency and penetration rate of a duet, on the capsule proxy (:mod:`.capsules`).

Source: Duolando (Siyao et al. 2024) reports contact frequency from SMPL-X meshes inflated by
1 cm and intersected with torch-mesh-isect (GPU); it has no penetration metric. Here, on CPU:

    contact_freq = (1/T) Σ_t [ min_{i,j} gap_t(i, j) ≤ 1 cm ]
    penetration  = (1/T) Σ_t [ min_{(i,j) ∉ hold} gap_t(i, j) < −2 cm ]

``gap_t(i, j)`` = surface distance of follower capsule i and leader capsule j at frame t (negative
when they overlap). The 1 cm contact tolerance mirrors Duolando's 1 cm mesh inflation. The
2 cm penetration depth forgives the proxy's coarse radii.

Hold pairs, excluded from penetration because partner dancing puts one body part on the other
on purpose (hand in hand, hand on the partner's back or shoulder, forearm on the partner's arm):
a hand capsule with the partner's hand, forearm, upper-arm or torso capsules; a forearm capsule
with the partner's forearm, upper-arm or torso capsules (both orders) — in a closed ballroom hold
the leader's right forearm lies along the follower's back and her left forearm on his shoulder.

The mesh-based variant (SMPL-X model folder) is NOT implemented yet: passing ``model_path``
raises NotImplementedError.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_pair
from .capsules import CAPSULE_KINDS, NUM_CAPSULES, capsule_gaps

CONTACT_TOLERANCE = 0.01  # metres
PENETRATION_DEPTH = 0.02  # metres

_HOLD_KINDS = {
    ("hand", "hand"), ("hand", "forearm"), ("hand", "upper_arm"), ("hand", "torso"),
    ("forearm", "forearm"), ("forearm", "upper_arm"), ("forearm", "torso"),
}


def _hold_mask() -> np.ndarray:
    mask = np.zeros((NUM_CAPSULES, NUM_CAPSULES), bool)
    for i, ki in enumerate(CAPSULE_KINDS):
        for j, kj in enumerate(CAPSULE_KINDS):
            mask[i, j] = (ki, kj) in _HOLD_KINDS or (kj, ki) in _HOLD_KINDS
    return mask


HOLD_PAIRS: np.ndarray = _hold_mask()  # (C, C) follower capsule i × leader capsule j


def _no_mesh_yet(model_path) -> None:
    if model_path is not None:
        raise NotImplementedError(
            "mesh-based contact (SMPL-X model folder) is not implemented yet; "
            "call without model_path to use the capsule proxy"
        )


def contact_and_penetration_frames(follower_joints: np.ndarray, leader_joints: np.ndarray,
                                   contact_tolerance: float = CONTACT_TOLERANCE,
                                   penetration_depth: float = PENETRATION_DEPTH) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame booleans ``(T,)``: bodies touch; bodies interpenetrate outside hold pairs."""
    f, l = check_pair(follower_joints, leader_joints, min_frames=1)
    gaps = capsule_gaps(f, l, cutoff=max(contact_tolerance, 0.0))
    touching = gaps.min(axis=(1, 2)) <= contact_tolerance
    free = np.where(HOLD_PAIRS[None], np.inf, gaps)
    penetrating = free.min(axis=(1, 2)) < -penetration_depth
    return touching, penetrating


def contact_frequency(follower_joints: np.ndarray, leader_joints: np.ndarray,
                      tolerance: float = CONTACT_TOLERANCE, model_path=None) -> float:
    """Share of frames in which the two bodies touch (module docstring)."""
    _no_mesh_yet(model_path)
    return float(contact_and_penetration_frames(follower_joints, leader_joints, tolerance)[0].mean())


def penetration_rate(follower_joints: np.ndarray, leader_joints: np.ndarray,
                     depth: float = PENETRATION_DEPTH, model_path=None) -> float:
    """Share of frames in which the bodies overlap deeper than ``depth`` outside hold pairs."""
    _no_mesh_yet(model_path)
    return float(contact_and_penetration_frames(follower_joints, leader_joints, penetration_depth=depth)[1].mean())
