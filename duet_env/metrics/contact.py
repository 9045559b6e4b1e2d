"""Contact frequency and penetration rate of a duet, on the shared capsule proxy (:mod:`duet_env.capsules`).

Source: Duolando (Siyao et al. 2024) reports contact frequency from SMPL-X meshes of both
dancers, each inflated by 1 cm and intersected with torch-mesh-isect (GPU): two surfaces count
as in contact up to a 2 cm gap. It has no penetration metric. Here, on CPU:

    contact_freq = (1/T) Σ_t [ min_{i,j} gap_t(i, j) ≤ 1 cm ]
    penetration  = (1/T) Σ_t [ min_{(i,j) ∉ hold} gap_t(i, j) < −2 cm ]

``gap_t(i, j)`` = surface distance of follower capsule i and leader capsule j at frame t (negative
when they overlap). Departure: our 1 cm contact tolerance is half of Duolando's 2 cm gap (1 cm
inflation of each mesh), and capsules are not meshes (docs/metrics.md). The
2 cm penetration depth is :data:`duet_env.capsules.PENETRATION_ALLOWANCE`, the same allowance the
``penetration`` reward term and the SynthDuet checks use: it forgives soft tissue and the proxy's
round capsules.

Hold pairs, excluded from penetration because partner dancing puts one body part on the other
on purpose: :func:`duet_env.capsules.hold_pair_mask`. A metric sees no genre, so by default it
excuses the pairs of a ``"closed"`` hold (the widest set: hands and forearms on the partner's
arms, torso and neck, upper arm on upper arm and on torso) for every duet; pass ``hold=None``
or ``"open"`` to be stricter. Legs, feet, heads and torso on torso always count.

The mesh-based variant (SMPL-X model folder) is NOT implemented yet: passing ``model_path``
raises NotImplementedError.
"""
from __future__ import annotations

import numpy as np

from ..capsules import PENETRATION_ALLOWANCE, hold_pair_mask, overlap_depth
from ._checks import check_pair
from .capsules import capsule_gaps

CONTACT_TOLERANCE = 0.01  # metres
PENETRATION_DEPTH = PENETRATION_ALLOWANCE  # metres
DEFAULT_HOLD = "closed"


def _no_mesh_yet(model_path) -> None:
    if model_path is not None:
        raise NotImplementedError(
            "mesh-based contact (SMPL-X model folder) is not implemented yet; "
            "call without model_path to use the capsule proxy"
        )


def contact_and_penetration_frames(follower_joints: np.ndarray, leader_joints: np.ndarray,
                                   contact_tolerance: float = CONTACT_TOLERANCE,
                                   penetration_depth: float = PENETRATION_DEPTH,
                                   hold: str | None = DEFAULT_HOLD) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame booleans ``(T,)``: bodies touch; bodies interpenetrate outside ``hold`` pairs."""
    f, l = check_pair(follower_joints, leader_joints, min_frames=1)
    gaps = capsule_gaps(f, l)
    touching = gaps.min(axis=(1, 2)) <= contact_tolerance
    penetrating = overlap_depth(gaps, hold_pair_mask(hold)) > penetration_depth
    return touching, penetrating


def contact_frequency(follower_joints: np.ndarray, leader_joints: np.ndarray,
                      tolerance: float = CONTACT_TOLERANCE, model_path=None) -> float:
    """Share of frames in which the two bodies touch (module docstring)."""
    _no_mesh_yet(model_path)
    return float(contact_and_penetration_frames(follower_joints, leader_joints, tolerance)[0].mean())


def penetration_rate(follower_joints: np.ndarray, leader_joints: np.ndarray,
                     depth: float = PENETRATION_DEPTH, model_path=None, hold: str | None = DEFAULT_HOLD) -> float:
    """Share of frames in which the bodies overlap deeper than ``depth`` outside ``hold`` pairs."""
    _no_mesh_yet(model_path)
    return float(contact_and_penetration_frames(follower_joints, leader_joints, penetration_depth=depth,
                                                hold=hold)[1].mean())
