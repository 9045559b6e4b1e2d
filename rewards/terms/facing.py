"""Partner orientation: the follower's heading relative to the leader's."""
from __future__ import annotations

import numpy as np

from duet_env.jit import jit_enabled

from .. import kernels
from ..context import StepContext
from ..primitives import tolerance, tolerance_spec, wrap_angle
from ..registry import RewardTerm, register


@register("facing")
class FacingTerm(RewardTerm):
    """The follower keeps the genre's expected orientation to the leader (duet orientation).

    Per frame, with yaw ψ of each dancer from :func:`duet_env.motion.heading_from_joints`'s
    convention (hip and shoulder lines) and the expected relative heading φ* (``facing_expected``:
    π face to face, 0 same direction)::

        e_f = |wrap(ψ_follower − ψ_leader − φ*)|          (radians, in [0, π])
        R   = mean_f tolerance(e_f, bounds=(0, tol), margin=margin, sigmoid)

    over the token's frames; defaults tol = 15°, margin = 60°, gaussian with value 0.1 at the
    margin (so 1 within 15°, 0.1 at 75°, ≈0 facing the wrong way).

    Range: [0, 1].
    """

    range = (0.0, 1.0)

    def __init__(self, tolerance_deg: float = 15.0, margin_deg: float = 60.0, sigmoid: str = "gaussian"):
        self.tol, self.margin, self.sigmoid = np.deg2rad(tolerance_deg), np.deg2rad(margin_deg), sigmoid
        tolerance(0.0, (0.0, self.tol), self.margin, sigmoid)  # validate the options now, not at the first step
        self.config = {"tolerance_deg": float(tolerance_deg), "margin_deg": float(margin_deg), "sigmoid": sigmoid}

    def compute(self, ctx: StepContext) -> np.ndarray:
        if jit_enabled():  # the same value in one compiled call (rewards.kernels)
            return kernels.facing(ctx.follower_joints, ctx.leader_joints, ctx.facing_expected, ctx.token_frames,
                                  *tolerance_spec(0.0, self.tol, self.margin, self.sigmoid))
        psi_f, psi_l = ctx.shared.follower_heading, ctx.shared.leader_heading
        err = np.abs(wrap_angle(psi_f - psi_l - ctx.facing_expected[:, None]))
        return tolerance(err, (0.0, self.tol), self.margin, self.sigmoid).mean(axis=1)
