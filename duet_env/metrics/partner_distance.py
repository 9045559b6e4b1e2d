"""Cross-dancer distance feature (100-d) behind FID_cd and Div_cd.

Source: Duolando (Siyao et al. 2024), the duet metrics: for ten key joints of each dancer
(SMPL-X 0 pelvis, 7/8 ankles, 10/11 feet, 15 head, 16/17 shoulders, 20/21 wrists)::

    cd[i, j] = (1/T) Σ_t | follower_t[k_i] − leader_t[k_j] |        (metres)

flattened row-major (follower joint i, leader joint j) into a 100-d vector per clip.
"""
from __future__ import annotations

import numpy as np

from ..conventions import joints
from ._checks import check_pair

KEY_JOINTS = joints("pelvis", "left_ankle", "right_ankle", "left_foot", "right_foot", "head",
                    "left_shoulder", "right_shoulder", "left_wrist", "right_wrist")
PARTNER_DIM = len(KEY_JOINTS) ** 2


def partner_distance_features(follower_joints: np.ndarray, leader_joints: np.ndarray) -> np.ndarray:
    """100-d vector of time-averaged follower-to-leader key-joint distances (module docstring)."""
    f, l = check_pair(follower_joints, leader_joints, min_frames=1)
    keys = list(KEY_JOINTS)
    dist = np.linalg.norm(f[:, keys, None, :] - l[:, None, keys, :], axis=-1)  # (T, 10, 10)
    return dist.mean(axis=0).reshape(PARTNER_DIM)
