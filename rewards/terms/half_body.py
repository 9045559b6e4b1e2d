"""Upper/lower body facing consistency (Bailando++, Siyao et al. 2023, eq. 22–23)."""
from __future__ import annotations

import numpy as np

from ..context import StepContext
from ..primitives import ground_forward, tolerance
from ..registry import RewardTerm, register

L_HIP, R_HIP, L_SHOULDER, R_SHOULDER = 1, 2, 16, 17


@register("half_body")
class HalfBodyTerm(RewardTerm):
    """Half-body consistency of the follower: its upper and lower body face the same way.

    n_u, n_l: ground-plane (x-z) normals of the shoulder line and of the hip line,
    n = (left − right) × up. Per frame c = ⟨n_u, n_l⟩ and, for the token's frames f::

        R = min_f tolerance(c_f, bounds=(0, 1), margin=1, sigmoid="linear", value_at_margin=0)
          = min_f (1 + min(c_f, 0))

    Bailando++ eq. 22–23 take the infimum over the token's frames of ⟨n_u, n_l⟩ when it is
    negative and 1 otherwise (range [−1, 1], with a jump at ⟨n_u, n_l⟩ = 0). This term is the
    continuous variant on dm_control's tolerance: 1 while the half bodies are within 90° of
    each other, falling linearly to 0 when they face opposite ways (= 1 + R_c for R_c < 0).

    Range: [0, 1].
    """

    range = (0.0, 1.0)

    def __init__(self):
        self.config = {}

    def compute(self, ctx: StepContext) -> np.ndarray:
        j = ctx.current(ctx.follower_joints)
        n_u = ground_forward(j[..., L_SHOULDER, :], j[..., R_SHOULDER, :])
        n_l = ground_forward(j[..., L_HIP, :], j[..., R_HIP, :])
        cos = (n_u * n_l).sum(-1)
        per_frame = tolerance(cos, bounds=(0.0, 1.0), margin=1.0, sigmoid="linear", value_at_margin=0.0)
        return per_frame.min(axis=1)
