"""BVH (Biovision hierarchy) for the SMPL-X skeleton: write dancers for Blender and other tools,
read any BVH back with its forward kinematics, and read SMPL-X motion from a BVH whose joints
carry SMPL-X names.

**What :func:`write_bvh` writes.** One skeleton per dancer in one file (several ``ROOT``
blocks), joints named ``<dancer>:<SMPL-X joint name>`` (``leader:pelvis``, ``follower:left_knee``
…), the 55 joints of :mod:`duet_env.skeleton` with its parents and its rest offsets
(``REST_OFFSETS``) as ``OFFSET``s; a leaf joint (toe bases, jaw, eyes, finger tips) gets an
``End Site`` half its own bone long. Units are metres, y up, the body facing +z at rest (the
SMPL-X axes); ``Frame Time`` is 1/30 s. The root ``OFFSET`` is zero and its channels
``Xposition Yposition Zposition`` are the pelvis's world position; every joint has three rotation
channels ``Zrotation Xrotation Yrotation`` (:data:`EULER_ORDER`): degrees, intrinsic, so the
local rotation is ``R = Rz(z) · Rx(x) · Ry(y)`` — the usual BVH reading of the channel order.

**Forward kinematics** (:func:`global_transforms`, the BVH convention)::

    G_j = G_parent · R_j,     p_j = p_parent + G_parent · t_j

with ``t_j`` the joint's ``OFFSET``, or its position channels when it has them (position
channels replace the offset, as Blender's importer reads them); for a root, ``G_parent = I`` and
``p_parent = 0``. On a written file this reproduces the SMPL-X forward kinematics of the
project's skeleton: the same joints to float precision.

**Reading SMPL-X motion** (:func:`read_smplx_bvh`): the joints are matched by name (case-insensitive,
after any ``namespace:``); the 22 body joints (pelvis … wrists) are required, the others (jaw,
eyes, fingers) stay at rest when absent. The file's zero rotations must be the SMPL-X rest pose
(T-pose, y up, facing +z): each joint's SMPL-X rotation is taken from its global rotation in the
file, ``R_local = G_parent⁻¹ G_joint`` (so extra joints between SMPL-X joints are allowed), and
the rest pose is checked — every long body bone must point within 45° of the SMPL-X rest bone.
The unit (m, cm, mm or inch) is read off the bone lengths; the pelvis position gives
``transl = pelvis − REST_OFFSETS[0]``; other frame rates are resampled to 30 fps. A file with
several skeletons must name the leader's joints ``leader:<joint>``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from .. import skeleton
from ..atomic import atomic_write
from ..conventions import BODY_JOINTS, FPS
from .amass import MotionRead
from .dd100 import DataError
from .resample import resample_motion

EULER_ORDER = "ZXY"  # rotation channels in the file: Zrotation Xrotation Yrotation (intrinsic)
POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = tuple(f"{axis}rotation" for axis in EULER_ORDER)
NAMESPACE_SEP = ":"
LEADER_NAMESPACE = "leader"
MAX_REST_ANGLE_DEG = 45.0
LONG_BONE_M = 0.1  # bones checked for the rest pose: at least this long in the built-in skeleton
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254}
MAX_UNIT_RATIO = 1.6  # the bone lengths must match the built-in body within this factor
FPS_SNAP = 1e-2  # a Frame Time this close to 1/30 s is 30 fps (files round it)


class BvhError(DataError):
    """A BVH file is malformed or lacks what is needed; the message names the file."""


@dataclass
class BvhJoint:
    """One joint: its parent's index (−1 for a root), ``OFFSET``, channel names and, for a leaf,
    the ``End Site`` offset."""

    name: str
    parent: int
    offset: np.ndarray
    channels: tuple[str, ...]
    end_site: np.ndarray | None = None


@dataclass
class Bvh:
    """A parsed BVH file: joints in file order (parents before children), frame time (s) and the
    motion ``(frames, channels)`` with the channels in joint order."""

    joints: list[BvhJoint]
    frame_time: float
    motion: np.ndarray
    _starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self):
        starts, n = [], 0
        for j in self.joints:
            starts.append(n)
            n += len(j.channels)
        self._starts = starts
        if self.motion.ndim != 2 or self.motion.shape[1] != n:
            raise ValueError(f"motion must have shape (frames, {n}); got {self.motion.shape}")

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def names(self) -> list[str]:
        return [j.name for j in self.joints]

    def roots(self) -> list[int]:
        return [i for i, j in enumerate(self.joints) if j.parent < 0]

    def channel(self, joint: int, name: str) -> np.ndarray | None:
        """Values ``(frames,)`` of channel ``name`` of joint ``joint``, or None if it has none."""
        chans = self.joints[joint].channels
        if name not in chans:
            return None
        return self.motion[:, self._starts[joint] + chans.index(name)]

    def subtree(self, root: int) -> list[int]:
        """Indices of ``root`` and all its descendants, in file order."""
        inside = {root}
        for i in range(root + 1, len(self.joints)):
            if self.joints[i].parent in inside:
                inside.add(i)
        return sorted(inside)


# --------------------------------------------------------------------------------- rotations
def _axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    a = np.deg2rad(np.asarray(degrees, np.float64))
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    rows = {
        "X": [o, z, z, z, c, -s, z, s, c],
        "Y": [c, z, s, z, o, z, -s, z, c],
        "Z": [c, -s, z, s, c, z, z, z, o],
    }[axis]
    return np.stack(rows, -1).reshape(*a.shape, 3, 3)


def _as_rotations(rotations: np.ndarray) -> Rotation:
    r = np.asarray(rotations, np.float64)
    if r.ndim == 2 and r.shape[1] == skeleton.POSE_DIM:
        return Rotation.from_rotvec(r.reshape(-1, 3))
    if r.ndim == 4 and r.shape[1:] == (skeleton.NUM_JOINTS, 3, 3):
        return Rotation.from_matrix(r.reshape(-1, 3, 3))
    raise ValueError(f"rotations must be axis-angle (T, {skeleton.POSE_DIM}) or matrices "
                     f"(T, {skeleton.NUM_JOINTS}, 3, 3); got {r.shape}")


# ------------------------------------------------------------------------------------ writing
def _children() -> list[list[int]]:
    kids: list[list[int]] = [[] for _ in range(skeleton.NUM_JOINTS)]
    for j, p in enumerate(skeleton.PARENTS):
        if p >= 0:
            kids[p].append(j)
    return kids


_CHILDREN = _children()


def _dfs_order() -> list[int]:
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(_CHILDREN[j]))
    return order


DFS_ORDER: tuple[int, ...] = tuple(_dfs_order())  # SMPL-X joints in the order the file lists them


def _hierarchy(prefix: str, offsets: np.ndarray) -> list[str]:
    lines: list[str] = []

    def fmt(v) -> str:
        return " ".join(f"{float(x):.6f}" for x in v)

    def joint(j: int, depth: int) -> None:
        pad = "\t" * depth
        kind = "ROOT" if j == 0 else "JOINT"
        lines.append(f"{pad}{kind} {prefix}{NAMESPACE_SEP}{skeleton.JOINT_NAMES[j]}")
        lines.append(f"{pad}{{")
        offset = np.zeros(3) if j == 0 else offsets[j]
        lines.append(f"{pad}\tOFFSET {fmt(offset)}")
        channels = (POSITION_CHANNELS if j == 0 else ()) + ROTATION_CHANNELS
        lines.append(f"{pad}\tCHANNELS {len(channels)} {' '.join(channels)}")
        for child in _CHILDREN[j]:
            joint(child, depth + 1)
        if not _CHILDREN[j]:
            lines.append(f"{pad}\tEnd Site")
            lines.append(f"{pad}\t{{")
            lines.append(f"{pad}\t\tOFFSET {fmt(0.5 * offsets[j])}")
            lines.append(f"{pad}\t}}")
        lines.append(f"{pad}}}")

    joint(0, 0)
    return lines


def dancer_channels(rotations: np.ndarray, pelvis: np.ndarray) -> np.ndarray:
    """The channel values ``(T, 3 + 55·3)`` of one dancer as :func:`write_bvh` lays them out:
    pelvis position, then Z, X, Y Euler angles (degrees) of every joint in :data:`DFS_ORDER`."""
    pelvis = np.asarray(pelvis, np.float64)
    rot = _as_rotations(rotations)
    t = len(pelvis)
    if pelvis.shape != (t, 3) or len(rot) != t * skeleton.NUM_JOINTS:
        raise ValueError(f"rotations and pelvis must share T frames; got {len(rot) // skeleton.NUM_JOINTS} "
                         f"and {pelvis.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock: the angles still give the rotation
        euler = rot.as_euler(EULER_ORDER, degrees=True).reshape(t, skeleton.NUM_JOINTS, 3)
    return np.concatenate([pelvis, euler[:, list(DFS_ORDER)].reshape(t, -1)], axis=1)


def write_bvh(path: str | os.PathLike, dancers: Sequence[tuple[str, np.ndarray, np.ndarray]],
              fps: float = FPS, offsets: np.ndarray = skeleton.REST_OFFSETS, decimals: int = 6) -> Path:
    """Write dancers as skeletons of one BVH file, atomically (module docstring for the layout).

    ``dancers``: ``(name, rotations, pelvis)`` each — the name becomes the joints' namespace
    (``name:pelvis`` …), rotations are local SMPL-X rotations as axis-angle ``(T, 165)`` or
    matrices ``(T, 55, 3, 3)``, pelvis is the world position ``(T, 3)`` of the pelvis joint
    (``REST_OFFSETS[0] + transl``). All dancers must have the same number of frames.
    """
    if not dancers:
        raise ValueError("write_bvh needs at least one dancer")
    names = [d[0] for d in dancers]
    if len(set(names)) != len(names) or any(not n or NAMESPACE_SEP in n or n.split() != [n] for n in names):
        raise ValueError(f"dancer names must be distinct words without '{NAMESPACE_SEP}'; got {names}")
    channels = [dancer_channels(rot, pelvis) for _, rot, pelvis in dancers]
    frames = {len(c) for c in channels}
    if len(frames) != 1 or 0 in frames:
        raise ValueError(f"all dancers must have the same, non-zero number of frames; got {[len(c) for c in channels]}")
    motion = np.concatenate(channels, axis=1)
    if not np.isfinite(motion).all():
        raise ValueError("dancer motion contains NaN or inf")
    offsets = np.asarray(offsets, np.float64)
    header = ["HIERARCHY"]
    for name in names:
        header += _hierarchy(name, offsets)
    header += ["MOTION", f"Frames: {len(motion)}", f"Frame Time: {1.0 / fps:.10f}"]

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="ascii", newline="\n") as fh:
            fh.write("\n".join(header) + "\n")
            np.savetxt(fh, motion, fmt=f"%.{decimals}f", delimiter=" ")

    return atomic_write(path, write, suffix=".bvh")


# ------------------------------------------------------------------------------------ reading
class _Tokens:
    def __init__(self, text: str, path: Path):
        self.items = text.split()
        self.i = 0
        self.path = path

    def next(self, what: str) -> str:
        if self.i >= len(self.items):
            raise BvhError(f"{self.path}: unexpected end of the hierarchy (expected {what})")
        self.i += 1
        return self.items[self.i - 1]

    def expect(self, word: str) -> None:
        got = self.next(repr(word))
        if got != word:
            raise BvhError(f"{self.path}: expected {word!r} in the hierarchy, found {got!r}")

    def numbers(self, n: int, what: str) -> np.ndarray:
        vals = [self.next(what) for _ in range(n)]
        try:
            return np.array([float(v) for v in vals])
        except ValueError:
            raise BvhError(f"{self.path}: {what} must be {n} numbers; found {vals}") from None


def _parse_joint(tok: _Tokens, joints: list[BvhJoint], parent: int) -> None:
    name = tok.next("a joint name")
    index = len(joints)
    tok.expect("{")
    tok.expect("OFFSET")
    offset = tok.numbers(3, f"the OFFSET of {name}")
    channels: tuple[str, ...] = ()
    joints.append(BvhJoint(name, parent, offset, channels))
    while True:
        word = tok.next(f"a CHANNELS, JOINT, End Site or '}}' in {name}")
        if word == "CHANNELS":
            count = tok.next(f"the channel count of {name}")
            if not count.isdigit():
                raise BvhError(f"{tok.path}: the channel count of {name} must be a number; found {count!r}")
            channels = tuple(tok.next(f"a channel of {name}") for _ in range(int(count)))
            bad = [c for c in channels if c not in POSITION_CHANNELS + tuple(f"{a}rotation" for a in "XYZ")]
            if bad:
                raise BvhError(f"{tok.path}: joint {name} has unknown channel(s) {bad}")
            joints[index].channels = channels
        elif word == "JOINT":
            _parse_joint(tok, joints, index)
        elif word == "End":
            tok.expect("Site")
            tok.expect("{")
            tok.expect("OFFSET")
            joints[index].end_site = tok.numbers(3, f"the End Site OFFSET of {name}")
            tok.expect("}")
        elif word == "}":
            return
        else:
            raise BvhError(f"{tok.path}: unexpected {word!r} in joint {name}")


def read_bvh(path: str | os.PathLike) -> Bvh:
    """Parse a BVH file (joint names must not contain spaces). BvhError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise BvhError(f"{path}: BVH file not found")
    try:
        text = path.read_text(encoding="latin1")
    except OSError as exc:
        raise BvhError(f"{path}: cannot read ({exc})") from exc
    head, sep, motion_text = text.partition("MOTION")
    if not sep:
        raise BvhError(f"{path}: no MOTION section (not a BVH file?)")
    tok = _Tokens(head, path)
    if tok.next("HIERARCHY") != "HIERARCHY":
        raise BvhError(f"{path}: does not start with HIERARCHY (not a BVH file?)")
    joints: list[BvhJoint] = []
    while tok.i < len(tok.items):
        tok.expect("ROOT")
        _parse_joint(tok, joints, -1)
    if not joints:
        raise BvhError(f"{path}: the hierarchy has no joints")
    lines = motion_text.strip().splitlines()
    try:
        compact = [line.replace(" ", "").replace("\t", "") for line in lines[:2]]
        if not (compact[0].startswith("Frames:") and compact[1].startswith("FrameTime:")):
            raise ValueError
        frames = int(lines[0].split(":", 1)[1])
        frame_time = float(lines[1].split(":", 1)[1])
    except (IndexError, ValueError):
        raise BvhError(f"{path}: MOTION must start with 'Frames: N' and 'Frame Time: dt'") from None
    if frames < 1 or not frame_time > 0:
        raise BvhError(f"{path}: needs at least one frame and a positive Frame Time; got {frames} frames, {frame_time}")
    n_channels = sum(len(j.channels) for j in joints)
    try:
        values = np.array(" ".join(lines[2:]).split(), dtype=np.float64)
    except ValueError as exc:
        raise BvhError(f"{path}: motion data is not all numbers ({exc})") from None
    if values.size != frames * n_channels:
        raise BvhError(f"{path}: expected {frames} frames × {n_channels} channels = {frames * n_channels} numbers; "
                       f"found {values.size}")
    motion = values.reshape(frames, n_channels)
    if not np.isfinite(motion).all():
        raise BvhError(f"{path}: motion data contains NaN or inf")
    return Bvh(joints, frame_time, motion)


def local_transforms(bvh: Bvh, rest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations ``(F, J, 3, 3)`` and translations ``(F, J, 3)`` of every joint (module
    docstring); ``rest``: one frame with every channel zero and the offsets."""
    frames = 1 if rest else len(bvh.motion)
    n = len(bvh.joints)
    rot = np.broadcast_to(np.eye(3), (frames, n, 3, 3)).copy()
    trans = np.empty((frames, n, 3))
    for i, joint in enumerate(bvh.joints):
        trans[:, i] = joint.offset
        if rest:
            continue
        pos = [bvh.channel(i, c) for c in POSITION_CHANNELS]
        if any(p is not None for p in pos):
            trans[:, i] = np.stack([p if p is not None else np.zeros(frames) for p in pos], -1)
        for c in joint.channels:
            if c.endswith("rotation"):
                rot[:, i] = rot[:, i] @ _axis_rotation(c[0], bvh.channel(i, c))
    return rot, trans


def global_transforms(bvh: Bvh, rest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Global rotations ``(F, J, 3, 3)`` and positions ``(F, J, 3)`` of every joint, in the file's
    units (forward kinematics of the module docstring); ``rest``: the zero-channel pose."""
    rot, trans = local_transforms(bvh, rest)
    g_rot, g_pos = np.empty_like(rot), np.empty_like(trans)
    for i, joint in enumerate(bvh.joints):
        p = joint.parent
        if p < 0:
            g_rot[:, i], g_pos[:, i] = rot[:, i], trans[:, i]
        else:
            g_rot[:, i] = g_rot[:, p] @ rot[:, i]
            g_pos[:, i] = g_pos[:, p] + np.einsum("fij,fj->fi", g_rot[:, p], trans[:, i])
    return g_rot, g_pos


def smplx_name(name: str) -> str:
    """The SMPL-X joint name a BVH joint name carries: the part after any namespace, lower case."""
    return name.rsplit(NAMESPACE_SEP, 1)[-1].strip().lower()


def _pick_skeleton(bvh: Bvh, path: Path) -> int:
    roots = bvh.roots()
    if len(roots) == 1:
        return roots[0]
    leaders = [r for r in roots if NAMESPACE_SEP in bvh.joints[r].name
               and bvh.joints[r].name.split(NAMESPACE_SEP, 1)[0].lower() == LEADER_NAMESPACE]
    if len(leaders) != 1:
        raise BvhError(f"{path}: {len(roots)} skeletons (roots {[bvh.joints[r].name for r in roots]}) and "
                       f"{'none' if not leaders else 'several'} named '{LEADER_NAMESPACE}{NAMESPACE_SEP}...': "
                       f"cannot tell which one is the leader")
    return leaders[0]


def _joint_map(bvh: Bvh, joints: list[int], path: Path) -> dict[int, int]:
    """SMPL-X joint index -> BVH joint index, by name."""
    found: dict[int, int] = {}
    for i in joints:
        key = smplx_name(bvh.joints[i].name)
        if key in skeleton.JOINT_INDEX:
            j = skeleton.JOINT_INDEX[key]
            if j in found:
                raise BvhError(f"{path}: two joints carry the SMPL-X name {key!r} "
                               f"({bvh.joints[found[j]].name}, {bvh.joints[i].name})")
            found[j] = i
    missing = [skeleton.JOINT_NAMES[j] for j in BODY_JOINTS if j not in found]
    if missing:
        names = [bvh.joints[i].name for i in joints]
        raise BvhError(f"{path}: lacks the SMPL-X body joint(s) {missing}; the body's 22 joints pelvis ... "
                       f"right_wrist must carry SMPL-X names (found {names[:12]}{' ...' if len(names) > 12 else ''})")
    return found


def _check_rest(rest_pos: np.ndarray, jmap: dict[int, int], path: Path) -> float:
    """Metres per file unit, after checking that the rest pose is SMPL-X's (module docstring)."""
    ours = skeleton.rest_joints()
    bones = [j for j in BODY_JOINTS[1:] if np.linalg.norm(skeleton.REST_OFFSETS[j]) >= LONG_BONE_M]
    v_file = np.stack([rest_pos[jmap[j]] - rest_pos[jmap[skeleton.PARENTS[j]]] for j in bones])
    v_ours = np.stack([ours[j] - ours[skeleton.PARENTS[j]] for j in bones])
    len_file, len_ours = np.linalg.norm(v_file, axis=1), np.linalg.norm(v_ours, axis=1)
    if np.any(len_file <= 0):
        raise BvhError(f"{path}: the rest skeleton has zero-length body bones")
    ratio = float(np.median(len_file / len_ours))
    unit, scale = min(UNITS.items(), key=lambda kv: abs(np.log(ratio * kv[1])))
    if abs(np.log(ratio * scale)) > np.log(MAX_UNIT_RATIO):
        raise BvhError(f"{path}: cannot tell the unit: body bones are {ratio:.3g} times the built-in body's "
                       f"(metres), not near any of {sorted(UNITS)}")
    cos = np.sum(v_file * v_ours, axis=1) / (len_file * len_ours)
    angles = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    bad = np.flatnonzero(angles > MAX_REST_ANGLE_DEG)
    if bad.size:
        spine = skeleton.JOINT_INDEX["neck"]
        hint = ""
        if spine in bones:
            d = v_file[bones.index(spine)] / len_file[bones.index(spine)]
            if abs(d[2]) > 0.7:
                hint = " (the spine points along z: a z-up file? the SMPL-X axes are y up)"
        worst = ", ".join(f"{skeleton.JOINT_NAMES[skeleton.PARENTS[bones[i]]]}->{skeleton.JOINT_NAMES[bones[i]]} "
                          f"{angles[i]:.0f} deg" for i in bad[np.argsort(-angles[bad])][:4])
        raise BvhError(f"{path}: the rest pose (all rotations zero) is not the SMPL-X rest pose{hint}: bones point "
                       f"elsewhere ({worst}); export the BVH with SMPL-X's T-pose as its rest pose")
    return scale


def read_smplx_bvh(path: str | os.PathLike) -> MotionRead:
    """SMPL-X motion (DD100 dict at 30 fps) from a BVH whose joints carry SMPL-X names (module docstring)."""
    path = Path(path)
    bvh = read_bvh(path)
    root = _pick_skeleton(bvh, path)
    jmap = _joint_map(bvh, bvh.subtree(root), path)
    _, rest_pos = global_transforms(bvh, rest=True)
    scale = _check_rest(rest_pos[0], jmap, path)
    g_rot, g_pos = global_transforms(bvh)
    frames = len(bvh.motion)
    glob = np.empty((frames, skeleton.NUM_JOINTS, 3, 3))
    local = np.empty_like(glob)
    for j in range(skeleton.NUM_JOINTS):  # parents come before children in SMPL-X order
        p = skeleton.PARENTS[j]
        glob[:, j] = g_rot[:, jmap[j]] if j in jmap else glob[:, p]
        local[:, j] = glob[:, j] if p < 0 else np.swapaxes(glob[:, p], -1, -2) @ glob[:, j]
    poses = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_rotvec().reshape(frames, skeleton.POSE_DIM)
    transl = g_pos[:, jmap[0]] * scale - skeleton.REST_OFFSETS[0]
    notes = []
    unit = next(k for k, v in UNITS.items() if v == scale)
    if unit != "m":
        notes.append(f"BVH unit read as {unit} (converted to metres)")
    absent = skeleton.NUM_JOINTS - len(jmap)
    if absent:
        notes.append(f"{absent} non-body SMPL-X joint(s) absent from the BVH, kept at rest")
    src_fps = FPS if abs(bvh.fps - FPS) < FPS_SNAP else bvh.fps
    poses, transl = resample_motion(poses, transl, src_fps, FPS)
    if src_fps != FPS:
        notes.append(f"resampled from {src_fps:.4g} fps to {FPS} fps (slerp rotations, linear translation)")
    return MotionRead({"poses": poses, "transl": transl, "betas": np.zeros(10, np.float32), "gender": "neutral"},
                      notes)
