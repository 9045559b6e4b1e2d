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

The decoders write rotations (6-D, Zhou et al. 2019) of each part's joints, plus the pelvis
velocity (lower part) and the relative translation; :func:`compose_rotations` puts the parts'
rotations together with the root back in the world, and the body's joints are forward
kinematics of those rotations (duet_env.skeleton) — positions are never decoded directly.
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


def pelvis_velocity(pelvis: torch.Tensor) -> torch.Tensor:
    """Backward-difference velocity (m/s) along the time axis −2 of ``(..., T, 3)``; v_0 = v_1."""
    v = (pelvis[..., 1:, :] - pelvis[..., :-1, :]) * motion.FPS
    return torch.cat([v[..., :1, :], v], dim=-2)


def output_dim(stream: str) -> int:
    """Channels the stream's decoder writes per frame: 6-D rotations of the part's joints (+ the
    pelvis velocity for the lower part), or the 3 relative-translation channels."""
    if stream == "transl":
        return 3
    n = 6 * len(PART_JOINTS[stream])
    return n + ROOT_VEL_CHANNELS if stream == "lower" else n


def keyframe_offset(stream: str) -> torch.Tensor:
    """Decoder keyframe offset: the 6-D identity rotation on rotation channels, zero elsewhere."""
    off = torch.zeros(output_dim(stream))
    if stream != "transl":
        n = len(PART_JOINTS[stream])
        off[: 6 * n] = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).repeat(n)
    return off


def part_positions(rel: torch.Tensor, part: str) -> torch.Tensor:
    """Position features ``(..., T, 3·J)`` of a part from root-relative joints ``(..., T, 55, 3)``
    already in the leader's heading frame: body parts as they are, hands relative to the wrist
    × HAND_SCALE."""
    idx = list(PART_JOINTS[part])
    x = rel[..., idx, :]
    if part in WRIST:
        x = (x - rel[..., WRIST[part]:WRIST[part] + 1, :]) * HAND_SCALE
    return x.flatten(-2)


def pose_features(joints: torch.Tensor, leader_forward: torch.Tensor) -> dict[str, torch.Tensor]:
    """Encoder inputs ``{part: (..., T, input_dim(part))}`` of one dancer's joints ``(..., T, 55, 3)``."""
    f = leader_forward.unsqueeze(-2)
    rel = motion.to_heading_frame(joints - joints[..., :1, :], f)
    vel = motion.to_heading_frame(pelvis_velocity(joints[..., 0, :]), leader_forward)
    out = {}
    for part in PARTS:
        x = part_positions(rel, part)
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


# Joint order of all four parts concatenated -> SMPL-X order 0..54.
_ALL_ORDER = list(PART_JOINTS["upper"]) + list(PART_JOINTS["lower"]) + list(PART_JOINTS["lhand"]) + list(PART_JOINTS["rhand"])
ALL_GATHER = torch.tensor([_ALL_ORDER.index(j) for j in range(skeleton.NUM_JOINTS)])


def compose_rotations(rot: torch.Tensor, leader_forward: torch.Tensor) -> torch.Tensor:
    """Local rotations ``(..., T, 55, 3, 3)`` in SMPL-X order from the parts' rotations concatenated
    in PARTS order ``(..., T, 55, 3, 3)``; the root (decoded in the leader's heading frame) back in the world."""
    allr = rot.index_select(-3, ALL_GATHER.to(rot.device))
    root = yaw_matrix(leader_forward) @ allr[..., 0, :, :]
    return torch.cat([root.unsqueeze(-3), allr[..., 1:, :, :]], dim=-3)
