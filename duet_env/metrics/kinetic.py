"""Kinetic features (72-d): per joint, horizontal and vertical kinetic energy and energy expenditure.

Source: the kinetic features of AIST++ / Bailando (Li et al. 2021; Siyao et al. 2022, "FID_k"),
also used by Duolando on the follower. For each of the 24 body points (:mod:`.joints24`)::

    v_t  = mean_{k in W(t)} (x_{k+1} - x_k) / Δt              windowed velocity (m/s)
    a_t  = mean_{k in W'(t)} (x_{k+2} - 2 x_{k+1} + x_k) / Δt²  windowed acceleration (m/s²)
    E_h  = mean_t |v_t,xz|²        horizontal kinetic energy (unit mass, no ½ — as the reference)
    E_v  = mean_t v_t,y²           vertical kinetic energy
    E_e  = mean_t |a_t|            energy expenditure

``W(t)`` is the ``±window`` frames around difference ``t`` (clipped at the clip ends, as the
reference's per-frame loops do), ``t`` runs over the T−1 frame differences.
Feature layout: ``[E_h(joint 0), E_v(0), E_e(0), E_h(1), ...]`` (72 numbers).

Departures from the reference code (the AIST++ API's kinetic features, copied into Bailando
and Duolando; docs/metrics.md):

* Energy expenditure. The reference computes the acceleration with an operator-precedence slip,
  ``x[k] - x[k-1] / frame_time`` where ``(x[k] - x[k-1]) / frame_time`` is meant, so its E_e
  depends on the absolute position of the joints. This code does not copy the slip (E_e above is
  the intended quantity). With the slip put back and the same frame time our features equal the
  reference's to ~5e-8; the slip is what makes Duolando's FID_k script give a ~35 % lower FID_k
  than ours on the same joints.
* Δt is the TRUE frame time 1/30 s (:data:`duet_env.conventions.FRAME_TIME`); the
  Bailando/Duolando scripts hard-code 1/60 s although DD100 is 30 fps, which scales their E_h,
  E_v by 4. FID_k is computed on z-normalised features, so a common scale cancels there, but
  absolute values differ.
"""
from __future__ import annotations

import numpy as np

from ..conventions import FRAME_TIME
from ._checks import check_joints
from .joints24 import body24

KINETIC_DIM = 72
VELOCITY_WINDOW = 2  # ±2 differences, as the reference's sliding_window
MIN_FRAMES = 3  # an acceleration needs three frames


def _clipped_window_mean(x: np.ndarray, half: int) -> np.ndarray:
    """Mean of ``x[k-half : k+half+1]`` along axis 0 for every k, windows clipped at the ends."""
    n = x.shape[0]
    csum = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)], axis=0)
    k = np.arange(n)
    lo = np.clip(k - half, 0, n)
    hi = np.clip(k + half + 1, 0, n)
    count = (hi - lo).reshape((-1,) + (1,) * (x.ndim - 1))
    return (csum[hi] - csum[lo]) / count


def kinetic_features(joints: np.ndarray, frame_time: float = FRAME_TIME,
                     window: int = VELOCITY_WINDOW) -> np.ndarray:
    """72-d kinetic feature vector of one dancer, from SMPL-X joints ``(T, 55, 3)`` (metres).

    See the module docstring for the formulas. Raises ValueError for a wrong shape, NaN or
    fewer than 3 frames.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1 frame difference; got {window}")
    x = body24(check_joints(joints, "joints", MIN_FRAMES))
    diffs = np.diff(x, axis=0)  # (T-1, 24, 3)
    vel = _clipped_window_mean(diffs, window) / frame_time
    # Acceleration windows are centred on the same T-1 difference indices; the second
    # differences exist for k = 0..T-3, so the window of the last index is clipped to them.
    second = np.diff(x, n=2, axis=0)  # (T-2, 24, 3)
    n = diffs.shape[0]
    csum = np.concatenate([np.zeros((1,) + second.shape[1:]), np.cumsum(second, axis=0)], axis=0)
    k = np.arange(n)
    lo = np.clip(k - window, 0, second.shape[0])
    hi = np.clip(k + window + 1, 0, second.shape[0])
    acc = (csum[hi] - csum[lo]) / (hi - lo)[:, None, None] / frame_time**2

    e_h = np.mean(vel[..., 0] ** 2 + vel[..., 2] ** 2, axis=0)
    e_v = np.mean(vel[..., 1] ** 2, axis=0)
    e_e = np.mean(np.linalg.norm(acc, axis=-1), axis=0)
    return np.stack([e_h, e_v, e_e], axis=-1).reshape(KINETIC_DIM)
