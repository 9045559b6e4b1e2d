"""Body overlap between the partners, on a capsule proxy of each body."""
from __future__ import annotations

import numpy as np

from ..context import StepContext
from ..primitives import pairwise_segment_distance, tolerance
from ..registry import RewardTerm, register

# (joint a, joint b, radius in metres): rough limb/torso capsules of an adult for the built-in
# skeleton (DESIGN.md: approximate). Hands run from the wrist to the middle finger's base.
CAPSULES: tuple[tuple[int, int, float], ...] = (
    (0, 9, 0.12),                     # pelvis -> spine3: lower torso and belly
    (9, 12, 0.11),                    # chest -> neck
    (12, 15, 0.09),                   # neck -> head
    (1, 4, 0.07), (2, 5, 0.07),       # thighs
    (4, 7, 0.05), (5, 8, 0.05),       # shins
    (7, 10, 0.04), (8, 11, 0.04),     # feet
    (16, 18, 0.045), (17, 19, 0.045),  # upper arms
    (18, 20, 0.035), (19, 21, 0.035),  # forearms
    (20, 28, 0.04), (21, 43, 0.04),   # hands
)
HAND_CAPSULES = (13, 14)
FOREARM_CAPSULES = (11, 12)
_A = np.array([c[0] for c in CAPSULES])
_B = np.array([c[1] for c in CAPSULES])
_R = np.array([c[2] for c in CAPSULES], np.float32)
_RADIUS_SUM = _R[:, None] + _R[None, :]
# Pairs allowed to touch in a hold: any pair involving a hand or forearm of either dancer (held
# hands, and the arm around the partner's back, press into the partner by design).
_HOLD_PAIR = np.zeros((len(CAPSULES), len(CAPSULES)), bool)
_HOLD_PAIR[HAND_CAPSULES + FOREARM_CAPSULES, :] = True
_HOLD_PAIR[:, HAND_CAPSULES + FOREARM_CAPSULES] = True


def penetration_depth(follower: np.ndarray, leader: np.ndarray, hold: np.ndarray) -> np.ndarray:
    """Deepest capsule overlap (metres, ≥ 0) per frame: joints ``(B, T, 55, 3)``, hold ``(B,)`` -> (B, T).

    depth = max over capsule pairs (i of the follower, j of the leader) of
    max(0, r_i + r_j − dist(segment_i, segment_j)); hand and forearm pairs are skipped where ``hold``.
    """
    dist = pairwise_segment_distance(follower[..., _A, :], follower[..., _B, :],
                                     leader[..., _A, :], leader[..., _B, :])  # (B, T, N, N)
    depth = np.maximum(_RADIUS_SUM - dist, 0.0)
    depth = np.where(hold[:, None, None, None] & _HOLD_PAIR, 0.0, depth)
    return depth.max(axis=(-2, -1))


@register("penetration")
class PenetrationTerm(RewardTerm):
    """Penalty for the partners' bodies overlapping (duet contact; capsule proxy).

    Each body is 15 capsules (torso, head, limbs, hands; :data:`CAPSULES`). Per frame, the
    deepest overlap of a follower capsule with a leader capsule::

        depth_f = max_{i, j} max(0, r_i + r_j − dist(seg_i, seg_j))
        R       = −mean_f (1 − tolerance(depth_f, bounds=(0, allowance), margin=scale, sigmoid="linear",
                                          value_at_margin=0))
                = −mean_f min(1, max(0, depth_f − allowance) / scale)

    over the token's frames; allowance = 0.02 m (touching: soft tissue gives and the capsules
    are approximate), scale = 0.10 m. Where a hold is expected, pairs involving a hand or a
    forearm are skipped (held hands, and the arm around the partner's back, touch by design).
    With a SMPL-X mesh a vertex-based test would be exact; the capsules are the built-in proxy.

    Range: [−1, 0] (0 when the bodies are apart).
    """

    range = (-1.0, 0.0)

    def __init__(self, scale: float = 0.10, allowance: float = 0.02):
        if not scale > 0 or not allowance >= 0:
            raise ValueError(f"penetration: need scale > 0 and allowance >= 0 metres; got {scale}, {allowance}")
        self.scale, self.allowance = float(scale), float(allowance)
        self.config = {"scale": self.scale, "allowance": self.allowance}

    def compute(self, ctx: StepContext) -> np.ndarray:
        depth = penetration_depth(ctx.current(ctx.follower_joints), ctx.current(ctx.leader_joints), ctx.hold_expected)
        free = tolerance(depth, (0.0, self.allowance), self.scale, "linear", 0.0)
        return -(1.0 - free).mean(axis=1)
