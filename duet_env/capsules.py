"""The one capsule proxy of the body: capsule table, hand-hold pair rule, batched capsule gaps.

Every penetration / contact number of the package comes from here: the SynthDuet generator's
checks (:mod:`duet_env.data.synth_checks`), the ``penetration`` reward term and the contact and
penetration metrics (:mod:`duet_env.metrics.contact`). One table means the same motion gets the
same overlap depth from all three; they differ only in the thresholds they document.

A capsule is a segment between two body points swept by a sphere of radius r. The surface gap
between capsule i of dancer A and capsule j of dancer B is::

    gap(i, j) = dist(segment_i, segment_j) − r_i − r_j          (metres; < 0 means overlap)

with the closest-point distance of two segments by the clamped-parameter method of Ericson,
*Real-Time Collision Detection* (2005), §5.1.9.

Radii (metres) are for an adult of about 1.70 m, the stature of the built-in rest skeleton
(:mod:`duet_env.skeleton`). Each is half a rounded anthropometric girth or depth (adult means
of the usual body-dimension surveys, men and women averaged), not fitted to SMPL-X:

======================  =====  ===========================================================
capsule                 r      reasoning
======================  =====  ===========================================================
hips (hip – hip)        0.10   hip joints 0.12 apart + 2r = 0.32 m hip breadth; buttock
                               depth ~0.22 m
lower torso (0 – 6)     0.12   abdominal depth ~0.24 m (spine joints lie mid-depth)
upper torso (6 – 12)    0.11   chest depth ~0.22 m; the breadth the circular section misses
                               is covered by the shoulder capsule
shoulders (16 – 17)     0.06   shoulder-girdle depth ~0.12 m; joints 0.39 apart + 2r ≈ 0.51 m
                               bideltoid breadth
neck (12 – 15)          0.055  neck circumference ~0.35 m → r = C / 2π
head (15 – top)         0.085  head length 0.19, breadth 0.15 m; the segment runs 4 cm up from
                               the head joint so the top lies ~0.12 m above it (1.70 m tall)
upper arm               0.045  upper-arm circumference ~0.29 m
forearm                 0.035  circumference 0.27 m at the elbow tapering to 0.16 m at the
                               wrist; the mean ~0.22 m
hand (wrist – middle2)  0.03   hand breadth 0.085 m, thickness 0.03 m: between the halves
thigh                   0.07   circumference 0.55 m below the hip tapering to 0.37 m above the
                               knee; the mean ~0.45 m
shin                    0.05   calf 0.36 m tapering to the ankle's 0.22 m
foot (ankle – toes)     0.04   foot breadth ~0.095 m, instep height ~0.07 m
======================  =====  ===========================================================

Hold pairs. Partner dancing puts one body part on the other on purpose, so overlap of those
capsule kinds is contact, not penetration. :data:`HOLD_KIND_PAIRS` names the kinds (of either
dancer, either order) that may touch:

- ``"open"`` hold (hand in hand, e.g. ChaCha): hand–hand, hand–forearm, forearm–forearm;
- ``"closed"`` hold (ballroom frame, e.g. Waltz, Tango) adds the arms on the partner's body:
  hand or forearm on the partner's upper arm, torso or neck (his right hand on her shoulder
  blade, her left hand on his shoulder), upper arm on upper arm (her left arm rests on his
  right arm) and upper arm on torso (his right arm round her back).

Legs, feet, heads and torso-on-torso are never excused.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .jit import jit_available, jit_enabled, kernel
from .skeleton import JOINT_INDEX as _J, NUM_JOINTS

# Two partners' capsules may overlap this deep (m) before it counts as penetration: soft tissue
# gives, and round capsules over-fill the flat parts of the body (chest, back, palms).
PENETRATION_ALLOWANCE = 0.02


class Capsule(NamedTuple):
    name: str
    joint_a: int
    joint_b: int  # HEAD_TOP for the synthetic point above the head
    radius: float
    kind: str


HEAD_TOP = -1
HEAD_TOP_OFFSET = 0.04  # metres from the head joint along neck → head

CAPSULES: tuple[Capsule, ...] = (
    Capsule("hips", _J["left_hip"], _J["right_hip"], 0.10, "torso"),
    Capsule("lower_torso", _J["pelvis"], _J["spine2"], 0.12, "torso"),
    Capsule("upper_torso", _J["spine2"], _J["neck"], 0.11, "torso"),
    Capsule("shoulders", _J["left_shoulder"], _J["right_shoulder"], 0.06, "torso"),
    Capsule("neck", _J["neck"], _J["head"], 0.055, "neck"),
    Capsule("head", _J["head"], HEAD_TOP, 0.085, "head"),
    Capsule("left_upper_arm", _J["left_shoulder"], _J["left_elbow"], 0.045, "upper_arm"),
    Capsule("right_upper_arm", _J["right_shoulder"], _J["right_elbow"], 0.045, "upper_arm"),
    Capsule("left_forearm", _J["left_elbow"], _J["left_wrist"], 0.035, "forearm"),
    Capsule("right_forearm", _J["right_elbow"], _J["right_wrist"], 0.035, "forearm"),
    Capsule("left_hand", _J["left_wrist"], _J["left_middle2"], 0.03, "hand"),
    Capsule("right_hand", _J["right_wrist"], _J["right_middle2"], 0.03, "hand"),
    Capsule("left_thigh", _J["left_hip"], _J["left_knee"], 0.07, "thigh"),
    Capsule("right_thigh", _J["right_hip"], _J["right_knee"], 0.07, "thigh"),
    Capsule("left_shin", _J["left_knee"], _J["left_ankle"], 0.05, "shin"),
    Capsule("right_shin", _J["right_knee"], _J["right_ankle"], 0.05, "shin"),
    Capsule("left_foot", _J["left_ankle"], _J["left_foot"], 0.04, "foot"),
    Capsule("right_foot", _J["right_ankle"], _J["right_foot"], 0.04, "foot"),
)
NUM_CAPSULES = len(CAPSULES)
CAPSULE_NAMES: tuple[str, ...] = tuple(c.name for c in CAPSULES)
CAPSULE_KINDS: tuple[str, ...] = tuple(c.kind for c in CAPSULES)
CAPSULE_RADII: np.ndarray = np.array([c.radius for c in CAPSULES])
_STARTS = np.array([c.joint_a for c in CAPSULES])
_ENDS = np.array([c.joint_b for c in CAPSULES])
_TO_HEAD_TOP = _ENDS == HEAD_TOP
_RADIUS_SUM = CAPSULE_RADII[:, None] + CAPSULE_RADII[None, :]

_OPEN = frozenset({("hand", "hand"), ("hand", "forearm"), ("forearm", "forearm")})
HOLD_KIND_PAIRS: dict[str, frozenset[tuple[str, str]]] = {
    "open": _OPEN,
    "closed": _OPEN | {("hand", "upper_arm"), ("hand", "torso"), ("hand", "neck"),
                       ("forearm", "upper_arm"), ("forearm", "torso"), ("forearm", "neck"),
                       ("upper_arm", "upper_arm"), ("upper_arm", "torso")},
}
HOLD_MODES = tuple(HOLD_KIND_PAIRS)

# Frames per block in capsule_gaps: a (C, C, 48) float64 temporary is 124 kB, under glibc's mmap
# threshold (capsule_gaps docstring), and 48-long inner loops keep numpy's per-call cost small.
_FRAMES_PER_BLOCK = 48
_EPS = 1e-12


def hold_pair_mask(hold: str | None) -> np.ndarray:
    """``(C, C)`` bool: True where capsule i of one dancer and j of the other may touch in ``hold``.

    ``hold`` is ``None`` (no hold: nothing excused), ``"open"`` or ``"closed"`` (module docstring).
    The mask is symmetric, so it applies to either dancer order.
    """
    if hold is None:
        return np.zeros((NUM_CAPSULES, NUM_CAPSULES), bool)
    if hold not in HOLD_KIND_PAIRS:
        raise ValueError(f"hold must be None or one of {HOLD_MODES}; got {hold!r}")
    pairs = HOLD_KIND_PAIRS[hold]
    return np.array([[(ki, kj) in pairs or (kj, ki) in pairs for kj in CAPSULE_KINDS] for ki in CAPSULE_KINDS])


def _check_joints(joints, name: str) -> np.ndarray:
    arr = np.asarray(joints)
    if arr.ndim < 2 or arr.shape[-2:] != (NUM_JOINTS, 3):
        raise ValueError(f"{name} must have shape (..., {NUM_JOINTS}, 3); got {arr.shape}")
    return arr


def capsule_segments(joints: np.ndarray) -> np.ndarray:
    """Capsule end points ``(..., C, 2, 3)`` of a dancer from joints ``(..., 55, 3)``."""
    joints = _check_joints(joints, "joints")
    lead = joints.shape[:-2]
    start, end = _segment_ends_xyz(joints.reshape(-1, NUM_JOINTS, 3))
    seg = np.stack([start, end], axis=0).transpose(3, 2, 0, 1)  # (2, 3, C, N) -> (N, C, 2, 3)
    return seg.reshape(lead + (NUM_CAPSULES, 2, 3))


def _segment_ends_xyz(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Capsule start and end points, coordinate-first and frames-last ``(3, C, N)``, of ``(N, 55, 3)``."""
    xyz = np.ascontiguousarray(np.asarray(joints, np.float64).transpose(2, 1, 0))  # (3, 55, N)
    start = xyz[:, _STARTS]
    end = xyz[:, np.where(_TO_HEAD_TOP, 0, _ENDS)]
    neck_to_head = xyz[:, 15] - xyz[:, 12]
    up = neck_to_head / np.maximum(np.sqrt((neck_to_head * neck_to_head).sum(0)), 1e-9)
    end[:, _TO_HEAD_TOP] = (xyz[:, 15] + HEAD_TOP_OFFSET * up)[:, None]
    return start, end


def _closest_parameters(a, b, c, e, f):
    """Clamped closest-point parameters (s, t) of two segments from their dot products.

    a = d1·d1, b = d1·d2, c = d1·r, e = d2·d2, f = d2·r with r = p0 − q0 (Ericson §5.1.9):
    s from the infinite lines' solution clamped to [0, 1], t the best for that s clamped, then s
    the best for that t clamped. Ericson recomputes s only when t was clamped; recomputing it
    always gives the same s otherwise (the box optimum of this convex quadratic is optimal in
    each coordinate) and saves the branch. Parallel lines (a e − b² ≈ 0) start from s = 0, which
    the two projections turn into a closest pair; a zero-length segment gets parameter 0
    (its d = 0 makes b, c or f vanish). Arithmetic instead of ``np.where``: faster on small batches.
    """
    denom = a * e - b * b
    s = np.clip((b * f - c * e) / np.maximum(denom, _EPS), 0.0, 1.0) * (denom > _EPS)
    t = np.clip((b * s + f) / np.maximum(e, _EPS), 0.0, 1.0)
    s = np.clip((b * t - c) / np.maximum(a, _EPS), 0.0, 1.0)
    return s, t


def _dot(u, v):
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _segment_distance_xyz(p0, d1, q0, d2) -> np.ndarray:
    """Closest distance of segments p0 + s d1 and q0 + t d2 (s, t ∈ [0, 1]); each argument is
    its three coordinates ``(x, y, z)``, arrays broadcasting against each other.

    Per coordinate, so no ``(3, ...)`` temporary is built: the caller keeps every temporary small
    and its loops long and contiguous (see :func:`capsule_gaps`).
    """
    r = [p - q for p, q in zip(p0, q0)]
    s, t = _closest_parameters(_dot(d1, d1), _dot(d1, d2), _dot(d1, r), _dot(d2, d2), _dot(d2, r))
    squared = sum((rk + s * uk - t * vk) ** 2 for rk, uk, vk in zip(r, d1, d2))
    return np.sqrt(squared)


def segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """Closest distance between segments [p0, p1] and [q0, q1], broadcast over leading axes ``(..., 3)``.

    Minimises |p0 + s d1 − q0 − t d2| over s, t ∈ [0, 1] (Ericson §5.1.9; :func:`_closest_parameters`).
    """
    p0, p1, q0, q1 = (np.moveaxis(np.asarray(x, np.float64), -1, 0) for x in (p0, p1, q0, q1))
    return _segment_distance_xyz(p0, p1 - p0, q0, q1 - q0)


def pairwise_segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """All-pairs :func:`segment_distance`: segments ``(..., N, 3)`` × ``(..., M, 3)`` -> ``(..., N, M)``."""
    p0, p1 = np.asarray(p0)[..., :, None, :], np.asarray(p1)[..., :, None, :]
    q0, q1 = np.asarray(q0)[..., None, :, :], np.asarray(q1)[..., None, :, :]
    return segment_distance(p0, p1, q0, q1)


def _check_pair(joints_a, joints_b) -> tuple[np.ndarray, np.ndarray]:
    """Two dancers' joints ``(..., 55, 3)`` of the same shape, or a clear error."""
    a, b = _check_joints(joints_a, "joints_a"), _check_joints(joints_b, "joints_b")
    if a.shape != b.shape:
        raise ValueError(f"joints_a {a.shape} and joints_b {b.shape} must have the same shape")
    return a, b


def _segment_ends_of_both(joints_a, joints_b):
    """Leading shape and the capsule start/end points ``(3, C, N)`` of two dancers of the same shape."""
    a, b = _check_pair(joints_a, joints_b)
    return (a.shape[:-2], _segment_ends_xyz(a.reshape(-1, NUM_JOINTS, 3)),
            _segment_ends_xyz(b.reshape(-1, NUM_JOINTS, 3)))


def capsule_gaps(joints_a: np.ndarray, joints_b: np.ndarray) -> np.ndarray:
    """Surface gaps ``(..., C, C)`` between capsule i of dancer A and capsule j of dancer B.

    ``joints_a`` and ``joints_b``: ``(..., 55, 3)`` with the same leading shape (frames, or
    envs × frames). gap = segment distance − r_i − r_j (module docstring); negative = overlap.

    Speed: the work runs as ``(C, C, frames)`` arrays (the frame axis last, so numpy's loops are
    long and contiguous) in blocks of :data:`_FRAMES_PER_BLOCK` frames, so each temporary stays
    below glibc's 128 kB mmap threshold — larger temporaries are mapped and page-faulted afresh
    on every operation, which made the env's 64-env step several times slower.
    """
    lead, (a0, a1), (b0, b1) = _segment_ends_of_both(joints_a, joints_b)
    # A's capsules along axis 0, B's along axis 1, frames last: (3, C, 1, N) against (3, 1, C, N).
    a0, da = a0[:, :, None], (a1 - a0)[:, :, None]
    b0, db = b0[:, None], (b1 - b0)[:, None]
    num_frames = a0.shape[-1]
    out = np.empty((NUM_CAPSULES, NUM_CAPSULES, num_frames))
    radius_sum = _RADIUS_SUM[:, :, None]
    for start in range(0, num_frames, _FRAMES_PER_BLOCK):
        block = slice(start, start + _FRAMES_PER_BLOCK)
        dist = _segment_distance_xyz(a0[..., block], da[..., block], b0[..., block], db[..., block])
        np.subtract(dist, radius_sum, out=out[..., block])
    return np.ascontiguousarray(out.transpose(2, 0, 1)).reshape(lead + (NUM_CAPSULES, NUM_CAPSULES))


# The broad phase runs in float32 about the frame's own origin (B's hips), where rounding is below
# 1e-6 m; a pair is tested exactly when its bounding spheres come closer than this margin (m), far
# above that rounding, so a pair left out has a positive gap and cannot count as overlap.
_BROAD_PHASE_MARGIN = 1e-3
# Frames per broad-phase block: (C, C, 96) float32 temporaries are 124 kB (see _FRAMES_PER_BLOCK).
_BROAD_PHASE_FRAMES = 96


def deepest_overlap(joints_a: np.ndarray, joints_b: np.ndarray, excused: np.ndarray | None = None) -> np.ndarray:
    """Deepest overlap (m, ≥ 0) per frame of dancer A's capsules with dancer B's:
    ``overlap_depth(capsule_gaps(joints_a, joints_b), excused)``, computed faster.

    Shapes as :func:`capsule_gaps` (``(..., 55, 3)`` each) -> ``(...)``; ``excused`` as
    :func:`overlap_depth`. Broad phase first: each capsule lies inside the sphere about its
    segment's midpoint m of radius R = half its length + its radius, so::

        gap(i, j) ≥ |m_i − m_j| − R_i − R_j

    and a pair whose spheres do not meet (right side ≥ 0) cannot overlap. Only the pairs left
    (a few per cent of the 324 per frame in SynthDuet's duets) get the exact segment distance, by
    the very same float64 arithmetic as :func:`capsule_gaps`, so the result equals it exactly.
    """
    if jit_enabled():
        return _deepest_overlap_compiled(joints_a, joints_b, excused)
    lead, (a0, a1), (b0, b1) = _segment_ends_of_both(joints_a, joints_b)  # (3, C, N) each
    num_frames = a0.shape[-1]
    if excused is not None:  # (N, C, C) -> (C, C, N), the layout below
        excused = np.broadcast_to(excused, lead + (NUM_CAPSULES, NUM_CAPSULES))
        excused = excused.reshape(num_frames, NUM_CAPSULES, NUM_CAPSULES).transpose(1, 2, 0)
    origin = (b0[:, 0] + b1[:, 0]) * 0.5  # (3, N)
    mid_a = ((a0 + a1) * 0.5 - origin[:, None]).astype(np.float32)
    mid_b = ((b0 + b1) * 0.5 - origin[:, None]).astype(np.float32)
    reach_a = (np.sqrt(_dot(a1 - a0, a1 - a0)) * 0.5 + CAPSULE_RADII[:, None]).astype(np.float32)  # (C, N)
    reach_b = (np.sqrt(_dot(b1 - b0, b1 - b0)) * 0.5 + CAPSULE_RADII[:, None] + _BROAD_PHASE_MARGIN).astype(np.float32)
    pairs = []
    for start in range(0, num_frames, _BROAD_PHASE_FRAMES):  # blocks: temporaries stay small
        block = slice(start, start + _BROAD_PHASE_FRAMES)
        centre_distance2 = sum((ma[:, None, block] - mb[None, :, block]) ** 2 for ma, mb in zip(mid_a, mid_b))
        reach = reach_a[:, None, block] + reach_b[None, :, block]
        near = centre_distance2 < reach * reach  # (C, C, frames of the block)
        if excused is not None:
            near &= ~excused[..., block]
        i, j, f = np.nonzero(near)
        pairs.append((i, j, f + start))
    i, j, f = (np.concatenate(x) for x in zip(*pairs)) if pairs else (np.zeros(0, int),) * 3
    depth = np.zeros(num_frames)
    if len(f):
        dist = _segment_distance_xyz(a0[:, i, f], a1[:, i, f] - a0[:, i, f], b0[:, j, f], b1[:, j, f] - b0[:, j, f])
        np.maximum.at(depth, f, _RADIUS_SUM[i, j] - dist)
    return depth.reshape(lead)


def _deepest_overlap_compiled(joints_a, joints_b, excused) -> np.ndarray:
    """:func:`deepest_overlap` by the numba kernel :func:`_overlap_kernel` (same value, bit for bit)."""
    a, b = _check_pair(joints_a, joints_b)
    lead = a.shape[:-2]
    # float32 (the env's) or float64 as given — the kernel widens each coordinate to float64 as
    # the numpy path does; anything else becomes float64.
    dtype = a.dtype if a.dtype == b.dtype and a.dtype in (np.float32, np.float64) else np.float64
    a = np.ascontiguousarray(a.reshape(-1, NUM_JOINTS, 3), dtype)
    b = np.ascontiguousarray(b.reshape(-1, NUM_JOINTS, 3), dtype)
    # The kernel reads mask ``frame // frames_per_mask``: one mask for all frames, one per env
    # (the penetration term's (B, 1, C, C) for frames (B, k)), or one per frame.
    square = (NUM_CAPSULES, NUM_CAPSULES)
    frames_per_mask = max(a.shape[0], 1)
    if excused is None:
        excused = np.zeros((1,) + square, bool)
    else:
        excused = np.asarray(excused, bool)
        if excused.ndim <= 2:
            excused = np.broadcast_to(excused, square)[None]
        elif len(lead) >= 1 and excused.shape == lead[:-1] + (1,) + square:
            excused, frames_per_mask = excused.reshape((-1,) + square), max(lead[-1], 1)
        else:
            excused, frames_per_mask = np.broadcast_to(excused, lead + square).reshape((-1,) + square), 1
    return _overlap_kernel(a, b, np.ascontiguousarray(excused), frames_per_mask).reshape(lead)


def _capsule_ends(joints, p0, d):
    """Kernel helper: start ``p0`` and direction ``d = end − start`` ``(C, 3)`` float64 of one
    frame's joints ``(55, 3)``, exactly as :func:`_segment_ends_xyz` rounds them."""
    nx = np.float64(joints[15, 0]) - np.float64(joints[12, 0])
    ny = np.float64(joints[15, 1]) - np.float64(joints[12, 1])
    nz = np.float64(joints[15, 2]) - np.float64(joints[12, 2])
    norm = max(np.sqrt(nx * nx + ny * ny + nz * nz), 1e-9)
    up = (nx / norm, ny / norm, nz / norm)
    for c in range(_STARTS.shape[0]):
        for k in range(3):
            start = np.float64(joints[_STARTS[c], k])
            if _TO_HEAD_TOP[c]:
                end = np.float64(joints[15, k]) + HEAD_TOP_OFFSET * up[k]
            else:
                end = np.float64(joints[_ENDS[c], k])
            p0[c, k] = start
            d[c, k] = end - start


def _pair_distance(p0, d1, q0, d2):
    """Kernel helper: :func:`_segment_distance_xyz` of two segments ``(3,)``, the same operations."""
    r0, r1, r2 = p0[0] - q0[0], p0[1] - q0[1], p0[2] - q0[2]
    a = d1[0] * d1[0] + d1[1] * d1[1] + d1[2] * d1[2]
    b = d1[0] * d2[0] + d1[1] * d2[1] + d1[2] * d2[2]
    c = d1[0] * r0 + d1[1] * r1 + d1[2] * r2
    e = d2[0] * d2[0] + d2[1] * d2[1] + d2[2] * d2[2]
    f = d2[0] * r0 + d2[1] * r1 + d2[2] * r2
    denom = a * e - b * b
    s = min(max((b * f - c * e) / max(denom, _EPS), 0.0), 1.0) * (1.0 if denom > _EPS else 0.0)
    t = min(max((b * s + f) / max(e, _EPS), 0.0), 1.0)
    s = min(max((b * t - c) / max(a, _EPS), 0.0), 1.0)
    x = r0 + s * d1[0] - t * d2[0]
    y = r1 + s * d1[1] - t * d2[1]
    z = r2 + s * d1[2] - t * d2[2]
    return np.sqrt(x * x + y * y + z * z)


def _frame_overlap(ja, jb, ex):
    """Kernel helper: deepest overlap (m, ≥ 0) of one frame's joints ``ja``, ``jb`` ``(55, 3)``,
    skipping the pairs ``ex`` ``(C, C)``. A pair is tested exactly unless its bounding spheres are
    apart (then its gap is positive and it cannot raise the maximum), so the result equals the
    numpy path's. The capsule table is read from this module's constants (frozen at compile)."""
    num = _STARTS.shape[0]
    pa, da = np.empty((num, 3)), np.empty((num, 3))
    pb, db = np.empty((num, 3)), np.empty((num, 3))
    reach_a, reach_b = np.empty(num), np.empty(num)
    _capsule_ends(ja, pa, da)
    _capsule_ends(jb, pb, db)
    for c in range(num):  # bounding sphere about the segment's midpoint: half length + radius
        reach_a[c] = 0.5 * np.sqrt(da[c, 0] ** 2 + da[c, 1] ** 2 + da[c, 2] ** 2) + CAPSULE_RADII[c]
        reach_b[c] = 0.5 * np.sqrt(db[c, 0] ** 2 + db[c, 1] ** 2 + db[c, 2] ** 2) + CAPSULE_RADII[c]
    deepest = 0.0
    for i in range(num):
        for j in range(num):
            if ex[i, j]:
                continue
            # Broad phase: spheres apart by more than 1 µm -> gap > 0, cannot be the deepest.
            cx = (pa[i, 0] + 0.5 * da[i, 0]) - (pb[j, 0] + 0.5 * db[j, 0])
            cy = (pa[i, 1] + 0.5 * da[i, 1]) - (pb[j, 1] + 0.5 * db[j, 1])
            cz = (pa[i, 2] + 0.5 * da[i, 2]) - (pb[j, 2] + 0.5 * db[j, 2])
            reach = reach_a[i] + reach_b[j] + 1e-6
            if cx * cx + cy * cy + cz * cz > reach * reach:
                continue
            over = _RADIUS_SUM[i, j] - _pair_distance(pa[i], da[i], pb[j], db[j])
            if over > deepest:
                deepest = over
    return deepest


def _overlap_kernel(a, b, excused, frames_per_mask):
    """Deepest overlap ``(N,)`` of joints ``a``, ``b`` ``(N, 55, 3)`` (float32 or float64); frame
    ``f`` skips the pairs of ``excused[f // frames_per_mask]`` ``(C, C)``."""
    depth = np.zeros(a.shape[0])
    for fr in range(a.shape[0]):
        depth[fr] = _frame_overlap(a[fr], b[fr], excused[fr // frames_per_mask])
    return depth


def _last_frames_kernel(a, b, hold, hold_mask, frames):
    depth = np.zeros((a.shape[0], frames))
    none = np.zeros_like(hold_mask)
    for e in range(a.shape[0]):
        ex = hold_mask if hold[e] else none
        for i in range(frames):
            fr = a.shape[1] - frames + i
            depth[e, i] = _frame_overlap(a[e, fr], b[e, fr], ex)
    return depth


def last_frames_overlap(joints_a: np.ndarray, joints_b: np.ndarray, hold: np.ndarray, hold_mask: np.ndarray,
                        frames: int) -> np.ndarray:
    """``deepest_overlap(joints_a[:, -frames:], joints_b[:, -frames:], hold[:, None, None, None] & hold_mask)``
    ``(B, frames)`` for joints ``(B, F, 55, 3)`` and ``hold`` ``(B,)``, in one compiled call (the
    penetration term's step; :mod:`duet_env.jit`). Needs numba; equal to the numpy path bit for bit."""
    if not jit_available():  # pragma: no cover
        raise RuntimeError("last_frames_overlap needs numba; use deepest_overlap")
    return _last_frames_kernel(joints_a, joints_b, hold, hold_mask, int(frames))


if jit_available():  # compiled lazily, on the first call
    _capsule_ends, _pair_distance, _frame_overlap = kernel(_capsule_ends), kernel(_pair_distance), kernel(_frame_overlap)
    _overlap_kernel, _last_frames_kernel = kernel(_overlap_kernel), kernel(_last_frames_kernel)


def overlap_depth(gaps: np.ndarray, excused: np.ndarray | None = None) -> np.ndarray:
    """Deepest overlap (m, ≥ 0) per frame: ``max(0, −min gap)`` over the pairs not ``excused``.

    ``gaps`` ``(..., C, C)`` from :func:`capsule_gaps`; ``excused`` a bool mask broadcasting
    against it (e.g. :func:`hold_pair_mask`, or per-env masks ``(B, 1, C, C)``).
    """
    if excused is not None:
        gaps = np.where(excused, np.inf, gaps)
    return np.maximum(-gaps.min(axis=(-2, -1)), 0.0)
