"""The 24-point body the solo metrics use: 22 SMPL-X body joints plus one point per hand.

Bailando/Duolando compute their features on 24 SMPL-style joints. From the 55 SMPL-X
joints we keep the 22 body joints (0..21: pelvis to wrists) and add, for each hand, the
mean of its 15 finger joints (left 25..39, right 40..54) — a hand centre, standing in for
SMPL's ``left_hand`` / ``right_hand`` joints (Duolando's metric code does the same).
"""
from __future__ import annotations

import numpy as np

NUM_BODY24 = 24
LEFT_FINGERS = slice(25, 40)
RIGHT_FINGERS = slice(40, 55)


def body24(joints: np.ndarray) -> np.ndarray:
    """``(T, 55, 3)`` SMPL-X joints -> ``(T, 24, 3)``: joints 0..21, left hand mean, right hand mean."""
    return np.concatenate(
        [
            joints[:, :22],
            joints[:, LEFT_FINGERS].mean(axis=1, keepdims=True),
            joints[:, RIGHT_FINGERS].mean(axis=1, keepdims=True),
        ],
        axis=1,
    )
