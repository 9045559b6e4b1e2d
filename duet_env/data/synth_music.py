"""SynthDuet music: drums, bass and chords on a known beat grid (numpy additive synthesis).

Beat k sits at ``offset + k * 60 / bpm`` seconds exactly. Each beat gets a percussive onset
(kick on the downbeat, and on beat 3 in 4/4; snare / backbeat on the other beats; hi-hats on
beats and off-beats), the bass plays the chord root (fifth on weak beats), and a chord
(triad or seventh, a progression per 8-bar phrase) is re-struck on every beat with a
decaying envelope. The clear, regular onsets are what let librosa's beat tracker find the
beats. One-shot sounds are built once per clip and added at their onsets (a Python loop over
events, never over samples).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 15360  # the music feature extractor's rate (duet_env.music)
PHRASE_BARS = 8

# Chord progressions as (scale degree 0-6, quality) per bar; cycled over a phrase.
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS_MAJOR = ((0, 4, 5, 3), (1, 4, 0, 5), (0, 5, 3, 4), (0, 3, 4, 4), (0, 5, 1, 4))
_PROGRESSIONS_MINOR = ((0, 3, 4, 0), (0, 5, 2, 6), (0, 6, 5, 4), (0, 3, 6, 2))
_MINOR_GENRES = ("Tango",)


@dataclass(frozen=True)
class MusicPlan:
    """Everything that fixes a clip's music: tempo (bpm), beats per bar (meter), time of beat
    0 (offset, s), key root (MIDI note), minor mode, and one progression index per phrase."""

    bpm: float
    meter: int
    offset: float
    root_midi: int
    minor: bool
    progressions: tuple[int, ...]
    seventh: bool

    @property
    def beat_period(self) -> float:
        return 60.0 / self.bpm

    def beat_times(self, duration: float) -> np.ndarray:
        """Times (s) of all beats inside [0, duration)."""
        n = int(np.floor((duration - self.offset) / self.beat_period)) + 1
        t = self.offset + np.arange(max(n, 0)) * self.beat_period
        return t[t < duration]


def plan_music(genre: str, bpm_range: tuple[float, float], meter: int, duration: float,
               rng: np.random.Generator) -> MusicPlan:
    """Seeded choice of tempo (uniform in the genre's range, 0.5 bpm grid), offset, key and
    progressions."""
    bpm = float(np.round(rng.uniform(*bpm_range) * 2.0) / 2.0)
    offset = float(np.round(rng.uniform(0.15, 0.6), 3))
    minor = genre in _MINOR_GENRES or bool(rng.random() < 0.25)
    bars = int(np.ceil(duration * bpm / 60.0 / meter)) + 1
    n_phrases = bars // PHRASE_BARS + 1
    progs = _PROGRESSIONS_MINOR if minor else _PROGRESSIONS_MAJOR
    return MusicPlan(bpm, meter, offset, int(rng.integers(43, 55)), minor,
                     tuple(int(rng.integers(len(progs))) for _ in range(n_phrases)),
                     bool(rng.random() < 0.5))


def _midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.35 * sr)) / sr
    f = 45.0 + 90.0 * np.exp(-t / 0.03)  # pitch drop 135 -> 45 Hz
    phase = 2 * np.pi * np.cumsum(f) / sr
    return np.sin(phase) * np.exp(-t / 0.12) * np.minimum(1.0, t / 0.002)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.2 * sr)) / sr
    noise = np.diff(rng.standard_normal(t.size + 1))  # first difference: brighter noise
    body = np.sin(2 * np.pi * 185.0 * t)
    return (0.45 * noise * np.exp(-t / 0.05) + 0.6 * body * np.exp(-t / 0.06)) * np.minimum(1.0, t / 0.001)


def _hat(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.06 * sr)) / sr
    noise = np.diff(rng.standard_normal(t.size + 2), n=2)  # second difference: high-passed
    return 0.25 * noise * np.exp(-t / 0.012)


def _tone(freqs: list[float], length: int, sr: int, decay: float) -> np.ndarray:
    """Sum of notes, each with 3 harmonics (1, 1/2, 1/4), under an exponential decay."""
    t = np.arange(length) / sr
    out = np.zeros(length)
    for f in freqs:
        for h, a in ((1, 1.0), (2, 0.5), (3, 0.25)):
            if f * h < sr / 2 - 200:
                out += a * np.sin(2 * np.pi * f * h * t)
    return out * np.exp(-t / decay) * np.minimum(1.0, t / 0.004)


def _chord_notes(plan: MusicPlan, degree: int) -> list[int]:
    scale = _MINOR_SCALE if plan.minor else _MAJOR_SCALE
    steps = (0, 2, 4, 6) if plan.seventh else (0, 2, 4)
    notes = []
    for s in steps:
        d = degree + s
        notes.append(plan.root_midi + 12 + scale[d % 7] + 12 * (d // 7))
    return notes


def _add(out: np.ndarray, start: int, sound: np.ndarray, gain: float) -> None:
    if start >= out.size:
        return
    n = min(sound.size, out.size - start)
    out[start:start + n] += gain * sound[:n]


def synthesize(plan: MusicPlan, duration: float, genre: str, rng: np.random.Generator,
               sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio in [-1, 1] of ``duration`` seconds following ``plan``."""
    n = int(round(duration * sr))
    drums = np.zeros(n)
    tonal = np.zeros(n)
    kick, snare, hat = _kick(sr), _snare(sr, rng), _hat(sr, rng)
    period = plan.beat_period
    soft = genre == "Ballet"  # ballet: light percussion, more prominent chords
    beat_len = int(period * sr)
    for k, t in enumerate(plan.beat_times(duration)):
        i = int(round(t * sr))
        pos = k % plan.meter
        bar = k // plan.meter
        phrase = bar // PHRASE_BARS
        prog = (_PROGRESSIONS_MINOR if plan.minor else _PROGRESSIONS_MAJOR)[
            plan.progressions[min(phrase, len(plan.progressions) - 1)]]
        degree = prog[bar % len(prog)]
        notes = _chord_notes(plan, degree)
        if pos == 0 or (plan.meter == 4 and pos == 2 and not soft):
            _add(drums, i, kick, 1.0 if pos == 0 else 0.8)
        elif soft:
            _add(drums, i, kick, 0.45)
        else:
            _add(drums, i, snare, 0.7 if plan.meter == 4 else 0.45)
        _add(drums, i, hat, 0.8 if not soft else 0.4)
        if not soft:
            _add(drums, i + beat_len // 2, hat, 0.45)
        bass_note = notes[0] - 12 if pos == 0 else notes[0] - 12 + (7 if pos % 2 else 0)
        _add(tonal, i, _tone([_midi_hz(bass_note)], beat_len, sr, 0.25 * period + 0.05), 0.5)
        chord_gain = 0.35 if pos == 0 else 0.22
        _add(tonal, i, _tone([_midi_hz(m) for m in notes], beat_len, sr, 0.2 * period + 0.05),
             chord_gain * (1.6 if soft else 1.0))
    mix = drums + tonal
    peak = float(np.max(np.abs(mix))) if n else 0.0
    if peak > 0:
        mix *= 0.9 / peak
    return mix.astype(np.float32)
