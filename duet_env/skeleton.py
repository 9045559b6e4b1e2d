"""SMPL-X 55-joint skeleton: joint names, kinematic tree, forward kinematics.

The body-part split and the other joint sets live in :mod:`duet_env.conventions`.

The licensed SMPL-X model files cannot ship with this package, so the default body is an
**approximate neutral rest skeleton** written for this project: joint offsets for an adult
of about 1.70 m, rounded anthropometric values chosen to resemble the SMPL-X neutral
template's joint layout (y up, facing +z, the body's left side on +x, metres). It is good
for joint positions, rewards and metrics; it is *not* the SMPL-X template and gives no mesh.

As in SMPL-X, the pelvis rests at ``REST_OFFSETS[0]`` (about 0.35 m below the model origin),
the root rotation turns the body about the pelvis, and ``transl`` is then added, so DD100
``transl`` values place the body where SMPL-X places it to within the approximation.

When the user passes a SMPL-X model folder, :func:`forward_kinematics` goes through
``smplx.create`` instead and gives the exact joints (and :class:`SmplxBody` the vertices).

Forward kinematics (both bodies)::

    R_0 = rot(pose_0),        p_0 = REST_OFFSETS[0] + transl
    R_j = R_parent(j) rot(pose_j),  p_j = p_parent(j) + R_parent(j) REST_OFFSETS[j]
"""
from __future__ import annotations

import math

import numpy as np
import torch

NUM_JOINTS = 55
POSE_DIM = NUM_JOINTS * 3  # 165: axis-angle per joint, SMPL-X order

_FINGERS = ["index", "middle", "pinky", "ring", "thumb"]
JOINT_NAMES: tuple[str, ...] = tuple(
    [
        "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
        "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
        "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw", "left_eye",
        "right_eye",
    ]
    + [f"left_{f}{i}" for f in _FINGERS for i in (1, 2, 3)]
    + [f"right_{f}{i}" for f in _FINGERS for i in (1, 2, 3)]
)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)

# Left/right pairs, for mirroring motion.
MIRROR_INDEX: tuple[int, ...] = tuple(
    JOINT_INDEX[n.replace("left_", "\0").replace("right_", "left_").replace("\0", "right_")]
    for n in JOINT_NAMES
)


def _left_hand_offsets() -> list[tuple[float, float, float]]:
    # index, middle, pinky, ring, thumb; first joint relative to the wrist, then phalanges.
    base = {
        "index": (0.090, -0.006, 0.024), "middle": (0.095, -0.006, 0.002),
        "pinky": (0.078, -0.010, -0.040), "ring": (0.089, -0.008, -0.020),
        "thumb": (0.028, -0.016, 0.030),
    }
    phal = {
        "index": (0.034, 0.026), "middle": (0.036, 0.028), "pinky": (0.022, 0.018),
        "ring": (0.032, 0.025), "thumb": (0.030, 0.025),
    }
    out = []
    for f in _FINGERS:
        out.append(base[f])
        for length in phal[f]:
            if f == "thumb":  # the thumb points forward-out, not along the hand
                out.append((length * 0.7, -0.004, length * 0.7))
            else:
                out.append((length, -0.002, 0.0))
    return out


def _rest_offsets() -> np.ndarray:
    body = [
        (0.000, -0.350, 0.012),   # pelvis: rest position (as the SMPL-X template, below the origin)
        (0.058, -0.082, -0.017),  # left_hip
        (-0.058, -0.082, -0.017),  # right_hip
        (0.000, 0.110, -0.030),   # spine1
        (0.040, -0.385, 0.006),   # left_knee
        (-0.040, -0.385, 0.006),  # right_knee
        (0.000, 0.135, 0.020),    # spine2
        (-0.012, -0.420, -0.036),  # left_ankle
        (0.012, -0.420, -0.036),  # right_ankle
        (0.000, 0.056, 0.003),    # spine3
        (0.030, -0.058, 0.125),   # left_foot (toe base)
        (-0.030, -0.058, 0.125),  # right_foot
        (0.000, 0.215, -0.030),   # neck
        (0.075, 0.112, -0.020),   # left_collar
        (-0.075, 0.112, -0.020),  # right_collar
        (0.000, 0.090, 0.050),    # head
        (0.118, 0.045, -0.015),   # left_shoulder
        (-0.118, 0.045, -0.015),  # right_shoulder
        (0.258, -0.015, -0.020),  # left_elbow
        (-0.258, -0.015, -0.020),  # right_elbow
        (0.250, 0.008, -0.006),   # left_wrist
        (-0.250, 0.008, -0.006),  # right_wrist
        (0.000, 0.020, 0.020),    # jaw
        (0.032, 0.065, 0.085),    # left_eye
        (-0.032, 0.065, 0.085),   # right_eye
    ]
    left = _left_hand_offsets()
    right = [(-x, y, z) for (x, y, z) in left]
    return np.asarray(body + left + right, dtype=np.float64)


REST_OFFSETS: np.ndarray = _rest_offsets()
REST_OFFSETS.setflags(write=False)


def rest_joints(offsets: np.ndarray = REST_OFFSETS) -> np.ndarray:
    """Joint positions (55, 3) of the rest pose with zero translation."""
    out = np.zeros((NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        p = PARENTS[j]
        out[j] = offsets[j] if p < 0 else out[p] + offsets[j]
    return out


def bone_lengths(offsets: np.ndarray = REST_OFFSETS) -> np.ndarray:
    """Length of the bone from each joint's parent to the joint (0 for the pelvis)."""
    lengths = np.linalg.norm(offsets, axis=-1)
    lengths[0] = 0.0
    return lengths


def _as_rotmats(poses: torch.Tensor) -> torch.Tensor:
    if poses.shape[-1] == POSE_DIM:
        from . import motion  # (motion -> conventions -> this module's joint tables)

        return motion.axis_angle_to_matrix(poses.reshape(*poses.shape[:-1], NUM_JOINTS, 3))
    if poses.shape[-3:] == (NUM_JOINTS, 3, 3):
        return poses
    raise ValueError(
        f"poses must be axis-angle (..., {POSE_DIM}) or rotation matrices (..., {NUM_JOINTS}, 3, 3); "
        f"got shape {tuple(poses.shape)}"
    )


def _depth_levels() -> tuple[tuple[int, ...], ...]:
    depth = [0] * NUM_JOINTS
    for j in range(1, NUM_JOINTS):
        depth[j] = depth[PARENTS[j]] + 1
    return tuple(tuple(j for j in range(NUM_JOINTS) if depth[j] == d) for d in range(max(depth) + 1))


# Joints grouped by their depth in the tree (12 levels). A parent always sits on the level just
# above its child, so FK is one gather + one 4x4 matmul per level instead of a step per joint:
# ~30 tensor ops for the whole body, which keeps it cheap at every env step.
LEVELS: tuple[tuple[int, ...], ...] = _depth_levels()
_LEVEL_ORDER = [j for lvl in LEVELS for j in lvl]
_UNORDER = torch.tensor([_LEVEL_ORDER.index(j) for j in range(NUM_JOINTS)])
_LEVEL_SPANS = []  # (start in level order, size, parents' index within the previous level)
_start = 0
for _d, _lvl in enumerate(LEVELS):
    _prev = LEVELS[_d - 1] if _d else ()
    _LEVEL_SPANS.append((_start, len(_lvl), torch.tensor([_prev.index(PARENTS[j]) for j in _lvl]) if _d else None))
    _start += len(_lvl)
_FK_CONSTANTS: dict = {}


def _fk_constants(dtype: torch.dtype, device: torch.device) -> dict:
    """Index tensors, the homogeneous bottom row and the default body's offsets in level order for
    one dtype/device, built once: FK runs at every env step, so it allocates nothing constant."""
    key = (dtype, device)
    if key not in _FK_CONSTANTS:
        order = torch.tensor(_LEVEL_ORDER, device=device)
        _FK_CONSTANTS[key] = {
            "order": order, "unorder": _UNORDER.to(device),
            "parents": [p.to(device) for _, _, p in _LEVEL_SPANS[1:]],
            "bottom": torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=dtype, device=device),
            "rest": torch.tensor(REST_OFFSETS, dtype=dtype, device=device).index_select(0, order),
        }
        _FK_CONSTANTS[key]["rest_xyz"] = _FK_CONSTANTS[key]["rest"].T.unsqueeze(-1).contiguous()
    return _FK_CONSTANTS[key]


def global_transforms(rotmats: torch.Tensor, transl: torch.Tensor,
                      offsets: torch.Tensor | np.ndarray = REST_OFFSETS) -> tuple[torch.Tensor, torch.Tensor]:
    """Global joint rotations (..., 55, 3, 3) and positions (..., 55, 3) from local rotations.

    Differentiable. Each joint's local transform is the 4x4 ``[R_j, o_j; 0, 1]`` (o_0 = rest
    pelvis + transl); the global transform of a level is its parents' global transforms (the
    level above) times the local ones.
    """
    c = _fk_constants(rotmats.dtype, rotmats.device)
    if offsets is REST_OFFSETS:
        off = c["rest"]
    else:
        off = torch.as_tensor(np.array(offsets) if isinstance(offsets, np.ndarray) else offsets,
                              dtype=rotmats.dtype, device=rotmats.device).index_select(0, c["order"])
    off = off.expand(*rotmats.shape[:-3], NUM_JOINTS, 3)
    off = torch.cat([off[..., :1, :] + transl.unsqueeze(-2), off[..., 1:, :]], dim=-2)
    r = rotmats.index_select(-3, c["order"])
    local = torch.cat([torch.cat([r, off.unsqueeze(-1)], dim=-1), c["bottom"].expand(*r.shape[:-2], 1, 4)], dim=-2)
    levels = [local[..., :1, :, :]]
    for (start, size, _), parents in zip(_LEVEL_SPANS[1:], c["parents"]):
        levels.append(levels[-1].index_select(-3, parents) @ local[..., start:start + size, :, :])
    glob = torch.cat(levels, dim=-3).index_select(-3, c["unorder"])
    return glob[..., :3, :3], glob[..., :3, 3]


# From this many frames on, :func:`joint_positions` runs frames-last (below it, the 4x4 path of
# global_transforms is fewer ops, which is what a small eager batch pays for).
FRAMES_LAST_MIN = 64


def joint_positions(rotmats: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:
    """Joint positions ``(..., 55, 3)`` of local rotations on the default body: the positions of
    :func:`global_transforms` (equal within float rounding), laid out for speed on large batches.

    Per level of the tree, with the parent's global rotation G_p and position x_p::

        G_j = G_p R_j,    x_j = x_p + G_p o_j         (o_0 = rest pelvis + transl)

    With at least :data:`FRAMES_LAST_MIN` frames the arrays are coordinate-first and frames-last,
    ``(3, 3, joints, frames)``, so each 3x3 product is nine fused multiply-adds over long
    contiguous rows. Why: torch's batched ``matmul`` costs ~100 ns per 4x4 product on CPU, and a
    64-env step has 256 frames x 55 joints of them (measured in ``benchmarks/decode_step.py``:
    the FK's row). Not used in training, whose reproducibility rests on :func:`global_transforms`.
    Differentiable.
    """
    lead = rotmats.shape[:-3]
    frames = math.prod(lead)
    if frames < FRAMES_LAST_MIN:
        return global_transforms(rotmats, transl)[1]
    c = _fk_constants(rotmats.dtype, rotmats.device)
    rest = c["rest_xyz"]  # (3, 55, 1), level order
    rot = rotmats.reshape(frames, NUM_JOINTS, 3, 3).index_select(1, c["order"]).permute(2, 3, 1, 0).contiguous()
    glob = [rot[:, :, :1]]  # (3, 3, level size, frames)
    pos = [rest[:, :1] + transl.reshape(frames, 3).T.unsqueeze(1)]  # (3, level size, frames)
    last = len(c["parents"]) - 1
    for lvl, ((start, size, _), parents) in enumerate(zip(_LEVEL_SPANS[1:], c["parents"])):
        g = glob[-1].index_select(2, parents)
        o = rest[:, start:start + size]
        pos.append(pos[-1].index_select(1, parents) + g[:, 0] * o[0] + g[:, 1] * o[1] + g[:, 2] * o[2])
        if lvl < last:  # the deepest level's rotations move no joint
            r = rot[:, :, start:start + size]
            glob.append(g[:, 0:1] * r[0:1] + g[:, 1:2] * r[1:2] + g[:, 2:3] * r[2:3])
    joints = torch.cat(pos, 1).index_select(1, c["unorder"])  # (3, 55, frames)
    return joints.permute(2, 1, 0).reshape(*lead, NUM_JOINTS, 3)


def forward_kinematics(poses, transl, model_path: str | None = None, betas=None, gender: str = "neutral"):
    """Joint positions ``(..., 55, 3)`` from SMPL-X poses and root translation.

    Args:
        poses: axis-angle ``(..., 165)`` or local rotation matrices ``(..., 55, 3, 3)``.
        transl: root translation ``(..., 3)``.
        model_path: optional SMPL-X model folder; when given, joints come from ``smplx.create``.
        betas: body shape for the SMPL-X path (``(10,)`` or ``(..., 10)``); ignored otherwise.
        gender: SMPL-X model gender for the SMPL-X path.

    numpy in gives numpy out; torch in gives torch out (differentiable) on the input's device.
    """
    is_numpy = isinstance(poses, np.ndarray)
    p = torch.as_tensor(poses, dtype=torch.float64 if is_numpy else None)
    t = torch.as_tensor(transl, dtype=p.dtype, device=p.device)
    if p.shape[-1] == POSE_DIM:
        batch = p.shape[:-1]
    elif p.shape[-3:] == (NUM_JOINTS, 3, 3):
        batch = p.shape[:-3]
    else:
        _as_rotmats(p)  # raises the shape error
    if t.shape != (*batch, 3):
        raise ValueError(f"transl must have shape {(*batch, 3)} to match poses; got {tuple(t.shape)}")
    if model_path is not None:
        joints = SmplxBody(model_path, gender=gender).joints(p, t, betas)
    else:
        _, joints = global_transforms(_as_rotmats(p), t)
    return joints.numpy().astype(np.float32) if is_numpy else joints


class SmplxBody:
    """The exact SMPL-X body through ``smplx.create`` (needs the user's licensed model folder).

    ``model_path`` is the folder holding ``SMPLX_NEUTRAL.npz`` (or ``smplx/SMPLX_NEUTRAL.npz``),
    as ``smplx.create`` expects.
    """

    def __init__(self, model_path: str, gender: str = "neutral", num_betas: int = 10):
        import smplx  # imported here: the default skeleton must not need it

        self.model = smplx.create(
            str(model_path), model_type="smplx", gender=gender, num_betas=num_betas,
            use_pca=False, flat_hand_mean=True, batch_size=1,
        )
        self.model.eval()
        self.num_betas = num_betas

    def _forward(self, poses: torch.Tensor, transl: torch.Tensor, betas=None):
        batch_shape = transl.shape[:-1]
        from . import motion

        aa = poses if poses.shape[-1] == POSE_DIM else motion.matrix_to_axis_angle(poses).flatten(-2)
        aa = aa.reshape(-1, POSE_DIM).float()
        t = transl.reshape(-1, 3).float()
        n = aa.shape[0]
        if betas is None:
            b = torch.zeros(n, self.num_betas)
        else:
            b = torch.as_tensor(np.asarray(betas), dtype=torch.float32).reshape(-1, self.num_betas)[:, : self.num_betas]
            b = b.expand(n, -1) if b.shape[0] == 1 else b
        out = self.model(
            betas=b, global_orient=aa[:, 0:3], body_pose=aa[:, 3:66], jaw_pose=aa[:, 66:69],
            leye_pose=aa[:, 69:72], reye_pose=aa[:, 72:75], left_hand_pose=aa[:, 75:120],
            right_hand_pose=aa[:, 120:165], transl=t,
            expression=torch.zeros(n, self.model.num_expression_coeffs),
            return_verts=True,
        )
        return out, batch_shape

    def joints(self, poses, transl, betas=None) -> torch.Tensor:
        out, batch_shape = self._forward(torch.as_tensor(poses), torch.as_tensor(transl), betas)
        return out.joints[:, :NUM_JOINTS].reshape(*batch_shape, NUM_JOINTS, 3)

    def vertices(self, poses, transl, betas=None) -> torch.Tensor:
        out, batch_shape = self._forward(torch.as_tensor(poses), torch.as_tensor(transl), betas)
        return out.vertices.reshape(*batch_shape, -1, 3)

    @property
    def faces(self) -> np.ndarray:
        return np.asarray(self.model.faces, dtype=np.int64)

