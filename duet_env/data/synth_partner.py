"""Partner rules: the follower's keys from the leader's keys, and the hand-hold targets.

Rules (per genre, from :mod:`duet_env.genres` and :data:`synth_moves.GENRE_MOTION`):

* pelvis: P_F = P_L + R_y(φ) o, with φ the leader's couple yaw and o the sequence's partner
  offset (face to face: o = (lateral, 0, sqrt(d² - lateral²)); side by side: o = (-d, 0, 0));
* heading: θ_F = φ + facing + σ_F (σ_F: the follower's own turns at phrase ends / spot turns);
* mirrored steps (facing π): when the leader's foot f lands at a (leader heading frame,
  relative to its pelvis), the follower's other foot lands at P_F + R_y(φ + π)(-a_x, a_y, a_z),
  i.e. the same side of the couple, forward and back swapped; unison (facing 0): the same
  foot at P_F + R_y(φ) a. A follower foot that does not step keeps its keys (no sliding);
* during the follower's own turns it takes spot-turn steps, alternating feet, under its pelvis;
* the styling mirrors the leader (twist, side bend, head yaw and arm poses swap sides), with
  a per-sequence timing lag of up to 2 frames on the styling.
"""
from __future__ import annotations

import numpy as np

from ..genres import GenreStyle
from .synth_kinematics import unit, yaw_apply
from .synth_moves import GenreMotion
from .synth_steps import SIDE

def partner_offset(style: GenreStyle, gm: GenreMotion, distance: float) -> np.ndarray:
    """The follower's pelvis offset o (leader heading frame, x = leader's left)."""
    if abs(style.facing) < 1e-6:
        return np.array([-distance, 0.0, 0.0])
    lat = gm.lateral
    return np.array([lat, 0.0, float(np.sqrt(max(distance ** 2 - lat ** 2, 0.0)))])


def follower_keys(leader: dict[str, np.ndarray], style: GenreStyle, gm: GenreMotion, distance: float,
                  follower_lean: float, head_offset: float) -> dict[str, np.ndarray]:
    """Keys of the rule follower (same fields and length as the leader's keys)."""
    k = leader["foot"].shape[0]
    mirrored = abs(style.facing) > 1e-6
    o = partner_offset(style, gm, distance)
    phi = leader["couple_yaw"]
    sigma = leader["partner_spin"]
    pelvis = leader["pelvis"] + yaw_apply(phi, o)
    theta = phi + style.facing + sigma
    feet = np.zeros((k, 2, 3))
    foot_yaw = np.zeros((k, 2))
    arc = np.zeros((k, 2))
    stepping = np.full(k, -1, np.int64)
    cur = np.stack([pelvis[0] + yaw_apply(theta[0], np.array([SIDE[f] * gm.stance, 0.0, 0.0])) for f in (0, 1)])
    cur[:, 1] = 0.0
    cur_yaw = np.array([theta[0] + SIDE[f] * gm.turnout for f in (0, 1)])
    last = 1
    for i in range(k):
        if i > 0:
            f_lead = int(leader["foot"][i])
            if sigma[i] != sigma[i - 1]:
                f = 1 - last
                land = pelvis[i] + yaw_apply(theta[i], np.array([SIDE[f] * gm.stance, 0.0, 0.0]))
                land[1] = 0.0
                arc[i, f] = 0.04
                cur[f], cur_yaw[f], last, stepping[i] = land, theta[i] + SIDE[f] * gm.turnout, f, f
            elif f_lead >= 0:
                f = 1 - f_lead if mirrored else f_lead
                a = yaw_apply(-phi[i], leader["feet"][i, f_lead] - leader["pelvis"][i])
                a[1] = leader["feet"][i, f_lead, 1]
                if mirrored:
                    a[0] = -a[0]
                land = pelvis[i] + yaw_apply(phi[i] + style.facing, a)
                land[1] = a[1]
                arc[i, f] = leader["arc"][i, f_lead]
                new_yaw = theta[i] + SIDE[f] * gm.turnout
                if not (np.allclose(land, cur[f], atol=1e-9) and abs(new_yaw - cur_yaw[f]) < 1e-12):
                    cur[f], cur_yaw[f] = land, new_yaw
                last, stepping[i] = f, f
        feet[i], foot_yaw[i] = cur, cur_yaw
    sign = -1.0 if mirrored else 1.0
    out = {
        "foot": stepping, "pelvis": pelvis, "feet": feet, "foot_yaw": foot_yaw, "arc": arc,
        "couple_yaw": phi + style.facing, "yaw": theta, "partner_spin": sigma,
        "dip": leader["dip"].copy(), "lean": np.where(np.abs(leader["lean"]) > 0.2, leader["lean"], follower_lean),
        "twist": sign * leader["twist"], "side_bend": sign * leader["side_bend"],
        "head_yaw": sign * leader["head_yaw"] + head_offset, "head_pitch": leader["head_pitch"].copy(),
        "arm_l": leader["arm_r"] if mirrored else leader["arm_l"],
        "arm_r": leader["arm_l"] if mirrored else leader["arm_r"],
        "hold": leader["hold"].copy(), "raise_hands": leader["raise_hands"].copy(), "curl": leader["curl"].copy(),
        "kind": leader["kind"], "move": leader["move"],
    }
    return out


HOLD_REACH = 0.44  # joined-hand point distance from each shoulder (m), inside the arm's reach
GRIP_GAP = 0.015   # each wrist sits this far from the joined point (palms together)
# Closed hold: the follower's left wrist rests on the leader's right shoulder joint + this offset
# (leader's yaw frame; x = his left, y = up, z = forward). Out along the shoulder (x < 0) far enough
# that her fingers lie on his deltoid, not against his head: with x = -0.02 (SynthDuet 1-2) her hand
# capsule overlapped his head capsule by up to 1.3 cm, on the 2 cm penetration allowance's edge,
# so every reconstruction error of a centimetre counted as penetration. Now it clears the head by
# about 4 cm (tests/test_synth.py).
SHOULDER_REST = np.array([-0.07, 0.06, 0.02])


def hold_targets(mode: str, leader_pos: np.ndarray, follower_pos: np.ndarray, leader_yaw: np.ndarray,
                 follower_yaw: np.ndarray, raise_hands: np.ndarray):
    """Wrist targets and elbow poles (T, 3) for the holding arms.

    Joined hands (leader left, follower right): on the perpendicular bisector plane of the two
    shoulders at HOLD_REACH from both, towards the leader's left (closed: and up; open: and
    down; ``raise_hands`` lifts it). Closed hold adds the leader's right hand on the follower's
    left shoulder blade and the follower's left hand on the leader's right shoulder.
    Returns {(dancer, arm): (target, pole)} with dancer 0 = leader, arm 0 = left.
    """
    ls, fs = leader_pos[:, 16], follower_pos[:, 17]
    mid = 0.5 * (ls + fs)
    span = fs - ls
    dist = np.linalg.norm(span, axis=-1, keepdims=True)
    u = span / np.maximum(dist, 1e-9)
    out_dir = yaw_apply(leader_yaw, np.array([1.0, 0.0, 0.0]))
    up = np.array([0.0, 1.0, 0.0])
    lift = (0.35 if mode == "closed" else -1.0) + 4.0 * raise_hands[:, None]
    d = out_dir * (1.0 if mode == "closed" else 0.35) + up * lift
    d = unit(d - np.sum(d * u, -1, keepdims=True) * u)
    h = np.sqrt(np.maximum(HOLD_REACH ** 2 - (0.5 * dist) ** 2, 0.0))
    point = mid + h * d
    targets = {
        (0, 0): (point - GRIP_GAP * u, yaw_apply(leader_yaw, np.array([0.4, -1.0, -0.2]))),
        (1, 1): (point + GRIP_GAP * u, yaw_apply(follower_yaw, np.array([-0.4, -1.0, -0.2]))),
    }
    if mode == "closed":
        blade = follower_pos[:, 9] + yaw_apply(follower_yaw, np.array([0.08, 0.03, -0.09]))
        targets[(0, 1)] = (blade, yaw_apply(leader_yaw, np.array([-1.0, -0.3, 0.0])))
        shoulder = leader_pos[:, 17] + yaw_apply(leader_yaw, SHOULDER_REST)
        targets[(1, 0)] = (shoulder, yaw_apply(follower_yaw, np.array([1.0, -0.6, 0.0])))
    return targets
