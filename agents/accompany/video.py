"""duet.mp4: both dancers drawn (stick figures of :mod:`duet_env.render`, or SMPL-X meshes of
:mod:`duet_env.render_mesh` with ``--smplx-model``), the song muxed in.

The song goes into the mp4 as it is when the ffmpeg binary of imageio-ffmpeg can decode it; some
files librosa reads defeat that build (an OGG Vorbis file of the real-music set, MATLAB-format
audio, ...), and those are decoded here (soundfile, else librosa) to a temporary WAV that is
muxed instead.

The duet is cut to whole tokens, so it may end up to a few frames before the song does; the video
holds the last frame to the song's end so the whole song plays (unless the duet was cut shorter
on purpose with ``--trim``: then the video, and its music, end with the duet).
"""
from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from duet_env.conventions import FPS

WIDTH = HEIGHT = 480


def _held(frames: Iterator[np.ndarray], total: int) -> Iterator[np.ndarray]:
    last = None
    count = 0
    for last in frames:
        count += 1
        yield last
    for _ in range(max(total - count, 0)):
        yield last


def ffmpeg_reads(audio: Path) -> bool:
    """Whether imageio-ffmpeg's ffmpeg binary decodes ``audio`` (it rejects some files librosa reads)."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(audio), "-map", "0:a:0", "-t", "0.1",
           "-f", "null", "-"]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def decode_to_wav(audio: Path, target: Path) -> Path:
    """``audio`` decoded (soundfile, else librosa) and written as 16-bit PCM WAV at its own rate."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(audio), dtype="float32", always_2d=True)
    except Exception:  # noqa: BLE001  (soundfile raises several types; librosa tries audioread too)
        import librosa

        y, rate = librosa.load(str(audio), sr=None, mono=False)
        data = np.atleast_2d(y).T
    sf.write(str(target), data, int(rate), subtype="PCM_16", format="WAV")
    return target


def write_duet_video(path: Path, leader: np.ndarray, follower: np.ndarray, audio: Path, total_frames: int,
                     title: str, mesh: dict | None = None, progress: bool = True) -> Path:
    """Render ``leader`` / ``follower`` joints ``(T, 55, 3)`` (or, with ``mesh``, their SMPL-X
    meshes: ``{"model": DIR, "leader": smplx dict, "follower": smplx dict}``) to ``path`` with
    ``audio``, ``total_frames`` long (the last frame held)."""
    from duet_env.render import iter_frames, write_video

    if mesh is not None:
        from duet_env.render_mesh import iter_mesh_frames

        frames = iter_mesh_frames(mesh["model"], mesh["leader"], mesh["follower"], leader, follower,
                                  width=WIDTH, height=HEIGHT, title=title, progress=progress)
    else:
        frames = iter_frames(leader, follower, width=WIDTH, height=HEIGHT, title=title, progress=progress)
    if ffmpeg_reads(audio):
        return write_video(_held(frames, total_frames), path, fps=FPS, audio_path=audio)
    with tempfile.TemporaryDirectory(prefix="accompany_audio_") as tmp:
        wav = decode_to_wav(audio, Path(tmp) / "song.wav")
        return write_video(_held(frames, total_frames), path, fps=FPS, audio_path=wav)
