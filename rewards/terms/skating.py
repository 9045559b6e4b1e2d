"""Anti-skating: the follower's root moves as its legs say it should (Duolando reward)."""
from __future__ import annotations

import numpy as np

from duet_env.conventions import FOOT_JOINTS
from duet_env.jit import jit_enabled

from .. import kernels
from ..context import StepContext
from ..primitives import tolerance, tolerance_spec
from ..registry import RewardTerm, register


@register("skating")
class SkatingTerm(RewardTerm):
    """Root-velocity agreement (Duolando, Siyao et al. 2024, RL reward; foot-sliding fallback).

    **With a prediction** (``follower_root_velocity_pred``, metres/frame): the lower-body
    decoder's predicted root velocity v̂_f should match the actual pelvis displacement
    v_f = p_f − p_{f−1} of the token's frames (the translation comes from the translation
    stream, so a mismatch means the feet skate)::

        e_f = |v̂_f − v_f|                                                  (metres / frame)
        R   = mean_f tolerance(e_f, bounds=(0, 0.03), margin=0.03, sigmoid="linear", value_at_margin=0)

    i.e. 1 within Duolando's ±3 cm/frame, falling linearly to 0 at 6 cm/frame (Duolando's
    reward is the binary ±1 version of the same test).

    **Without a prediction**: planted-foot sliding. Ground height g = the lowest foot joint
    (ankles, toes) over the context window; a foot joint is planted at frame f when it is within
    ``contact_height`` (5 cm) of g at frames f−1 and f; its slide is its ground-plane
    displacement. Per frame s_f = max slide over planted joints (0 if none)::

        R = mean_f tolerance(s_f, bounds=(0, 0.005), margin=0.02, sigmoid="linear", value_at_margin=0)

    (1 up to 0.5 cm/frame = 15 cm/s of slide, 0 at 2.5 cm/frame).

    Range: [0, 1].
    """

    range = (0.0, 1.0)

    def __init__(self, root_tolerance: float = 0.03, root_margin: float = 0.03, slide_tolerance: float = 0.005,
                 slide_margin: float = 0.02, contact_height: float = 0.05):
        for k, v in dict(root_tolerance=root_tolerance, root_margin=root_margin, slide_tolerance=slide_tolerance,
                         slide_margin=slide_margin, contact_height=contact_height).items():
            if not v >= 0:
                raise ValueError(f"skating: {k} must be >= 0; got {v}")
        self.root_tolerance, self.root_margin = float(root_tolerance), float(root_margin)
        self.slide_tolerance, self.slide_margin = float(slide_tolerance), float(slide_margin)
        self.contact_height = float(contact_height)
        self.config = {"root_tolerance": self.root_tolerance, "root_margin": self.root_margin,
                       "slide_tolerance": self.slide_tolerance, "slide_margin": self.slide_margin,
                       "contact_height": self.contact_height}

    def compute(self, ctx: StepContext) -> np.ndarray:
        k = ctx.token_frames
        if ctx.follower_root_velocity_pred is not None and jit_enabled():  # one compiled call, same value
            return kernels.root_velocity(ctx.follower_joints, ctx.follower_root_velocity_pred, k,
                                         *tolerance_spec(0.0, self.root_tolerance, self.root_margin, "linear", 0.0))
        if ctx.follower_root_velocity_pred is not None:
            pelvis = ctx.follower_joints[:, -k - 1:, 0, :]
            actual = np.diff(pelvis, axis=1)  # (B, k, 3) metres/frame
            err = np.linalg.norm(ctx.follower_root_velocity_pred - actual, axis=-1)
            return tolerance(err, (0.0, self.root_tolerance), self.root_margin, "linear", 0.0).mean(axis=1)
        return self.foot_slide_score(ctx)

    def foot_slide_score(self, ctx: StepContext) -> np.ndarray:
        k = ctx.token_frames
        feet = ctx.follower_joints[:, :, FOOT_JOINTS, :]  # (B, F, 4, 3)
        ground = feet[..., 1].min(axis=(1, 2))  # (B,)
        recent = feet[:, -k - 1:]  # the token's frames and the one before
        low = recent[..., 1] - ground[:, None, None] <= self.contact_height  # (B, k+1, 4)
        planted = low[:, 1:] & low[:, :-1]
        step = np.diff(recent, axis=1)
        slide = np.hypot(step[..., 0], step[..., 2])
        s = np.where(planted, slide, 0.0).max(axis=-1)  # (B, k)
        return tolerance(s, (0.0, self.slide_tolerance), self.slide_margin, "linear", 0.0).mean(axis=1)
