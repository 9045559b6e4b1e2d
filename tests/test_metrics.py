"""Known-answer tests of duet_env.metrics (test motion from skeleton.forward_kinematics)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from duet_env import skeleton
from duet_env.metrics import (
    GEOMETRIC_FEATURE_NAMES, METRIC_KEYS, Gaussian, ReferenceStats, alignment_score,
    beat_align_score, beat_echo_degree, capsule_gaps, contact_frequency, diversity,
    evaluate_duets, fid, foot_slip_rate, frechet_distance, geometric_features,
    kinetic_features, motion_beats, partner_distance_features, penetration_rate,
)

FPS = 30.0
STAND_HEIGHT = 1.3  # transl y that puts the rest skeleton's toes just above y = 0


def body(transl: np.ndarray, poses: np.ndarray | None = None, yaw: float = 0.0) -> np.ndarray:
    """Joints (T, 55, 3) of the rest skeleton (or given poses) at the given translations."""
    transl = np.asarray(transl, dtype=np.float64)
    if poses is None:
        poses = np.zeros((len(transl), skeleton.POSE_DIM))
    poses = poses.copy()
    poses[:, 1] = yaw
    return skeleton.forward_kinematics(poses, transl).astype(np.float64)


def still(t: int, x: float = 0.0, z: float = 0.0, yaw: float = 0.0) -> np.ndarray:
    return body(np.tile([x, STAND_HEIGHT, z], (t, 1)), yaw=yaw)


# ---------------------------------------------------------------- Fréchet distance, diversity

def test_fid_of_identical_sets_is_zero():
    feats = np.random.default_rng(0).normal(size=(40, 6))
    assert fid(feats, feats) == pytest.approx(0.0, abs=1e-8)


def test_fid_matches_direct_scipy_computation():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(size=(150, 5)) @ rng.normal(size=(5, 5)) + 0.7
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # an independent route to Tr sqrt(S_a S_b): the symmetric form Tr sqrt(S_a^½ S_b S_a^½)
    root_a = linalg.sqrtm(s_a).real
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b) - 2 * trace_root
    assert fid(a, b) == pytest.approx(expected, rel=1e-8)
    assert fid(a, b) == pytest.approx(fid(b, a), rel=1e-8)


def test_frechet_distance_of_diagonal_gaussians_has_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    d = frechet_distance(Gaussian(mu1, np.diag(sd1**2)), Gaussian(mu2, np.diag(sd2**2)))
    # |μ1 − μ2|² + Σ (σ1 − σ2)² = (1 + 0 + 6.25) + (4 + 1 + 0)
    assert d == pytest.approx(12.25, rel=1e-10)


def test_diversity_is_mean_pairwise_distance():
    feats = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    assert diversity(feats) == pytest.approx((5 + 10 + 5) / 3)


# ---------------------------------------------------------------- kinetic / geometric features

def test_kinetic_energy_of_constant_velocity_has_closed_form():
    v = np.array([0.6, 0.3, -0.8])  # m/s
    t = np.arange(60) / FPS
    feats = kinetic_features(body(np.array([0, STAND_HEIGHT, 0]) + t[:, None] * v)).reshape(24, 3)
    np.testing.assert_allclose(feats[:, 0], 0.6**2 + 0.8**2, rtol=1e-6)  # horizontal: |v_xz|²
    np.testing.assert_allclose(feats[:, 1], 0.3**2, rtol=1e-6)  # vertical: v_y²
    np.testing.assert_allclose(feats[:, 2], 0.0, atol=1e-3)  # no acceleration (float32 FK noise × 900)
    # the papers' 1/60 s frame time would read the same motion as twice as fast: energy × 4
    slow = kinetic_features(body(np.array([0, STAND_HEIGHT, 0]) + t[:, None] * v), frame_time=1 / 60)
    np.testing.assert_allclose(slow.reshape(24, 3)[:, 0], 4.0, rtol=1e-6)


def test_energy_expenditure_of_constant_acceleration_is_its_magnitude():
    acc = np.array([0.0, 0.0, 2.0])  # m/s²
    t = np.arange(45) / FPS
    feats = kinetic_features(body(np.array([0, STAND_HEIGHT, 0]) + 0.5 * t[:, None] ** 2 * acc))
    np.testing.assert_allclose(feats.reshape(24, 3)[:, 2], 2.0, rtol=1e-5)


def test_geometric_features_of_t_pose_and_raised_arms():
    assert len(set(GEOMETRIC_FEATURE_NAMES)) == 32
    names = list(GEOMETRIC_FEATURE_NAMES)
    t_pose = geometric_features(still(20))
    assert t_pose.shape == (32,)
    assert t_pose[names.index("left_hand_out_sideways")] == 1.0
    assert t_pose[names.index("right_hand_out_sideways")] == 1.0
    assert t_pose[names.index("left_hand_above_head")] == 0.0
    assert t_pose[names.index("left_knee_bent")] == 0.0
    assert t_pose[names.index("hands_far_apart")] == 1.0
    poses = np.zeros((20, skeleton.POSE_DIM))
    poses[:, 16 * 3 + 2] = np.pi / 2  # left shoulder: arm from +x up to +y
    poses[:10, 17 * 3 + 2] = -np.pi / 2  # right arm raised in the first half only
    raised = geometric_features(body(np.tile([0, STAND_HEIGHT, 0], (20, 1)), poses))
    assert raised[names.index("left_hand_above_head")] == 1.0
    assert raised[names.index("right_hand_above_head")] == pytest.approx(0.5)
    assert raised[names.index("left_hand_out_sideways")] == 0.0


# ---------------------------------------------------------------- beats

def test_alignment_score_known_values_and_monotone_in_offset():
    music = np.arange(10, 300, 20)
    assert alignment_score(music, music) == pytest.approx(1.0)
    scores = [alignment_score(music, music + d) for d in range(8)]
    for d, s in enumerate(scores):
        assert s == pytest.approx(np.exp(-d**2 / 18.0), rel=1e-12)
    assert all(a > b for a, b in zip(scores, scores[1:]))
    assert alignment_score(music, []) == 0.0


def _pulsing_walk(num_frames: int, period: int) -> np.ndarray:
    """Root speed ∝ 1 − cos(2π t / P): speed minima (motion beats) exactly at multiples of P."""
    t = np.arange(num_frames, dtype=np.float64)
    x = 0.02 * (t - period / (2 * np.pi) * np.sin(2 * np.pi * t / period))
    return body(np.stack([x, np.full_like(x, STAND_HEIGHT), np.zeros_like(x)], 1))


def test_motion_beats_and_bas_on_constructed_motion():
    joints = _pulsing_walk(180, 20)
    np.testing.assert_array_equal(motion_beats(joints), np.arange(20, 180, 20))
    music = np.arange(40, 160, 20)
    assert beat_align_score(joints, music) == pytest.approx(1.0)
    assert beat_align_score(joints, music + 4) == pytest.approx(np.exp(-16 / 18.0))


def test_beat_echo_degree_is_one_for_an_echoing_follower_and_lower_when_shifted():
    leader = _pulsing_walk(180, 20)
    assert beat_echo_degree(leader, leader) == pytest.approx(1.0)
    shifted = np.concatenate([leader[5:], leader[-1:].repeat(5, 0)])  # follower 5 frames early
    assert beat_echo_degree(shifted, leader) < 0.5


# ---------------------------------------------------------------- duet geometry

def test_partner_distance_features_of_two_still_bodies():
    feats = partner_distance_features(still(5, x=1.0), still(5)).reshape(10, 10)
    np.testing.assert_allclose(np.diag(feats), 1.0, rtol=1e-6)  # same joint, 1 m apart along x


def test_capsule_gaps_overlap_and_separation():
    leader = still(3)
    near = still(3, z=0.2, yaw=np.pi)  # facing the leader, chests 20 cm apart: torsos overlap
    far = still(3, z=1.5, yaw=np.pi)
    assert np.min(capsule_gaps(near, leader)) < 0.0
    assert np.all(capsule_gaps(far, leader) > 0.5)
    assert contact_frequency(near, leader) == 1.0
    assert contact_frequency(far, leader) == 0.0


def test_penetration_same_spot_versus_apart_and_hand_hold_excluded():
    leader = still(4)
    assert penetration_rate(still(4), leader) == 1.0
    assert penetration_rate(still(4, z=1.5, yaw=np.pi), leader) == 0.0
    # side by side 1.5 m apart in a T-pose: only the outstretched hands meet — contact, a hold
    beside = still(4, x=1.5)
    assert contact_frequency(beside, leader) == 1.0
    assert penetration_rate(beside, leader) == 0.0
    with pytest.raises(NotImplementedError, match="mesh"):
        contact_frequency(beside, leader, model_path="/nonexistent")


def test_slip_rate_planted_and_sliding_feet():
    assert foot_slip_rate(still(30)) == 0.0
    t = np.arange(30) / FPS
    sliding = body(np.stack([0.5 * t, np.full_like(t, STAND_HEIGHT), np.zeros_like(t)], 1))  # 50 cm/s
    assert foot_slip_rate(sliding) == 1.0
    slow = body(np.stack([0.1 * t, np.full_like(t, STAND_HEIGHT), np.zeros_like(t)], 1))  # below 25 cm/s
    assert foot_slip_rate(slow) == 0.0


# ---------------------------------------------------------------- evaluate_duets

def _duet_set(n: int, seed: int, frames: int = 90):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        poses = rng.normal(0, 0.15, (frames, skeleton.POSE_DIM))
        t = np.arange(frames) / FPS
        transl = np.stack([0.3 * np.sin(t + rng.uniform(0, 6)), np.full_like(t, STAND_HEIGHT), 0.8 + 0 * t], 1)
        follower = body(transl, poses, yaw=np.pi)
        out.append((follower, _pulsing_walk(frames, 15), np.arange(15, frames, 15)))
    return out


def test_evaluate_duets_keys_identity_and_precomputed_reference():
    ref = _duet_set(6, 0)
    scores = evaluate_duets(ref, ref)
    assert tuple(scores) == METRIC_KEYS
    assert all(isinstance(v, float) for v in scores.values())
    for key in ("FID_k", "FID_g", "FID_cd"):
        assert scores[key] == pytest.approx(0.0, abs=1e-6)
    stats = ReferenceStats.from_duets(ref)
    other = _duet_set(5, 1)
    assert evaluate_duets(other, stats) == evaluate_duets(other, ref)
    assert evaluate_duets(other, stats)["FID_k"] > 0.0
    assert 0.0 <= scores["BAS"] <= 1.0 and 0.0 <= scores["contact_freq"] <= 1.0


# ---------------------------------------------------------------- bad input

def test_bad_input_raises_clear_errors():
    good = still(20)
    with pytest.raises(ValueError, match=r"joints must have shape \(T, 55, 3\)"):
        kinetic_features(good[:, :24])
    with pytest.raises(ValueError, match="at least 3 frames"):
        kinetic_features(good[:2])
    nan = good.copy()
    nan[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        geometric_features(nan)
    with pytest.raises(ValueError, match="leader_joints has 19"):
        beat_echo_degree(good, good[:19])
    with pytest.raises(ValueError, match=r"music_beats must lie in \[0, 20\)"):
        beat_align_score(good, [5, 25])
    ref = _duet_set(3, 0)
    with pytest.raises(ValueError, match=r"generated\[1\]: follower_joints has 90 frames but leader_joints has 89"):
        evaluate_duets([ref[0], (ref[1][0], ref[1][1][:89], ref[1][2])], ref)
    with pytest.raises(ValueError, match="at least 2 clips"):
        evaluate_duets(ref[:1], ref)
    with pytest.raises(ValueError, match=r"generated\[0\]: follower_joints has 4 frames; this metric needs at least 8"):
        evaluate_duets([(good[:4], good[:4], []), ref[0]], ref)
    with pytest.raises(ValueError, match="triple"):
        evaluate_duets([(good, good), ref[0]], ref)


# ---------------------------------------------------------------- agents.evaluate CLI

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """A DD100-layout folder marked as SynthDuet: 5 train clips (choreo 1-4, 6), 2 test clips (5, 10)."""
    import soundfile as sf

    base = tmp_path_factory.mktemp("evaluate")
    root = base / "data"
    motion = root / "motion" / "smplx" / "all"
    music = root / "music" / "mp3" / "all"
    motion.mkdir(parents=True)
    music.mkdir(parents=True)
    (root / "synth_meta").mkdir()
    rng = np.random.default_rng(3)
    frames = 60
    for choreo in (1, 2, 3, 4, 6, 5, 10):
        name = f"Waltz_{choreo}_a"
        for suffix, z in (("_00", 0.6), ("_01", 0.0)):
            poses = rng.normal(0, 0.1, (frames, skeleton.POSE_DIM)).astype(np.float32)
            transl = np.tile(np.array([0.0, STAND_HEIGHT, z], np.float32), (frames, 1))
            transl[:, 0] += 0.2 * np.sin(np.arange(frames) / 10 + choreo).astype(np.float32)
            np.save(motion / f"{name}{suffix}.npy", {"poses": poses, "transl": transl,
                                                     "betas": np.zeros(10, np.float32), "gender": "neutral"})
        clicks = np.zeros(15360 * 2)
        clicks[:: 7680] = 1.0  # a click every 0.5 s
        sf.write(music / f"{name}.wav", 0.1 * np.sin(2 * np.pi * 220 * np.arange(clicks.size) / 15360) + clicks, 15360)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUET_CACHE_DIR", str(base / "cache"))
        yield root


def test_evaluate_cli_gt_row_save_and_rescore_saved_motion(tiny_dataset, tmp_path, capsys):
    import json

    from agents.evaluate import main

    out_json, saved = tmp_path / "gt.json", tmp_path / "saved"
    assert main(["--policy", "gt", "--data", str(tiny_dataset), "--json", str(out_json), "--out", str(saved)]) == 0
    gt = json.loads(out_json.read_text())
    assert set(METRIC_KEYS) <= set(gt) and gt["rule_error_cm"] == 0.0
    assert {k: gt[k] for k in METRIC_KEYS} == {k: gt["ground_truth"][k] for k in METRIC_KEYS}
    assert "ground truth" in capsys.readouterr().out
    assert sorted(p.name for p in (saved / "motion" / "smplx" / "all").iterdir()) == [
        "Waltz_10_a_00.npy", "Waltz_10_a_01.npy", "Waltz_5_a_00.npy", "Waltz_5_a_01.npy"]

    # re-scoring the saved ground truth reproduces the GT row
    again = tmp_path / "again.json"
    assert main(["--motion", str(saved), "--data", str(tiny_dataset), "--json", str(again)]) == 0
    rescored = json.loads(again.read_text())
    for key in METRIC_KEYS:
        assert rescored[key] == pytest.approx(gt[key], rel=1e-5, abs=1e-6)
    assert rescored["rule_error_cm"] == pytest.approx(0.0, abs=1e-4)

    # a follower moved 10 cm sideways is 10 cm from the partner-rule answer at every joint
    from duet_env.data.safe_pickle import load_npy_dict

    for path in (saved / "motion" / "smplx" / "all").glob("*_00.npy"):
        data = load_npy_dict(path)
        data["transl"] = data["transl"] + np.array([0.1, 0.0, 0.0], np.float32)
        np.save(path, data, allow_pickle=True)
    shifted = tmp_path / "shifted.json"
    assert main(["--motion", str(saved), "--data", str(tiny_dataset), "--json", str(shifted)]) == 0
    assert json.loads(shifted.read_text())["rule_error_cm"] == pytest.approx(10.0, rel=1e-4)


def test_evaluate_cli_runs_the_policy_on_the_named_tokenizer_and_device(tiny_dataset, monkeypatch):
    from types import SimpleNamespace

    import torch

    import agents.evaluate as ev

    seen = {}

    def fake_rollout(policy, clips, seed=0, tokenizer="default", device="cpu", **kwargs):
        seen.update(policy=policy, tokenizer=tokenizer, device=device)
        return [SimpleNamespace(joints=c.follower.joints, poses=None, transl=None) for c in clips]

    monkeypatch.setattr(ev, "generate_followers", fake_rollout)
    assert ev.main(["--policy", "runs/gpt", "--tokenizer", "runs/tok", "--data", str(tiny_dataset)]) == 0
    auto = "cuda" if torch.cuda.is_available() else "cpu"  # --device auto: the GPU when there is one
    assert seen == {"policy": "runs/gpt", "tokenizer": "runs/tok", "device": auto}
    assert ev.main(["--policy", "runs/gpt", "--device", "cpu", "--data", str(tiny_dataset)]) == 0
    assert seen == {"policy": "runs/gpt", "tokenizer": "default", "device": "cpu"}


def test_evaluate_validation_split_scores_the_clips_the_gpt_held_out(tiny_dataset, tmp_path, monkeypatch):
    """--split validation: the policy checkpoint's held-out train clips, scored against the other
    train clips only (so checkpoints are compared without touching the test split)."""
    import json
    from types import SimpleNamespace

    import agents.evaluate as ev
    from duet_env.data import load_split

    ckpt = tmp_path / "gpt"
    ckpt.mkdir()
    (ckpt / "gpt.json").write_text(json.dumps({"config": {}, "state": {"validation_clips": ["Waltz_2_a", "Waltz_4_a"]}}))
    seen = []

    def fake_rollout(policy, clips, seed=0, tokenizer="default", device="cpu", **kwargs):
        seen.extend(c.name for c in clips)
        return [SimpleNamespace(joints=c.follower.joints, poses=None, transl=None) for c in clips]

    monkeypatch.setattr(ev, "generate_followers", fake_rollout)
    out = tmp_path / "val.json"
    assert ev.main(["--policy", str(ckpt), "--split", "validation", "--data", str(tiny_dataset), "--json", str(out)]) == 0
    assert sorted(seen) == ["Waltz_2_a", "Waltz_4_a"]
    row = json.loads(out.read_text())
    assert row["meta"]["num_clips"] == 2
    # the reference statistics are those of the three other train clips, not of all five
    train = load_split(tiny_dataset, "train")
    held = [c for c in train if c.name in ("Waltz_2_a", "Waltz_4_a")]
    rest = [c for c in train if c.name not in ("Waltz_2_a", "Waltz_4_a")]
    expected = evaluate_duets(ev.duets_of(held), ReferenceStats.from_duets(ev.duets_of(rest), progress=False), progress=False)
    with_all = evaluate_duets(ev.duets_of(held), ReferenceStats.from_duets(ev.duets_of(train), progress=False), progress=False)
    assert row["ground_truth"]["FID_k"] == pytest.approx(expected["FID_k"], rel=1e-6)
    assert with_all["FID_k"] != pytest.approx(expected["FID_k"], rel=1e-3)

    with pytest.raises(SystemExit, match="needs a GPT checkpoint"):
        ev.main(["--policy", str(tmp_path), "--split", "validation", "--data", str(tiny_dataset)])
    with pytest.raises(SystemExit, match="synth:seed=S,minutes=M"):
        ev.main(["--policy", "gt", "--data", "synth:seed=one"])
    (ckpt / "gpt.json").write_text(json.dumps({"config": {}, "state": {"validation_clips": ["Tango_7_a"]}}))
    with pytest.raises(SystemExit, match="not train clips"):
        ev.main(["--policy", str(ckpt), "--split", "validation", "--data", str(tiny_dataset)])

