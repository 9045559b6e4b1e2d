"""Tests of duet_env.render: frames, sequences, video and audio export."""
from __future__ import annotations

import subprocess

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from duet_env import skeleton
from duet_env.render import (
    FOLLOWER_COLOUR, LEADER_COLOUR, main, render_frame, render_sequence, write_image, write_video,
)


def dancer(x: float, z: float = 0.0, frames: int = 1, yaw: float = 0.0) -> np.ndarray:
    poses = np.zeros((frames, skeleton.POSE_DIM))
    poses[:, 1] = yaw
    return skeleton.forward_kinematics(poses, np.tile([x, 1.3, z], (frames, 1)))


def colour_mask(img: np.ndarray, colour) -> np.ndarray:
    return np.all(np.abs(img.astype(int) - np.array(colour)) <= 6, axis=-1)


def test_frame_shape_dtype_and_both_colours():
    img = render_frame(dancer(-0.6)[0], dancer(0.6, yaw=np.pi)[0], width=320, height=240, title="t")
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    assert colour_mask(img, LEADER_COLOUR).sum() > 200
    assert colour_mask(img, FOLLOWER_COLOUR).sum() > 200


def test_dancers_apart_appear_in_different_places():
    img = render_frame(dancer(-1.0)[0], dancer(1.0)[0], labels=False)
    leader_cols = np.nonzero(colour_mask(img, LEADER_COLOUR))[1]
    follower_cols = np.nonzero(colour_mask(img, FOLLOWER_COLOUR))[1]
    # the leader stands at −x, left in the image; 2 m apart the figures barely overlap
    assert np.median(leader_cols) + 100 < np.median(follower_cols)
    swapped = render_frame(dancer(1.0)[0], dancer(-1.0)[0], labels=False)
    assert np.median(np.nonzero(colour_mask(swapped, LEADER_COLOUR))[1]) > np.median(follower_cols) - 20


def test_render_frame_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"leader_joints must have shape \(55, 3\)"):
        render_frame(np.zeros((24, 3)), dancer(0)[0])
    bad = dancer(0)[0].copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="follower_joints contains NaN"):
        render_frame(dancer(0)[0], bad)


def test_sequence_and_video_frame_count(tmp_path):
    frames = render_sequence(dancer(-0.5, frames=12), dancer(0.5, frames=12), width=96, height=96)
    assert frames.shape == (12, 96, 96, 3)
    out = write_video(frames, tmp_path / "clip.mp4", fps=30)
    reader = imageio.get_reader(out)
    assert sum(1 for _ in reader) == 12
    reader.close()
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp files left behind
    with pytest.raises(ValueError, match="leader has 12 frames but follower has 11"):
        render_sequence(dancer(0, frames=12), dancer(0, frames=11))


def test_video_with_audio_has_an_audio_stream(tmp_path):
    wav = tmp_path / "music.wav"
    sf.write(wav, 0.1 * np.sin(2 * np.pi * 440 * np.arange(22050 * 2) / 22050), 22050)  # 2 s
    frames = np.zeros((15, 64, 64, 3), np.uint8)  # 0.5 s of video
    out = write_video(frames, tmp_path / "av.mp4", fps=30, audio_path=wav)
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(out)], capture_output=True, text=True)
    assert "Audio:" in probe.stderr
    assert "Duration: 00:00:00.5" in probe.stderr  # audio trimmed to the video length
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        write_video(frames, tmp_path / "x.mp4", audio_path=tmp_path / "missing.wav")


def test_write_image_round_trip(tmp_path):
    img = render_frame(dancer(-0.5)[0], dancer(0.5)[0], width=64, height=48)
    path = write_image(img, tmp_path / "f.png")
    np.testing.assert_array_equal(imageio.imread(path)[..., :3], img)


@pytest.fixture
def tiny_dd100(tmp_path, monkeypatch):
    """A one-clip DD100-layout folder: 2 s of both dancers and a 2 s tone."""
    monkeypatch.setenv("DUET_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "dd100"
    motion = root / "motion" / "smplx" / "all"
    music = root / "music" / "mp3" / "all"
    motion.mkdir(parents=True)
    music.mkdir(parents=True)
    frames = 60
    t = np.arange(frames) / 30.0
    for suffix, x, yaw in (("_00", 0.5, -np.pi / 2), ("_01", -0.5, np.pi / 2)):
        poses = np.zeros((frames, skeleton.POSE_DIM), np.float32)
        poses[:, 1] = yaw
        poses[:, 18 * 3 + 2] = 0.5 * np.sin(2 * np.pi * t)  # waving left elbow
        transl = np.tile(np.array([x, 1.3, 0.0], np.float32), (frames, 1))
        np.save(motion / f"Waltz_1_a{suffix}.npy",
                {"poses": poses, "transl": transl, "betas": np.zeros(10, np.float32), "gender": "neutral"},
                allow_pickle=True)
    sf.write(music / "Waltz_1_a.wav", 0.1 * np.sin(2 * np.pi * 220 * np.arange(15360 * 2) / 15360), 15360)
    return root


def test_cli_writes_png_and_video_with_music(tiny_dd100, tmp_path):
    png = tmp_path / "out" / "frame.png"
    assert main(["--root", str(tiny_dd100), "--clip", "Waltz_1_a", "--out", str(png), "--frame", "10",
                 "--width", "160", "--height", "120"]) == 0
    img = imageio.imread(png)
    assert img.shape[:2] == (120, 160)
    assert colour_mask(img[..., :3], LEADER_COLOUR).any() and colour_mask(img[..., :3], FOLLOWER_COLOUR).any()
    mp4 = tmp_path / "out" / "clip.mp4"
    assert main(["--root", str(tiny_dd100), "--clip", "Waltz_1_a", "--out", str(mp4),
                 "--width", "96", "--height", "96"]) == 0
    reader = imageio.get_reader(mp4)
    count = sum(1 for _ in reader)
    reader.close()
    assert count >= 56  # the clip, cut to the common music/motion length
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(mp4)], capture_output=True, text=True)
    assert "Audio:" in probe.stderr
    with pytest.raises(SystemExit, match="not found"):
        main(["--root", str(tiny_dd100), "--clip", "Tango_2_a", "--out", str(png)])
