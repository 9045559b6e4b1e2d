"""Body overlap between the partners, on the shared capsule proxy (:mod:`duet_env.capsules`)."""
from __future__ import annotations

import numpy as np

from duet_env.capsules import CAPSULES, PENETRATION_ALLOWANCE, deepest_overlap, hold_pair_mask, last_frames_overlap
from duet_env.jit import jit_enabled

from .. import kernels
from ..context import StepContext
from ..primitives import tolerance, tolerance_spec
from ..registry import RewardTerm, register

__all__ = ["CAPSULES", "PenetrationTerm", "penetration_depth"]

# The env knows only whether a hold is expected, not which: excuse the closed hold's pairs (the
# wider set), so a ballroom frame's arm on the partner's back is never penalised.
_HOLD_PAIRS = hold_pair_mask("closed")


def penetration_depth(follower: np.ndarray, leader: np.ndarray, hold: np.ndarray) -> np.ndarray:
    """Deepest capsule overlap (metres, ≥ 0) per frame: joints ``(B, T, 55, 3)``, hold ``(B,)`` -> (B, T).

    depth = max over capsule pairs (i of the follower, j of the leader) of
    max(0, r_i + r_j − dist(segment_i, segment_j)); where ``hold``, the closed-hold pairs of
    :func:`duet_env.capsules.hold_pair_mask` are skipped.
    """
    return deepest_overlap(follower, leader, hold_excused(hold))


def hold_excused(hold: np.ndarray) -> np.ndarray:
    """``(B, 1, C, C)`` bool: the closed-hold pairs where ``hold`` ``(B,)``, nothing elsewhere."""
    return np.asarray(hold, bool)[:, None, None, None] & _HOLD_PAIRS


@register("penetration")
class PenetrationTerm(RewardTerm):
    """Penalty for the partners' bodies overlapping (duet contact; capsule proxy).

    Each body is the 18 capsules of :data:`duet_env.capsules.CAPSULES` (torso, head, limbs,
    hands), the same proxy as the penetration metric and the SynthDuet checks. Per frame, the
    deepest overlap of a follower capsule with a leader capsule::

        depth_f = max_{i, j} max(0, r_i + r_j − dist(seg_i, seg_j))
        R       = −mean_f (1 − tolerance(depth_f, bounds=(0, allowance), margin=scale, sigmoid="linear",
                                          value_at_margin=0))
                = −mean_f min(1, max(0, depth_f − allowance) / scale)

    over the token's frames; allowance = 0.02 m (:data:`duet_env.capsules.PENETRATION_ALLOWANCE`:
    soft tissue gives and the capsules are approximate; the metric counts a frame as penetrating
    exactly where this term starts to penalise it), scale = 0.10 m. Where a hold is expected, the
    pairs a closed hold puts together (hands and forearms on the partner's arms, torso and neck,
    upper arm on upper arm and torso; :func:`duet_env.capsules.hold_pair_mask`) are skipped.
    With a SMPL-X mesh a vertex-based test would be exact; the capsules are the built-in proxy.

    Range: [−1, 0] (0 when the bodies are apart).
    """

    range = (-1.0, 0.0)

    def __init__(self, scale: float = 0.10, allowance: float = PENETRATION_ALLOWANCE):
        if not scale > 0 or not allowance >= 0:
            raise ValueError(f"penetration: need scale > 0 and allowance >= 0 metres; got {scale}, {allowance}")
        self.scale, self.allowance = float(scale), float(allowance)
        self.config = {"scale": self.scale, "allowance": self.allowance}

    def compute(self, ctx: StepContext) -> np.ndarray:
        if jit_enabled():  # the same value in two compiled calls (duet_env.capsules, rewards.kernels)
            depth = last_frames_overlap(ctx.follower_joints, ctx.leader_joints, ctx.hold_expected, _HOLD_PAIRS,
                                        ctx.token_frames)
            return kernels.overlap_penalty(depth, *tolerance_spec(0.0, self.allowance, self.scale, "linear", 0.0))
        # deepest_overlap tests only the capsule pairs that can touch (equal to the full table of
        # ctx.shared.capsule_gaps, several times faster); shared in case another term wants it.
        depth = ctx.shared.cached("penetration_depth", lambda c: penetration_depth(
            c.current(c.follower_joints), c.current(c.leader_joints), c.hold_expected))
        free = tolerance(depth, (0.0, self.allowance), self.scale, "linear", 0.0)
        return -(1.0 - free).mean(axis=1)
