"""Motion beats, beat alignment score (BAS) and beat echo degree (BED).

Sources: BAS — Bailando (Siyao et al. 2022, §4 / Bailando++ eq. 24), after Li et al. 2021;
BED — Duolando (Siyao et al. 2024): the same score with the leader's motion beats in place of
the music beats.

Departure from the reference code: the mean joint speed behind the motion beats is taken over
the 24 body points of :mod:`.joints24` (as Bailando, on its 24 SMPL joints). Duolando's BAS and
BED scripts average the speed over all 55 SMPL-X joints, so the 30 finger joints weigh more
there than the body; docs/metrics.md lists this with the other departures.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import argrelextrema

from ..conventions import FRAME_TIME
from ._checks import check_beats, check_joints, check_pair
from .joints24 import body24

SPEED_SIGMA = 5.0  # frames, smoothing of the mean joint speed
BEAT_SIGMA = 3.0  # frames, tolerance of the alignment score
MIN_FRAMES = 3


def mean_joint_speed(joints: np.ndarray, frame_time: float = FRAME_TIME) -> np.ndarray:
    """Mean over the 24 body points of the joint speed (m/s) at every frame, ``(T,)``.

    Central differences (``np.gradient``), so the speed at frame t is centred on t.
    Departure from the reference code: Bailando uses forward differences x_{t+1} − x_t labelled
    frame t (a half-frame shift of every motion beat) and no frame time (the scale does not
    move the minima).
    """
    x = body24(check_joints(joints, "joints", MIN_FRAMES))
    return np.linalg.norm(np.gradient(x, frame_time, axis=0), axis=-1).mean(axis=1)


def motion_beats(joints: np.ndarray, sigma: float = SPEED_SIGMA) -> np.ndarray:
    """Kinematic beats: frames of local minima of the Gaussian-smoothed mean joint speed.

    ``s = gaussian_filter1d(mean_joint_speed, sigma=5)``; beats = ``argrelextrema(s, np.less)``
    (strict local minima), as Bailando/Duolando (on other joints for Duolando: module docstring).
    """
    smooth = gaussian_filter1d(mean_joint_speed(joints), sigma)
    return argrelextrema(smooth, np.less)[0]


def alignment_score(reference_beats: np.ndarray, candidate_beats: np.ndarray,
                    sigma: float = BEAT_SIGMA) -> float:
    """Mean over reference beats of exp(−d² / (2σ²)), d = frames to the nearest candidate beat::

        score = (1/|B_ref|) Σ_{b ∈ B_ref} exp(−min_{c ∈ B_cand} (b − c)² / (2 σ²)),  σ = 3 frames

    (Bailando's BAS with B_ref = music beats, B_cand = motion beats). No candidate beats gives 0;
    no reference beats gives NaN (the score is undefined; callers skip such clips).
    """
    ref = np.asarray(reference_beats, dtype=np.float64).ravel()
    cand = np.asarray(candidate_beats, dtype=np.float64).ravel()
    if ref.size == 0:
        return float("nan")
    if cand.size == 0:
        return 0.0
    cand = np.sort(cand)
    # nearest candidate of every reference beat via a sorted search (O(n log n), not n×m)
    pos = np.clip(np.searchsorted(cand, ref), 1, max(cand.size - 1, 1))
    nearest = np.minimum(np.abs(ref - cand[pos - 1]), np.abs(ref - cand[np.minimum(pos, cand.size - 1)]))
    return float(np.mean(np.exp(-(nearest**2) / (2.0 * sigma**2))))


def beat_align_score(joints: np.ndarray, music_beats) -> float:
    """BAS of one clip: :func:`alignment_score` of the music beats against the dancer's motion beats."""
    x = check_joints(joints, "joints", MIN_FRAMES)
    beats = check_beats(music_beats, len(x), "music_beats")
    return alignment_score(beats, motion_beats(x))


def beat_echo_degree(follower_joints: np.ndarray, leader_joints: np.ndarray) -> float:
    """BED of one clip: :func:`alignment_score` with the LEADER's motion beats as the reference
    set and the FOLLOWER's motion beats as candidates (Duolando's beat echo degree)."""
    f, l = check_pair(follower_joints, leader_joints, MIN_FRAMES)
    return alignment_score(motion_beats(l), motion_beats(f))
