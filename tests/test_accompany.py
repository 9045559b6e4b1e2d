"""``python -m agents.accompany``: every leader format, every output file, every bad input.

A 6.3-second SynthDuet song (its music only) stands in for the user's recording; the shipped
tokenizer and follower GPT generate the follower (a few dozen tokens: fast on a CPU)."""
from __future__ import annotations

import json
import re
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from agents.accompany import AccompanyConfig, AccompanyError, accompany
from agents.accompany.cli import main
from agents.accompany.leaders import genre_for_tempo
from duet_env import skeleton
from duet_env.data import bvh, dd100, synth
from duet_env.data.amass import Z_UP_TO_Y_UP, read_amass, rotate_world
from duet_env.data.resample import resample_motion, resampled_length
from duet_env.data.synth_music import SAMPLE_RATE

SONG_SECONDS = 6.3  # not a whole number of tokens: the video holds its last frame to the song's end
FILES = ("leader.npy", "follower.npy", "joints.npz", "duet.bvh", "duet.mp4", "metrics.json", "card.md")


@pytest.fixture(scope="module")
def song(tmp_path_factory, session_cache):
    """A 6.3 s song (SynthDuet Tango music) and a SynthDuet leader of the same length (DD100 dict)."""
    folder = tmp_path_factory.mktemp("song")
    clip = synth.synthesize_clip("Tango", 1, SONG_SECONDS, seed=0)
    path = folder / "song.wav"
    sf.write(path, clip.audio, SAMPLE_RATE)
    return path, clip.leader


@pytest.fixture(scope="module")
def synth_run(song, tmp_path_factory):
    """One full run with the default synth leader and the video."""
    out = tmp_path_factory.mktemp("runs") / "duet"
    result = accompany(AccompanyConfig(music=song[0], out=out, progress=False, command="test"))
    return out, result


def leader_file(folder, name, poses, transl, **extra):
    path = folder / name
    np.save(path, {"poses": poses, "transl": transl, "betas": np.zeros(10, np.float32), "gender": "neutral",
                   **extra}, allow_pickle=True)
    return path


def run_fast(song_path, out, leader, **kw):
    return accompany(AccompanyConfig(music=song_path, out=out, leader=str(leader), video=False, progress=False, **kw))


def no_output_left(out):
    """Neither the output folder nor a temporary one beside it."""
    if out.exists():
        return False
    return not out.parent.exists() or not any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir())


# ------------------------------------------------------------------------------- outputs
def test_synth_run_writes_every_file_and_nothing_else(synth_run, song):
    out, result = synth_run
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert not any(p.name.startswith(".duet.") for p in out.parent.iterdir())  # no temporary folder left
    assert result.leader.source == f"synth:{genre_for_tempo(result.song.tempo_bpm)}"  # chosen by tempo
    assert 60 < result.song.tempo_bpm < 200 and len(result.song.beats) >= 6
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("BAS", "BED", "contact_freq", "penetration", "slip_rate"):
        assert metrics[key] is not None and 0.0 <= metrics[key] <= 1.0, key
    card = (out / "card.md").read_text()
    assert "tempo 1" in card and "bpm" in card  # the song's tempo, ~130 bpm
    for stage in ("music", "leader", "generate", "files", "video"):
        assert re.search(rf"\| {stage} \| \d+\.\d\d \|", card), stage


def test_follower_npy_and_joints_are_the_env_decode_within_1mm(synth_run):
    from duet_env.env import load_tokenizer

    out, _ = synth_run
    joints = np.load(out / "joints.npz")
    follower = dd100.read_motion(out / "follower.npy")
    reloaded = dd100.joint_positions(follower["poses"], follower["transl"], follower["betas"], follower["gender"])
    assert reloaded.shape == joints["follower"].shape == joints["leader"].shape
    assert np.linalg.norm(reloaded - joints["follower"], axis=-1).max() < 1e-3
    leader = dd100.read_motion(out / "leader.npy")
    assert np.linalg.norm(skeleton.forward_kinematics(leader["poses"], leader["transl"]) - joints["leader"],
                          axis=-1).max() < 1e-3
    # the joints are what the tokenizer decodes from the policy's tokens (the env's physics)
    decoded = load_tokenizer("default", "cpu").decode(joints["follower_tokens"], joints["leader"])["joints"]
    assert np.abs(decoded - joints["follower"]).max() < 1e-3
    # the follower dances: its wrists travel
    assert np.linalg.norm(np.diff(joints["follower"][:, 20], axis=0), axis=-1).mean() > 1e-3


def test_bvh_reads_back_to_the_written_joints_within_1mm(synth_run):
    out, _ = synth_run
    data = bvh.read_bvh(out / "duet.bvh")
    assert abs(data.fps - 30.0) < 1e-3 and len(data.roots()) == 2
    assert data.joints[0].channels == ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
    _, positions = bvh.global_transforms(data)
    joints = np.load(out / "joints.npz")
    for dancer in ("leader", "follower"):
        idx = [data.names.index(f"{dancer}:{name}") for name in skeleton.JOINT_NAMES]
        err = np.linalg.norm(positions[:, idx] - joints[dancer], axis=-1)
        assert err.max() < 1e-3, (dancer, err.max())
    # and the file works as a leader source: its leader skeleton reads back to the leader joints
    read = bvh.read_smplx_bvh(out / "duet.bvh")
    fk = skeleton.forward_kinematics(read.data["poses"], read.data["transl"])
    assert np.linalg.norm(fk - joints["leader"], axis=-1).max() < 1e-3


def test_mp4_has_the_whole_song_as_its_audio(synth_run, song):
    out, _ = synth_run
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    probe = subprocess.run([ffmpeg, "-i", str(out / "duet.mp4")], capture_output=True, text=True).stderr
    assert re.search(r"Stream #0:\d.*Video: h264", probe) and re.search(r"Stream #0:\d.*Audio:", probe)
    decoded = subprocess.run([ffmpeg, "-i", str(out / "duet.mp4"), "-map", "0:a", "-f", "null", "-"],
                             capture_output=True, text=True).stderr
    h, m, s = re.findall(r"time=(\d+):(\d+):([\d.]+)", decoded)[-1]
    audio_seconds = 3600 * int(h) + 60 * int(m) + float(s)
    assert abs(audio_seconds - sf.info(song[0]).duration) < 0.02, audio_seconds  # decoded to 0.01 s


def test_a_song_ffmpeg_cannot_decode_is_still_muxed(song, tmp_path):
    """Some files librosa reads defeat imageio-ffmpeg's ffmpeg (a real OGG Vorbis of the real-music
    set does; here a MATLAB-format file stands in): they are decoded here and muxed as WAV."""
    from agents.accompany.video import ffmpeg_reads, write_duet_video

    data, rate = sf.read(song[0], dtype="float32")
    odd = tmp_path / "song.mat"
    sf.write(odd, data[: 2 * rate], rate, format="MAT5")  # 2 s
    assert not ffmpeg_reads(odd)  # the case under test
    joints = skeleton.forward_kinematics(song[1]["poses"][:40], song[1]["transl"][:40])
    out = write_duet_video(tmp_path / "v.mp4", joints, joints, odd, 60, "t", progress=False)
    decoded = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(out), "-map", "0:a", "-f", "null", "-"],
                             capture_output=True, text=True).stderr
    assert re.findall(r"time=(\d+):(\d+):([\d.]+)", decoded)[-1][2].startswith("02.0"), decoded[-300:]


# ------------------------------------------------------------------------------- leader formats
def test_dd100_npy_leader_is_used_as_given(song, tmp_path):
    path, lead = song
    src = leader_file(tmp_path, "lead.npy", lead["poses"], lead["transl"])
    result = run_fast(path, tmp_path / "out", src, genre="tango")
    assert result.leader.genre == "Tango"
    joints = np.load(tmp_path / "out" / "joints.npz")
    want = skeleton.forward_kinematics(lead["poses"], lead["transl"])[:result.frames]
    assert np.abs(joints["leader"] - want).max() < 1e-5


def test_amass_npz_leader_at_60fps_z_up(song, tmp_path):
    path, lead = song
    # the leader as AMASS stores it: z-up, 60 fps, 16 betas
    z_up = np.linalg.inv(Z_UP_TO_Y_UP)
    poses, transl = rotate_world(lead["poses"], lead["transl"], z_up)
    poses60, transl60 = resample_motion(poses, transl, 30.0, 60.0)
    src = tmp_path / "lead.npz"
    np.savez(src, poses=poses60, trans=transl60, mocap_frame_rate=np.array(60.0), betas=np.zeros(16),
             gender=np.array("female"))
    read = read_amass(src)
    assert any("z-up" in n for n in read.notes) and any("60 fps" in n for n in read.notes)
    assert read.data["gender"] == "female" and len(read.data["poses"]) == len(lead["poses"])
    result = run_fast(path, tmp_path / "out", src)
    joints = np.load(tmp_path / "out" / "joints.npz")
    want = skeleton.forward_kinematics(lead["poses"], lead["transl"])[:result.frames]
    assert np.linalg.norm(joints["leader"] - want, axis=-1).max() < 1e-3
    assert dd100.read_motion(tmp_path / "out" / "leader.npy")["gender"] == "female"


def test_bvh_leader_in_centimetres(song, tmp_path):
    path, lead = song
    pelvis = lead["transl"] + skeleton.REST_OFFSETS[0]
    src = bvh.write_bvh(tmp_path / "lead.bvh", [("mocap", lead["poses"], 100 * pelvis)],
                        offsets=100 * skeleton.REST_OFFSETS)
    result = run_fast(path, tmp_path / "out", src)
    assert any("cm" in n for n in result.leader.notes)
    joints = np.load(tmp_path / "out" / "joints.npz")
    want = skeleton.forward_kinematics(lead["poses"], lead["transl"])[:result.frames]
    assert np.linalg.norm(joints["leader"] - want, axis=-1).max() < 1e-3


def test_resampling_slerps_rotations_and_interpolates_translation():
    t = np.arange(7) / 60.0
    poses = np.zeros((7, 6))
    poses[:, 1] = 3.0 * t  # constant angular speed about y, 3 rad/s
    poses[:, 3] = 0.5
    transl = np.stack([t, t ** 2, 0 * t], 1)
    p30, t30 = resample_motion(poses, transl, 60.0, 30.0)
    assert len(p30) == resampled_length(7, 60.0, 30.0) == 4
    np.testing.assert_allclose(p30[:, 1], 3.0 * np.arange(4) / 30.0, atol=1e-6)
    np.testing.assert_allclose(p30[:, 3], 0.5, atol=1e-6)
    np.testing.assert_allclose(t30[:, 1], (np.arange(4) / 30.0) ** 2, atol=1e-6)
    p120, _ = resample_motion(poses, transl, 60.0, 120.0)
    np.testing.assert_allclose(p120[1, 1], 3.0 / 120.0, atol=1e-6)  # between two frames: the slerp midpoint


def test_genre_by_tempo():
    from duet_env.genres import GENRES

    for bpm in np.arange(40.0, 260.0, 2.5):
        genre = genre_for_tempo(bpm)
        lo, hi = GENRES[genre].bpm
        containing = [g for g in GENRES.values() if g.bpm[0] <= bpm <= g.bpm[1]]
        if containing:  # inside some range: one of those, the one whose centre is nearest
            assert lo <= bpm <= hi
            assert abs(bpm - (lo + hi) / 2) == min(abs(bpm - sum(g.bpm) / 2) for g in containing)
        else:  # outside all: the nearest range
            gap = max(lo - bpm, bpm - hi)
            assert gap == min(max(g.bpm[0] - bpm, bpm - g.bpm[1]) for g in GENRES.values())
    assert genre_for_tempo(float("nan")) == "Waltz"


# ------------------------------------------------------------------------------- bad input
def _expect_error(capsys, args, *fragments):
    assert main(args + ["--quiet", "--no-video"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def test_bad_audio_is_a_clear_error_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    garbage = tmp_path / "garbage.mp3"
    garbage.write_bytes(b"ID3 this is not audio" * 50)
    _expect_error(capsys, ["--music", str(garbage), "--out", str(out)], str(garbage), "cannot decode")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    _expect_error(capsys, ["--music", str(empty), "--out", str(out)], str(empty), "empty")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SAMPLE_RATE * 3, np.float32), SAMPLE_RATE)
    _expect_error(capsys, ["--music", str(silent), "--out", str(out)], str(silent), "silent")
    _expect_error(capsys, ["--music", str(tmp_path / "missing.wav"), "--out", str(out)], "missing.wav", "not found")
    assert no_output_left(out)


def test_bad_leader_files_are_clear_errors_and_leave_nothing(song, tmp_path, capsys):
    path, lead = song
    out = tmp_path / "deep" / "out"  # parents that do not exist: not left behind either
    base = ["--music", str(path), "--out", str(out)]
    t = len(lead["poses"])
    wrong_keys = tmp_path / "keys.npy"
    np.save(wrong_keys, {"pose": lead["poses"], "trans": lead["transl"]}, allow_pickle=True)
    _expect_error(capsys, base + ["--leader", str(wrong_keys)], str(wrong_keys), "missing key", "poses")
    shape = leader_file(tmp_path, "shape.npy", lead["poses"][:, :72], lead["transl"])
    _expect_error(capsys, base + ["--leader", str(shape)], str(shape), "(T, 165)")
    bad = lead["poses"].copy()
    bad[5, 7] = np.nan
    nan = leader_file(tmp_path, "nan.npy", bad, lead["transl"])
    _expect_error(capsys, base + ["--leader", str(nan)], str(nan), "NaN")
    short = leader_file(tmp_path, "short.npy", lead["poses"][:60], lead["transl"][:60])
    _expect_error(capsys, base + ["--leader", str(short)], str(short), str(path), "much shorter", "--trim")
    long_clip = synth.synthesize_clip("Tango", 2, 2 * SONG_SECONDS + 2, seed=0).leader
    longer = leader_file(tmp_path, "long.npy", long_clip["poses"], long_clip["transl"])
    _expect_error(capsys, base + ["--leader", str(longer)], str(longer), "much longer")
    no_rate = tmp_path / "norate.npz"
    np.savez(no_rate, poses=lead["poses"], trans=lead["transl"])
    _expect_error(capsys, base + ["--leader", str(no_rate)], str(no_rate), "mocap_frame_rate")
    unknown = tmp_path / "lead.txt"
    unknown.write_text("x")
    _expect_error(capsys, base + ["--leader", str(unknown)], str(unknown), "unknown motion format")
    _expect_error(capsys, base + ["--leader", "synth:Salsa"], "synth:Salsa", "unknown genre")
    assert no_output_left(out) and not (tmp_path / "deep").exists()
    assert t >= 180  # the song's leader really is ~6 s (the length checks above compare against it)


def test_bvh_without_the_body_joints_is_refused(song, tmp_path, capsys):
    path, lead = song
    src = bvh.write_bvh(tmp_path / "lead.bvh", [("mocap", lead["poses"], lead["transl"] + skeleton.REST_OFFSETS[0])])
    text = src.read_text().replace("mocap:left_knee", "mocap:LeftLeg").replace("mocap:right_wrist", "mocap:RightHand")
    renamed = tmp_path / "renamed.bvh"
    renamed.write_text(text)
    out = tmp_path / "out"
    err = _expect_error(capsys, ["--music", str(path), "--out", str(out), "--leader", str(renamed)],
                        str(renamed), "lacks the SMPL-X body joint")
    assert "left_knee" in err and "right_wrist" in err
    z_up = tmp_path / "zup.bvh"  # a z-up rest skeleton: not the SMPL-X rest pose
    offsets = skeleton.REST_OFFSETS[:, [0, 2, 1]] * np.array([1, -1, 1])
    bvh.write_bvh(z_up, [("mocap", lead["poses"], lead["transl"])], offsets=offsets)
    _expect_error(capsys, ["--music", str(path), "--out", str(out), "--leader", str(z_up)], str(z_up), "rest pose")
    assert no_output_left(out)


def test_trim_accepts_a_short_leader_and_out_folder_rules(song, tmp_path, capsys):
    path, lead = song
    short = leader_file(tmp_path, "short.npy", lead["poses"][:90], lead["transl"][:90])
    out = tmp_path / "out"
    result = run_fast(path, out, short, trim=True)
    assert result.frames == 88 and any("--trim" in n for n in result.leader.notes)  # 90 frames -> 22 tokens
    assert np.load(out / "joints.npz")["follower"].shape == (88, 55, 3)
    with pytest.raises(AccompanyError, match="not empty; pass --overwrite"):
        run_fast(path, out, short, trim=True)
    result = run_fast(path, out, short, trim=True, overwrite=True, seed=1)
    assert sorted(p.name for p in out.iterdir()) == sorted(f for f in FILES if f != "duet.mp4")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


def test_a_failure_while_writing_leaves_no_output(song, tmp_path, monkeypatch):
    from agents.accompany import video

    def broken(*args, **kwargs):
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(video, "write_duet_video", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="encoder crashed"):
        accompany(AccompanyConfig(music=song[0], out=out, leader="synth:Waltz", progress=False))
    assert no_output_left(out)


def test_smplx_mesh_video(song, tmp_path):
    """--smplx-model draws the SMPL-X meshes (a tiny generated stand-in model: the plumbing)."""
    from duet_env.render import FOLLOWER_COLOUR, LEADER_COLOUR
    from duet_env.render_mesh import iter_mesh_frames
    from tests.smplx_fixture import write_tiny_smplx_model

    model = write_tiny_smplx_model(tmp_path / "model")
    _, lead = song
    n = 4
    foll = {"poses": lead["poses"][:n], "transl": lead["transl"][:n] + np.array([0.0, 0.0, 1.0], np.float32)}
    ld = {"poses": lead["poses"][:n], "transl": lead["transl"][:n]}
    lj = skeleton.forward_kinematics(ld["poses"], ld["transl"])
    fj = skeleton.forward_kinematics(foll["poses"], foll["transl"])
    frames = list(iter_mesh_frames(model, ld, foll, lj, fj, width=160, height=160, labels=False))
    assert len(frames) == n and frames[0].shape == (160, 160, 3)
    for colour in (LEADER_COLOUR, FOLLOWER_COLOUR):  # both bodies drawn, shaded in their colour
        hue = np.asarray(colour, float) / np.linalg.norm(colour)
        pix = frames[0].reshape(-1, 3).astype(float)
        cos = pix @ hue / np.maximum(np.linalg.norm(pix, axis=1), 1e-9)
        assert np.sum(cos > 0.995) > 20, colour
