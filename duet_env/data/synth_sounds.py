"""SynthDuet's instruments: one-shot sounds built by numpy additive / FM synthesis, no samples.

Every function returns a mono float64 array starting at the sound's onset. Drum kits are
families of one-shots (:data:`KITS`); tonal voices (:data:`VOICES`) render one note or chord of
a given length. They differ in the spectral shape, attack and decay that MFCC and chroma
features see: sine-like, sawtooth-like (all harmonics, 1/n), square-like (odd harmonics),
plucked (upper harmonics die faster), bowed (slow attack, vibrato), FM bells and electric
pianos (modulation index decaying with time), organ (steady drawbars), detuned pads.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(max(int(seconds * sr), 1)) / sr


def _attack(t: np.ndarray, seconds: float) -> np.ndarray:
    return np.minimum(1.0, t / max(seconds, 1e-4))


def _noise(n: int, rng: np.random.Generator, colour: int) -> np.ndarray:
    """White noise differenced ``colour`` times (each difference tilts the spectrum up 6 dB/oct)."""
    return np.diff(rng.standard_normal(n + colour), n=colour) if colour else rng.standard_normal(n)


def _chirp(t: np.ndarray, f_end: float, f_extra: float, tau: float, sr: int) -> np.ndarray:
    """Sine whose pitch falls from f_end + f_extra to f_end with time constant tau."""
    f = f_end + f_extra * np.exp(-t / tau)
    return np.sin(2 * np.pi * np.cumsum(f) / sr)


# ------------------------------------------------------------------------------ drum kits
def _acoustic(sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = _t(0.35, sr)
    kick = _chirp(t, 50.0, 90.0, 0.03, sr) * np.exp(-t / 0.12) * _attack(t, 0.002)
    ts = _t(0.22, sr)
    snare = (0.45 * _noise(ts.size, rng, 1) * np.exp(-ts / 0.05) + 0.6 * np.sin(2 * np.pi * 185 * ts) * np.exp(-ts / 0.06))
    th = _t(0.06, sr)
    hat = 0.25 * _noise(th.size, rng, 2) * np.exp(-th / 0.012)
    to = _t(0.4, sr)
    open_hat = 0.2 * _noise(to.size, rng, 2) * np.exp(-to / 0.12)
    return {"kick": kick, "snare": snare * _attack(ts, 0.001), "hat": hat, "open_hat": open_hat}


def _electronic(sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = _t(0.7, sr)
    kick = _chirp(t, 42.0, 120.0, 0.04, sr) * np.exp(-t / 0.3) * _attack(t, 0.001)  # long 808-style boom
    tc = _t(0.25, sr)
    burst = np.zeros(tc.size)
    for delay in (0.0, 0.011, 0.022):  # a clap: three quick noise bursts, then a tail
        i = int(delay * sr)
        burst[i:] += np.exp(-(tc[: tc.size - i]) / 0.008)
    clap = 0.5 * _noise(tc.size, rng, 1) * (burst + 0.4 * np.exp(-tc / 0.07))
    th = _t(0.05, sr)
    hat = 0.3 * _noise(th.size, rng, 3) * np.exp(-th / 0.008)
    to = _t(0.3, sr)
    open_hat = 0.22 * _noise(to.size, rng, 3) * np.exp(-to / 0.09)
    return {"kick": kick, "snare": clap, "hat": hat, "open_hat": open_hat}


def _brushes(sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = _t(0.3, sr)
    kick = 0.6 * _chirp(t, 60.0, 40.0, 0.04, sr) * np.exp(-t / 0.09) * _attack(t, 0.004)
    ts = _t(0.3, sr)
    swish = 0.35 * _noise(ts.size, rng, 1) * np.exp(-ts / 0.09) * _attack(ts, 0.02)  # soft attack: a brush
    tr = _t(0.9, sr)
    ride = sum(np.sin(2 * np.pi * f * tr + p) for f, p in ((2950.0, 0.3), (3720.0, 1.1), (4410.0, 2.0), (5330.0, 0.7)))
    ride = 0.06 * ride * np.exp(-tr / 0.35) + 0.08 * _noise(tr.size, rng, 2) * np.exp(-tr / 0.05)
    th = _t(0.08, sr)
    hat = 0.15 * _noise(th.size, rng, 2) * np.exp(-th / 0.02)
    return {"kick": kick, "snare": swish, "hat": ride, "open_hat": hat}


def _latin(sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = _t(0.25, sr)
    conga = _chirp(t, 210.0, 60.0, 0.01, sr) * np.exp(-t / 0.08) * _attack(t, 0.001)
    tc = _t(0.08, sr)
    clave = 0.5 * np.sin(2 * np.pi * 2500.0 * tc) * np.exp(-tc / 0.015)
    tsh = _t(0.1, sr)
    shaker = 0.2 * _noise(tsh.size, rng, 2) * np.sin(np.pi * np.minimum(tsh / 0.1, 1.0)) ** 2
    tl = _t(0.35, sr)
    low = _chirp(tl, 95.0, 40.0, 0.02, sr) * np.exp(-tl / 0.15)
    return {"kick": low, "snare": conga, "hat": shaker, "open_hat": clave}


KITS: dict[str, Callable[[int, np.random.Generator], dict[str, np.ndarray]]] = {
    "acoustic": _acoustic, "electronic": _electronic, "brushes": _brushes, "latin": _latin,
}


# ------------------------------------------------------------------------------ tonal voices
def _partials(freqs, t: np.ndarray, sr: int, amps: Callable[[int], float], n_harm: int,
              decay_of: Callable[[int], float] | None = None, detune: float = 0.0) -> np.ndarray:
    """Sum over notes and harmonics h of amps(h)·sin(2π f h t) (optionally each harmonic with its
    own exponential decay, and a second copy detuned by ``detune`` cents)."""
    out = np.zeros(t.size)
    for f in freqs:
        for h in range(1, n_harm + 1):
            fh = f * h
            if fh >= sr / 2 - 300:
                break
            env = np.exp(-t / decay_of(h)) if decay_of else 1.0
            wave = np.sin(2 * np.pi * fh * t)
            if detune:
                wave = 0.5 * (wave + np.sin(2 * np.pi * fh * 2 ** (detune / 1200) * t + 1.3))
            out += amps(h) * env * wave
    return out


def _voice_sine(freqs, seconds, sr, rng):
    t = _t(seconds, sr)
    return _partials(freqs, t, sr, lambda h: (1.0, 0.5, 0.25)[h - 1], 3) * np.exp(-t / (0.3 * seconds + 0.05)) * _attack(t, 0.004)


def _voice_saw(freqs, seconds, sr, rng):
    t = _t(seconds, sr)
    env = _attack(t, 0.01) * np.exp(-t / (0.6 * seconds + 0.1))
    return 0.6 * _partials(freqs, t, sr, lambda h: 1.0 / h, 12, decay_of=lambda h: 0.6 / h ** 0.5) * env


def _voice_square(freqs, seconds, sr, rng):
    t = _t(seconds, sr)
    env = _attack(t, 0.005) * np.exp(-t / (0.5 * seconds + 0.05))
    return 0.7 * _partials(freqs, t, sr, lambda h: (1.0 / h) if h % 2 else 0.0, 11) * env


def _voice_pluck(freqs, seconds, sr, rng):
    t = _t(seconds, sr)
    # a plucked string: bright attack, upper harmonics dying fastest
    return _partials(freqs, t, sr, lambda h: 1.0 / h, 10, decay_of=lambda h: 0.9 / h) * _attack(t, 0.002)


def _voice_piano(freqs, seconds, sr, rng):
    t = _t(seconds, sr)
    out = _partials(freqs, t, sr, lambda h: 1.0 / h ** 1.3, 8, decay_of=lambda h: 1.6 / h ** 0.7)
    return out * _attack(t, 0.003)


def _voice_bowed(freqs, seconds, sr, rng):
    t = _t(seconds, sr)
    vib = 1.0 + 0.004 * np.sin(2 * np.pi * 5.5 * t)  # vibrato
    out = np.zeros(t.size)
    for f in freqs:
        for h in range(1, 9):
            if f * h >= sr / 2 - 300:
                break
            out += np.sin(2 * np.pi * f * h * np.cumsum(vib) / sr) / h
    fade = np.minimum(1.0, (t[-1] - t) / 0.08 + 1e-9)
    return 0.6 * out * _attack(t, min(0.25, 0.4 * seconds)) * fade


def _voice_organ(freqs, seconds, sr, rng):
    t = _t(seconds, sr)
    draw = {1: 1.0, 2: 0.7, 3: 0.4, 4: 0.5, 6: 0.25, 8: 0.3}
    out = _partials(freqs, t, sr, lambda h: draw.get(h, 0.0), 8)
    fade = np.minimum(1.0, (t[-1] - t) / 0.03 + 1e-9)
    return 0.5 * out * _attack(t, 0.01) * fade


def _voice_fm_bell(freqs, seconds, sr, rng):
    t = _t(seconds, sr)
    out = np.zeros(t.size)
    for f in freqs:
        index = 3.0 * np.exp(-t / 0.4)  # modulation index decays: bright strike, pure tail
        out += np.sin(2 * np.pi * f * t + index * np.sin(2 * np.pi * 3.5 * f * t))
    return out * np.exp(-t / (0.8 * seconds + 0.2)) * _attack(t, 0.002)


def _voice_epiano(freqs, seconds, sr, rng):
    t = _t(seconds, sr)
    out = np.zeros(t.size)
    for f in freqs:
        index = 1.5 * np.exp(-t / 0.15)
        out += np.sin(2 * np.pi * f * t + index * np.sin(2 * np.pi * f * t))
    return out * np.exp(-t / (0.7 * seconds + 0.15)) * _attack(t, 0.002)


def _voice_pad(freqs, seconds, sr, rng):
    t = _t(seconds, sr)
    out = _partials(freqs, t, sr, lambda h: 1.0 / h, 6, detune=float(rng.uniform(6, 14)))
    fade = np.minimum(1.0, (t[-1] - t) / 0.2 + 1e-9)
    return 0.5 * out * _attack(t, min(0.4, 0.5 * seconds)) * fade


VOICES: dict[str, Callable] = {
    "sine": _voice_sine, "saw": _voice_saw, "square": _voice_square, "pluck": _voice_pluck,
    "piano": _voice_piano, "bowed": _voice_bowed, "organ": _voice_organ, "fm_bell": _voice_fm_bell,
    "epiano": _voice_epiano, "pad": _voice_pad,
}


def render_voice(voice: str, midi_notes, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One note or chord (MIDI numbers) of ``voice`` lasting ``seconds``, peak-normalised to 1."""
    out = VOICES[voice]([midi_hz(m) for m in midi_notes], max(seconds, 0.03), sr, rng)
    peak = float(np.max(np.abs(out)))
    return out / peak if peak > 0 else out
