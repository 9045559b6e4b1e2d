"""Foot-slipping rate: how often a foot that is on the ground slides along it.

Source: the foot-skating / foot-slipping measures of motion generation (e.g. Duolando's slipping
rate; the skating ratio of GMD / Karunratanakul et al. 2023). Here, for the foot joints
(ankles 7/8, toe bases 10/11)::

    ground_k   = min over the clip and both sides of the height of joint kind k (ankle / toe)
    planted    = y_t − ground_k ≤ 5 cm
    sliding    = |v_t, horizontal| > 25 cm/s       (central differences, Δt = 1/30 s)
    slip_rate  = (1/T) Σ_t [ any foot joint is planted and sliding at frame t ]

Ankles and toes get their own ground level because the ankle joint sits ~6 cm above the toe
joint when the foot is flat. 25 cm/s is 0.83 cm per frame: slower drift reads as planted.
Thresholds use the TRUE frame time 1/30 s; a script using 1/60 s would double every speed.
"""
from __future__ import annotations

import numpy as np

from ..motion import FRAME_TIME
from ._checks import check_joints

FOOT_JOINTS = (7, 8, 10, 11)
CONTACT_HEIGHT = 0.05  # metres above the clip's lowest height of that joint kind
SLIP_SPEED = 0.25  # metres per second
MIN_FRAMES = 2


def slipping_frames(joints: np.ndarray, contact_height: float = CONTACT_HEIGHT,
                    slip_speed: float = SLIP_SPEED, frame_time: float = FRAME_TIME) -> np.ndarray:
    """Per-frame booleans ``(T,)``: some foot joint is planted yet sliding (module docstring)."""
    x = check_joints(joints, "joints", MIN_FRAMES)
    feet = x[:, list(FOOT_JOINTS)]  # (T, 4, 3): l_ankle, r_ankle, l_toe, r_toe
    heights = feet[..., 1]
    ground = np.concatenate([np.full(2, heights[:, :2].min()), np.full(2, heights[:, 2:].min())])
    planted = heights - ground <= contact_height
    vel = np.gradient(feet, frame_time, axis=0)
    sliding = np.hypot(vel[..., 0], vel[..., 2]) > slip_speed
    return np.any(planted & sliding, axis=1)


def foot_slip_rate(joints: np.ndarray, contact_height: float = CONTACT_HEIGHT,
                   slip_speed: float = SLIP_SPEED, frame_time: float = FRAME_TIME) -> float:
    """Share of frames with a planted foot joint sliding faster than ``slip_speed`` (module docstring)."""
    return float(slipping_frames(joints, contact_height, slip_speed, frame_time).mean())
