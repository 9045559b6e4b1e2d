"""SynthDuet music: songs with real-world variety on a known beat grid (numpy synthesis).

A clip's song is fixed by a seeded :class:`MusicPlan`:

* **Tempo map.** A nominal tempo from the genre's ranges (:data:`TEMPO_CHOICES`, 60–180 bpm
  over all genres), a slow sinusoidal drift (±0–4 %, period 20–60 s) and, for played (not
  quantised) styles, rubato: each beat's period is scaled by an AR(1) factor (σ up to 3 %) and
  phrase ends may slow down (ritardando). Beat ``k`` is at ``beat_times[k]`` exactly; the
  dancers step on these times.
* **Groove.** A drum pattern per meter (:data:`GROOVES`: backbeat, four-on-the-floor,
  breakbeat, son clave, jazz shuffle, half-time; waltz, jazz waltz, 6/8), played on one of four
  kits (:data:`duet_env.data.synth_sounds.KITS`) or on none (a classical arrangement), with
  swing (off-beats delayed up to 2/3 of the beat) and syncopation.
* **Arrangement.** Chords (a progression per 8-bar phrase; triads or sevenths) in one of
  six rhythms (every beat, off-beat skank, sustained, arpeggio, strum, syncopated 3-3-2), a bass
  line (root, root-fifth, walking or syncopated), an optional melody, each on its own voice
  (:data:`duet_env.data.synth_sounds.VOICES`) and mix level; an intro and breaks without drums;
  per-phrase dynamics.
* **Master.** Reverb, EQ, soft clipping and a noise floor (:mod:`duet_env.data.synth_mix`).

The beat grid is exact, but as in real recordings nothing guarantees that librosa's beat
tracker finds it everywhere (rubato, breaks, swing): the music features' beat column is what
the tracker hears, and that is what models and metrics read.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .synth_mix import MixPlan, master, plan_mix
from .synth_sounds import KITS, render_voice

SAMPLE_RATE = 15360  # the music feature extractor's rate (duet_env.music)
PHRASE_BARS = 8

# Nominal tempo per genre: (low, high, probability). Viennese waltz and fast hip-hop put
# the top of the 60-180 bpm span into the data; the dancers step on every beat.
TEMPO_CHOICES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "Waltz": ((78.0, 108.0, 0.75), (150.0, 180.0, 0.25)),
    "Tango": ((108.0, 138.0, 1.0),),
    "ChaCha": ((100.0, 132.0, 1.0),),
    "HipHop": ((76.0, 120.0, 0.8), (130.0, 165.0, 0.2)),
    "Ballet": ((60.0, 96.0, 1.0),),
}
DEFAULT_TEMPO = ((60.0, 180.0, 1.0),)

# Drum patterns: per meter, name -> list of (instrument, onset in beats within the bar, velocity).
_EIGHTHS4 = [("hat", b + h, 0.8 if h == 0 else 0.5) for b in range(4) for h in (0.0, 0.5)]
_SIXTEENTHS4 = [("hat", b + q, (0.7, 0.35, 0.5, 0.35)[i]) for b in range(4) for i, q in enumerate((0, .25, .5, .75))]
GROOVES: dict[int, dict[str, list[tuple[str, float, float]]]] = {
    4: {
        "backbeat": [("kick", 0, 1.0), ("kick", 2, 0.85), ("snare", 1, 0.8), ("snare", 3, 0.8)] + _EIGHTHS4,
        "four_floor": [("kick", b, 1.0) for b in range(4)] + [("snare", 1, 0.7), ("snare", 3, 0.7)]
                      + [("open_hat", b + 0.5, 0.3) for b in range(4)],
        "breakbeat": [("kick", 0, 1.0), ("kick", 2.25, 0.4), ("kick", 2.5, 0.7), ("snare", 1, 0.9),
                      ("snare", 3, 0.9), ("snare", 3.75, 0.25)] + _SIXTEENTHS4,
        "clave": [("open_hat", p, v) for p, v in ((0, 0.6), (1.5, 0.35), (3, 0.6))] + [("kick", 0, 1.0), ("kick", 2, 0.8)]
                 + [("snare", p, v) for p, v in ((1, 0.7), (3, 0.7), (3.5, 0.3))] + [("hat", b * 0.5, 0.3) for b in range(8)],
        "shuffle": [("hat", p, v) for p, v in ((0, 0.8), (1, 0.8), (1.5, 0.5), (2, 0.8), (3, 0.8), (3.5, 0.5))]
                   + [("kick", b, 0.45) for b in range(4)] + [("snare", 1, 0.6), ("snare", 3, 0.6)],
        "half_time": [("kick", 0, 1.0), ("kick", 1.5, 0.6), ("snare", 2, 0.9)] + _EIGHTHS4,
    },
    3: {
        "waltz": [("kick", 0, 1.0), ("snare", 1, 0.55), ("snare", 2, 0.55)] + [("hat", b, 0.5) for b in range(3)],
        "jazz_waltz": [("hat", p, v) for p, v in ((0, 0.8), (1, 0.7), (1.5, 0.45), (2, 0.7))]
                      + [("kick", 0, 0.7), ("snare", 2, 0.4)],
        "six_eight": [("kick", 0, 1.0), ("snare", 1, 0.5), ("snare", 2, 0.6)] + [("hat", b / 2, 0.5 if b % 2 else 0.7) for b in range(6)],
    },
}
CHORD_RHYTHMS = ("beats", "offbeat", "sustain", "arpeggio", "strum", "syncopated")
BASS_LINES = ("root", "root_fifth", "walking", "syncopated")
_MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
_MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS_MAJOR = ((0, 4, 5, 3), (1, 4, 0, 5), (0, 5, 3, 4), (0, 3, 4, 4), (0, 5, 1, 4), (0, 3, 0, 4))
_PROGRESSIONS_MINOR = ((0, 3, 4, 0), (0, 5, 2, 6), (0, 6, 5, 4), (0, 3, 6, 2), (0, 5, 3, 4))
_MINOR_GENRES = ("Tango",)


@dataclass
class MusicPlan:
    """Everything that fixes a clip's song (see the module docstring). ``beat_times`` runs a few
    beats past the clip's end so that motion keys can extend beyond it."""

    bpm: float
    meter: int
    beat_times: np.ndarray
    root_midi: int
    minor: bool
    progressions: tuple[int, ...]
    seventh: bool
    groove: str
    kit: str | None
    swing: float
    voices: dict[str, str | None]
    chord_rhythm: str
    bass_line: str
    gains: dict[str, float]
    drums_off_bars: frozenset = field(default_factory=frozenset)
    phrase_levels: tuple[float, ...] = ()
    mix: MixPlan | None = None

    @property
    def offset(self) -> float:
        return float(self.beat_times[0])

    def describe(self) -> dict:
        """JSON-ready summary for the clip's metadata."""
        local = 60.0 / np.diff(self.beat_times)
        return {"groove": self.groove, "kit": self.kit, "swing": round(self.swing, 4), "voices": dict(self.voices),
                "chord_rhythm": self.chord_rhythm, "bass_line": self.bass_line,
                "tempo_range_bpm": [round(float(local.min()), 2), round(float(local.max()), 2)],
                "drums_off_bars": sorted(int(b) for b in self.drums_off_bars),
                "gains": {k: round(v, 4) for k, v in self.gains.items()},
                "mix": {k: round(float(v), 4) for k, v in vars(self.mix).items()} if self.mix else None}


def _choose(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def tempo_map(bpm: float, offset: float, duration: float, rng: np.random.Generator, rubato: float,
              meter: int, extra_beats: int = 4) -> np.ndarray:
    """Beat times (s) from ``offset`` until ``extra_beats`` past ``duration``: period 60/bpm times a
    slow drift, an AR(1) rubato factor (innovation σ = ``rubato``) and phrase-end ritardandi."""
    amp, period_s, phase = rng.uniform(0.0, 0.04), rng.uniform(20.0, 60.0), rng.uniform(0, 2 * np.pi)
    slow_ends = rubato > 0 and rng.random() < 0.5
    times, t, ar = [], offset, 0.0
    k, beyond = 0, 0
    while beyond < extra_beats or len(times) < 2:
        times.append(t)
        beyond += t >= duration
        ar = 0.8 * ar + rubato * rng.standard_normal()
        factor = (1.0 + amp * np.sin(2 * np.pi * t / period_s + phase)) * np.exp(np.clip(ar, -0.08, 0.08))
        if slow_ends and (k % (PHRASE_BARS * meter)) >= PHRASE_BARS * meter - 2:
            factor *= 1.08
        t += 60.0 / bpm * factor
        k += 1
    return np.asarray(times)


def tempo_ranges(genre: str, band: tuple[float, float] | None = None) -> tuple[tuple[float, float, float], ...]:
    """The genre's nominal tempo choices (:data:`TEMPO_CHOICES`), each range cut to ``band``
    (low, high) bpm and dropped where it lies outside; probabilities renormalised over the ranges
    kept. ``()`` when no range meets the band; all of them, unchanged, when ``band`` is None."""
    choices = TEMPO_CHOICES.get(genre, DEFAULT_TEMPO)
    if band is None:
        return choices
    lo, hi = band
    kept = [(max(a, lo), min(b, hi), w) for a, b, w in choices if a <= hi and b >= lo]
    total = sum(w for _, _, w in kept)
    return tuple((a, b, w / total) for a, b, w in kept)


def plan_music(genre: str, meter: int, duration: float, rng: np.random.Generator,
               tempo_band: tuple[float, float] | None = None) -> MusicPlan:
    """Seeded choice of everything in :class:`MusicPlan`; the nominal tempo from the genre's
    ranges, cut to ``tempo_band`` (bpm) when given (:func:`tempo_ranges`)."""
    choices = tempo_ranges(genre, tempo_band)
    if not choices:
        raise ValueError(f"no {genre} tempo range meets the band {tempo_band} bpm "
                         f"(its ranges: {[c[:2] for c in TEMPO_CHOICES.get(genre, DEFAULT_TEMPO)]})")
    lo, hi, _ = _choose(rng, choices, p=[c[2] for c in choices])
    bpm = float(np.round(rng.uniform(lo, hi) * 2.0) / 2.0)
    grooves = sorted(GROOVES.get(meter, GROOVES[4]))
    groove = _choose(rng, grooves)
    kit = _choose(rng, ["acoustic", "electronic", "brushes", "latin", None], p=[0.3, 0.25, 0.15, 0.15, 0.15])
    played = kit in (None, "brushes", "acoustic", "latin")  # quantised electronic music has no rubato
    rubato = float(rng.uniform(0.005, 0.03)) if played and rng.random() < 0.6 else 0.0
    beat_times = tempo_map(bpm, float(np.round(rng.uniform(0.15, 0.6), 3)), duration, rng, rubato, meter)
    swing = float(rng.uniform(0.55, 0.67)) if groove in ("shuffle", "jazz_waltz") or rng.random() < 0.2 else 0.5
    minor = genre in _MINOR_GENRES or bool(rng.random() < 0.3)
    bars = int(np.ceil(beat_times.size / meter)) + 1
    n_phrases = bars // PHRASE_BARS + 1
    progs = _PROGRESSIONS_MINOR if minor else _PROGRESSIONS_MAJOR
    voices = {
        "bass": _choose(rng, ["sine", "saw", "square", "pluck"]),
        "chords": _choose(rng, ["piano", "epiano", "organ", "pad", "pluck", "bowed", "saw", "sine"]),
        "lead": _choose(rng, [None, "fm_bell", "square", "saw", "bowed", "sine", "pluck", "piano"]),
    }
    off = set()
    intro = int(_choose(rng, [0, 0, 1, 2, 4]))
    off.update(range(intro))
    for phrase in range(1, n_phrases):
        if rng.random() < 0.25:  # a two-bar break at the end of the phrase
            end = (phrase + 1) * PHRASE_BARS
            off.update(range(end - 2, end))
    chord_rhythm, bass_line = _choose(rng, CHORD_RHYTHMS), _choose(rng, BASS_LINES)
    if kit is None:
        # No drums: the chords and bass carry the pulse, so they must sound on the beats
        # (an off-beat-only accompaniment without drums moves the heard beat by half a beat).
        off = set(range(bars))
        chord_rhythm = _choose(rng, ["beats", "strum", "arpeggio"])
        bass_line = _choose(rng, ["root_fifth", "walking"])
    gains = {"drums": float(rng.uniform(0.6, 1.0)), "bass": float(rng.uniform(0.3, 0.7)),
             "chords": float(rng.uniform(0.25, 0.6)), "lead": float(rng.uniform(0.2, 0.5))}
    return MusicPlan(
        bpm=bpm, meter=meter, beat_times=beat_times, root_midi=int(rng.integers(40, 56)), minor=minor,
        progressions=tuple(int(rng.integers(len(progs))) for _ in range(n_phrases)), seventh=bool(rng.random() < 0.5),
        groove=groove, kit=kit, swing=swing, voices=voices, chord_rhythm=chord_rhythm,
        bass_line=bass_line, gains=gains, drums_off_bars=frozenset(off),
        phrase_levels=tuple(float(rng.uniform(0.55, 1.0)) for _ in range(n_phrases)), mix=plan_mix(rng))


# ------------------------------------------------------------------------------ rendering
def _swung(pos: float, swing: float) -> float:
    """Delay off-beat positions: within each beat, fraction 0.5 moves to ``swing`` (piecewise linear)."""
    beat, frac = divmod(pos, 1.0)
    frac = frac * swing / 0.5 if frac <= 0.5 else swing + (frac - 0.5) * (1 - swing) / 0.5
    return beat + frac


class _Score:
    """Beat positions -> samples on the tempo map, and a mono track per stem."""

    def __init__(self, plan: MusicPlan, duration: float, sr: int):
        self.plan, self.sr = plan, sr
        self.n = int(round(duration * sr))
        self.k = np.arange(plan.beat_times.size, dtype=np.float64)
        self.stems = {name: np.zeros(self.n) for name in ("drums", "bass", "chords", "lead")}

    def time(self, pos: float) -> float:
        return float(np.interp(_swung(pos, self.plan.swing), self.k, self.plan.beat_times))

    def add(self, stem: str, pos: float, sound: np.ndarray, gain: float) -> None:
        start = int(round(self.time(pos) * self.sr))
        if start >= self.n or start < 0:
            return
        m = min(sound.size, self.n - start)
        self.stems[stem][start:start + m] += gain * sound[:m]

    def seconds(self, pos: float, beats: float) -> float:
        return max(self.time(pos + beats) - self.time(pos), 0.05)


def _chord_notes(plan: MusicPlan, degree: int, octave: int = 12) -> list[int]:
    scale = _MINOR_SCALE if plan.minor else _MAJOR_SCALE
    steps = (0, 2, 4, 6) if plan.seventh else (0, 2, 4)
    return [plan.root_midi + octave + scale[(degree + s) % 7] + 12 * ((degree + s) // 7) for s in steps]


def _scale_note(plan: MusicPlan, step: int) -> int:
    scale = _MINOR_SCALE if plan.minor else _MAJOR_SCALE
    return plan.root_midi + 24 + scale[step % 7] + 12 * (step // 7)


def synthesize(plan: MusicPlan, duration: float, genre: str, rng: np.random.Generator,
               sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 audio in [-1, 1] of ``duration`` seconds following ``plan``."""
    score = _Score(plan, duration, sr)
    meter = plan.meter
    cache: dict = {}

    def tone(voice: str, notes, seconds: float) -> np.ndarray:
        key = (voice, tuple(notes), round(seconds, 2))
        if key not in cache:
            cache[key] = render_voice(voice, notes, round(seconds, 2), sr, rng)
        return cache[key]

    kit = KITS[plan.kit](sr, rng) if plan.kit else None
    pattern = GROOVES.get(meter, GROOVES[4])[plan.groove]
    progs = _PROGRESSIONS_MINOR if plan.minor else _PROGRESSIONS_MAJOR
    n_bars = int(np.ceil(np.searchsorted(plan.beat_times, duration) / meter))
    melody_step = int(rng.integers(0, 7))
    for bar in range(n_bars):
        phrase = bar // PHRASE_BARS
        level = plan.phrase_levels[min(phrase, len(plan.phrase_levels) - 1)]
        prog = progs[plan.progressions[min(phrase, len(plan.progressions) - 1)]]
        degree = prog[bar % len(prog)]
        notes = _chord_notes(plan, degree)
        b0 = bar * meter
        if kit is not None and bar not in plan.drums_off_bars:
            for inst, pos, vel in pattern:
                vel *= float(rng.uniform(0.85, 1.0))
                score.add("drums", b0 + pos, kit[inst], level * plan.gains["drums"] * vel)
        # chords
        g = level * plan.gains["chords"]
        voice = plan.voices["chords"]
        rhythm = plan.chord_rhythm
        if rhythm == "sustain":
            score.add("chords", b0, tone(voice, notes, score.seconds(b0, meter)), g)
        elif rhythm == "arpeggio":
            for i in range(2 * meter):
                note = notes[i % len(notes)] + (12 if (i // len(notes)) % 2 else 0)
                score.add("chords", b0 + i / 2, tone(voice, [note], score.seconds(b0, 0.6)), 0.8 * g)
        elif rhythm == "syncopated" and meter == 4:
            for pos, dur in ((0, 1.5), (1.5, 1.5), (3, 1)):
                score.add("chords", b0 + pos, tone(voice, notes, score.seconds(b0 + pos, dur)), g)
        elif rhythm == "offbeat":
            for b in range(meter):
                # a skank, softer than the on-beat parts: louder, it takes over the heard beat
                score.add("chords", b0 + b + 0.5, tone(voice, notes, score.seconds(b0, 0.35)), 0.6 * g)
        else:  # beats / strum (and syncopated in 3/4)
            for b in range(meter):
                acc = 1.3 if b == 0 else 0.9
                if rhythm == "strum":
                    for j, m in enumerate(notes):  # strings struck 15 ms apart
                        score.add("chords", b0 + b + j * 0.015 / max(score.seconds(b0 + b, 1), 0.05),
                                  tone(voice, [m], score.seconds(b0 + b, 0.9)), 0.6 * acc * g)
                else:
                    score.add("chords", b0 + b, tone(voice, notes, score.seconds(b0 + b, 0.9)), acc * g)
        # bass
        g = level * plan.gains["bass"]
        root = notes[0] - 12
        line = plan.bass_line
        if line == "root":
            hits = [(0, root, meter * 0.9)]
        elif line == "root_fifth":
            hits = [(b, root + (7 if b % 2 else 0), 0.9) for b in range(meter)]
        elif line == "walking":
            nxt = _chord_notes(plan, prog[(bar + 1) % len(prog)])[0] - 12
            hits = [(b, int(round(root + (nxt - root) * b / meter)) + (0 if b == 0 else int(rng.choice([0, 2, -1]))), 0.9)
                    for b in range(meter)]
        else:
            hits = [(0, root, 1.4), (1.5, root, 0.9), (2.5, root + 7, 0.9)] if meter == 4 else [(0, root, 1.4), (2, root + 7, 0.9)]
        for pos, note, dur in hits:
            score.add("bass", b0 + pos, tone(plan.voices["bass"], [note], score.seconds(b0 + pos, dur)), g)
        # melody: a random walk on the scale with rests and syncopation
        if plan.voices["lead"]:
            g = level * plan.gains["lead"]
            pos = 0.0
            while pos < meter:
                dur = float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
                if rng.random() > 0.2:  # else a rest
                    melody_step = int(np.clip(melody_step + rng.integers(-2, 3), -3, 12))
                    score.add("lead", b0 + pos, tone(plan.voices["lead"], [_scale_note(plan, melody_step)],
                                                      score.seconds(b0 + pos, min(dur, meter - pos))), g)
                pos += dur
    mix = sum(score.stems.values())
    return master(mix, plan.mix, sr, rng)
