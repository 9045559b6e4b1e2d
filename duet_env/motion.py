"""Motion maths shared by every part: rotations, normalisation, velocities, headings.

Every function takes numpy arrays or torch tensors and returns the same kind (torch stays
differentiable). Conventions (:mod:`duet_env.conventions`): y up, metres, 30 fps, SMPL-X joint order.
"""
from __future__ import annotations

import numpy as np
import torch

from .conventions import FPS, FRAME_TIME, TOKEN_FRAMES  # noqa: F401  (FRAME_TIME: public here too)



def _to_torch(x):
    if isinstance(x, np.ndarray):
        # np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d)
        return torch.from_numpy(np.require(x, dtype=np.float64, requirements="C").copy()), True
    return x, False


def _back(x: torch.Tensor, was_numpy: bool, dtype=None):
    if not was_numpy:
        return x
    out = x.detach().cpu().numpy()
    return out.astype(dtype) if dtype is not None else out


def axis_angle_to_matrix(aa):
    """Rodrigues: ``(..., 3)`` axis-angle -> ``(..., 3, 3)`` rotation matrices.

    R = I + sin(θ)/θ [a]x + (1 - cos θ)/θ² [a]x², with the Taylor series near θ = 0 so the
    gradient stays finite at the identity.
    """
    x, was_np = _to_torch(aa)
    dtype = aa.dtype if was_np else None
    theta2 = (x * x).sum(-1, keepdim=True).unsqueeze(-1)  # (...,1,1)
    theta = torch.sqrt(theta2.clamp_min(1e-12))
    small = theta2 < 1e-8
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    zero = torch.zeros_like(x[..., 0])
    k = torch.stack(
        [zero, -x[..., 2], x[..., 1], x[..., 2], zero, -x[..., 0], -x[..., 1], x[..., 0], zero], dim=-1
    ).reshape(*x.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=x.dtype, device=x.device).expand_as(k)
    out = eye + a * k + b * (k @ k)
    return _back(out, was_np, dtype)


def matrix_to_axis_angle(rot):
    """Rotation matrices ``(..., 3, 3)`` -> axis-angle ``(..., 3)`` (angle in [0, π]).

    Goes through the unit quaternion, which is stable at 0 and at π.
    """
    r, was_np = _to_torch(rot)
    dtype = rot.dtype if was_np else None
    q = matrix_to_quaternion(r)
    w = q[..., :1]
    xyz = q[..., 1:]
    # q and -q are the same rotation: take w >= 0 so the angle is in [0, π].
    sign = torch.where(w < 0, -1.0, 1.0).to(q.dtype)
    w, xyz = w * sign, xyz * sign
    s = xyz.norm(dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(s, w)
    factor = torch.where(s > 1e-7, angle / s.clamp_min(1e-12), 2.0 / w.clamp_min(1e-12))
    return _back(xyz * factor, was_np, dtype)


def matrix_to_quaternion(r: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) quaternion (w, x, y, z), Shepperd's method (best-conditioned branch)."""
    m = r
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = torch.stack(
        [
            torch.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
        ],
        dim=-2,
    )  # (..., 4 candidates, 4)
    diag = torch.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = diag.argmax(-1, keepdim=True)
    q = torch.gather(cands, -2, best.unsqueeze(-1).expand(*best.shape, 4)).squeeze(-2)
    return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def project_to_so3(mat):
    """Nearest rotation (Frobenius norm) to a noisy 3x3: U diag(1, 1, det(U Vᵀ)) Vᵀ from the SVD."""
    m, was_np = _to_torch(mat)
    dtype = mat.dtype if was_np else None
    u, _, vh = torch.linalg.svd(m)
    det = torch.det(u @ vh)
    d = torch.ones(*m.shape[:-2], 3, dtype=m.dtype, device=m.device)
    d = torch.cat([d[..., :2], det.unsqueeze(-1)], dim=-1)
    out = u @ torch.diag_embed(d) @ vh
    return _back(out, was_np, dtype)


def rotation_about_y(angle):
    """Rotation matrices ``(..., 3, 3)`` about the up axis by ``angle`` radians (right-handed)."""
    a, was_np = _to_torch(np.asarray(angle, dtype=np.float64) if not isinstance(angle, torch.Tensor) else angle)
    c, s = torch.cos(a), torch.sin(a)
    z, o = torch.zeros_like(a), torch.ones_like(a)
    out = torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)
    return _back(out, was_np)


def heading_from_joints(joints):
    """Facing direction on the ground plane from joint positions ``(..., 55, 3)`` -> unit ``(..., 3)``.

    forward = across × up, across = left_hip − right_hip + left_shoulder − right_shoulder,
    i.e. the ground-plane normal of the body's left-right axis. For the rest pose this is +z.
    """
    j, was_np = _to_torch(joints)
    dtype = joints.dtype if was_np else None
    across = (j[..., 1, :] - j[..., 2, :]) + (j[..., 16, :] - j[..., 17, :])
    # across × up = (-across_z, 0, across_x) with up = (0, 1, 0)
    fwd = torch.stack([-across[..., 2], torch.zeros_like(across[..., 0]), across[..., 0]], -1)
    fwd = fwd / fwd.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    return _back(fwd, was_np, dtype)


def heading_angle(forward):
    """Yaw angle (radians) of a ground-plane direction: atan2(x, z); 0 for +z."""
    f, was_np = _to_torch(forward)
    out = torch.atan2(f[..., 0], f[..., 2])
    return _back(out, was_np)


def to_heading_frame(vec, forward):
    """Express world vectors ``(..., 3)`` in the frame that turns ``forward`` to +z (yaw only)."""
    v, was_np = _to_torch(vec)
    f, _ = _to_torch(forward)
    f = f.to(v.dtype)
    yaw = torch.atan2(f[..., 0], f[..., 2])
    c, s = torch.cos(-yaw), torch.sin(-yaw)
    x = c * v[..., 0] + s * v[..., 2]
    z = -s * v[..., 0] + c * v[..., 2]
    out = torch.stack([x, v[..., 1], z], -1)
    return _back(out, was_np, vec.dtype if was_np else None)


def from_heading_frame(vec, forward):
    """Inverse of :func:`to_heading_frame`: heading-frame vectors back to world vectors."""
    v, was_np = _to_torch(vec)
    f, _ = _to_torch(forward)
    f = f.to(v.dtype)
    yaw = torch.atan2(f[..., 0], f[..., 2])
    c, s = torch.cos(yaw), torch.sin(yaw)
    x = c * v[..., 0] + s * v[..., 2]
    z = -s * v[..., 0] + c * v[..., 2]
    out = torch.stack([x, v[..., 1], z], -1)
    return _back(out, was_np, vec.dtype if was_np else None)


def velocities(x, fps: float = FPS):
    """Finite-difference velocity along the time axis 0, per second; same length as ``x``.

    v_t = (x_t − x_{t−1}) · fps for t ≥ 1, and v_0 = v_1 (first frame repeats the next).
    """
    if x.shape[0] < 2:
        raise ValueError(f"velocities need at least 2 frames, got {x.shape[0]}")
    if isinstance(x, np.ndarray):
        v = np.diff(x, axis=0) * fps
        return np.concatenate([v[:1], v], axis=0)
    v = (x[1:] - x[:-1]) * fps
    return torch.cat([v[:1], v], dim=0)


def relative_translation(follower_pelvis, leader_pelvis, leader_forward):
    """The relative translation (docs/design.md): (follower − leader pelvis) in the leader's heading frame."""
    return to_heading_frame(follower_pelvis - leader_pelvis, leader_forward)


def turn_rate(forward, fps: float = FPS) -> np.ndarray:
    """Yaw rate (rad/s, + = turning left, towards +x from +z) of a heading sequence ``(T, 3)``:
    the central difference of the unwrapped :func:`heading_angle` (one-sided at both ends), so a
    steady turn reads its rate at every frame. numpy float32 ``(T,)``; zeros for T < 2.

    Used as the leader's *turn* (duet_env/tokens.py ``"leader_turn"``): the rate at which the
    tokenizer's leader frame rotates. Pose and translation tokens live in that frame, so it is
    the one fact about the leader that his tokens cannot show.
    """
    f = forward.detach().cpu().numpy() if isinstance(forward, torch.Tensor) else np.asarray(forward)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"turn_rate: forward must have shape (T, 3); got {f.shape}")
    if len(f) < 2:
        return np.zeros(len(f), np.float32)
    yaw = np.unwrap(heading_angle(f.astype(np.float64)))
    return (np.gradient(yaw) * fps).astype(np.float32)


def turn_per_token(forward, fps: float = FPS) -> np.ndarray:
    """:func:`turn_rate` of a whole clip's heading ``(4N, 3)``, one row of ``TOKEN_FRAMES`` rates per
    token: ``(N, 4)`` float32 — the layout of the env's ``"leader_turn"`` and of the GPT's token clips."""
    rate = turn_rate(forward, fps)
    if len(rate) % TOKEN_FRAMES:
        raise ValueError(f"turn_per_token: {len(rate)} frames is not a whole number of {TOKEN_FRAMES}-frame tokens")
    return rate.reshape(-1, TOKEN_FRAMES)
