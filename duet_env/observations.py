"""Pluggable observation types (HighwayEnv style): each builds its space and, batched over
envs, its arrays from the simulation state of :class:`duet_env.core.DuetCore`.

* ``"tokens"`` — what the follower GPT consumes; layout in :mod:`duet_env.tokens`.
* ``"features"`` — a compact float32 vector for MLP policies (stable-baselines3).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from gymnasium import spaces

from .conventions import BEAT_COLUMN, BODY_JOINTS, FOLLOWER_STREAMS, FPS, LEADER_STREAMS, MUSIC_DIM, ONSET_COLUMN, TOKEN_FRAMES
from .motion import to_heading_frame
from .tokens import window_length

if TYPE_CHECKING:
    from .core import DuetCore

# The features observation uses the 22 body joints (conventions.BODY_JOINTS), not face and fingers.
_BODY = np.array(BODY_JOINTS)
_NB = len(BODY_JOINTS)
# Finite Box bounds (checkers warn on infinite ones). Music features stay far inside
# (MFCC 0 of digital silence is about −1.1e3); values are clipped into the box all the same.
BOUND = 1e4


class ObservationType:
    """Base class: ``space(core)`` once, then ``observe(core) -> batched arrays`` every step."""

    name = "base"

    def __init__(self, **kwargs):
        if kwargs:
            raise ValueError(f"observation type {self.name!r} got unknown options {sorted(kwargs)}")

    def space(self, core: "DuetCore") -> spaces.Space:
        raise NotImplementedError

    def observe(self, core: "DuetCore"):
        raise NotImplementedError


class TokensObservation(ObservationType):
    """Dict(music (W*216,) float32, leader MultiDiscrete (W*4,), leader_turn (W*4,) float32,
    follower MultiDiscrete (H*5,)), all time-major (duet_env.tokens)."""

    name = "tokens"

    def space(self, core):
        w, h = window_length(core.history, core.lookahead), core.history
        k = core.codebook_sizes
        leader_nvec = np.tile([k[s] + 1 for s in LEADER_STREAMS], w)  # +1: the pad id K
        follower_nvec = np.tile([k[s] + 1 for s in FOLLOWER_STREAMS], h)
        return spaces.Dict({
            "music": spaces.Box(-BOUND, BOUND, (w * TOKEN_FRAMES * MUSIC_DIM,), np.float32),
            "leader": spaces.MultiDiscrete(leader_nvec.astype(np.int64)),
            "leader_turn": spaces.Box(-BOUND, BOUND, (w * TOKEN_FRAMES,), np.float32),
            "follower": spaces.MultiDiscrete(follower_nvec.astype(np.int64)),
        })

    def observe(self, core):
        music, leader = core.window()
        b = core.num_envs
        return {
            "music": music.reshape(b, -1),
            "leader": leader.reshape(b, -1),
            "leader_turn": core.leader_turn_window().reshape(b, -1),
            "follower": core.follower_history.reshape(b, -1).copy(),
        }


class FeaturesObservation(ObservationType):
    """A flat float32 vector (all parts expressed in the leader's heading frame at the last
    decoded frame, so the vector does not change when the couple turns together):

    * music onset strength and beat flag of every frame in the token window t−H … t+A (W·4·2),
    * the leader's 22 body joints over the 4 frames of the coming token t, relative to the
      leader's pelvis at the last decoded frame (4·22·3),
    * the follower's 22 body joints at the last decoded frame, relative to the leader's pelvis
      (22·3), and their velocity over the last token (22·3, m/s),
    * episode progress t / L (1).
    """

    name = "features"

    def space(self, core):
        return spaces.Box(-BOUND, BOUND, (self.size(core),), np.float32)

    @staticmethod
    def size(core) -> int:
        w = window_length(core.history, core.lookahead)
        return w * TOKEN_FRAMES * 2 + TOKEN_FRAMES * _NB * 3 + _NB * 3 * 2 + 1

    def observe(self, core):
        b = core.num_envs
        music, _ = core.window()
        frames = music.reshape(b, -1, MUSIC_DIM)[:, :, [ONSET_COLUMN, BEAT_COLUMN]].reshape(b, -1)
        leader_hist = core.leader_context()            # (B, F, 55, 3), last frame = last decoded
        anchor = leader_hist[:, -1, 0]                  # leader pelvis
        fwd = core.leader_forward_last()                # (B, 3)
        upcoming = core.leader_upcoming()[:, :, _BODY]      # (B, 4, 22, 3)
        lead = to_heading_frame(upcoming - anchor[:, None, None], fwd[:, None, None])
        fol = core.follower_joints_hist[:, :, _BODY]
        last = to_heading_frame(fol[:, -1] - anchor[:, None], fwd[:, None])
        vel = to_heading_frame((fol[:, -1] - fol[:, -1 - TOKEN_FRAMES]) * (FPS / TOKEN_FRAMES), fwd[:, None])
        progress = (core.t / np.maximum(core.length, 1)).astype(np.float32)[:, None]
        out = np.concatenate([frames, lead.reshape(b, -1), last.reshape(b, -1), vel.reshape(b, -1), progress], 1)
        return np.clip(out, -BOUND, BOUND).astype(np.float32)


OBSERVATION_TYPES: dict[str, type[ObservationType]] = {
    cls.name: cls for cls in (TokensObservation, FeaturesObservation)
}


def observation_factory(config) -> ObservationType:
    """``"tokens"`` / ``"features"`` or ``{"type": name, **options}`` -> an observation type."""
    if isinstance(config, str):
        config = {"type": config}
    config = dict(config)
    name = config.pop("type", None)
    if name not in OBSERVATION_TYPES:
        raise ValueError(f"unknown observation type {name!r}; known: {sorted(OBSERVATION_TYPES)}")
    return OBSERVATION_TYPES[name](**config)
