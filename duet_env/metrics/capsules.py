"""The capsule proxy of the body as the contact and penetration metrics use it.

The body model itself — capsule table, radii and their reasoning, the hand-hold pair rule and
the batched segment distance (Ericson, *Real-Time Collision Detection*, §5.1.9) — is
:mod:`duet_env.capsules`, shared with the ``penetration`` reward term and the SynthDuet checks
so that all three measure the same overlap. Used when no SMPL-X mesh is available (Duolando
measures contact on SMPL-X meshes with torch-mesh-isect on GPU; this is the CPU stand-in).
"""
from __future__ import annotations

import numpy as np

from .. import capsules as _capsules
from ..capsules import CAPSULE_KINDS, CAPSULE_NAMES, CAPSULE_RADII, NUM_CAPSULES, capsule_segments, segment_distance
from ._checks import check_pair

__all__ = ["CAPSULE_KINDS", "CAPSULE_NAMES", "CAPSULE_RADII", "NUM_CAPSULES", "capsule_gaps",
           "capsule_segments", "segment_distance"]


def capsule_gaps(follower_joints: np.ndarray, leader_joints: np.ndarray) -> np.ndarray:
    """Surface distances ``(T, C, C)`` between follower capsule i and leader capsule j (m; < 0 = overlap).

    Validates the pair (``(T, 55, 3)`` each, finite, the same length) and calls
    :func:`duet_env.capsules.capsule_gaps`.
    """
    f, l = check_pair(follower_joints, leader_joints, min_frames=1)
    return _capsules.capsule_gaps(f, l)
