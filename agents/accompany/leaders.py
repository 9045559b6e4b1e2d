"""Leader sources of ``agents.accompany``: a motion file or a SynthDuet leader on the song's beats.

``--leader SOURCE``:

* ``synth`` or ``synth:GENRE`` (the default): :func:`duet_env.data.synth.dance_to_beats`, a
  SynthDuet leader choreographed on the beats librosa tracked in the song (so it follows tempo
  changes) for the song's whole length. Without a genre (``synth``, no ``--genre``) the genre is
  chosen by tempo: :func:`genre_for_tempo`.
* ``FILE.npy``: a DD100 SMPL-X dict (``poses`` (T, 165), ``transl`` (T, 3), optional ``betas``,
  ``gender``) at 30 fps, read by the project's safe loader (:func:`duet_env.data.dd100.read_motion`).
* ``FILE.npz``: AMASS-style SMPL-X (or SMPL+H) ``poses`` / ``trans`` at any frame rate
  (:mod:`duet_env.data.amass`: resampled to 30 fps, z-up turned to y-up).
* ``FILE.bvh``: a BVH whose joints carry SMPL-X names (:func:`duet_env.data.bvh.read_smplx_bvh`).

**Length rule.** A leader file and the song may differ by up to :data:`MAX_MISMATCH_S` (exports
round differently): both are cut to the shorter, and the cut is logged. A larger difference is
almost always the wrong pair of files and is an error naming both lengths, unless ``--trim``
asks to cut both to the shorter anyway (logged as a warning and noted on the run card).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from duet_env.conventions import FPS
from duet_env.data.clip import Dancer
from duet_env.genres import GENRES

from .errors import AccompanyError
from .song import Song

log = logging.getLogger("agents.accompany")

SYNTH = "synth"
UNKNOWN_GENRE = "Unknown"
AUTO_GENRE = "auto"
MAX_MISMATCH_S = 1.0   # the env's user_clip tolerance (duet_env.episodes.user_clip)
MIN_LEADER_S = 1.0
MAX_TRANSL_M = 100.0   # a pelvis farther than this from the origin is not in metres
SUFFIXES = {".npy": "DD100 SMPL-X .npy", ".npz": "AMASS-style .npz", ".bvh": "BVH with SMPL-X joint names"}


@dataclass
class Leader:
    """The leader's motion at 30 fps (``dancer``: poses, transl, betas, gender and the joints of the
    built-in skeleton's forward kinematics), what it came from, the dance genre and notes on
    conversions (for the log and the run card)."""

    dancer: Dancer
    source: str
    genre: str
    genre_reason: str
    notes: list[str] = field(default_factory=list)
    path: Path | None = None


def canonical_genre(name: str, where: str) -> str:
    """``name`` spelled as in :data:`duet_env.genres.GENRES` (case-insensitive); AccompanyError otherwise."""
    for g in GENRES:
        if g.lower() == name.strip().lower():
            return g
    raise AccompanyError(f"{where}: unknown genre {name!r}; choose one of {', '.join(GENRES)}")


def genre_for_tempo(bpm: float) -> str:
    """The genre whose tempo range (:data:`duet_env.genres.GENRES`) is nearest to ``bpm``: the
    distance to the range, 0 inside it, ties (overlapping ranges) broken by the distance to the
    range's centre; Waltz when the song has no tempo.

    Why the typical ranges and not all of SynthDuet's (which add fast hip-hop, 130-165 bpm, and
    Viennese waltz): a fast hip-hop leader beats a Tango one by 0.12-0.17 of BAS on 138.5 bpm
    songs, but the shipped GPT does not follow it (beat echo 0.45-0.50, follower BAS 0.33-0.39
    against Tango's 0.42-0.47), measured on the real-music set (GPT_CARD.md, "Tried and not
    shipped: hip-hop for fast songs")."""
    if not np.isfinite(bpm):
        return "Waltz"

    def distance(style) -> tuple[float, float]:
        lo, hi = style.bpm
        return max(lo - bpm, 0.0, bpm - hi), abs(bpm - 0.5 * (lo + hi))

    return min(GENRES.values(), key=distance).name


def _synth_genre(source: str, genre_flag: str | None, song: Song) -> tuple[str, str]:
    named = source.split(":", 1)[1] if ":" in source else ""
    if named:
        genre = canonical_genre(named, f"--leader {source}")
        if genre_flag not in (None, AUTO_GENRE) and canonical_genre(genre_flag, "--genre") != genre:
            raise AccompanyError(f"--leader {source} and --genre {genre_flag} name different genres")
        return genre, "given"
    if genre_flag not in (None, AUTO_GENRE):
        return canonical_genre(genre_flag, "--genre"), "given"
    return genre_for_tempo(song.tempo_bpm), f"chosen by tempo ({song.tempo_bpm:.0f} bpm)"


def synth_leader(source: str, song: Song, genre_flag: str | None, seed: int) -> Leader:
    """A SynthDuet leader dancing on the song's tracked beats (module docstring)."""
    from duet_env.data.synth import dance_to_beats

    genre, reason = _synth_genre(source, genre_flag, song)
    if len(song.beats) < 2:
        raise AccompanyError(f"--music {song.path}: librosa tracked {len(song.beats)} beat(s); a synth leader "
                             f"dances on the beats: pass a leader motion with --leader FILE")
    try:
        clip = dance_to_beats(genre, song.beat_times, song.seconds, seed=seed)
    except ValueError as exc:
        raise AccompanyError(f"--music {song.path}: cannot choreograph a {genre} leader on it: {exc}") from exc
    d = clip.leader
    dancer = Dancer(d["poses"][:song.frames], d["transl"][:song.frames], d["betas"], d["gender"])
    notes = [f"SynthDuet {genre} leader on the song's {len(song.beats)} tracked beats (seed {seed})"]
    return Leader(dancer, f"{SYNTH}:{genre}", genre, reason, notes)


def read_leader_file(path: Path) -> tuple[dict, list[str]]:
    """The DD100 dict (30 fps) and conversion notes of a leader file, by its suffix."""
    from duet_env.data import amass, bvh, dd100

    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise AccompanyError(f"--leader {path}: unknown motion format {suffix or '(no suffix)'!r}; use "
                             + ", ".join(f"{k} ({v})" for k, v in SUFFIXES.items()) + " or synth:GENRE")
    if not path.is_file():
        raise AccompanyError(f"--leader {path}: motion file not found")
    try:
        if suffix == ".npy":
            return dd100.read_motion(path), []
        read = amass.read_amass(path) if suffix == ".npz" else bvh.read_smplx_bvh(path)
        return read.data, read.notes
    except dd100.DataError as exc:  # BvhError and the AMASS reader's errors are DataErrors
        raise AccompanyError(f"--leader {exc}") from exc


def file_leader(path: Path, genre_flag: str | None) -> Leader:
    """A leader read from a motion file, validated (shape, finite, metres, at least 1 s)."""
    data, notes = read_leader_file(path)
    poses = np.asarray(data["poses"], np.float32)
    transl = np.asarray(data["transl"], np.float32)
    if len(poses) < MIN_LEADER_S * FPS:
        raise AccompanyError(f"--leader {path}: {len(poses)} frames ({len(poses) / FPS:.2f} s) at 30 fps; "
                             f"a leader needs at least {MIN_LEADER_S:.0f} s")
    if not (np.isfinite(poses).all() and np.isfinite(transl).all()):
        raise AccompanyError(f"--leader {path}: motion contains NaN or inf")
    far = float(np.abs(transl).max())
    if far > MAX_TRANSL_M:
        raise AccompanyError(f"--leader {path}: 'transl' reaches {far:.0f} (metres expected; centimetres?)")
    if genre_flag in (None, AUTO_GENRE):
        genre, reason = UNKNOWN_GENRE, "not given (--genre)"
    else:
        genre, reason = canonical_genre(genre_flag, "--genre"), "given"
    dancer = Dancer(poses, transl, np.asarray(data["betas"], np.float32), str(data["gender"]))
    return Leader(dancer, str(path), genre, reason, notes, path)


def load_leader(source: str, song: Song, genre_flag: str | None = None, seed: int = 0) -> Leader:
    """The leader of ``--leader SOURCE`` (module docstring)."""
    source = source.strip()
    if source == SYNTH or source.startswith(SYNTH + ":"):
        return synth_leader(source, song, genre_flag, seed)
    return file_leader(Path(source), genre_flag)


def fit_length(leader: Leader, song: Song, trim: bool = False) -> int:
    """Frames of the duet: the shorter of leader and song, within the length rule (module docstring)."""
    tl, tm = len(leader.dancer), song.frames
    t = min(tl, tm)
    if tl == tm:
        return t
    if abs(tl - tm) > MAX_MISMATCH_S * FPS:
        what = (f"--leader {leader.source} is {tl / FPS:.1f} s ({tl} frames) but --music {song.path} is "
                f"{tm / FPS:.1f} s ({tm} frames)")
        if not trim:
            raise AccompanyError(f"{what}: the leader is much {'shorter' if tl < tm else 'longer'} than the music "
                                 f"(more than {MAX_MISMATCH_S:.0f} s apart: the wrong pair of files?); pass --trim "
                                 f"to cut both to the shorter ({t / FPS:.1f} s)")
        note = f"{what}: both cut to {t / FPS:.1f} s (--trim)"
        log.warning(note)
    else:
        note = f"leader {tl} frames, music {tm} frames: both cut to {t}"
        log.info(note)
    leader.notes.append(note)
    return t
