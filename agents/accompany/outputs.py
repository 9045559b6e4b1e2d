"""The files of an accompaniment run (all but the video): SMPL-X dicts, joints, BVH, metrics, card.

==============  =====================================================================================
file            content
==============  =====================================================================================
leader.npy      DD100 SMPL-X dict of the leader: ``poses`` (T, 165), ``transl`` (T, 3), ``betas``,
                ``gender`` (the user's own for a leader file), 30 fps
follower.npy    the same for the generated follower: ``poses`` = the rotations the tokenizer decoded,
                ``transl`` = pelvis − ``REST_OFFSETS[0]``; it reloads (project loader + forward
                kinematics) to the joints in joints.npz
joints.npz      ``leader``, ``follower`` (T, 55, 3) float32 world joints (metres, y up; the joints the
                env, the rewards and the metrics use), ``fps``, ``joint_names``, ``parents``,
                ``music_beats`` (beat frame indices), ``follower_tokens`` (N, 5) (the policy's
                tokens: the tokenizer decodes them, with the leader's joints, to ``follower``)
duet.bvh        both dancers, skeletons ``leader:*`` and ``follower:*`` (:mod:`duet_env.data.bvh`)
metrics.json    BAS, BED, contact_freq, penetration, slip_rate of the duet (duet_env.metrics), the
                leader's own BAS and slip_rate, the duet's length and genre
card.md         the command, the song (tempo, beats), the leader, the timings per stage, the metrics
==============  =====================================================================================
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from duet_env import skeleton
from duet_env.atomic import atomic_save_npy, atomic_save_npz, atomic_write_json, atomic_write_text
from duet_env.conventions import FPS
from duet_env.data.bvh import write_bvh

METRIC_NAMES = ("BAS", "BED", "contact_freq", "penetration", "slip_rate")


def smplx_dict(poses: np.ndarray, transl: np.ndarray, betas: np.ndarray, gender: str) -> dict:
    return {"poses": np.asarray(poses, np.float32), "transl": np.asarray(transl, np.float32),
            "betas": np.asarray(betas, np.float32), "gender": str(gender)}


def write_motion(folder: Path, leader: dict, follower: dict) -> None:
    """leader.npy and follower.npy (DD100 format: ``np.save`` of the dict)."""
    atomic_save_npy(folder / "leader.npy", leader, allow_pickle=True)
    atomic_save_npy(folder / "follower.npy", follower, allow_pickle=True)


def write_joints(folder: Path, leader_joints: np.ndarray, follower_joints: np.ndarray, beats: np.ndarray,
                 follower_tokens: np.ndarray) -> None:
    atomic_save_npz(folder / "joints.npz", {
        "leader": np.asarray(leader_joints, np.float32), "follower": np.asarray(follower_joints, np.float32),
        "follower_tokens": np.asarray(follower_tokens, np.int64),
        "fps": np.array(FPS), "joint_names": np.array(skeleton.JOINT_NAMES),
        "parents": np.array(skeleton.PARENTS), "music_beats": np.asarray(beats, np.int64),
    })


def write_duet_bvh(folder: Path, leader: dict, leader_pelvis: np.ndarray, follower: dict,
                   follower_pelvis: np.ndarray) -> None:
    write_bvh(folder / "duet.bvh", [("leader", leader["poses"], leader_pelvis),
                                    ("follower", follower["poses"], follower_pelvis)])


def duet_metrics(follower: np.ndarray, leader: np.ndarray, beats: np.ndarray) -> dict:
    """The duet metrics of one clip (:mod:`duet_env.metrics`; NaN BAS when there is no beat)."""
    from duet_env.metrics import (beat_align_score, beat_echo_degree, contact_and_penetration_frames,
                                  foot_slip_rate)

    touching, penetrating = contact_and_penetration_frames(follower, leader)
    return {
        "BAS": beat_align_score(follower, beats), "BED": beat_echo_degree(follower, leader),
        "contact_freq": float(touching.mean()), "penetration": float(penetrating.mean()),
        "slip_rate": foot_slip_rate(follower),
        "leader": {"BAS": beat_align_score(leader, beats), "slip_rate": foot_slip_rate(leader)},
    }


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_metrics(folder: Path, metrics: dict) -> None:
    atomic_write_json(folder / "metrics.json", _json_safe(metrics))


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.3f}"


def card_text(info: dict, timings: dict[str, float], metrics: dict, seconds: float,
              cpu: dict[str, float] | None = None) -> str:
    """card.md: ``info`` rows (name -> text), wall-clock and CPU timings (stage -> s), the metrics."""
    cpu = cpu or {}
    lines = [f"# Accompaniment of {info['song file']}", "", "```", info.pop("command"), "```", "",
             "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in info.items() if k != "notes"]
    if info.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in info["notes"]]
    lines += ["", "## Timings", "", f"The song is {seconds:.1f} s long; speed = song length / stage time. CPU seconds "
              "are this process's and its ffmpeg's: other jobs on the machine slow the wall clock, not them.", "",
              "| stage | seconds | speed (× real time) | CPU seconds |", "| --- | --- | --- | --- |"]

    def row(name: str, stages: list[str]) -> str:
        t, c = sum(timings[s] for s in stages), sum(cpu.get(s, float("nan")) for s in stages)
        return f"| {name} | {t:.2f} | {seconds / max(t, 1e-9):.1f} | {c:.2f} |"

    lines += [row(stage, [stage]) for stage in timings]
    lines.append(row("**total without video**", [s for s in timings if s != "video"]))
    if "video" in timings:
        lines.append(row("**total**", list(timings)))
    lines += ["", "## Metrics", "", "duet_env.metrics on the whole duet (docs/metrics.md); the leader's own BAS and "
              "foot slip beside the follower's.", "", "| metric | follower | leader |", "| --- | --- | --- |"]
    for k in METRIC_NAMES:
        lines.append(f"| {k} | {_fmt(metrics.get(k))} | {_fmt(metrics.get('leader', {}).get(k))} |")
    lines += ["", "## Files", "", "leader.npy, follower.npy (DD100 SMPL-X dicts), joints.npz (leader, follower "
              "(T, 55, 3) metres), duet.bvh (two skeletons, 30 fps, metres, ZXY Euler channels), "
              + ("duet.mp4 (with the music), " if "video" in timings else "")
              + "metrics.json, this card.", ""]
    return "\n".join(lines)


def write_card(folder: Path, text: str) -> None:
    atomic_write_text(folder / "card.md", text)
