"""The leader's move vocabulary per genre and the choreography planner.

A move spans one or two bars and is written as one :class:`StepBuilder` operation per beat.
Moves are chained per 8-bar phrase with seeded choices; every sequence draws its own step
length, turn amount, bounce amplitude and arm styling, so no two sequences are equal. The
last bar of a phrase may be reserved for the follower's turn (``GenreMotion.phrase_turn``),
during which the leader dances an in-place move.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .synth_steps import LEFT, RIGHT, StepBuilder

L, R = LEFT, RIGHT
PHRASE_BARS = 8
# Relative choice weights (default 1): the ChaCha spot turn releases the hold, keep it rare.
MOVE_WEIGHT = {"spot_turn": 0.3}


@dataclass(frozen=True)
class Variation:
    """Per-sequence parameters drawn once per clip."""

    step: float        # step length (m)
    turn: float        # turn scale
    bounce: float      # pelvis dip amplitude (m)
    arms: tuple[str, ...]  # free-arm pose palette
    lean: float


MoveFn = Callable[[StepBuilder, Variation, np.random.Generator], None]


@dataclass(frozen=True)
class GenreMotion:
    """How a genre moves. stance: half ankle distance; turnout: ballet foot turn-out (rad);
    step_range: step length range (m); bounce_range: pelvis dip range (m); hold: "closed",
    "open" or None; phrase_turn: bars per phrase after which the follower turns (0 = never);
    lateral: follower's pelvis offset to the leader's side (m, + = leader's left);
    distance: follower pelvis distance sampled per sequence (m, inside the genre range)."""

    stance: float
    turnout: float
    step_range: tuple[float, float]
    bounce_range: tuple[float, float]
    hold: str | None
    phrase_turn: int
    lateral: float
    distance: tuple[float, float]
    arm_palettes: tuple[tuple[str, ...], ...]
    moves: dict[str, tuple[int, MoveFn]]
    in_place: tuple[str, ...]


# ---------------------------------------------------------------------------- Waltz (3/4)
# Rise and fall: down on 1, rising through 2 and up on 3 (the fall comes on 3 -> 1).
def _waltz_box(b, v, rng):
    s, side = v.step, v.step * 0.3
    b.step(L, fwd=s, dip=v.bounce, move="box")
    b.step(R, lat=-side, dip=0.5 * v.bounce)
    b.step(L, dip=0.0)
    b.step(R, fwd=-s, dip=v.bounce)
    b.step(L, lat=side, dip=0.5 * v.bounce)
    b.step(R, dip=0.0)


def _waltz_change(b, v, rng, direction=1.0, name="change_step"):
    s = v.step * direction
    b.step(L, fwd=s, dip=v.bounce, move=name)
    b.step(R, fwd=0.5 * s, lat=-0.05, dip=0.5 * v.bounce)
    b.step(L, dip=0.0)
    b.step(R, fwd=s, dip=v.bounce)
    b.step(L, fwd=0.5 * s, lat=0.05, dip=0.5 * v.bounce)
    b.step(R, dip=0.0)


def _waltz_turn(b, v, rng, sign=-1.0, name="natural_turn"):
    s, t = v.step, sign * 0.3 * v.turn
    b.step(L, fwd=s, turn=t, dip=v.bounce, move=name)
    b.step(R, lat=-0.3 * s, turn=t, dip=0.5 * v.bounce)
    b.step(L, turn=0.5 * t, dip=0.0)
    b.step(R, fwd=-s, turn=t, dip=v.bounce)
    b.step(L, lat=0.3 * s, turn=t, dip=0.5 * v.bounce)
    b.step(R, turn=0.5 * t, dip=0.0)


def _waltz_hesitation(b, v, rng):
    s = v.step
    b.step(L, fwd=s, dip=v.bounce, move="hesitation")
    b.step(R, fwd=0.0, dip=0.0)
    b.hold(dip=0.5 * v.bounce)
    b.step(R, fwd=-s, dip=v.bounce)
    b.step(L, dip=0.0)
    b.hold(dip=0.5 * v.bounce)


# ---------------------------------------------------------------------------- Tango (4/4)
def _tango_walk(b, v, rng):
    s = v.step
    for i, f in enumerate((L, R, L, R, L, R, L)):
        b.step(f, fwd=s, dip=v.bounce * (i % 2), move="walk" if i == 0 else "")
    b.step(R, dip=0.0)


def _tango_rock(b, v, rng):
    s = v.step
    b.step(L, fwd=s, dip=v.bounce, move="rock_step")
    b.hold(shift_fwd=-0.12, dip=0.0)
    b.hold(shift_fwd=0.12, dip=v.bounce)
    b.step(R, dip=0.0)


def _tango_promenade(b, v, rng):
    s = v.step
    b.step(L, lat=0.3 * s, dip=v.bounce, twist=0.35, head_yaw=0.6, move="promenade")
    b.step(R, lat=0.1 * s, dip=0.0)
    b.step(L, lat=0.3 * s, dip=v.bounce)
    b.step(R, dip=0.0, twist=0.0, head_yaw=0.0)


def _tango_corte(b, v, rng):
    s = v.step
    b.step(R, fwd=-0.8 * s, dip=0.10, lean=0.1, weight=0.6, move="corte")
    b.hold(dip=0.06, lean=0.05)
    b.step(L, dip=0.02, lean=v.lean)
    b.step(R, dip=0.0)


def _tango_turn(b, v, rng):
    s, t = v.step, -0.35 * v.turn
    b.step(L, fwd=s, turn=t, dip=v.bounce, move="tango_turn")
    b.step(R, lat=-0.3 * s, turn=t, dip=0.0)
    b.step(L, fwd=-0.5 * s, turn=t, dip=v.bounce)
    b.step(R, turn=0.5 * t, dip=0.0)


# --------------------------------------------------------------------------- ChaCha (4/4)
def _chacha_basic(b, v, rng):
    s = v.step
    b.step(L, fwd=s, dip=v.bounce, move="basic")
    b.hold(shift_fwd=-0.15, dip=0.0)
    b.step(L, dip=v.bounce)
    b.step(R, lat=-0.15, dip=0.0)
    b.step(R, fwd=-s, dip=v.bounce)
    b.hold(shift_fwd=0.15, dip=0.0)
    b.step(R, dip=v.bounce)
    b.step(L, lat=0.15, dip=0.0)


def _chacha_chasse(b, v, rng):
    s = v.step
    for i in range(2):
        b.step(L, lat=s, dip=v.bounce, move="side_chasse" if i == 0 else "")
        b.step(R, dip=0.0)
    for i in range(2):
        b.step(R, lat=-s, dip=v.bounce)
        b.step(L, dip=0.0)


def _chacha_new_york(b, v, rng):
    s = v.step
    b.step(L, fwd=s, dip=v.bounce, twist=-0.5, arm_r="side", move="new_york")
    b.hold(shift_fwd=-0.1, dip=0.0)
    b.step(L, dip=v.bounce, twist=0.0, arm_r="low")
    b.step(R, lat=-0.1, dip=0.0)
    b.step(R, fwd=s, dip=v.bounce, twist=0.5, arm_r="side")
    b.hold(shift_fwd=-0.1, dip=0.0)
    b.step(R, dip=v.bounce, twist=0.0, arm_r="low")
    b.step(L, lat=0.1, dip=0.0)


def _chacha_spot_turn(b, v, rng):
    quarter = np.pi / 2
    for i, f in enumerate((L, R, L, R)):
        b.partner_spin -= quarter  # the follower turns the other way, mirrored
        b.spin(f, quarter, dip=v.bounce * (i % 2 == 0), hold=0.0, move="spot_turn" if i == 0 else "")
    b.hold(dip=v.bounce, hold=1.0)
    b.step(L, lat=0.1, dip=0.0)
    b.step(R, dip=v.bounce)
    b.step(L, dip=0.0)


def _chacha_underarm_turn(b, v, rng):
    s = v.step
    b.step(L, fwd=s, dip=v.bounce, move="underarm_turn")
    b.hold(shift_fwd=-0.15, dip=0.0)
    b.step(L, dip=v.bounce)
    b.step(R, lat=-0.15, dip=0.0)
    # the follower turns under the raised joined hands, a quarter turn a beat
    for i, f in enumerate((R, L, R, L)):
        b.partner_spin += np.pi / 2
        b.step(f, dip=v.bounce * (i % 2 == 0), raise_hands=0.35 if i < 3 else 0.0)


def _chacha_in_place(b, v, rng):
    b.hold(shift_lat=0.06, dip=v.bounce, move="in_place", raise_hands=0.35)
    b.step(R, dip=0.0)
    b.step(L, dip=v.bounce)
    b.hold(shift_lat=-0.06, dip=0.0, raise_hands=0.0)


# --------------------------------------------------------------------------- HipHop (4/4)
def _arm_pair(v, rng):
    return str(rng.choice(v.arms)), str(rng.choice(v.arms))


def _hiphop_bounce(b, v, rng):
    for i in range(8):
        al, ar = _arm_pair(v, rng)
        b.hold(dip=v.bounce * 1.5 * (i % 2 == 0), lean=v.lean * (i % 2 == 0) + 0.05,
               arm_l=al, arm_r=ar, move="bounce" if i == 0 else "")


def _hiphop_step_touch(b, v, rng):
    s = v.step
    for i, (f, lat) in enumerate(((L, s), (R, 0.0), (R, -s), (L, 0.0)) * 2):
        al, ar = _arm_pair(v, rng)
        b.step(f, lat=lat, dip=v.bounce * (i % 2 == 0), arm_l=al, arm_r=ar,
               move="step_touch" if i == 0 else "")


def _hiphop_running_man(b, v, rng):
    for i, f in enumerate((L, R) * 2):
        al, ar = _arm_pair(v, rng)
        b.lift(f, fwd=0.15, lat=0.0, height=0.22, dip=0.03, arm_l=al, arm_r=ar,
               move="running_man" if i == 0 else "")
        b.step(f, fwd=-0.05, dip=v.bounce)


def _hiphop_body_wave(b, v, rng):
    for i in range(7):
        phase = (i % 4) / 4.0 * 2 * np.pi
        b.hold(dip=v.bounce * (1 + np.cos(phase)) * 0.5, lean=0.25 * np.sin(phase),
               side_bend=0.12 * np.cos(phase), head_pitch=-0.2 * np.sin(phase),
               arm_l="wave_up" if i % 2 == 0 else "side", arm_r="side" if i % 2 == 0 else "wave_up",
               move="body_wave" if i == 0 else "")
    b.hold(dip=v.bounce, lean=0.0, side_bend=0.0, head_pitch=0.0, arm_l="low", arm_r="low")


def _hiphop_in_place(b, v, rng):
    for i, f in enumerate((L, R, L, R)):
        b.step(f, fwd=0.0, dip=v.bounce * (i % 2 == 0), lean=0.05, side_bend=0.0, head_pitch=0.0,
               arm_l="hip" if i % 2 else "punch", arm_r="punch" if i % 2 else "hip",
               move="groove" if i == 0 else "")


# --------------------------------------------------------------------------- Ballet (4/4)
def _ballet_bourree(b, v, rng):
    s = v.step
    b.step(R, fwd=-0.5 * s, dip=0.02, arm_l="second", arm_r="second", move="pas_de_bourree")
    b.step(L, lat=0.5 * s, dip=0.0)
    b.step(R, dip=0.03)
    b.hold(dip=0.0, arm_l="first", arm_r="first")
    b.step(L, fwd=-0.5 * s, dip=0.02, arm_l="second", arm_r="second")
    b.step(R, lat=-0.5 * s, dip=0.0)
    b.step(L, dip=0.03)
    b.hold(dip=0.0, arm_l="first", arm_r="first")


def _ballet_balance(b, v, rng):
    s = v.step
    b.step(L, lat=s, dip=0.05, arm_l="second", arm_r="first", head_yaw=0.3, move="balance")
    b.step(R, dip=0.0)
    b.hold(dip=0.04)
    b.step(R, lat=-s, dip=0.05, arm_l="first", arm_r="second", head_yaw=-0.3)
    b.step(L, dip=0.0)
    b.hold(dip=0.04, head_yaw=0.0)


def _ballet_plie(b, v, rng):
    for i, (al, ar) in enumerate((("first", "first"), ("second", "second"), ("fifth", "fifth"),
                                  ("second", "second"))):
        b.hold(dip=0.14 * v.turn if i % 2 == 0 else 0.0, arm_l=al, arm_r=ar, lean=0.0,
               move="plie" if i == 0 else "")


def _ballet_arabesque(b, v, rng):
    s = v.step
    b.step(L, fwd=s, dip=0.0, weight=0.5, arm_l="first", arm_r="first", move="arabesque")
    # arms open to the side and up, not forward: the partner stands about a metre in front
    b.lift(R, fwd=-0.5, lat=0.0, height=0.25, lean=0.25, arm_l="fifth", arm_r="second")
    b.hold(lean=0.3, dip=0.02, arm_l="fifth", arm_r="side")
    b.step(R, dip=0.0, lean=0.0, arm_l="low", arm_r="low")


def _ballet_port_de_bras(b, v, rng):
    b.step(L, dip=0.0, arm_l="fifth", arm_r="second", side_bend=0.12, move="port_de_bras")
    b.hold(dip=0.03, arm_l="second", arm_r="fifth", side_bend=-0.12)
    b.step(R, dip=0.0, arm_l="first", arm_r="first", side_bend=0.0)
    b.hold(dip=0.03, arm_l="second", arm_r="second")


GENRE_MOTION: dict[str, GenreMotion] = {
    "Waltz": GenreMotion(0.09, 0.0, (0.22, 0.30), (0.03, 0.05), "closed", 0, -0.40, (0.44, 0.45),
                         (("low",),),
                         {"box": (2, _waltz_box), "change_step": (2, _waltz_change),
                          "back_change": (2, lambda b, v, r: _waltz_change(b, v, r, -1.0, "back_change")),
                          "natural_turn": (2, _waltz_turn),
                          "reverse_turn": (2, lambda b, v, r: _waltz_turn(b, v, r, 1.0, "reverse_turn")),
                          "hesitation": (2, _waltz_hesitation)}, ()),
    "Tango": GenreMotion(0.09, 0.0, (0.24, 0.32), (0.02, 0.04), "closed", 0, -0.40, (0.44, 0.45),
                         (("low",),),
                         {"walk": (2, _tango_walk), "rock_step": (1, _tango_rock),
                          "promenade": (1, _tango_promenade), "corte": (1, _tango_corte),
                          "tango_turn": (1, _tango_turn)}, ()),
    "ChaCha": GenreMotion(0.09, 0.1, (0.18, 0.28), (0.02, 0.035), "open", 8, 0.0, (0.68, 0.80),
                          (("side", "low"), ("side",), ("low", "side", "hip")),
                          {"basic": (2, _chacha_basic), "side_chasse": (2, _chacha_chasse),
                           "new_york": (2, _chacha_new_york), "spot_turn": (2, _chacha_spot_turn),
                           "underarm_turn": (2, _chacha_underarm_turn),
                           "in_place": (1, _chacha_in_place)}, ("in_place",)),
    "HipHop": GenreMotion(0.14, 0.15, (0.25, 0.38), (0.04, 0.07), None, 4, -1.25, (1.30, 1.45),
                          (("punch", "chest", "up", "side", "hip"), ("chest", "low", "side", "punch"),
                           ("up", "side", "wave_up", "chest")),
                          {"bounce": (2, _hiphop_bounce), "step_touch": (2, _hiphop_step_touch),
                           "running_man": (2, _hiphop_running_man), "body_wave": (2, _hiphop_body_wave),
                           "groove": (1, _hiphop_in_place)}, ("groove",)),
    "Ballet": GenreMotion(0.07, 0.55, (0.20, 0.30), (0.02, 0.04), None, 8, 0.0, (1.05, 1.18),
                          (("second", "first", "fifth"),),
                          {"pas_de_bourree": (2, _ballet_bourree), "balance": (2, _ballet_balance),
                           "plie": (1, _ballet_plie), "arabesque": (1, _ballet_arabesque),
                           "port_de_bras": (1, _ballet_port_de_bras)}, ("port_de_bras", "plie")),
}


def draw_variation(genre: str, rng: np.random.Generator) -> Variation:
    gm = GENRE_MOTION[genre]
    palette = gm.arm_palettes[int(rng.integers(len(gm.arm_palettes)))]
    return Variation(step=float(rng.uniform(*gm.step_range)), turn=float(rng.uniform(0.8, 1.2)),
                     bounce=float(rng.uniform(*gm.bounce_range)), arms=palette,
                     lean=float(rng.uniform(-0.03, 0.08)))


def plan_leader(genre: str, meter: int, n_beats: int, builder: StepBuilder, variation: Variation,
                rng: np.random.Generator, floor_radius: float = 2.5) -> list[dict]:
    """Fill ``n_beats`` beats with moves; returns the move sequence
    [{"move", "start_beat", "beats"}]. Moves whose end point leaves the floor circle of
    ``floor_radius`` metres are down-weighted (dancers stay on the floor)."""
    gm = GENRE_MOTION[genre]
    names = sorted(n for n in gm.moves if n not in gm.in_place) or sorted(gm.moves)
    sequence = []
    beat = 0
    bars_per_phrase = PHRASE_BARS if gm.phrase_turn == 0 else gm.phrase_turn
    while beat < n_beats:
        bar = beat // meter
        bar_in_phrase = bar % bars_per_phrase
        turn_bar = gm.phrase_turn > 0 and bar_in_phrase == bars_per_phrase - 1
        if turn_bar:
            cands = [n for n in gm.in_place]
        else:
            cands = [n for n in names if bar_in_phrase + gm.moves[n][0] <= bars_per_phrase - (gm.phrase_turn > 0)]
            cands = cands or sorted(n for n in gm.moves if gm.moves[n][0] == 1) or names
        weights = []
        mark = builder.mark()
        for n in cands:
            gm.moves[n][1](builder, variation, np.random.default_rng(0))
            end = builder._midpoint()
            weights.append(-3.0 * max(0.0, float(np.hypot(end[0], end[2])) - floor_radius)
                           + np.log(MOVE_WEIGHT.get(n, 1.0)))
            builder.rollback(mark)
        w = np.exp(np.asarray(weights) - max(weights))
        w /= w.sum()
        name = cands[int(rng.choice(len(cands), p=w))]
        before = builder.n_keys()
        if turn_bar:
            _with_partner_turn(builder, gm, variation, rng, name, meter)
        else:
            gm.moves[name][1](builder, variation, rng)
        sequence.append({"move": name, "start_beat": beat, "beats": builder.n_keys() - before})
        beat += builder.n_keys() - before
    return sequence


def _with_partner_turn(b: StepBuilder, gm: GenreMotion, v: Variation, rng, name: str, meter: int) -> None:
    """Run the in-place move while the follower turns 2π over the bar (one increment per beat)."""
    start = b.n_keys()
    gm.moves[name][1](b, v, rng)
    n = b.n_keys() - start
    direction = 1.0 if rng.random() < 0.5 else -1.0
    for i in range(n):
        b.keys["partner_spin"][start + i] = b.partner_spin + direction * 2 * np.pi * (i + 1) / n
    b.partner_spin += direction * 2 * np.pi
