"""benchmarks/bas_by_tempo.py: tempo from beats, the tempo-matched yardstick, and the property it
exists for — with the reference smoothing, a dance that dips in speed on every beat scores lower
BAS at a fast tempo than at a slow one."""

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script

from duet_env.conventions import FPS
from duet_env.metrics import alignment_score, motion_beats


@pytest.fixture(scope="module")
def bas_by_tempo():
    return load_benchmark_script("bas_by_tempo")


def test_tempo_of_beats_reads_the_median_interval():
    from agents.accompany.song import tempo_of  # the pool's clips and the songs share it

    beats = np.arange(0, 600, 15)                       # every 15 frames at 30 fps = 120 bpm
    beats[7] += 4                                       # one late beat does not move the median
    assert tempo_of(beats)[0] == pytest.approx(120.0)
    assert np.isnan(tempo_of(np.array([3]))[0])


def test_tempo_matched_averages_only_clips_in_the_window(bas_by_tempo):
    tempo = np.array([90.0, 100.0, 111.0, 140.0, 150.0])
    bas = np.array([0.8, 0.7, np.nan, 0.5, 0.4])
    mean, n = bas_by_tempo.tempo_matched(tempo, bas, 100.0, 12.0)   # 90, 100 (111 has no score)
    assert (mean, n) == (pytest.approx(0.75), 2)
    mean, n = bas_by_tempo.tempo_matched(tempo, bas, 200.0, 12.0)
    assert np.isnan(mean) and n == 0


def _beat_dancer(bpm: float, seconds: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """``(joints, music beat frames)``: all joints move together along x with a speed that dips on
    every beat, and dips further on every other beat (a step every two beats)."""
    t = np.arange(int(seconds * FPS)) / FPS
    f = bpm / 60.0
    speed = 2.0 - 1.0 * np.cos(2 * np.pi * f * t) - 0.5 * np.cos(np.pi * f * t)
    joints = np.zeros((len(t), 55, 3))
    joints[:, :, 0] = (np.cumsum(speed) / FPS)[:, None]
    beats = np.round(np.arange(1, int(seconds * f)) * FPS / f).astype(int)
    return joints, beats[beats < len(t) - 1]


def test_the_reference_smoothing_costs_fast_tempi_their_off_beats():
    scores = {}
    for bpm in (90.0, 170.0):
        joints, beats = _beat_dancer(bpm)
        scores[bpm] = alignment_score(beats, motion_beats(joints))
    assert scores[90.0] > 0.75                  # every beat is a kinematic beat at 90 bpm
    assert scores[170.0] < 0.6                  # at 170 bpm only the stepping beats survive σ = 5
    assert scores[170.0] < scores[90.0] - 0.2   # frames: the same dance, a lower score
