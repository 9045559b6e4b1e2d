"""Partner distance within the genre's human range."""
from __future__ import annotations

import numpy as np

from duet_env.jit import jit_enabled

from .. import kernels
from ..context import StepContext
from ..primitives import tolerance, tolerance_spec
from ..registry import RewardTerm, register


@register("distance")
class DistanceTerm(RewardTerm):
    """Pelvis-to-pelvis ground distance within ``distance_range`` (duet position).

    Per frame d_f = |(p_follower − p_leader)_xz| (pelvis, joint 0), and::

        R = mean_f tolerance(d_f, bounds=distance_range, margin=margin, sigmoid)

    over the token's frames; defaults margin = 0.5 m, gaussian, 0.1 at the margin (1 inside the
    range, 0.1 half a metre outside, ≈0 beyond a metre). The ranges come from
    :data:`duet_env.genres.GENRES` (e.g. Waltz 0.30–0.45 m, HipHop 0.90–1.50 m).

    Range: [0, 1].
    """

    range = (0.0, 1.0)

    def __init__(self, margin: float = 0.5, sigmoid: str = "gaussian"):
        tolerance(0.0, (0.0, 0.0), margin, sigmoid)
        self.margin, self.sigmoid = float(margin), sigmoid
        self.config = {"margin": self.margin, "sigmoid": sigmoid}

    def compute(self, ctx: StepContext) -> np.ndarray:
        if jit_enabled():  # the same value in one compiled call (rewards.kernels)
            _, _, margin, kind, k = tolerance_spec(0.0, 0.0, self.margin, self.sigmoid)
            return kernels.distance(ctx.follower_joints, ctx.leader_joints, ctx.distance_range, ctx.token_frames,
                                    margin, kind, k)
        delta = ctx.current(ctx.follower_joints)[..., 0, :] - ctx.current(ctx.leader_joints)[..., 0, :]
        d = np.hypot(delta[..., 0], delta[..., 2])
        lo, hi = ctx.distance_range[:, :1], ctx.distance_range[:, 1:]
        return tolerance(d, (lo, hi), self.margin, self.sigmoid).mean(axis=1)
