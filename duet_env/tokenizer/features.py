"""The motion representation the tokenizer encodes and decodes (shared by training and run time).

Every pose is expressed in the **leader's heading frame** of the same frame (duet_env.tokens):
with ``f_t = leader_heading(leader)_t`` (the hips-and-shoulders heading, smoothed over time: see
:func:`leader_heading`) and ``H_t`` the yaw that turns ``f_t`` to +z,

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

import numbers

import numpy as np
import torch

from .. import motion
from ..conventions import FPS, NUM_JOINTS, PART_JOINTS, PART_NAMES, WRIST_OF_HAND

HAND_SCALE = 10.0
VEL_SCALE = 0.1
TRANSL_SCALE = 1.0
ROOT_VEL_CHANNELS = 3  # extra channels of the lower part


def input_dim(part: str) -> int:
    """Channels of a part's encoder input (and of its position decoder's output)."""
    if part == "transl":
        return 3
    n = 3 * len(PART_JOINTS[part])
    return n + ROOT_VEL_CHANNELS if part == "lower" else n


def pelvis_velocity(pelvis: torch.Tensor) -> torch.Tensor:
    """Backward-difference velocity (m/s) along the time axis −2 of ``(..., T, 3)``; v_0 = v_1."""
    v = (pelvis[..., 1:, :] - pelvis[..., :-1, :]) * FPS
    return torch.cat([v[..., :1, :], v], dim=-2)


# The leader frame's heading is smoothed over time: the hips-and-shoulders heading of a dancer
# wobbles with every hip twist (ChaCha, hip-hop: yaw jerk 40-90 rad/s³ in SynthDuet), and a
# frame that wobbles turns a smooth partner offset of 0.5-0.8 m into a jittery one the decoder
# cannot follow. A zero-phase Gaussian on the unwrapped yaw keeps turns and removes the wobble;
# it reads the leader's future frames, which the env knows (the leader is given, not generated).
# σ is part of a tokenizer's model config (``heading_sigma``, stored in every checkpoint's JSON):
# a tokenizer must be read in the frame it was trained in. Checkpoints without the key were
# trained with this value.
HEADING_SIGMA_FRAMES = 6.0


def check_heading_sigma(sigma, what: str = "heading_sigma") -> float:
    """``sigma`` as a float, or ValueError naming ``what`` unless it is a finite number >= 0 (frames)."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not (np.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"{what} must be a finite number >= 0 (frames), got {sigma!r}")
    return float(sigma)


def leader_heading(leader_joints, sigma: float = HEADING_SIGMA_FRAMES) -> torch.Tensor:
    """Smoothed facing direction ``(..., T, 3)`` of a leader ``(..., T, 55, 3)`` (whole sequences).

    ``yaw_t = atan2(f_x, f_z)`` of :func:`duet_env.motion.heading_from_joints`, unwrapped along
    time and filtered by a Gaussian of σ = ``sigma`` frames (scipy ``gaussian_filter1d``,
    edges by nearest), then ``(sin yaw, 0, cos yaw)``. Rotating the whole leader about the vertical
    axis rotates the result by the same angle. Returns the input's dtype and device.
    """
    from scipy.ndimage import gaussian_filter1d

    j = torch.as_tensor(leader_joints)
    fwd = motion.heading_from_joints(j.detach().cpu().double())
    yaw = np.unwrap(np.arctan2(fwd[..., 0].numpy(), fwd[..., 2].numpy()), axis=-1)
    sigma = check_heading_sigma(sigma, "leader_heading: sigma")
    if sigma > 0 and yaw.shape[-1] > 1:
        yaw = gaussian_filter1d(yaw, sigma, axis=-1, mode="nearest")
    out = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], -1)
    return torch.from_numpy(out).to(j.device, j.dtype if j.is_floating_point() else torch.float32)


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
    if part in WRIST_OF_HAND:
        x = (x - rel[..., WRIST_OF_HAND[part]:WRIST_OF_HAND[part] + 1, :]) * HAND_SCALE
    return x.flatten(-2)


def pose_features(joints: torch.Tensor, leader_forward: torch.Tensor) -> dict[str, torch.Tensor]:
    """Encoder inputs ``{part: (..., T, input_dim(part))}`` of one dancer's joints ``(..., T, 55, 3)``."""
    f = leader_forward.unsqueeze(-2)
    rel = motion.to_heading_frame(joints - joints[..., :1, :], f)
    vel = motion.to_heading_frame(pelvis_velocity(joints[..., 0, :]), leader_forward)
    out = {}
    for part in PART_NAMES:
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
    rot = motion.axis_angle_to_matrix(poses.reshape(*poses.shape[:-1], NUM_JOINTS, 3))
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
_ALL_ORDER = [j for p in PART_NAMES for j in PART_JOINTS[p]]
ALL_GATHER = torch.tensor([_ALL_ORDER.index(j) for j in range(NUM_JOINTS)])


def compose_rotations(rot: torch.Tensor, leader_forward: torch.Tensor) -> torch.Tensor:
    """Local rotations ``(..., T, 55, 3, 3)`` in SMPL-X order from the parts' rotations concatenated
    in PART_NAMES order ``(..., T, 55, 3, 3)``; the root (decoded in the leader's heading frame) back in the world."""
    allr = rot.index_select(-3, ALL_GATHER.to(rot.device))
    root = yaw_matrix(leader_forward) @ allr[..., 0, :, :]
    return torch.cat([root.unsqueeze(-3), allr[..., 1:, :, :]], dim=-3)
