"""SynthDuet's mixing desk: the room, the recording chain and the noise a real track carries.

Applied to the summed stems in this order (each step seeded, each with documented ranges in
:func:`plan_mix`):

1. reverb — convolution with an exponentially decaying noise burst (a synthetic room impulse
   response: RT60 = ``rt60`` s), blended at ``wet`` (scipy.signal.fftconvolve);
2. EQ — Butterworth high-pass at ``low_cut`` Hz and low-pass at ``high_cut`` Hz (a recording's
   band; scipy.signal.sosfilt);
3. compression — ``tanh`` soft clipping with input ``drive`` (loud masters flatten peaks);
4. noise floor — pink-ish noise ``noise_db`` dB below the signal's RMS (tape hiss, room tone).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal


@dataclass(frozen=True)
class MixPlan:
    rt60: float
    wet: float
    low_cut: float
    high_cut: float
    drive: float
    noise_db: float


def plan_mix(rng: np.random.Generator) -> MixPlan:
    return MixPlan(rt60=float(rng.uniform(0.2, 2.5)), wet=float(rng.choice([0.0, rng.uniform(0.05, 0.45)])),
                   low_cut=float(rng.uniform(20.0, 150.0)), high_cut=float(rng.uniform(3500.0, 7200.0)),
                   drive=float(rng.choice([1.0, rng.uniform(1.0, 3.0)])), noise_db=float(rng.uniform(25.0, 60.0)))


def room_impulse(rt60: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Noise under exp(−6.91 t / rt60) (−60 dB at rt60), with the direct sound removed."""
    t = np.arange(int(min(rt60, 3.0) * sr)) / sr
    ir = rng.standard_normal(t.size) * np.exp(-6.91 * t / rt60)
    ir[: int(0.005 * sr)] = 0.0  # pre-delay: the dry path carries the direct sound
    return ir / (np.sqrt(np.sum(ir ** 2)) + 1e-12)


def master(y: np.ndarray, plan: MixPlan, sr: int, rng: np.random.Generator) -> np.ndarray:
    """The four steps of the module docstring; returns float32 peak-normalised to 0.9."""
    y = np.asarray(y, np.float64)
    if plan.wet > 0:
        wet = signal.fftconvolve(y, room_impulse(plan.rt60, sr, rng))[: y.size]
        y = (1 - plan.wet) * y + plan.wet * wet * (np.std(y) / (np.std(wet) + 1e-12))
    nyq = sr / 2
    sos = np.vstack([signal.butter(2, plan.low_cut / nyq, "highpass", output="sos"),
                     signal.butter(4, min(plan.high_cut, 0.95 * nyq) / nyq, "lowpass", output="sos")])
    y = signal.sosfilt(sos, y)
    peak = float(np.max(np.abs(y))) or 1.0
    y = np.tanh(plan.drive * y / peak) / np.tanh(plan.drive)
    rms = float(np.sqrt(np.mean(y ** 2))) or 1.0
    pink = signal.lfilter([0.05, -0.05 * 0.7], [1, -0.95], rng.standard_normal(y.size))  # 1/f-ish tilt
    pink *= rms * 10 ** (-plan.noise_db / 20) / (np.std(pink) + 1e-12)
    y = y + pink
    peak = float(np.max(np.abs(y))) or 1.0
    return (0.9 * y / peak).astype(np.float32)
