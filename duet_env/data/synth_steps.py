"""Beat-by-beat keyframes of one dancer: where the feet are planted, where the pelvis is, how
the body is turned and styled on every music beat (the leader's choreography language).

One key per beat (key 0 = the starting stance at beat 0). Each operation of
:class:`StepBuilder` consumes one beat:

* ``step(foot, fwd, lat, turn)``: the foot lands relative to the other (planted) foot at the
  feet-together position shifted by (lat, fwd) in the dancer's frame turned by ``turn``;
  ``step(foot)`` with no displacement is a close;
* ``hold()``: no foot moves; the pelvis may shift its weight;
* ``lift(foot, fwd, lat, height)``: the free foot goes into the air (ballet), the pelvis
  goes over the supporting foot;
* ``spin(foot, angle)``: a spot-turn step: the dancer's own yaw turns by ``angle``.

A foot that does not move keeps bit-identical keys, so eased interpolation keeps it still.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LEFT, RIGHT = 0, 1
SIDE = (1.0, -1.0)  # body's left is +x


@dataclass
class Style:
    """Per-beat body styling carried from key to key until changed (angles in radians)."""

    dip: float = 0.0          # pelvis lowering below the standing height (m)
    lean: float = 0.0         # forward bow of the spine (+) / lean back (-)
    twist: float = 0.0        # upper body yaw relative to the pelvis (+ = to the left)
    side_bend: float = 0.0    # lateral bend (+ = towards the body's right shoulder down)
    head_yaw: float = 0.0
    head_pitch: float = 0.0
    arm_l: str = "low"        # free-arm pose names (see synth_body.ARM_POSES)
    arm_r: str = "low"
    hold: float = 1.0         # 1 = partner hold active (genres with a hold), 0 = released
    raise_hands: float = 0.0  # joined hands raised (m), e.g. under-arm turn
    curl: float = 0.3         # finger curl of free hands (rad per joint)


STYLE_FIELDS = tuple(Style.__dataclass_fields__)


@dataclass
class StepBuilder:
    """Accumulates the keys of one dancer. Positions are world (x, z) on the floor; yaw θ
    faces (sin θ, cos θ). ``couple_yaw`` φ is the frame the partner rules use; ``spin`` σ is
    the dancer's own extra turn (spot turns), so the body yaw is φ + σ."""

    stance: float            # half distance between the ankles when feet are together (m)
    turnout: float = 0.0     # foot yaw outwards from the body heading (ballet)
    swing: float = 0.08      # swing-arc height of a step (m)
    weight: float = 0.35     # pelvis shift from the feet midpoint towards a landing foot
    feet: np.ndarray = field(default_factory=lambda: np.zeros((2, 3)))
    foot_yaw: np.ndarray = field(default_factory=lambda: np.zeros(2))
    couple_yaw: float = 0.0
    spin_angle: float = 0.0
    partner_spin: float = 0.0
    style: Style = field(default_factory=Style)
    keys: dict[str, list] = field(default_factory=dict)

    def start(self, x: float, z: float, yaw: float) -> None:
        for f in (LEFT, RIGHT):
            self.feet[f] = self._world(np.array([x, z]), yaw, SIDE[f] * self.stance, 0.0, 0.0)
            self.foot_yaw[f] = yaw + SIDE[f] * self.turnout
        self.couple_yaw = yaw
        self._record(-1, "start", np.array([x, 0.0, z]), np.zeros(2), "start")

    # -- geometry -------------------------------------------------------------------------
    @staticmethod
    def _world(origin_xz: np.ndarray, yaw: float, lat: float, fwd: float, height: float) -> np.ndarray:
        c, s = np.cos(yaw), np.sin(yaw)
        return np.array([origin_xz[0] + c * lat + s * fwd, height, origin_xz[-1] - s * lat + c * fwd])

    @property
    def body_yaw(self) -> float:
        return self.couple_yaw + self.spin_angle

    def _midpoint(self) -> np.ndarray:
        m = 0.5 * (self.feet[LEFT] + self.feet[RIGHT])
        m[1] = 0.0
        return m

    def _land(self, foot: int, lat: float, fwd: float, height: float = 0.0) -> np.ndarray:
        other = 1 - foot
        base = self.feet[other][[0, 2]]
        return self._world(base, self.body_yaw, SIDE[foot] * 2 * self.stance + lat, fwd, height)

    # -- operations (one beat each) -------------------------------------------------------
    def step(self, foot: int, fwd: float = 0.0, lat: float = 0.0, turn: float = 0.0,
             weight: float | None = None, move: str = "", **style) -> None:
        self.couple_yaw += turn
        target = self._land(foot, lat, fwd)
        arc = self.swing if np.linalg.norm(target - self.feet[foot]) > 0.01 and self.feet[foot][1] < 1e-9 else 0.0
        self.feet[foot] = target
        self.foot_yaw[foot] = self.body_yaw + SIDE[foot] * self.turnout
        mid = self._midpoint()
        w = self.weight if weight is None else weight
        pelvis = mid + w * (np.array([target[0], 0.0, target[2]]) - mid)
        arcs = np.zeros(2)
        arcs[foot] = arc
        self._record(foot, "step", pelvis, arcs, move, **style)

    def hold(self, shift_fwd: float = 0.0, shift_lat: float = 0.0, move: str = "", **style) -> None:
        pelvis = self._world(self._midpoint()[[0, 2]], self.body_yaw, shift_lat, shift_fwd, 0.0)
        self._record(-1, "hold", pelvis, np.zeros(2), move, **style)

    def lift(self, foot: int, fwd: float, lat: float, height: float, move: str = "", **style) -> None:
        target = self._land(foot, lat, fwd, height)
        self.feet[foot] = target
        support = self.feet[1 - foot].copy()
        support[1] = 0.0
        pelvis = support + 0.15 * (np.array([target[0], 0.0, target[2]]) - support)
        self._record(foot, "lift", pelvis, np.zeros(2), move, **style)

    def spin(self, foot: int, angle: float, move: str = "", **style) -> None:
        self.spin_angle += angle
        target = self._land(foot, 0.0, 0.0)
        self.feet[foot] = target
        self.foot_yaw[foot] = self.body_yaw + SIDE[foot] * self.turnout
        arcs = np.zeros(2)
        arcs[foot] = 0.5 * self.swing
        self._record(foot, "spin", self._midpoint(), arcs, move, **style)

    # -- bookkeeping ----------------------------------------------------------------------
    def _record(self, foot: int, kind: str, pelvis: np.ndarray, arcs: np.ndarray, move: str, **style) -> None:
        for k, v in style.items():
            if k not in STYLE_FIELDS:
                raise ValueError(f"unknown style field {k!r}")
            setattr(self.style, k, v)
        entry = {
            "foot": foot, "kind": kind, "move": move, "pelvis": pelvis.copy(), "feet": self.feet.copy(),
            "foot_yaw": self.foot_yaw.copy(), "arc": arcs, "couple_yaw": self.couple_yaw,
            "yaw": self.body_yaw, "partner_spin": self.partner_spin,
            **{f: getattr(self.style, f) for f in STYLE_FIELDS},
        }
        for k, v in entry.items():
            self.keys.setdefault(k, []).append(v)

    def n_keys(self) -> int:
        return len(self.keys.get("foot", []))

    def mark(self) -> tuple:
        return (self.n_keys(), self.feet.copy(), self.foot_yaw.copy(), self.couple_yaw,
                self.spin_angle, self.partner_spin, Style(**{f: getattr(self.style, f) for f in STYLE_FIELDS}))

    def rollback(self, mark: tuple) -> None:
        n, feet, fy, cy, sa, ps, st = mark
        for v in self.keys.values():
            del v[n:]
        self.feet, self.foot_yaw, self.couple_yaw, self.spin_angle, self.partner_spin = (
            feet.copy(), fy.copy(), cy, sa, ps)
        self.style = Style(**{f: getattr(st, f) for f in STYLE_FIELDS})

    def arrays(self) -> dict[str, np.ndarray]:
        """Keys as arrays: numeric fields (K, ...), names as object arrays."""
        out = {}
        for k, v in self.keys.items():
            out[k] = np.asarray(v, dtype=object if isinstance(v[0], str) else np.float64)
        out["foot"] = out["foot"].astype(np.int64)
        return out
