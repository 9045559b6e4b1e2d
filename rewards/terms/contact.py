"""Hand hold: the partners' hands meet where the genre dances in hold."""
from __future__ import annotations

import numpy as np

from duet_env.jit import jit_enabled

from .. import kernels
from ..context import StepContext
from ..primitives import tolerance, tolerance_spec
from ..registry import RewardTerm, register

# Palm centre = mean of the wrist and the first joints of index, middle, pinky and ring fingers.
LEFT_PALM = (20, 25, 28, 31, 34)
RIGHT_PALM = (21, 40, 43, 46, 49)
_LEFT, _RIGHT = np.array(LEFT_PALM), np.array(RIGHT_PALM)


def palms(joints: np.ndarray) -> np.ndarray:
    """Palm centres ``(..., 2, 3)`` (left, right) of joints ``(..., 55, 3)``."""
    return np.stack([joints[..., LEFT_PALM, :].mean(-2), joints[..., RIGHT_PALM, :].mean(-2)], axis=-2)


@register("contact")
class ContactTerm(RewardTerm):
    """Hand contact with the partner where a hold is expected (duet contact).

    Per frame, the closest pair of palm centres (follower left/right × leader left/right)::

        d_f = min_{h ∈ follower hands, g ∈ leader hands} |palm_h − palm_g|
        R   = mean_f tolerance(d_f, bounds=(0, hold), margin=margin, sigmoid)   if hold_expected
        R   = neutral                                                          otherwise

    over the token's frames; defaults hold = 0.10 m (palms of clasped hands are a few cm
    apart), margin = 0.15 m, gaussian with 0.1 at the margin (≈0 at 50 cm); neutral = 0, so
    the term adds nothing in genres danced apart.

    Range: [0, 1] (``neutral`` must lie in it).
    """

    range = (0.0, 1.0)

    def __init__(self, hold: float = 0.10, margin: float = 0.15, sigmoid: str = "gaussian", neutral: float = 0.0):
        tolerance(0.0, (0.0, hold), margin, sigmoid)
        if not 0.0 <= neutral <= 1.0:
            raise ValueError(f"contact: neutral must be in [0, 1]; got {neutral}")
        self.hold, self.margin, self.sigmoid, self.neutral = float(hold), float(margin), sigmoid, float(neutral)
        self.config = {"hold": self.hold, "margin": self.margin, "sigmoid": sigmoid, "neutral": self.neutral}

    def compute(self, ctx: StepContext) -> np.ndarray:
        if jit_enabled():  # the same value in one compiled call (rewards.kernels)
            return kernels.contact(ctx.follower_joints, ctx.leader_joints, ctx.hold_expected, ctx.token_frames,
                                   _LEFT, _RIGHT, self.neutral, *tolerance_spec(0.0, self.hold, self.margin,
                                                                                self.sigmoid))
        pf, pl = ctx.shared.follower_palms, ctx.shared.leader_palms  # (B, 4, 2, 3) each
        d = np.linalg.norm(pf[..., :, None, :] - pl[..., None, :, :], axis=-1).min(axis=(-2, -1))
        score = tolerance(d, (0.0, self.hold), self.margin, self.sigmoid).mean(axis=1)
        return np.where(ctx.hold_expected, score, self.neutral)
