"""The floor under the decoded follower: no ankle or toe base below where the data's ever are.

Why. The decoded pelvis height (leader's pelvis + the ``transl`` stream's offset) and the lower
part's leg rotations are decoded separately, so their small errors add up at the feet: with the
tokenizer shipped on 2026-11-28 the reconstructed follower's ankles sank more than 5 mm below the
floor in 1–48 % of the frames of a SynthDuet test clip (deepest 2.8 cm), where the ground truth
never goes below it. A foot through the floor is the most visible error a duet can show, and it
moved the whole clip's foot lifts (the lift is measured from the lowest point: foot_lift_err_cm
1.59 cm with the dips, 0.69 without; TOKENIZER_CARD.md).

The constraint, per frame t, with the four floor joints j (ankles, toe bases;
``conventions.FOOT_JOINTS``), their heights y_j(t) and the floor heights f_j::

    lift(t) = max(0, max_j (f_j − y_j(t)))
    pelvis(t) += lift(t) · up,   every joint(t) += lift(t) · up

The whole body moves up; rotations are untouched, so the joints stay the forward kinematics of
the rotations and the lifted pelvis (one motion: the SMPL-X export's ``transl`` is the lifted
pelvis). It is per frame: no latency, and streaming equals whole-sequence decoding. Frames whose
feet are on or above the floor are unchanged. A hard clamp (the velocity has a kink where a foot
lands) was measured against a rate-limited release (the lift decays by at most 0.5 or 1 mm a
frame): the release lowered the jerk ratio (1.22 → 1.18–1.19) and raised recon_FID_k
(10.04 → 10.3–10.7), so the clamp ships.

f_j is a property of the data the tokenizer was trained on (SynthDuet's floor is y = 0, with the
ankle joint 7.5 cm and the toe base 1.7 cm above it when the foot is flat; a DD100 capture has its
own): training measures it (:func:`floor_heights`, both dancers of the train split, ankles and
toe bases pooled left with right, the :data:`FLOOR_QUANTILE` quantile so a rare capture glitch
does not set it) and stores it in the lower part's checkpoint config as ``floor``. A checkpoint
without the key decodes without a floor, as before.

Departure: Bailando, Duolando and E3D2 decode without any floor; this is a contact constraint
in the spirit of the foot-contact post-processing common in motion synthesis, kept minimal
(a vertical shift only, never a change of pose).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from ..conventions import FOOT_JOINTS

UP_AXIS = 1  # y is up (duet_env.conventions)
FLOOR_QUANTILE = 1e-3
_FOOT_INDEX = torch.tensor(FOOT_JOINTS)


def floor_heights(joint_arrays) -> list[float]:
    """The floor heights ``[f_left_ankle, f_right_ankle, f_left_toe, f_right_toe]`` (m) of
    motions ``(T, 55, 3)``: the :data:`FLOOR_QUANTILE` quantile of all ankle heights (left and
    right pooled; the same for both) and of all toe-base heights."""
    heights = [np.asarray(j, np.float64)[:, list(FOOT_JOINTS), UP_AXIS] for j in joint_arrays]
    if not heights:
        raise ValueError("floor_heights needs at least one motion")
    y = np.concatenate(heights)
    ankle = float(np.quantile(y[:, :2], FLOOR_QUANTILE))
    toe = float(np.quantile(y[:, 2:], FLOOR_QUANTILE))
    return [ankle, ankle, toe, toe]


def check_floor(value) -> list[float] | None:
    """A config's ``floor``: None, or four finite heights in metres (FOOT_JOINTS order); else a clear error."""
    if value is None:
        return None
    ok = (isinstance(value, (list, tuple)) and len(value) == len(FOOT_JOINTS)
          and all(isinstance(v, numbers.Real) and np.isfinite(v) for v in value))
    if not ok:
        raise ValueError(f"floor must be None or {len(FOOT_JOINTS)} finite heights in metres "
                         f"(left/right ankle, left/right toe base); got {value!r}")
    return [float(v) for v in value]


def lift_onto_floor(joints: torch.Tensor, pelvis: torch.Tensor, floor: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Joints ``(..., 55, 3)`` and pelvis ``(..., 3)`` moved up by lift(t) (module docstring);
    ``floor`` ``(4,)`` on their device and dtype."""
    feet = joints.index_select(-2, _FOOT_INDEX.to(joints.device))[..., UP_AXIS]  # (..., 4)
    lift = (floor - feet).amax(-1, keepdim=True).clamp_min(0.0)  # (..., 1)
    up = torch.nn.functional.pad(lift, (UP_AXIS, 2 - UP_AXIS))  # (..., 3) = (0, lift, 0): no constant built per step
    return joints + up.unsqueeze(-2), pelvis + up
