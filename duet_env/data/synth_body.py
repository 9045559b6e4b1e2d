"""From beat keys to SMPL-X poses: eased world targets, then local joint rotations by IK.

Stage 1 (:func:`solve_body`): pelvis, spine, head and legs. The pelvis height is the
desired height minus the beat dips, capped per key so that both ankles stay reachable
(two-bone reach) over the neighbouring beat intervals — so the IK never has to stretch and
planted feet stay exactly planted. Stage 2 (:func:`solve_arms`): arms by two-bone IK to world
targets (free-arm poses, or partner-hold targets given by the partner rules), fingers by
smooth curls. Local rotations come from desired global ones as R_local_j = R_parent^T R_j.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import skeleton
from ..conventions import BODY_JOINTS, joints
from .synth_kinematics import (KeyPhase, align, fk_numpy, rot_x, rot_y, rot_z, two_bone_ik, unit,
                               yaw_apply, axis_rotation)

ANKLE_HEIGHT = 0.075   # ankle joint above the floor with the foot flat (foot joint ~1.7 cm)
HIP_DROP = -skeleton.REST_OFFSETS[1][1]  # hip joint below the pelvis joint (m)
THIGH = float(np.linalg.norm(skeleton.REST_OFFSETS[4]))
SHIN = float(np.linalg.norm(skeleton.REST_OFFSETS[7]))
UPPER_ARM = float(np.linalg.norm(skeleton.REST_OFFSETS[18]))
FOREARM = float(np.linalg.norm(skeleton.REST_OFFSETS[20]))
LEG_REACH = 0.995      # IK clamp (fraction of the leg length)
PLAN_REACH = 0.985     # the pelvis height plan keeps the legs inside this fraction
MIN_PELVIS = 0.55
POINTED_TOE = 0.8      # ankle pitch of a foot in the air (rad)

# Free-arm poses: wrist target relative to the shoulder and elbow pole, in the body frame of
# the LEFT arm (x = outwards, y = up, z = forward); the right arm mirrors x.
ARM_POSES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "low": ((0.07, -0.47, 0.07), (0.3, 0.0, -1.0)),
    "side": ((0.45, -0.06, 0.07), (0.0, -1.0, -0.3)),
    "front": ((0.08, -0.05, 0.45), (0.4, -1.0, 0.0)),
    "up": ((0.10, 0.44, 0.06), (1.0, 0.0, -0.3)),
    "hip": ((0.07, -0.30, -0.02), (1.0, 0.0, -0.3)),
    "chest": ((-0.10, -0.18, 0.24), (1.0, -0.5, 0.0)),
    "punch": ((0.02, 0.0, 0.47), (0.5, -1.0, 0.0)),
    "wave_up": ((0.30, 0.30, 0.10), (0.2, -1.0, -0.3)),
    "first": ((-0.04, -0.33, 0.26), (0.6, -0.2, -0.3)),
    "second": ((0.40, -0.12, 0.16), (0.0, -0.6, -1.0)),
    "fifth": ((-0.02, 0.38, 0.13), (0.6, 0.3, -0.3)),
    "front_high": ((0.05, 0.16, 0.45), (0.5, -1.0, 0.0)),
}
_FINGER_CHAINS = [joints(*(f"left_{f}{i}" for i in (1, 2, 3))) for f in ("index", "middle", "pinky", "ring", "thumb")]


@dataclass
class Track:
    """Per-frame targets of one dancer (T frames)."""

    pelvis: np.ndarray      # (T, 3) world pelvis joint position
    yaw: np.ndarray         # (T,) body yaw
    feet: np.ndarray        # (T, 2, 3) ankle targets (left, right)
    foot_yaw: np.ndarray    # (T, 2)
    foot_pitch: np.ndarray  # (T, 2)
    lean: np.ndarray
    twist: np.ndarray
    side_bend: np.ndarray
    head_yaw: np.ndarray
    head_pitch: np.ndarray
    arm_target: np.ndarray  # (T, 2, 3) free-arm wrist targets, body frame, left-arm convention
    arm_pole: np.ndarray    # (T, 2, 3)
    hold: np.ndarray        # (T,)
    raise_hands: np.ndarray
    curl: np.ndarray        # (T,)
    planted: np.ndarray     # (T, 2) bool: the foot's keys are equal over the frame's interval


def _height_keys(desired: np.ndarray, y_max: np.ndarray, phase: KeyPhase) -> np.ndarray:
    """Cap each key by the reachable height over the two intervals touching it."""
    k = desired.shape[0]
    interval_min = np.full(k - 1, np.inf)
    np.minimum.at(interval_min, phase.idx, y_max)
    cap = np.minimum(np.concatenate([[np.inf], interval_min]), np.concatenate([interval_min, [np.inf]]))
    return np.maximum(np.minimum(desired, cap), MIN_PELVIS)


def _spread(k: np.ndarray) -> np.ndarray:
    """[1/4, 1/2, 1/4] over neighbouring keys (the first and last keys kept)."""
    k = np.asarray(k, np.float64)
    out = k.copy()
    if len(k) > 2:
        out[1:-1] = 0.25 * k[:-2] + 0.5 * k[1:-1] + 0.25 * k[2:]
    return out


def track_from_keys(keys: dict[str, np.ndarray], key_times: np.ndarray, times: np.ndarray,
                    base_height: float, style_lag: float = 0.0, pulse: float = 0.0) -> Track:
    """Eased per-frame targets from beat keys (see :mod:`synth_steps` for the key fields).

    ``pulse`` (rad) adds an upper-body twist alternating sign on every beat (+-pulse from
    beat 1 on): every beat interval then carries a comparable amount of motion, so the
    smoothed joint speed has one clear minimum per beat even where a move has a small
    step (a close) next to a large one."""
    ph = KeyPhase.of(key_times, times)
    alternating = np.where(np.arange(len(key_times)) % 2 == 1, pulse, -pulse)
    alternating[0] = 0.0
    # Spread the pelvis travel and the styling keys over neighbouring beats ([1/4, 1/2, 1/4]):
    # a close step moves the pelvis little next to a long step, and an arm change keyed on one
    # beat would leave its neighbours still; an even amount of motion per beat keeps one clear
    # speed minimum per beat. Reach is still guaranteed by the height plan below.
    keys = dict(keys)
    for name in ("pelvis", "twist", "side_bend", "lean", "head_yaw", "head_pitch", "hold", "raise_hands", "curl", "dip"):
        keys[name] = _spread(keys[name])
    keys["twist"] = keys["twist"] + alternating
    keys["raise_hands"] = keys["raise_hands"] + 0.1 * alternating
    sph = ph if style_lag == 0.0 else KeyPhase.of(key_times + style_lag, times)
    feet = ph.ease(keys["feet"])
    feet[..., 1] += ANKLE_HEIGHT + np.stack([ph.arc(keys["arc"][:, 0]), ph.arc(keys["arc"][:, 1])], -1)
    pelvis_xz = ph.ease(keys["pelvis"])
    yaw = ph.ease(keys["yaw"])
    # Reachable pelvis height per frame: for each leg, hip above the ankle by at most
    # sqrt(Lr² - horizontal²), hip HIP_DROP below the pelvis.
    lr = PLAN_REACH * (THIGH + SHIN)
    y_max = np.full(times.shape, np.inf)
    for f, side in ((0, 1.0), (1, -1.0)):
        hip = pelvis_xz + yaw_apply(yaw, np.array([side * skeleton.REST_OFFSETS[1][0], 0.0, skeleton.REST_OFFSETS[1][2]]))
        horiz = np.hypot(hip[:, 0] - feet[:, f, 0], hip[:, 2] - feet[:, f, 2])
        y_max = np.minimum(y_max, feet[:, f, 1] + np.sqrt(np.maximum(lr * lr - horiz * horiz, 0.0)) + HIP_DROP)
    heights = _height_keys(base_height - keys["dip"], y_max, ph)
    pelvis = pelvis_xz.copy()
    pelvis[:, 1] = ph.ease(heights)
    in_air = (keys["feet"][:, :, 1] > 1e-9).astype(np.float64)
    target = tuple(_spread(np.array([ARM_POSES[n][0] for n in keys[a]])) for a in ("arm_l", "arm_r"))
    pole = tuple(_spread(np.array([ARM_POSES[n][1] for n in keys[a]])) for a in ("arm_l", "arm_r"))
    foot_keys = keys["feet"]
    planted = (np.all(foot_keys[ph.idx] == foot_keys[ph.idx + 1], axis=-1)
               & (keys["foot_yaw"][ph.idx] == keys["foot_yaw"][ph.idx + 1])
               & (foot_keys[ph.idx][..., 1] == 0.0))
    return Track(
        pelvis=pelvis, yaw=yaw, feet=feet, foot_yaw=ph.ease(keys["foot_yaw"]),
        foot_pitch=ph.ease(in_air * POINTED_TOE), lean=ph.ease(keys["lean"]), twist=sph.ease(keys["twist"]),
        side_bend=ph.ease(keys["side_bend"]), head_yaw=sph.ease(keys["head_yaw"]),
        head_pitch=sph.ease(keys["head_pitch"]),
        arm_target=np.stack([sph.ease(target[0]), sph.ease(target[1])], 1),
        arm_pole=np.stack([sph.ease(pole[0]), sph.ease(pole[1])], 1),
        hold=ph.ease(keys["hold"]), raise_hands=ph.ease(keys["raise_hands"]), curl=sph.ease(keys["curl"]),
        planted=planted,
    )


def solve_body(track: Track) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stage 1: local rotations (T, 55, 3, 3) of pelvis, spine, head and legs; returns
    (local, global rotations, global positions) with the arms still at rest."""
    t = track.pelvis.shape[0]
    local = np.broadcast_to(np.eye(3), (t, skeleton.NUM_JOINTS, 3, 3)).copy()
    local[:, 0] = rot_y(track.yaw) @ rot_x(0.3 * track.lean)
    spine = rot_y(track.twist / 3.0) @ rot_x(0.7 * track.lean / 3.0) @ rot_z(-track.side_bend / 3.0)
    for j in (3, 6, 9):
        local[:, j] = spine
    local[:, 12] = rot_x(-0.5 * track.lean)  # keep the gaze level when the trunk bows
    local[:, 15] = rot_y(track.head_yaw) @ rot_x(track.head_pitch)
    rots, pos = fk_numpy(local, track.pelvis, upto=len(BODY_JOINTS))
    fwd_body = yaw_apply(track.yaw, np.array([0.0, 0.0, 1.0]))
    x_axis = np.array([1.0, 0.0, 0.0])
    for f, (hip_j, knee_j, ankle_j) in enumerate(((1, 4, 7), (2, 5, 8))):
        foot_fwd = yaw_apply(track.foot_yaw[:, f], np.array([0.0, 0.0, 1.0]))
        pole = unit(fwd_body + foot_fwd + 1e-3 * fwd_body)
        knee, ankle, hinge = two_bone_ik(pos[:, hip_j], track.feet[:, f], THIGH, SHIN, pole, LEG_REACH)
        r_hip = align(unit(skeleton.REST_OFFSETS[knee_j]), x_axis, knee - pos[:, hip_j], hinge)
        r_knee = align(unit(skeleton.REST_OFFSETS[ankle_j]), x_axis, ankle - knee, hinge)
        r_ankle = rot_y(track.foot_yaw[:, f]) @ rot_x(track.foot_pitch[:, f])
        local[:, hip_j] = np.swapaxes(rots[:, 0], -1, -2) @ r_hip
        local[:, knee_j] = np.swapaxes(r_hip, -1, -2) @ r_knee
        local[:, ankle_j] = np.swapaxes(r_knee, -1, -2) @ r_ankle
    rots, pos = fk_numpy(local, track.pelvis, upto=len(BODY_JOINTS))
    return local, rots, pos


def free_arm_targets(track: Track, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World wrist targets and poles (T, 2, 3) of the free-arm poses (upper-body yaw)."""
    upper_yaw = track.yaw + track.twist
    targets, poles = [], []
    for f, (sh, mirror) in enumerate(((16, 1.0), (17, -1.0))):
        m = np.array([mirror, 1.0, 1.0])
        targets.append(pos[:, sh] + yaw_apply(upper_yaw, track.arm_target[:, f] * m))
        poles.append(yaw_apply(upper_yaw, track.arm_pole[:, f] * m))
    return np.stack(targets, 1), np.stack(poles, 1)


def solve_arms(local: np.ndarray, rots: np.ndarray, pos: np.ndarray, targets: np.ndarray,
               poles: np.ndarray, grip: np.ndarray, curl: np.ndarray) -> np.ndarray:
    """Stage 2: shoulder and elbow rotations by IK to wrist ``targets`` (T, 2, 3) with elbow
    ``poles``; finger curls: ``curl`` (T,) for a free hand raised towards a closed grip of
    1.1 rad per joint by ``grip`` (T, 2) in [0, 1]. Returns the completed local rotations."""
    for f, (collar, sh, el, rest_hinge) in enumerate(((13, 16, 18, (0.0, -1.0, 0.0)), (14, 17, 19, (0.0, 1.0, 0.0)))):
        elbow, wrist, hinge = two_bone_ik(pos[:, sh], targets[:, f], UPPER_ARM, FOREARM, poles[:, f], 0.985)
        r_sh = align(unit(skeleton.REST_OFFSETS[el]), np.array(rest_hinge), elbow - pos[:, sh], hinge)
        r_el = align(unit(skeleton.REST_OFFSETS[el + 2]), np.array(rest_hinge), wrist - elbow, hinge)
        local[:, sh] = np.swapaxes(rots[:, collar], -1, -2) @ r_sh
        local[:, el] = np.swapaxes(r_sh, -1, -2) @ r_el
    for f, (base, axis) in enumerate(((25, (0.0, 0.0, -1.0)), (40, (0.0, 0.0, 1.0)))):
        amount = curl + (1.1 - curl) * grip[:, f]
        for finger, chain in enumerate(_FINGER_CHAINS):
            scale = 0.5 if finger == 4 else (1.0 + 0.1 * finger)
            r = axis_rotation(axis, amount * scale)
            for j in chain:
                local[:, j - 25 + base] = r
    return local
