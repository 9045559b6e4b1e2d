"""Measurements of a SynthDuet clip (used by the tests and for the dataset report).

``python -m duet_env.data.synth_checks DIR`` prints the properties of every clip in DIR.
These are plain property checks of the generator, not the benchmark metrics of
:mod:`duet_env.metrics` (which implement the published formulas on their own).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from .. import skeleton
from ..genres import style_of
from ..motion import FPS, heading_angle, heading_from_joints

# Capsule proxy (joint a, joint b, radius m) of one body.
CAPSULES: tuple[tuple[int, int, float], ...] = (
    (0, 9, 0.12), (9, 12, 0.11), (12, 15, 0.09),
    (16, 18, 0.05), (17, 19, 0.05), (18, 20, 0.045), (19, 21, 0.045), (20, 29, 0.04), (21, 44, 0.04),
    (1, 4, 0.06), (2, 5, 0.06), (4, 7, 0.05), (5, 8, 0.05), (7, 10, 0.04), (8, 11, 0.04),
)
# Capsules of the holding arms per dancer (0 = leader, 1 = follower): forearms and hands;
# in closed hold also the leader's right and the follower's left upper arm (her arm rests on his).
HOLD_ARM_CAPSULES = {"closed": ({4, 5, 6, 7, 8}, {3, 5, 6, 7, 8}), "open": ({5, 7}, {6, 8})}


def motion_beats(joints: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """Frames of local minima of the Gaussian-smoothed (σ frames) mean joint speed."""
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(-1)
    speed = np.concatenate([speed[:1], speed])
    return argrelextrema(gaussian_filter1d(speed, sigma), np.less)[0]


def beat_alignment(music_beats: np.ndarray, dance_beats: np.ndarray, sigma: float = 3.0) -> float:
    """BAS-style score: mean over music beats of exp(-d² / (2σ²)), d = frames to the nearest
    dance beat (Bailando's beat-align score, σ = 3 frames)."""
    if len(music_beats) == 0 or len(dance_beats) == 0:
        return 0.0
    d = np.min(np.abs(np.asarray(music_beats)[:, None] - np.asarray(dance_beats)[None]), axis=1)
    return float(np.mean(np.exp(-d.astype(np.float64) ** 2 / (2 * sigma ** 2))))


def facing_error(leader_joints: np.ndarray, follower_joints: np.ndarray, facing: float) -> np.ndarray:
    """Per-frame |angle| (rad) between the follower's heading and the leader's heading + facing."""
    d = heading_angle(heading_from_joints(follower_joints)) - heading_angle(heading_from_joints(leader_joints)) - facing
    return np.abs((d + np.pi) % (2 * np.pi) - np.pi)


def partner_distance(leader_joints: np.ndarray, follower_joints: np.ndarray) -> np.ndarray:
    """Horizontal pelvis-to-pelvis distance per frame (m)."""
    d = follower_joints[:, 0] - leader_joints[:, 0]
    return np.hypot(d[:, 0], d[:, 2])


def contact_share(leader_joints: np.ndarray, follower_joints: np.ndarray, threshold: float = 0.05) -> float:
    """Share of frames with the leader's left wrist within ``threshold`` of the follower's right wrist."""
    return float(np.mean(np.linalg.norm(leader_joints[:, 20] - follower_joints[:, 21], axis=-1) < threshold))


def foot_skating(joints: np.ndarray, height: float = 0.02) -> float:
    """Mean horizontal speed (m/s) of the lower foot joint (10/11) over frames where it is
    within ``height`` of the floor (y = 0)."""
    feet = joints[:, [10, 11]]
    vel = np.diff(feet[:, :, [0, 2]], axis=0) * FPS
    speed = np.linalg.norm(vel, axis=-1)
    y = feet[1:, :, 1]
    lower = np.argmin(y, axis=1)
    idx = np.arange(len(lower))
    mask = y[idx, lower] < height
    return float(speed[idx, lower][mask].mean()) if mask.any() else 0.0


def bone_length_error(joints: np.ndarray) -> float:
    """Max |bone length - rest bone length| (m) over frames and bones."""
    par = np.array(skeleton.PARENTS[1:])
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, par], axis=-1)
    return float(np.max(np.abs(lengths - skeleton.bone_lengths()[1:])))


def joint_angles_deg(poses: np.ndarray, joints=(4, 5, 18, 19)) -> np.ndarray:
    """Rotation angles (deg) of the local rotations of ``joints`` (T, len(joints))."""
    aa = poses.reshape(len(poses), -1, 3)[:, list(joints)]
    return np.rad2deg(np.linalg.norm(aa, axis=-1))


def _segment_distance(p1, q1, p2, q2):
    """Closest distance between segments p1q1 and p2q2 (broadcast over leading dims)."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = np.sum(d1 * d1, -1)
    e = np.sum(d2 * d2, -1)
    f = np.sum(d2 * r, -1)
    c = np.sum(d1 * r, -1)
    b = np.sum(d1 * d2, -1)
    denom = np.maximum(a * e - b * b, 1e-12)
    s = np.clip((b * f - c * e) / denom, 0.0, 1.0)
    t = (b * s + f) / np.maximum(e, 1e-12)
    t = np.clip(t, 0.0, 1.0)
    s = np.clip((b * t - c) / np.maximum(a, 1e-12), 0.0, 1.0)
    return np.linalg.norm(p1 + d1 * s[..., None] - (p2 + d2 * t[..., None]), axis=-1)


def penetration(leader_joints: np.ndarray, follower_joints: np.ndarray, hold: str | None = None,
                tolerance: float = 0.01) -> tuple[float, float]:
    """Capsule-proxy interpenetration between the two dancers.

    Returns (share of frames where some capsule pair overlaps by more than ``tolerance``,
    mean maximum overlap depth in m). With a ``hold`` ("closed"/"open") the holding arms'
    forearm and hand capsules are left out (contact is expected there)."""
    skip = HOLD_ARM_CAPSULES.get(hold or "", (set(), set()))
    ia = [i for i in range(len(CAPSULES)) if i not in skip[0]]
    ib = [i for i in range(len(CAPSULES)) if i not in skip[1]]
    a0 = leader_joints[:, [CAPSULES[i][0] for i in ia]][:, :, None]
    a1 = leader_joints[:, [CAPSULES[i][1] for i in ia]][:, :, None]
    b0 = follower_joints[:, [CAPSULES[i][0] for i in ib]][:, None]
    b1 = follower_joints[:, [CAPSULES[i][1] for i in ib]][:, None]
    radii = np.array([CAPSULES[i][2] for i in ia])[:, None] + np.array([CAPSULES[i][2] for i in ib])[None]
    depth = np.max(radii[None] - _segment_distance(a0, a1, b0, b1), axis=(1, 2))
    return float(np.mean(depth > tolerance)), float(np.mean(np.maximum(depth, 0.0)))


def load_joints(root: Path, name: str):
    out = []
    for suffix in ("_01", "_00"):
        d = np.load(root / "motion" / "smplx" / "all" / f"{name}{suffix}.npy", allow_pickle=True).item()
        out.append((d, skeleton.forward_kinematics(d["poses"].astype(np.float64), d["transl"].astype(np.float64))))
    return out


def clip_report(root: str | Path, name: str) -> dict:
    """All measurements of one clip of a SynthDuet folder."""
    root = Path(root)
    meta = json.loads((root / "synth_meta" / f"{name}.json").read_text())
    (ld, lj), (fd, fj) = load_joints(root, name)
    style = style_of(meta["genre"])
    beats = np.asarray(meta["beat_frames"])
    beats = beats[(beats > 10) & (beats < len(lj) - 10)]
    dist = partner_distance(lj, fj)
    lo, hi = style.partner_distance

    def planted_speed(joints, runs):
        v = []
        for side, j in (("left", 7), ("right", 8)):
            for a, b in runs[side]:
                if b - a >= 2:
                    v.append(np.linalg.norm(np.diff(joints[a:b, j][:, [0, 2]], axis=0), axis=-1).max() * FPS)
        return float(max(v)) if v else 0.0

    return {
        "genre": meta["genre"], "frames": len(lj),
        "bas_leader": beat_alignment(beats, motion_beats(lj)),
        "bas_follower": beat_alignment(beats, motion_beats(fj)),
        "facing_err_median_deg": float(np.rad2deg(np.median(facing_error(lj, fj, style.facing)))),
        "distance_in_range": float(np.mean((dist >= lo - 1e-3) & (dist <= hi + 1e-3))),
        "contact": contact_share(lj, fj),
        "skating_leader": foot_skating(lj), "skating_follower": foot_skating(fj),
        "planted_speed_max": max(planted_speed(lj, meta["planted"]["leader"]),
                                 planted_speed(fj, meta["planted"]["follower"])),
        "bone_err": max(bone_length_error(lj), bone_length_error(fj)),
        "max_knee_elbow_deg": float(max(joint_angles_deg(ld["poses"]).max(), joint_angles_deg(fd["poses"]).max())),
        "penetration": penetration(lj, fj, meta["partner"]["hold"])[0],
        "min_pelvis_distance": float(np.min(np.linalg.norm(fj[:, 0] - lj[:, 0], axis=-1))),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m duet_env.data.synth_checks")
    ap.add_argument("root")
    args = ap.parse_args(argv)
    root = Path(args.root)
    names = sorted(p.stem for p in (root / "synth_meta").glob("*.json") if p.stem != "dataset")
    rows = [clip_report(root, n) for n in names]
    keys = [k for k in rows[0] if k not in ("genre", "frames")]
    for genre in sorted({r["genre"] for r in rows}):
        sel = [r for r in rows if r["genre"] == genre]
        w = np.array([r["frames"] for r in sel], np.float64)
        print(genre, len(sel), "clips", {k: round(float(np.average([r[k] for r in sel], weights=w)), 4)
                                         if not k.startswith(("max", "min", "planted", "bone")) else
                                         round(float((max if not k.startswith("min") else min)(r[k] for r in sel)), 5)
                                         for k in keys})


if __name__ == "__main__":
    main()
