"""The motion representation the tokenizer encodes and decodes (shared by training and run time).

Every pose is expressed in the **leader's heading frame** of the same frame (duet_env.tokens):
with ``f_t = heading_from_joints(leader_t)`` and ``H_t`` the yaw that turns ``f_t`` to +z,

* body parts ("lower", "upper"): ``H_t (p_j − p_pelvis)`` for the part's joints, flattened;
  the lower part adds three channels ``VEL_SCALE · H_t v_pelvis`` (pelvis velocity, m/s,
  backward difference with v_0 = v_1) — the input of the root-velocity branch;
* hands: ``HAND_SCALE · H_t (p_finger − p_wrist)`` (fingers relative to their wrist, ×10 as in
  Duolando, so finger offsets have the size of body offsets);
* translation: ``TRANSL_SCALE · H_t (p_pelvis^follower − p_pelvis^leader)``
  (duet_env.motion.relative_translation);
* rotation targets: the SMPL-X local rotations of the part's joints, with the root rotation
  expressed in the leader's heading frame, ``Ry(−yaw_t) R_0``.

Decoding inverts this: :func:`compose_joints` puts the decoded root-relative body joints, the
wrist-relative fingers (added to the decoded wrists) and the global pelvis back into the world.
"""
from __future__ import annotations

import torch

from .. import motion, skeleton

PARTS: tuple[str, ...] = ("upper", "lower", "lhand", "rhand")  # stream order up, down, lhand, rhand
HAND_SCALE = 10.0
VEL_SCALE = 0.1
TRANSL_SCALE = 1.0
WRIST = {"lhand": 20, "rhand": 21}
ROOT_VEL_CHANNELS = 3  # extra channels of the lower part

PART_JOINTS: dict[str, tuple[int, ...]] = {p: skeleton.BODY_PARTS[p] for p in PARTS}


def input_dim(part: str) -> int:
    """Channels of a part's encoder input (and of its position decoder's output)."""
    if part == "transl":
        return 3
    n = 3 * len(PART_JOINTS[part])
    return n + ROOT_VEL_CHANNELS if part == "lower" else n


def rot_joints(part: str) -> int:
    """Number of joints whose local rotation the part's rotation decoder predicts (0: none)."""
    return 0 if part == "transl" else len(PART_JOINTS[part])


def pelvis_velocity(pelvis: torch.Tensor) -> torch.Tensor:
    """Backward-difference velocity (m/s) along the time axis −2 of ``(..., T, 3)``; v_0 = v_1."""
    v = (pelvis[..., 1:, :] - pelvis[..., :-1, :]) * motion.FPS
    return torch.cat([v[..., :1, :], v], dim=-2)


def pose_features(joints: torch.Tensor, leader_forward: torch.Tensor) -> dict[str, torch.Tensor]:
    """Encoder inputs ``{part: (..., T, input_dim(part))}`` of one dancer's joints ``(..., T, 55, 3)``."""
    f = leader_forward.unsqueeze(-2)
    rel = motion.to_heading_frame(joints - joints[..., :1, :], f)
    vel = motion.to_heading_frame(pelvis_velocity(joints[..., 0, :]), leader_forward)
    out = {}
    for part in PARTS:
        idx = list(PART_JOINTS[part])
        if part in WRIST:
            x = (rel[..., idx, :] - rel[..., WRIST[part]:WRIST[part] + 1, :]) * HAND_SCALE
        else:
            x = rel[..., idx, :]
        x = x.flatten(-2)
        if part == "lower":
            x = torch.cat([x, vel * VEL_SCALE], dim=-1)
        out[part] = x
    return out


def transl_features(follower_joints: torch.Tensor, leader_joints: torch.Tensor,
                    leader_forward: torch.Tensor) -> torch.Tensor:
    """Relative translation ``(..., T, 3)`` (follower − leader pelvis in the leader's heading frame)."""
    return TRANSL_SCALE * motion.relative_translation(follower_joints[..., 0, :], leader_joints[..., 0, :],
                                                      leader_forward)


def yaw_matrix(forward: torch.Tensor) -> torch.Tensor:
    """``Ry(yaw)`` ``(..., 3, 3)`` of unit ground-plane directions: cos = f_z, sin = f_x."""
    c, s = forward[..., 2], forward[..., 0]
    z, o = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*c.shape, 3, 3)


def rotation_targets(poses: torch.Tensor, leader_forward: torch.Tensor) -> torch.Tensor:
    """Local rotations ``(..., T, 55, 3, 3)`` from axis-angle ``(..., T, 165)``; root in the leader frame."""
    rot = motion.axis_angle_to_matrix(poses.reshape(*poses.shape[:-1], skeleton.NUM_JOINTS, 3))
    root = yaw_matrix(leader_forward).transpose(-1, -2) @ rot[..., 0, :, :]
    return torch.cat([root.unsqueeze(-3), rot[..., 1:, :, :]], dim=-3)


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6-D rotation (first two matrix columns, Zhou et al. CVPR 2019) -> ``(..., 3, 3)`` by Gram–Schmidt."""
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(r: torch.Tensor) -> torch.Tensor:
    return torch.cat([r[..., :, 0], r[..., :, 1]], dim=-1)


# Joint order of cat(lower, upper) body joints -> SMPL-X order 0..24, and of all four parts -> 0..54.
_BODY_ORDER = list(PART_JOINTS["lower"]) + list(PART_JOINTS["upper"])
BODY_GATHER = torch.tensor([_BODY_ORDER.index(j) for j in range(25)])
_ALL_ORDER = list(PART_JOINTS["upper"]) + list(PART_JOINTS["lower"]) + list(PART_JOINTS["lhand"]) + list(PART_JOINTS["rhand"])
ALL_GATHER = torch.tensor([_ALL_ORDER.index(j) for j in range(skeleton.NUM_JOINTS)])


def compose_joints(pos: dict[str, torch.Tensor], leader_forward: torch.Tensor, pelvis: torch.Tensor) -> torch.Tensor:
    """World joints ``(..., T, 55, 3)`` from decoded part positions (as :func:`pose_features`).

    Body joints come from the lower+upper position decoders (root-relative; the decoded pelvis
    offset is ignored: the pelvis is the origin by construction), fingers are the hand decoders'
    wrist offsets / HAND_SCALE added to the *decoded* wrists; the result is rotated back by the
    leader's yaw and placed at the world ``pelvis`` ``(..., T, 3)``.
    """
    lower = pos["lower"][..., : 3 * len(PART_JOINTS["lower"])].unflatten(-1, (-1, 3))
    lower = torch.cat([torch.zeros_like(lower[..., :1, :]), lower[..., 1:, :]], dim=-2)
    upper = pos["upper"].unflatten(-1, (-1, 3))
    body = torch.cat([lower, upper], dim=-2).index_select(-2, BODY_GATHER.to(lower.device))
    lh = pos["lhand"].unflatten(-1, (-1, 3)) / HAND_SCALE + body[..., WRIST["lhand"]:WRIST["lhand"] + 1, :]
    rh = pos["rhand"].unflatten(-1, (-1, 3)) / HAND_SCALE + body[..., WRIST["rhand"]:WRIST["rhand"] + 1, :]
    rel = torch.cat([body, lh, rh], dim=-2)
    return motion.from_heading_frame(rel, leader_forward.unsqueeze(-2)) + pelvis.unsqueeze(-2)


def compose_rotations(rot: dict[str, torch.Tensor], leader_forward: torch.Tensor) -> torch.Tensor:
    """Local rotations ``(..., T, 55, 3, 3)`` from per-part rotation matrices; root back in the world."""
    allr = torch.cat([rot[p] for p in PARTS], dim=-3).index_select(-3, ALL_GATHER.to(leader_forward.device))
    root = yaw_matrix(leader_forward) @ allr[..., 0, :, :]
    return torch.cat([root.unsqueeze(-3), allr[..., 1:, :, :]], dim=-3)
