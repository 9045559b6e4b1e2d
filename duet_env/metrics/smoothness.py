"""Per-motion smoothness and foot-lift quantities (the tokenizer's "is it the same motion" checks).

All take world joints ``(T, 55, 3)`` in metres at
:data:`duet_env.motion.FPS` (30) frames per second, y up, and use the 22 body joints
``0..21`` (pelvis 0 plus SMPL-X body joints 1..21; no fingers, jaw or eyes):

* :func:`jerk` — mean magnitude of the third time derivative::

      jerk = mean_{t, j} || (x_{t+3,j} − 3 x_{t+2,j} + 3 x_{t+1,j} − x_{t,j}) · fps³ ||      (m/s³)

  over the ``T − 3`` third differences and the 22 joints (third difference × fps³, as issue 9
  measures it). Exact for cubic motion: x = t³ (t in seconds) along one axis gives 6.
* :func:`kinetic_energy` — mean kinetic energy per unit mass of a body joint::

      energy = mean_{t, j} ½ || (x_{t+1,j} − x_{t,j}) · fps ||²                             (J/kg = m²/s²)

  over the ``T − 1`` forward differences and the 22 joints (every joint weighs 1).
* :func:`foot_lift_err_cm` — how well a reconstruction keeps the feet's lifts::

      lift_{t,a}   = y_{t,a} − min_t y_{t,a}           for each ankle a ∈ {7 (left), 8 (right)}
      foot_lift_err_cm = 100 · mean_{t, a} | lift^rec_{t,a} − lift^gt_{t,a} |

  Each ankle's height is taken above its OWN lowest point over the clip, so a constant height
  offset (a floating or sunken body) costs nothing; lost or invented lifts do.
"""
from __future__ import annotations

import numpy as np

from ..conventions import BODY_JOINTS, FPS, joints as named_joints
from ._checks import check_joints

ANKLES = named_joints("left_ankle", "right_ankle")
UP_AXIS = 1


def _body(joints: np.ndarray, name: str, min_frames: int) -> np.ndarray:
    return check_joints(joints, name, min_frames)[:, list(BODY_JOINTS)]


def jerk(joints: np.ndarray, fps: float = FPS) -> float:
    """Mean ``||third difference × fps³||`` over frames and the 22 body joints, in m/s³ (module docstring)."""
    x = _body(joints, "joints", 4)
    d3 = np.diff(x, n=3, axis=0) * fps ** 3
    return float(np.linalg.norm(d3, axis=-1).mean())


def kinetic_energy(joints: np.ndarray, fps: float = FPS) -> float:
    """Mean ``½ ||forward difference × fps||²`` over frames and the 22 body joints, in m²/s² (module docstring)."""
    x = _body(joints, "joints", 2)
    v = np.diff(x, axis=0) * fps
    return float(0.5 * (v * v).sum(-1).mean())


def ankle_lift(joints: np.ndarray) -> np.ndarray:
    """``(T, 2)``: each ankle's (7, 8) height above its own lowest point over the clip, in metres."""
    x = check_joints(joints, "joints", 1)
    y = x[:, list(ANKLES), UP_AXIS]
    return y - y.min(axis=0)


def foot_lift_err_cm(reconstruction: np.ndarray, ground_truth: np.ndarray) -> float:
    """Mean |lift_rec − lift_gt| over frames and both ankles, in cm (module docstring).

    Both motions must have the same number of frames.
    """
    rec, gt = ankle_lift(reconstruction), ankle_lift(ground_truth)
    if rec.shape != gt.shape:
        raise ValueError(f"reconstruction and ground_truth must have the same frames; got {len(rec)} and {len(gt)}")
    return float(100.0 * np.abs(rec - gt).mean())
