"""The 24-point body the solo metrics use: 22 SMPL-X body joints plus one point per hand.

Bailando/Duolando compute their features on 24 SMPL-style joints. From the 55 SMPL-X
joints we keep the 22 body joints (pelvis to wrists, :data:`duet_env.conventions.BODY_JOINTS`)
and add, for each hand, the mean of its 15 finger joints (:data:`~duet_env.conventions.PART_JOINTS`
``lhand`` / ``rhand``) — a hand centre, standing in for SMPL's ``left_hand`` / ``right_hand``
joints.

Departure from the reference code: Duolando's metric script (lisiyao21/Duolando, metrics)
takes the mean of the five *first knuckles* (index1, middle1, pinky1, ring1, thumb1) of each
hand, a point nearer the wrist than ours; docs/metrics.md lists this with the other departures.
"""
from __future__ import annotations

import numpy as np

from ..conventions import BODY_JOINTS, PART_JOINTS



def _span(indices: tuple[int, ...]) -> slice:
    assert indices == tuple(range(indices[0], indices[-1] + 1))  # contiguous: index with a view
    return slice(indices[0], indices[-1] + 1)


LEFT_FINGERS = _span(PART_JOINTS["lhand"])
RIGHT_FINGERS = _span(PART_JOINTS["rhand"])
_BODY = _span(BODY_JOINTS)


def body24(joints: np.ndarray) -> np.ndarray:
    """``(T, 55, 3)`` SMPL-X joints -> ``(T, 24, 3)``: joints 0..21, left hand mean, right hand mean."""
    return np.concatenate(
        [
            joints[:, _BODY],
            joints[:, LEFT_FINGERS].mean(axis=1, keepdims=True),
            joints[:, RIGHT_FINGERS].mean(axis=1, keepdims=True),
        ],
        axis=1,
    )
