"""Smoothness / foot-lift quantities (duet_env.metrics.smoothness), the foot-slip rate's
"no anchored foot" definition, and the motion keys of ``pretrain.vqvae.evaluate``."""
from __future__ import annotations

import math

import numpy as np
import pytest

from duet_env import skeleton
from duet_env.conventions import BEAT_COLUMN, BODY_JOINTS, FPS
from duet_env.metrics import (
    ReferenceStats, alignment_score, evaluate_duets, foot_slip_rate, geometric_features,
    kinetic_features, motion_beats, slipping_frames,
)
from duet_env.metrics.smoothness import ANKLES, foot_lift_err_cm, jerk, kinetic_energy
from tests.motion_fixtures import random_clip

STAND_HEIGHT = 1.3  # transl y that puts the rest skeleton's toes just above y = 0


def rest_body(transl: np.ndarray) -> np.ndarray:
    """Joints (T, 55, 3) of the rest skeleton at the given pelvis translations."""
    transl = np.asarray(transl, np.float64)
    return skeleton.forward_kinematics(np.zeros((len(transl), skeleton.POSE_DIM)), transl).astype(np.float64)


def translated(path: np.ndarray) -> np.ndarray:
    """(T, 55, 3): every joint of a fixed random pose moved along ``path`` (T, 3)."""
    base = np.random.default_rng(0).normal(size=(1, 55, 3))
    return base + path[:, None, :]


# ---------------------------------------------------------------- jerk, energy, foot lift

def test_jerk_of_constant_velocity_motion_is_zero():
    t = np.arange(40) / FPS
    x = translated(np.stack([0.7 * t, -0.2 * t, 1.1 * t], 1))
    assert jerk(x) == pytest.approx(0.0, abs=1e-6)
    assert jerk(translated(np.zeros((10, 3)))) == 0.0


def test_jerk_of_a_cubic_is_six_per_direction():
    t = np.arange(60) / FPS
    one_axis = translated(np.stack([t ** 3, 0 * t, 0 * t], 1))
    assert jerk(one_axis) == pytest.approx(6.0, rel=1e-6)
    all_axes = translated(np.stack([t ** 3, t ** 3, t ** 3], 1))
    assert jerk(all_axes) == pytest.approx(6.0 * math.sqrt(3.0), rel=1e-6)


def test_jerk_and_energy_use_only_the_22_body_joints():
    t = np.arange(30) / FPS
    x = translated(np.zeros((30, 3)))
    x[:, len(BODY_JOINTS):, 0] += t[:, None] ** 3 + 5.0 * t[:, None]  # fingers, jaw, eyes move; body still
    assert jerk(x) == 0.0 and kinetic_energy(x) == 0.0
    x[:, 3, 0] += t ** 3  # one of the 22 body joints: jerk 6 on 1 of 22 joints
    assert jerk(x) == pytest.approx(6.0 / len(BODY_JOINTS), rel=1e-6)


def test_energy_of_uniform_motion_is_half_v_squared():
    t = np.arange(50) / FPS
    v = np.array([0.3, 0.0, -0.4])  # speed 0.5 m/s
    assert kinetic_energy(translated(t[:, None] * v)) == pytest.approx(0.5 * 0.25, rel=1e-9)
    assert kinetic_energy(translated(np.zeros((5, 3)))) == 0.0


def test_foot_lift_error_known_answers():
    flat = translated(np.zeros((40, 3)))
    assert foot_lift_err_cm(flat, flat) == 0.0
    lifted = flat.copy()
    lifted[:20, ANKLES[0], 1] += 0.02  # left ankle 2 cm up for half the frames
    # left ankle: |2 - 0| cm on 20 of 40 frames -> 1 cm; right ankle 0 cm; mean over both: 0.5 cm
    assert foot_lift_err_cm(lifted, flat) == pytest.approx(0.5, rel=1e-9)
    assert foot_lift_err_cm(flat, lifted) == pytest.approx(0.5, rel=1e-9)
    # a constant height offset of the whole body is not a lift error
    assert foot_lift_err_cm(lifted + np.array([0.0, 0.3, 0.0]), lifted) == pytest.approx(0.0, abs=1e-9)


def test_smoothness_inputs_are_validated():
    with pytest.raises(ValueError, match="at least 4 frames"):
        jerk(translated(np.zeros((3, 3))))
    with pytest.raises(ValueError, match="same frames"):
        foot_lift_err_cm(translated(np.zeros((5, 3))), translated(np.zeros((6, 3))))
    with pytest.raises(ValueError, match="shape"):
        kinetic_energy(np.zeros((5, 22, 3)))


# ---------------------------------------------------------------- foot slip: no anchored foot

def _walk_one_foot_sliding(frames: int, speed: float, lift: float) -> np.ndarray:
    """Standing body whose LEFT foot (ankle + toe) moves forward at ``speed`` m/s, ``lift`` m
    above the floor; the right foot stays planted and still."""
    x = rest_body(np.tile([0.0, STAND_HEIGHT, 0.0], (frames, 1)))
    t = np.arange(frames) / FPS
    for j in (7, 10):
        x[:, j, 2] += speed * t
        x[:, j, 1] += lift
    return x


def test_slip_rate_whole_body_sliding_on_the_floor_is_one():
    t = np.arange(30) / FPS
    assert foot_slip_rate(rest_body(np.tile([0.0, STAND_HEIGHT, 0.0], (30, 1)))) == 0.0
    sliding = rest_body(np.stack([0.5 * t, np.full_like(t, STAND_HEIGHT), 0 * t], 1))  # 50 cm/s
    assert foot_slip_rate(sliding) == 1.0
    slow = rest_body(np.stack([0.1 * t, np.full_like(t, STAND_HEIGHT), 0 * t], 1))  # below 25 cm/s
    assert foot_slip_rate(slow) == 0.0


def test_a_low_fast_free_foot_beside_a_planted_foot_is_not_slipping():
    # SynthDuet's ballroom glides and floor slides: the free foot skims the floor (here at 0 and
    # 3 cm) at 60 cm/s while the other foot is planted and still -> the body is anchored
    for lift in (0.0, 0.03):
        assert foot_slip_rate(_walk_one_foot_sliding(30, 0.6, lift)) == 0.0


def test_slipping_needs_a_foot_on_the_floor():
    # a body in the air (every foot joint > 5 cm above its lowest point) moving fast: no slip
    t = np.arange(30) / FPS
    x = rest_body(np.stack([0.8 * t, STAND_HEIGHT + 0.2 + 0 * t, 0 * t], 1))
    x[:3, :, 1] -= 0.2  # the clip's lowest point: 3 still frames standing before the flight
    x[:3, :, 2] = x[3:4, :, 2]
    frames = slipping_frames(x)
    assert not frames[4:].any()


def test_slip_rate_stance_foot_sliding_under_a_lifted_foot_counts():
    # the only foot on the floor (right) slides at 50 cm/s while the left foot is 20 cm up
    x = _walk_one_foot_sliding(30, 0.0, 0.20)
    t = np.arange(30) / FPS
    for j in (8, 11):
        x[:, j, 2] += 0.5 * t
    x[0, 7, 1] -= 0.20  # the left ankle's kind's lowest point (one frame) keeps the ground level
    x[0, 10, 1] -= 0.20
    assert slipping_frames(x)[2:].all()


# ---------------------------------------------------------------- pretrain.vqvae.evaluate motion keys

NEW_KEYS = ("recon_FID_k", "recon_FID_g", "recon_BAS", "recon_slip_rate", "energy_ratio", "jerk_ratio",
            "foot_lift_err_cm")


def _clip_with_beats(seed: int, t: int, name: str):
    clip = random_clip(seed, t, name)
    clip.music[7::15, BEAT_COLUMN] = 1.0
    return clip


def test_evaluate_reports_motion_metrics_and_a_ground_truth_row():
    from duet_env.tokenizer import Tokenizer
    from pretrain.vqvae.evaluate import evaluate

    tk = Tokenizer.from_config("tiny", seed=0)
    clips = [_clip_with_beats(0, 64, "Waltz_1_1"), _clip_with_beats(1, 48, "Tango_2_1")]
    reference = [_clip_with_beats(s, 60, "ChaCha_3_1") for s in (2, 3, 4)]
    res = evaluate(tk, clips, progress=False, reference_clips=reference)
    for k in NEW_KEYS:
        assert isinstance(res[k], float) and math.isfinite(res[k]), k
    assert res["reference_clips"] == 3 and res["mpjpe_cm"]["overall"] > 0  # the old keys stay
    for k in ("FID_k", "FID_g", "BAS", "slip_rate", "energy", "jerk"):
        assert math.isfinite(res["ground_truth"][k]), k
    assert set(res["recon"]) == {"energy", "jerk"}
    assert res["energy_ratio"] == pytest.approx(res["recon"]["energy"] / res["ground_truth"]["energy"])
    assert res["jerk_ratio"] == pytest.approx(res["recon"]["jerk"] / res["ground_truth"]["jerk"])

    # the ground-truth row is the metrics applied to the ground truth directly (whole tokens)
    gt = [c.follower.joints[: len(c) // 4 * 4].astype(np.float64) for c in clips]
    beats = [c.beat_frames[c.beat_frames < len(g)] for c, g in zip(clips, gt)]
    row = res["ground_truth"]
    assert row["energy"] == pytest.approx(np.mean([kinetic_energy(g) for g in gt]), rel=1e-9)
    assert row["jerk"] == pytest.approx(np.mean([jerk(g) for g in gt]), rel=1e-9)
    assert row["BAS"] == pytest.approx(np.mean([alignment_score(b, motion_beats(g)) for g, b in zip(gt, beats)]))
    assert row["slip_rate"] == pytest.approx(
        sum(slipping_frames(g).sum() for g in gt) / sum(len(g) for g in gt))
    # ... and FID_k / FID_g / BAS / slip_rate equal what agents.evaluate's evaluate_duets reports
    ref_duets = [(c.follower.joints, c.leader.joints, c.beat_frames) for c in reference]
    duets = [(g, c.leader.joints[: len(g)], b) for g, c, b in zip(gt, clips, beats)]
    full = evaluate_duets(duets, ReferenceStats.from_duets(ref_duets))
    for k in ("FID_k", "FID_g", "BAS", "slip_rate"):
        assert row[k] == pytest.approx(full[k], rel=1e-9, abs=1e-12), k
    stats = ReferenceStats.from_duets(ref_duets)
    assert row["FID_k"] == pytest.approx(stats.kinetic.fid_and_div(np.stack([kinetic_features(g) for g in gt]))[0])
    assert row["FID_g"] == pytest.approx(stats.geometric.fid_and_div(np.stack([geometric_features(g) for g in gt]))[0])

    # a precomputed ReferenceStats gives the same numbers; no reference leaves the FIDs None
    again = evaluate(tk, clips, progress=False, reference_clips=stats)
    assert again["recon_FID_k"] == pytest.approx(res["recon_FID_k"]) and again["ground_truth"] == pytest.approx(row)
    bare = evaluate(tk, clips, progress=False)
    assert bare["recon_FID_k"] is None and bare["ground_truth"]["FID_g"] is None
    assert bare["jerk_ratio"] == pytest.approx(res["jerk_ratio"])
