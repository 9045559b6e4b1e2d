"""Stick-figure rendering of a duet: frames as RGB arrays, sequences, mp4 export with music.

Drawing is PIL.ImageDraw on a pinhole projection (no matplotlib figure per frame), so one
480×480 frame takes a few milliseconds — fast enough for the env's ``render_mode="rgb_array"``.

The camera is fixed in orientation (oblique: 35° round from the +z front, 14° above the
horizontal, 4.3 m away) and looks at the couple's midpoint (mean of the two pelvises, at hip
height). :func:`render_sequence` moves that target slowly (Gaussian-smoothed over ~1.5 s) so
the view follows travelling dancers without shaking.

CLI::

    python -m duet_env.render --root DIR --clip NAME --out FILE.mp4     # video with the music
    python -m duet_env.render --root DIR --clip NAME --out FILE.png [--frame N]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter1d

from .atomic import atomic_write
from .conventions import BODY_JOINTS, FPS, PELVIS, joint_span
from .skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS

LEADER_COLOUR = (52, 101, 214)  # blue
FOLLOWER_COLOUR = (236, 128, 28)  # orange
BACKGROUND = (246, 246, 244)
GRID_COLOUR = (205, 205, 200)
TEXT_COLOUR = (40, 40, 40)

CAMERA_DISTANCE = 4.3  # metres from the target
CAMERA_AZIMUTH = np.deg2rad(35.0)  # round from +z (the rest pose's front) towards +x
CAMERA_ELEVATION = np.deg2rad(14.0)
FIELD_OF_VIEW = np.deg2rad(42.0)  # vertical
TARGET_HEIGHT = 0.9  # metres above the floor: look at hip height
GRID_HALF_SIZE = 3.0  # metres each side of the target
GRID_STEP = 0.5
CAMERA_SMOOTHING = 45.0  # frames (σ of the Gaussian smoothing of the sequence's target)
HEAD_RADIUS = 0.1  # metres

_BODY_JOINTS = set(BODY_JOINTS) - {PELVIS}  # child joints of the thick body bones (pelvis to wrists)
_FINGER_JOINTS = joint_span("left_index1", "right_thumb3")  # thin bones; jaw and eyes are not drawn


def _bones() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    body = [(PARENTS[j], j) for j in range(NUM_JOINTS) if j in _BODY_JOINTS]
    fingers = [(PARENTS[j], j) for j in _FINGER_JOINTS]
    b, f = np.array(body), np.array(fingers)
    return b[:, 0], b[:, 1], f[:, 0], f[:, 1]


_BODY_PARENT, _BODY_CHILD, _FINGER_PARENT, _FINGER_CHILD = _bones()


class Camera:
    """Pinhole camera looking at ``target`` from the fixed oblique direction (module docstring)."""

    def __init__(self, target: np.ndarray, width: int, height: int):
        direction = np.array([
            np.cos(CAMERA_ELEVATION) * np.sin(CAMERA_AZIMUTH),
            np.sin(CAMERA_ELEVATION),
            np.cos(CAMERA_ELEVATION) * np.cos(CAMERA_AZIMUTH),
        ])
        self.position = np.asarray(target, dtype=np.float64) + CAMERA_DISTANCE * direction
        forward = -direction
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        self.axes = np.stack([right, up, forward])  # rows: camera x, y, z in world coordinates
        self.focal = 0.5 * height / np.tan(0.5 * FIELD_OF_VIEW)
        self.centre = np.array([0.5 * width, 0.5 * height])

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``(..., 3)`` -> pixel coordinates ``(..., 2)`` and depth ``(...)`` (metres)."""
        cam = (np.asarray(points, dtype=np.float64) - self.position) @ self.axes.T
        depth = np.maximum(cam[..., 2], 1e-3)  # points behind the camera are clamped, not flipped
        pix = self.centre + self.focal * np.stack([cam[..., 0], -cam[..., 1]], -1) / depth[..., None]
        return pix, depth


def _check_dancer(joints, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != ndim or arr.shape[-2:] != (NUM_JOINTS, 3):
        want = "(55, 3)" if ndim == 2 else "(T, 55, 3)"
        raise ValueError(f"{name} must have shape {want}; got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def couple_target(leader: np.ndarray, follower: np.ndarray, floor: float) -> np.ndarray:
    """Camera target of one frame (or ``(T,)`` frames): midpoint of the pelvises at hip height."""
    mid = 0.5 * (leader[..., 0, :] + follower[..., 0, :])
    mid = np.array(mid, dtype=np.float64)
    mid[..., 1] = floor + TARGET_HEIGHT
    return mid


_FONT_CACHE: dict[int, ImageFont.ImageFont] = {}


def _font(size: int):
    if size not in _FONT_CACHE:
        try:
            _FONT_CACHE[size] = ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
            _FONT_CACHE[size] = ImageFont.load_default()
    return _FONT_CACHE[size]


def _draw_grid(draw: ImageDraw.ImageDraw, camera: Camera, target: np.ndarray, floor: float, scale: float) -> None:
    # Grid lines snapped to world multiples of GRID_STEP, so the floor slides under a moving camera.
    ticks = np.arange(-GRID_HALF_SIZE, GRID_HALF_SIZE + 1e-9, GRID_STEP)
    cx, cz = np.round(target[0] / GRID_STEP) * GRID_STEP, np.round(target[2] / GRID_STEP) * GRID_STEP
    lo, hi = -GRID_HALF_SIZE, GRID_HALF_SIZE
    segments = []
    for t in ticks:
        segments.append(((cx + t, floor, cz + lo), (cx + t, floor, cz + hi)))
        segments.append(((cx + lo, floor, cz + t), (cx + hi, floor, cz + t)))
    pix, _ = camera.project(np.array(segments))
    width = max(1, round(scale))
    for (x0, y0), (x1, y1) in pix:
        draw.line((x0, y0, x1, y1), fill=GRID_COLOUR, width=width)


def _draw_dancer(draw: ImageDraw.ImageDraw, camera: Camera, joints: np.ndarray, colour,
                 scale: float) -> tuple[float, float]:
    """Draw one stick figure; return the pixel point just above its head (for the label)."""
    pix, depth = camera.project(joints)
    body_width = max(2, round(5 * scale * CAMERA_DISTANCE / float(depth[0])))
    for p, c in zip(_BODY_PARENT, _BODY_CHILD):
        draw.line((*pix[p], *pix[c]), fill=colour, width=body_width)
    for p, c in zip(_FINGER_PARENT, _FINGER_CHILD):
        draw.line((*pix[p], *pix[c]), fill=colour, width=1)
    r = camera.focal * HEAD_RADIUS / float(depth[15])
    hx, hy = pix[15]
    draw.ellipse((hx - r, hy - r, hx + r, hy + r), outline=colour, width=max(2, body_width // 2))
    r_joint = body_width * 0.6
    for j in (0, 4, 5, 18, 19):  # pelvis, knees, elbows: round the bends
        x, y = pix[j]
        draw.ellipse((x - r_joint, y - r_joint, x + r_joint, y + r_joint), fill=colour)
    return float(hx), float(min(pix[:JOINT_INDEX["left_index1"], 1].min(), hy - r) - 6 * scale)


def _draw_labels(draw: ImageDraw.ImageDraw, anchors: list[tuple[float, float]], labels: list[str], colours,
                 scale: float) -> None:
    font = _font(max(10, round(14 * scale)))
    widths = [draw.textlength(text, font=font) for text in labels]
    lefts = [x - 0.5 * w for (x, _), w in zip(anchors, widths)]
    # dancers close together: push the two labels apart horizontally so they never overlap
    order = np.argsort([x for x, _ in anchors])
    a, b = int(order[0]), int(order[-1])
    overlap = lefts[a] + widths[a] + 6 * scale - lefts[b]
    if overlap > 0:
        lefts[a] -= 0.5 * overlap
        lefts[b] += 0.5 * overlap
    for left, (_, top), text, colour in zip(lefts, anchors, labels, colours):
        draw.text((left, top - 16 * scale), text, fill=colour, font=font)


def render_frame(leader_joints: np.ndarray, follower_joints: np.ndarray, *, width: int = 480, height: int = 480,
                 labels: bool = True, title: str | None = None, target: np.ndarray | None = None,
                 floor: float | None = None) -> np.ndarray:
    """Draw both dancers as stick figures: an ``(height, width, 3)`` uint8 RGB image.

    Args:
        leader_joints, follower_joints: ``(55, 3)`` world joint positions (metres, y up).
        width, height: image size in pixels.
        labels: write "leader" / "follower" above the dancers.
        title: optional text at the top left.
        target: camera target (default: the pelvis midpoint at hip height above the floor).
        floor: height of the ground grid (default: the lowest joint of this frame).
    """
    leader = _check_dancer(leader_joints, "leader_joints", 2)
    follower = _check_dancer(follower_joints, "follower_joints", 2)
    if width < 16 or height < 16:
        raise ValueError(f"width and height must be at least 16 pixels; got {width}x{height}")
    if floor is None:
        floor = float(min(leader[:, 1].min(), follower[:, 1].min()))
    if target is None:
        target = couple_target(leader, follower, floor)
    camera = Camera(np.asarray(target, dtype=np.float64), width, height)
    scale = height / 480.0
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    _draw_grid(draw, camera, np.asarray(target, dtype=np.float64), floor, scale)
    dancers = [(leader, LEADER_COLOUR, "leader"), (follower, FOLLOWER_COLOUR, "follower")]
    # painter's order: the dancer farther from the camera first
    dancers.sort(key=lambda d: -float(camera.project(d[0][0])[1]))
    anchors = [_draw_dancer(draw, camera, joints, colour, scale) for joints, colour, _ in dancers]
    if labels:
        _draw_labels(draw, anchors, [d[2] for d in dancers], [d[1] for d in dancers], scale)
    if title:
        draw.text((8 * scale, 6 * scale), title, fill=TEXT_COLOUR, font=_font(max(10, round(15 * scale))))
    return np.asarray(image)


def sequence_camera(leader: np.ndarray, follower: np.ndarray) -> tuple[np.ndarray, float]:
    """Camera targets ``(T, 3)`` and floor height of a sequence, as :func:`render_sequence` uses."""
    lead = _check_dancer(leader, "leader", 3)
    foll = _check_dancer(follower, "follower", 3)
    if len(lead) != len(foll):
        raise ValueError(f"leader has {len(lead)} frames but follower has {len(foll)}; they must match")
    if len(lead) == 0:
        raise ValueError("leader and follower have no frames")
    floor = float(min(lead[..., 1].min(), foll[..., 1].min()))
    targets = gaussian_filter1d(couple_target(lead, foll, floor), CAMERA_SMOOTHING, axis=0, mode="nearest")
    return targets, floor


def iter_frames(leader: np.ndarray, follower: np.ndarray, *, width: int = 480, height: int = 480,
                labels: bool = True, title: str | None = None, progress: bool = False) -> Iterator[np.ndarray]:
    """Frames of :func:`render_sequence` one at a time (for long videos: no T×H×W×3 array in memory)."""
    lead = _check_dancer(leader, "leader", 3)
    foll = _check_dancer(follower, "follower", 3)
    targets, floor = sequence_camera(lead, foll)
    from tqdm.auto import tqdm

    for t in tqdm(range(len(lead)), desc="rendering", unit="frame", disable=not progress, leave=False):
        yield render_frame(lead[t], foll[t], width=width, height=height, labels=labels, title=title,
                           target=targets[t], floor=floor)


def render_sequence(leader: np.ndarray, follower: np.ndarray, *, width: int = 480, height: int = 480,
                    labels: bool = True, title: str | None = None, progress: bool = False) -> np.ndarray:
    """Render ``(T, 55, 3)`` leader and follower motion to ``(T, height, width, 3)`` uint8 frames.

    One floor height for the whole sequence (its lowest joint) and a camera target that follows
    the couple's midpoint smoothed with a Gaussian of σ = 45 frames (1.5 s), so the view drifts
    with travelling dancers but does not shake with every step.
    """
    frames = iter_frames(leader, follower, width=width, height=height, labels=labels, title=title,
                         progress=progress)
    first = next(frames)  # validates the inputs before allocating the output
    out = np.empty((len(leader), *first.shape), np.uint8)
    out[0] = first
    for t, frame in enumerate(frames, start=1):
        out[t] = frame
    return out


def write_image(frame: np.ndarray, path: str | os.PathLike) -> Path:
    """Write one ``(H, W, 3)`` uint8 frame as an image (format from the suffix), atomically."""
    target = Path(path)
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"frame must be an (H, W, 3) uint8 array; got {arr.shape} {arr.dtype}")
    image_format = Image.registered_extensions().get(target.suffix.lower(), "PNG")
    return atomic_write(target, lambda tmp: Image.fromarray(arr).save(tmp, format=image_format),
                        suffix=target.suffix or ".png")


def _encode_video(frames: Iterable[np.ndarray], path: str, fps: float) -> int:
    """Encode frames to an H.264 mp4 at ``path`` with imageio-ffmpeg; returns the frame count."""
    import imageio.v2 as imageio

    count = 0
    writer = imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", quality=7,
                                pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error")
    try:
        for frame in frames:
            arr = np.asarray(frame)
            if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
                raise ValueError(f"frames[{count}] must be an (H, W, 3) uint8 array; got {arr.shape} {arr.dtype}")
            if arr.shape[0] % 2 or arr.shape[1] % 2:
                raise ValueError(f"frames[{count}] is {arr.shape[1]}x{arr.shape[0]}; H.264 needs even sizes")
            writer.append_data(arr)
            count += 1
    finally:
        writer.close()
    if count == 0:
        raise ValueError("frames is empty: nothing to write")
    return count


def _mux_audio(video: str, audio_path: str | os.PathLike, out: str, seconds: float, target: Path) -> None:
    """Copy ``video``'s stream and ``audio_path`` as AAC, cut to ``seconds``, into ``out``."""
    import imageio_ffmpeg

    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", video,
        "-i", str(audio_path), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac",
        "-t", f"{seconds:.6f}", out,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not mux {audio_path} into {target}: {done.stderr.strip()}")


def write_video(frames: Iterable[np.ndarray] | np.ndarray, path: str | os.PathLike, fps: float = FPS,
                audio_path: str | os.PathLike | None = None) -> Path:
    """Write frames ``(H, W, 3)`` uint8 to an H.264 mp4, optionally with music, atomically.

    The video goes through imageio-ffmpeg; with ``audio_path`` the audio is muxed in by the
    ffmpeg binary of ``imageio_ffmpeg.get_ffmpeg_exe()`` (AAC), cut to the video's length.
    Width and height must be even (H.264 yuv420p).
    """
    target = Path(path)
    if audio_path is not None and not Path(audio_path).is_file():
        raise FileNotFoundError(f"audio_path {audio_path} does not exist")
    if fps <= 0:
        raise ValueError(f"fps must be positive; got {fps}")
    if audio_path is None:
        return atomic_write(target, lambda tmp: _encode_video(frames, tmp, fps), suffix=".mp4")

    def encode_and_mux(tmp: str) -> None:
        silent = Path(tmp).with_suffix(".silent.mp4")  # beside the (hidden) temp file, removed below
        try:
            count = _encode_video(frames, str(silent), fps)
            _mux_audio(str(silent), audio_path, tmp, count / fps, target)
        finally:
            silent.unlink(missing_ok=True)
    return atomic_write(target, encode_and_mux, suffix=".mp4")


def _load_clip(root: str, name: str):
    from .data import dd100

    clips = dd100.list_clips(root, on_error="skip")
    matches = [c for c in clips if c.name == name]
    if not matches:
        known = ", ".join(c.name for c in clips[:8])
        raise SystemExit(f"clip {name!r} not found under {root} (clips there: {known}{', ...' if len(clips) > 8 else ''})")
    return dd100.load_clip(matches[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m duet_env.render", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="dataset folder in DD100 layout")
    parser.add_argument("--clip", required=True, help="clip name <GENRE>_<CHOREO>_<TAKE>")
    parser.add_argument("--out", required=True, help="FILE.mp4 for a video with the music, FILE.png for one frame")
    parser.add_argument("--frame", type=int, default=None, help="frame index for an image (default: the middle)")
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--no-audio", action="store_true", help="write the video without the music")
    args = parser.parse_args(argv)
    clip = _load_clip(args.root, args.clip)
    leader, follower = clip.leader.joints, clip.follower.joints
    out = Path(args.out)
    if out.suffix.lower() in (".png", ".jpg", ".jpeg"):
        index = len(clip) // 2 if args.frame is None else args.frame
        if not 0 <= index < len(clip):
            raise SystemExit(f"--frame {index} is outside the clip's {len(clip)} frames")
        targets, floor = sequence_camera(leader, follower)  # the same view as in the video
        frame = render_frame(leader[index], follower[index], width=args.width, height=args.height,
                             title=clip.name, target=targets[index], floor=floor)
        write_image(frame, out)
    else:
        frames = iter_frames(leader, follower, width=args.width, height=args.height, title=clip.name,
                             progress=True)
        audio = None if args.no_audio else clip.audio_path
        write_video(frames, out, fps=FPS, audio_path=audio)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
