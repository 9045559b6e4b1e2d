"""SynthDuet generator: layout, determinism and the measured properties of the dancers."""
from __future__ import annotations

import filecmp
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duet_env import capsules, skeleton
from duet_env.data import synth, synth_checks as checks
from duet_env.data.synth_kinematics import KeyPhase, two_bone_ik
from duet_env.genres import GENRES

MINUTES = 2.0


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "a"
    synth.generate(root, seed=0, minutes=MINUTES, progress=False)
    return root


@pytest.fixture(scope="session")
def clips(dataset):
    """name -> (meta, leader dict, leader joints, follower dict, follower joints)."""
    out = {}
    for meta_path in sorted((dataset / "synth_meta").glob("*_1.json")):
        name = meta_path.stem
        (ld, lj), (fd, fj) = checks.load_joints(dataset, name)
        out[name] = (json.loads(meta_path.read_text()), ld, lj, fd, fj)
    return out


def _all_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


# ------------------------------------------------------------------------ building blocks
def test_eased_keys_hold_still_and_stop_on_keys():
    times = np.arange(0, 3.0, 1 / 30)
    phase = KeyPhase.of(np.array([0.5, 1.0, 1.7, 2.4]), times)
    keys = np.array([[0.0, 1.0], [0.0, 2.0], [0.3, 2.0], [0.3, 2.0]])
    v = phase.ease(keys)
    # equal neighbouring keys give bit-identical values (planted feet never drift)
    assert np.all(v[(times >= 1.7), 0] == 0.3) and np.all(v[(times >= 1.0) & (times <= 1.7), 1] == 2.0)
    # zero velocity at a key: the frames around t = 1.0 barely move, mid-interval moves
    speed = np.abs(np.diff(v[:, 1]))
    assert speed[29] < 1e-9 and speed[22] > 0.05


def test_two_bone_ik_reaches_target_with_exact_lengths():
    rng = np.random.default_rng(0)
    root = np.zeros((50, 3))
    target = rng.normal(size=(50, 3))
    target *= (rng.uniform(0.3, 0.75, (50, 1)) / np.linalg.norm(target, axis=1, keepdims=True))
    mid, end, _ = two_bone_ik(root, target, 0.4, 0.42, np.tile([0.0, 0.0, 1.0], (50, 1)))
    np.testing.assert_allclose(end, target, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(mid - root, axis=1), 0.4, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(end - mid, axis=1), 0.42, atol=1e-9)


# ------------------------------------------------------------------------ layout, determinism
def test_layout_and_shapes(dataset, clips):
    names = sorted(clips)
    assert all(re.fullmatch(r"(Waltz|Tango|ChaCha|HipHop|Ballet)_\d\d_1", n) for n in names)
    assert {n.split("_")[0] for n in names} == set(GENRES)
    for name, (meta, ld, lj, fd, fj) in clips.items():
        for d in (ld, fd):
            assert set(d) == {"poses", "transl", "betas", "gender"} and d["gender"] == "neutral"
            assert d["poses"].dtype == np.float32 and d["transl"].dtype == np.float32
            assert d["poses"].shape == (meta["frames"], 165) and d["transl"].shape == (meta["frames"], 3)
            assert d["betas"].shape == (10,) and np.all(np.isfinite(d["poses"]))
        audio, sr = sf.read(dataset / "music" / "mp3" / "all" / f"{name}.wav")
        assert sr == 15360 and audio.ndim == 1 and sf.info(str(dataset / "music" / "mp3" / "all" / f"{name}.wav")).subtype == "PCM_16"
        assert abs(len(audio) / sr - meta["frames"] / 30) < 1e-3 and np.max(np.abs(audio)) > 0.5
        assert meta["beat_frames"] == [int(round(t * 30)) for t in meta["beat_times"]]
        # the tempo map: drift and rubato keep every beat within 15 % of the nominal period,
        # and the song's own description spans the local tempi
        period = 60.0 / meta["bpm"]
        ratio = np.diff(meta["beat_times"]) / period
        assert ratio.min() > 0.85 and ratio.max() < 1.2, (name, ratio.min(), ratio.max())
        lo, hi = meta["music"]["tempo_range_bpm"]
        assert lo <= 60.0 / np.diff(meta["beat_times"]).max() + 0.05 and hi >= 60.0 / np.diff(meta["beat_times"]).min() - 0.05
    total = sum(m["frames"] for m, *_ in clips.values()) / 30 / 60
    assert abs(total - MINUTES) < 0.02
    for genre in GENRES:
        splits = {m["split"] for n, (m, *_) in clips.items() if n.startswith(genre + "_")}
        assert splits == {"train", "test"}, genre
    ds = json.loads((dataset / "synth_meta" / "dataset.json").read_text())
    assert ds["seed"] == 0 and len(ds["clips"]) == len(clips)


def test_same_seed_is_byte_identical_and_other_seed_differs(dataset, tmp_path):
    again = tmp_path / "b"
    synth.generate(again, seed=0, minutes=MINUTES, progress=False)
    files = _all_files(dataset)
    assert files == _all_files(again)
    match, mismatch, errors = filecmp.cmpfiles(dataset, again, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors and len(match) == len(files)
    a = synth.synthesize_clip("Tango", 1, 8.0, seed=0)
    b = synth.synthesize_clip("Tango", 1, 8.0, seed=1)
    assert not np.array_equal(a.leader["poses"], b.leader["poses"])
    assert not np.array_equal(a.audio, b.audio)


# ------------------------------------------------------------------------ dancer properties
def test_beat_alignment_of_both_dancers(clips):
    scores = {"leader": [], "follower": []}
    for meta, ld, lj, fd, fj in clips.values():
        beats = np.asarray(meta["beat_frames"])
        beats = beats[(beats > 10) & (beats < meta["frames"] - 10)]
        scores["leader"].append(checks.beat_alignment(beats, checks.motion_beats(lj)))
        scores["follower"].append(checks.beat_alignment(beats, checks.motion_beats(fj)))
    assert np.mean(scores["leader"]) > 0.6 and np.mean(scores["follower"]) > 0.6, scores
    # a control: the same motion scored against beats shifted by half a beat scores lower
    meta, _, lj, _, _ = next(iter(clips.values()))
    beats = np.asarray(meta["beat_frames"])
    half = int(round(15 * 60 / meta["bpm"]))
    assert checks.beat_alignment(beats + half, checks.motion_beats(lj)) < checks.beat_alignment(beats, checks.motion_beats(lj))


def test_follower_faces_and_keeps_partner_distance(clips):
    for name, (meta, ld, lj, fd, fj) in clips.items():
        style = GENRES[meta["genre"]]
        err = checks.facing_error(lj, fj, style.facing)
        assert np.rad2deg(np.median(err)) < 20.0, name
        d = checks.partner_distance(lj, fj)
        lo, hi = style.partner_distance
        assert np.mean((d >= lo - 1e-3) & (d <= hi + 1e-3)) > 0.9, name
        assert np.min(np.linalg.norm(fj[:, 0] - lj[:, 0], axis=-1)) > 0.25, name


def test_hand_contact_in_ballroom_only(clips):
    share = {}
    for meta, ld, lj, fd, fj in clips.values():
        share.setdefault(meta["genre"], []).append(checks.contact_share(lj, fj))
    for genre in ("Waltz", "Tango", "ChaCha"):
        assert np.mean(share[genre]) > 0.7, (genre, share[genre])
    assert np.mean(share["HipHop"]) < 0.1 and np.mean(share["Ballet"]) < 0.1


def test_planted_feet_do_not_slide_and_stand_on_the_floor(clips):
    for name, (meta, ld, lj, fd, fj) in clips.items():
        for role, joints in (("leader", lj), ("follower", fj)):
            runs = meta["planted"][role]
            n_planted = 0
            for side, ankle in (("left", 7), ("right", 8)):
                for a, b in runs[side]:
                    seg = joints[a:b, ankle]
                    n_planted += b - a
                    # horizontal ankle speed while planted (float32 storage noise only)
                    if b - a > 1:
                        assert np.max(np.linalg.norm(np.diff(seg[:, [0, 2]], axis=0), axis=-1)) * 30 < 2e-3, (name, role)
                    assert np.all(np.abs(joints[a:b, 10 if ankle == 7 else 11, 1] - 0.017) < 0.005), (name, role)
            assert n_planted > 0.5 * meta["frames"], (name, role)
            assert checks.foot_skating(joints) < 0.02, (name, role)
            assert joints[:, [10, 11], 1].min() > -0.005, (name, role)


def test_bone_lengths_and_joint_angles(clips):
    for name, (meta, ld, lj, fd, fj) in clips.items():
        for d, joints in ((ld, lj), (fd, fj)):
            assert checks.bone_length_error(joints) < 1e-4, name
            assert checks.joint_angles_deg(d["poses"]).max() <= 150.0, name
            # knees bend forward only: the local knee rotation is about +x (no hyperextension)
            knees = d["poses"].reshape(-1, 55, 3)[:, [4, 5]]
            assert knees[..., 0].min() > -0.1, name


def test_dancers_rarely_interpenetrate(clips):
    for name, (meta, ld, lj, fd, fj) in clips.items():
        share, _ = checks.penetration(lj, fj, meta["partner"]["hold"])
        assert share < 0.02, (name, share)
    # the check itself fires: a follower moved onto the leader overlaps on every frame
    meta, ld, lj, fd, fj = next(iter(clips.values()))
    assert checks.penetration(lj, lj + np.array([0.05, 0.0, 0.0]))[0] == 1.0


def test_closed_hold_hand_rests_on_the_shoulder_clear_of_the_head(clips):
    # Her left hand lies on his shoulder (contact) with a margin to his head: a ground truth on the
    # penetration allowance's edge would make every centimetre of reconstruction error count.
    names = [c.name for c in capsules.CAPSULES]
    head, hand = names.index("head"), names.index("left_hand")
    n = 0
    for name, (meta, ld, lj, fd, fj) in clips.items():
        if meta["partner"]["hold"] != "closed":
            continue
        gaps = capsules.capsule_gaps(lj, fj)
        assert gaps[:, head, hand].min() > 0.02, (name, gaps[:, head, hand].min())
        assert np.median(gaps[:, :, hand].min(1)) < capsules.PENETRATION_ALLOWANCE, name  # still touching him
        n += 1
    assert n > 0


def test_rule_follower_and_bad_input(dataset, clips):
    name = sorted(clips)[0]
    follower = synth.rule_follower(dataset, name)
    np.testing.assert_array_equal(follower.poses, clips[name][3]["poses"])
    assert synth.load_meta(dataset, name)["name"] == name
    with pytest.raises(FileNotFoundError, match="Nope_01_1"):
        synth.rule_follower(dataset, "Nope_01_1")
    with pytest.raises(ValueError, match="genre"):
        synth.synthesize_clip("Salsa", 1, 10.0)
    with pytest.raises(ValueError, match="minutes"):
        synth.generate(dataset / "x", minutes=-1)
    assert skeleton.NUM_JOINTS == 55


# ------------------------------------------------------------------------ songs and beats
def test_songs_vary_and_carry_their_beats():
    """synthduet-2 songs differ in groove, kit, voices and tempo, and librosa still hears the
    beats the dancers step on in most of them (rubato, breaks and swing make some hard)."""
    from duet_env import music
    from duet_env.metrics.beats import alignment_score

    metas, scores = [], []
    for genre in ("Waltz", "HipHop", "Ballet", "ChaCha"):
        for choreo in (1, 2, 3):
            clip = synth.synthesize_clip(genre, choreo, 12.0, seed=3)
            feats = music.features_from_audio(clip.audio)
            tracked = music.beat_frames(feats)
            scores.append(alignment_score(np.asarray(clip.meta["beat_frames"]), tracked))
            metas.append(clip.meta["music"])
    assert len({m["groove"] for m in metas}) >= 4 and len({m["kit"] for m in metas}) >= 3
    assert len({m["voices"]["chords"] for m in metas}) >= 4
    assert np.median(scores) > 0.7, scores


def test_dance_to_beats_steps_on_the_given_beats():
    # an irregular beat grid (a song with rubato): 100 bpm slowing to 80 bpm
    periods = np.linspace(0.6, 0.75, 24)
    beats = 0.4 + np.concatenate([[0.0], np.cumsum(periods)])
    clip = synth.dance_to_beats("Tango", beats, 14.0, seed=1)
    poses = clip.leader["poses"]
    assert poses.shape == (420, 165) and clip.audio.size == 0
    from duet_env.data.dd100 import joint_positions

    joints = joint_positions(clip.leader["poses"], clip.leader["transl"])
    frames = np.round(beats[beats < 14.0] * 30).astype(int)
    frames = frames[(frames > 10) & (frames < 410)]
    on = checks.beat_alignment(frames, checks.motion_beats(joints))
    off = checks.beat_alignment(frames + 9, checks.motion_beats(joints))  # ~half a beat late
    assert on > 0.6 and on > off + 0.2, (on, off)
    with pytest.raises(ValueError, match="at least 2 beats"):
        synth.dance_to_beats("Tango", np.array([1.0]), 10.0)
    with pytest.raises(ValueError, match="NaN"):
        synth.dance_to_beats("Tango", np.array([1.0, np.nan, 2.0]), 10.0)


def test_dance_to_beats_takes_fast_songs_in_half_time():
    beats = 0.3 + np.arange(40) * 60.0 / 170.0  # 170 bpm
    clip = synth.dance_to_beats("HipHop", beats, 12.0, seed=0)
    assert clip.meta["half_time"] and abs(clip.meta["bpm"] - 85.0) < 0.5
    np.testing.assert_allclose(clip.meta["beat_times"], beats[::2][beats[::2] < 12.0], atol=1e-6)
    slow = synth.dance_to_beats("HipHop", 0.3 + np.arange(20) * 0.6, 12.0, seed=0)  # 100 bpm
    assert not slow.meta["half_time"]


# ------------------------------------------------------------------------ a tempo band
def test_tempo_band_keeps_the_genres_and_tempi_inside_it(tmp_path):
    """``tempo_band`` (extra training clips of fast songs): every song's nominal tempo inside the
    band, only the genres with a range meeting it, and the dataset without a band unchanged."""
    from duet_env.data.synth_music import TEMPO_CHOICES, tempo_ranges

    assert all(tempo_ranges(g) is TEMPO_CHOICES[g] for g in GENRES)  # no band: the same choices
    fast = (130.0, 180.0)
    # Ballet's only range (60-96) misses the band; Waltz keeps only its Viennese range
    assert synth.band_genres(fast) == [g for g in GENRES if g != "Ballet"]
    assert tempo_ranges("Waltz", fast) == ((150.0, 180.0, 1.0),)
    assert tempo_ranges("Tango", fast) == ((130.0, 138.0, 1.0),)
    assert synth.band_genres() == list(GENRES)
    plan = synth.plan_dataset(4.0, seed=0, tempo_band=fast)
    assert {g for g, _, _ in plan} == set(synth.band_genres(fast))
    assert abs(sum(s for _, _, s in plan) - 240.0) < 0.5  # the minutes spread over the genres kept
    for genre, choreo in (("HipHop", 1), ("Waltz", 2), ("Tango", 3), ("ChaCha", 1)):
        clip = synth.synthesize_clip(genre, choreo, 8.0, seed=0, tempo_band=fast)
        assert 130.0 <= clip.meta["bpm"] <= 180.0, (genre, clip.meta["bpm"])
    slow = synth.synthesize_clip("HipHop", 1, 8.0, seed=0)
    assert slow.meta["bpm"] < 130.0  # the same clip without the band draws from its usual ranges
    with pytest.raises(ValueError, match="no genre's tempo range"):
        synth.plan_dataset(4.0, tempo_band=(185.0, 200.0))
    with pytest.raises(ValueError, match="0 < low < high"):
        synth.plan_dataset(4.0, tempo_band=(150.0, 130.0))
    with pytest.raises(ValueError, match="no Ballet tempo range"):
        synth.synthesize_clip("Ballet", 1, 8.0, tempo_band=fast)
