"""Measurements of a SynthDuet clip (used by the tests and for the dataset report).

``python -m duet_env.data.synth_checks DIR`` prints the properties of every clip in DIR.
Most are plain property checks of the generator (facing, distance, skating, bone lengths).
Where a check measures what a benchmark metric measures, it uses the same code, so the dataset
report and :mod:`duet_env.metrics` agree: motion beats and the beat-align score come from
:mod:`duet_env.metrics.beats`, penetration from the shared capsule proxy :mod:`duet_env.capsules`
(with the clip's own hold mode, where the metric, knowing no genre, excuses a closed hold's pairs).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .. import skeleton
from ..capsules import PENETRATION_ALLOWANCE, deepest_overlap, hold_pair_mask
from ..genres import style_of
from ..metrics.beats import BEAT_SIGMA, alignment_score, motion_beats  # noqa: F401  (motion_beats: public here)
from ..conventions import FPS
from ..motion import heading_angle, heading_from_joints
from .safe_pickle import load_npy_dict


def beat_alignment(music_beats: np.ndarray, dance_beats: np.ndarray, sigma: float = BEAT_SIGMA) -> float:
    """Bailando's beat-align score of the music beats against dance beats (σ = 3 frames):
    :func:`duet_env.metrics.alignment_score`, but 0 rather than undefined with no music beats."""
    return alignment_score(music_beats, dance_beats, sigma) if len(music_beats) else 0.0


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


def penetration(leader_joints: np.ndarray, follower_joints: np.ndarray, hold: str | None = None,
                tolerance: float = PENETRATION_ALLOWANCE) -> tuple[float, float]:
    """Interpenetration of the two dancers on the shared capsule proxy (:mod:`duet_env.capsules`).

    Returns (share of frames where some capsule pair overlaps by more than ``tolerance``, mean
    per-frame deepest overlap in m). With a ``hold`` ("closed"/"open") the pairs that hold puts
    together are left out (:func:`duet_env.capsules.hold_pair_mask`). The default tolerance is
    the 2 cm allowance of the penetration metric and reward term, so the three agree.
    """
    depth = deepest_overlap(leader_joints, follower_joints, hold_pair_mask(hold))
    return float(np.mean(depth > tolerance)), float(np.mean(depth))


def load_joints(root: Path, name: str):
    out = []
    for suffix in ("_01", "_00"):
        d = load_npy_dict(root / "motion" / "smplx" / "all" / f"{name}{suffix}.npy")  # restricted unpickler
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
