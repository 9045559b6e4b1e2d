"""The song: music features, tracked beats and tempo of the user's audio file."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duet_env.conventions import FPS
from duet_env.music import MusicError, beat_frames, extract_features

from .errors import AccompanyError

TEMPO_CHANGE_RATIO = 1.15  # local tempi (10th to 90th percentile) further apart than this: "changes"


@dataclass
class Song:
    """An analysed audio file.

    ``features``: ``(T, 54)`` music features at 30 fps (:mod:`duet_env.music`: the same the env,
    the GPT and the metrics see); ``beats``: frame indices of the beats librosa tracked (the
    features' beat column); tempo from the beats: ``tempo_bpm`` = 60 / median inter-beat interval,
    ``tempo_low`` / ``tempo_high`` = 10th / 90th percentile of the local tempo 60 / interval
    (a song with tempo changes shows a wide range; the beats follow the tracker, not a grid).
    """

    path: Path
    features: np.ndarray
    beats: np.ndarray
    tempo_bpm: float
    tempo_low: float
    tempo_high: float

    @property
    def frames(self) -> int:
        return len(self.features)

    @property
    def seconds(self) -> float:
        return self.frames / FPS

    @property
    def beat_times(self) -> np.ndarray:
        """Beat times in seconds."""
        return self.beats / FPS

    @property
    def tempo_changes(self) -> bool:
        return bool(np.isfinite(self.tempo_low) and self.tempo_high > TEMPO_CHANGE_RATIO * self.tempo_low)

    def describe(self) -> str:
        if not np.isfinite(self.tempo_bpm):
            return f"{self.seconds:.1f} s, {len(self.beats)} beat(s) tracked: no tempo"
        tempo = f"tempo {self.tempo_bpm:.1f} bpm"
        if self.tempo_changes:
            tempo += f" (changing: {self.tempo_low:.0f}-{self.tempo_high:.0f} bpm)"
        return f"{self.seconds:.1f} s, {tempo}, {len(self.beats)} beats tracked"


def tempo_of(beats: np.ndarray) -> tuple[float, float, float]:
    """(median, 10th percentile, 90th percentile) tempo in bpm of beat frames; NaN with < 2 beats."""
    if len(beats) < 2:
        return float("nan"), float("nan"), float("nan")
    intervals = np.diff(np.asarray(beats, np.float64)) / FPS
    intervals = intervals[intervals > 0]
    local = 60.0 / intervals
    return float(60.0 / np.median(intervals)), float(np.percentile(local, 10)), float(np.percentile(local, 90))


def analyse_song(path: str | os.PathLike) -> Song:
    """Features, beats and tempo of an audio file; AccompanyError naming the file when the audio is
    missing, unreadable, empty, silent or too short (:func:`duet_env.music.load_audio`'s checks)."""
    path = Path(path)
    try:
        features = extract_features(path)
    except FileNotFoundError as exc:
        raise AccompanyError(f"--music {path}: audio file not found") from exc
    except MusicError as exc:
        raise AccompanyError(f"--music {exc}") from exc
    beats = beat_frames(features)
    return Song(path, features, beats, *tempo_of(beats))
