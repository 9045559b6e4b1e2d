"""The step context: the plain arrays a reward term sees, batched over ``B`` environments.

The environment builds one :class:`StepContext` per step for all its envs at once. Frame axis
``F = HISTORY_FRAMES + TOKEN_FRAMES``: the last ``TOKEN_FRAMES`` (= 4) frames are the frames of
the token just decoded (the *current window*), preceded by ``HISTORY_FRAMES`` (= 28) frames of
history, so ``F = 32`` by default. Before the clip start the history is filled with the first
frame of the clip (repeated), so a padded history looks like standing still.

Units and frames: world joint positions in metres, y up, 30 fps (duet_env.conventions).
``follower_root_velocity_pred`` is the lower-body decoder's predicted root (pelvis) velocity in
**metres per frame**, world frame, for the token's 4 frames: entry ``k`` is the displacement
from frame ``F-5+k`` to frame ``F-4+k`` (the same convention as Duolando's root-velocity branch).
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

import numpy as np

from duet_env.conventions import BEAT_COLUMN, CONTEXT_FRAMES, FPS, HISTORY_FRAMES, MUSIC_DIM, TOKEN_FRAMES
from duet_env.skeleton import NUM_JOINTS


def _as_array(name: str, value, dtype, shape: tuple) -> np.ndarray:
    """``value`` as a contiguous array of ``dtype`` and ``shape`` (``None`` = any size), or a clear error."""
    arr = np.asarray(value)
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"StepContext.{name} must have shape {want}; got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"StepContext.{name} contains NaN or inf")
    return arr


@dataclass
class StepContext:
    """Everything a reward term may look at for one step of ``B`` envs (see module docstring).

    leader_joints, follower_joints: (B, F, 55, 3) float32 world joint positions.
    music_beat: (B, F) bool — music beat flags per frame (music feature column BEAT_COLUMN).
    music: (B, F, 54) float32 music features.
    hold_expected: (B,) bool; facing_expected: (B,) float32 radians (relative heading of the
    follower to the leader, π = face to face); distance_range: (B, 2) float32 metres
    (from :func:`duet_env.genres.style_of`).
    step: (B,) int64 token index in the episode (0 = first token); is_last: (B,) bool.
    follower_root_velocity_pred: (B, 4, 3) float32 metres/frame, or None.
    follower_tokens: (B, 5) int64 — the token tuple just chosen (up, down, lhand, rhand, transl),
    or None; for terms that judge the choice itself (e.g. a codebook prior) rather than motion.
    """

    leader_joints: np.ndarray
    follower_joints: np.ndarray
    music_beat: np.ndarray
    music: np.ndarray
    hold_expected: np.ndarray
    facing_expected: np.ndarray
    distance_range: np.ndarray
    step: np.ndarray
    is_last: np.ndarray
    follower_root_velocity_pred: np.ndarray | None = None
    follower_tokens: np.ndarray | None = None
    fps: int = FPS
    token_frames: int = TOKEN_FRAMES

    def __post_init__(self):
        lj = np.asarray(self.leader_joints)
        if lj.ndim != 4:
            raise ValueError(f"StepContext.leader_joints must have shape (B, F, {NUM_JOINTS}, 3); got {lj.shape}")
        b, f = lj.shape[:2]
        if f <= self.token_frames:
            raise ValueError(f"StepContext needs more than token_frames={self.token_frames} frames; got F={f}")
        self.leader_joints = _as_array("leader_joints", lj, np.float32, (b, f, NUM_JOINTS, 3))
        self.follower_joints = _as_array("follower_joints", self.follower_joints, np.float32, (b, f, NUM_JOINTS, 3))
        self.music_beat = _as_array("music_beat", self.music_beat, bool, (b, f))
        self.music = _as_array("music", self.music, np.float32, (b, f, MUSIC_DIM))
        self.hold_expected = _as_array("hold_expected", self.hold_expected, bool, (b,))
        self.facing_expected = _as_array("facing_expected", self.facing_expected, np.float32, (b,))
        self.distance_range = _as_array("distance_range", self.distance_range, np.float32, (b, 2))
        if (self.distance_range[:, 0] > self.distance_range[:, 1]).any():
            raise ValueError("StepContext.distance_range must be (low, high) with low <= high")
        self.step = _as_array("step", self.step, np.int64, (b,))
        self.is_last = _as_array("is_last", self.is_last, bool, (b,))
        if self.follower_root_velocity_pred is not None:
            self.follower_root_velocity_pred = _as_array(
                "follower_root_velocity_pred", self.follower_root_velocity_pred, np.float32,
                (b, self.token_frames, 3))
        if self.follower_tokens is not None:
            self.follower_tokens = _as_array("follower_tokens", self.follower_tokens, np.int64, (b, None))

    def __setattr__(self, name, value):
        # Assigning a field makes the shared pass stale: drop it (the next read recomputes).
        self.__dict__.pop("_shared_pass", None)
        object.__setattr__(self, name, value)

    @property
    def shared(self):
        """This step's :class:`rewards.shared.SharedPass`: quantities several terms read (headings,
        palms, capsule gaps, body speeds, dance beats, jerk), each computed on first read and kept
        for the other terms of the step. Bound to this context only (a copy gets its own); arrays
        are read-only by convention, and the context's arrays must not be written in place after
        a term has read them."""
        from .shared import SharedPass, sharing_enabled

        sp = self.__dict__.get("_shared_pass")
        if sp is None or sp.ctx is not self or not sharing_enabled():
            sp = SharedPass(self)
            if sharing_enabled():
                self.__dict__["_shared_pass"] = sp
        return sp

    @property
    def batch_size(self) -> int:
        return self.leader_joints.shape[0]

    @property
    def num_frames(self) -> int:
        return self.leader_joints.shape[1]

    @property
    def history_frames(self) -> int:
        return self.num_frames - self.token_frames

    @classmethod
    def unchecked(cls, **fields_) -> "StepContext":
        """A context from arrays already of the documented dtypes, shapes and finite values, taken
        as they are: no conversion, no copy, no check.

        For a producer that guarantees the contract itself — the env's core, whose leader and
        music come from the validated clip bank and which checks each decoded token — because the
        checks of the normal constructor cost a single env's step some 70 µs. Anyone else: use
        ``StepContext(...)``.
        """
        ctx = object.__new__(cls)
        missing = []
        for fld in fields(cls):
            if fld.name in fields_:
                ctx.__dict__[fld.name] = fields_.pop(fld.name)
            elif fld.default is MISSING:
                missing.append(fld.name)
            else:
                ctx.__dict__[fld.name] = fld.default
        if fields_ or missing:
            raise TypeError(f"StepContext.unchecked: unknown fields {sorted(fields_)}, missing fields {missing}")
        return ctx

    @classmethod
    def from_single(cls, leader_joints, follower_joints, music_beat=None, music=None, *,
                    hold_expected: bool = False, facing_expected: float = np.pi,
                    distance_range=(0.3, 1.5), step: int = 0, is_last: bool = False,
                    follower_root_velocity_pred=None, genre: str | None = None) -> "StepContext":
        """A batch of one from unbatched arrays: joints (F, 55, 3), music_beat (F,), music (F, 54).

        ``music`` defaults to zeros with column ``BEAT_COLUMN`` = ``music_beat``; ``music_beat`` defaults to
        column ``BEAT_COLUMN`` of ``music`` (> 0.5), or no beats. When ``genre`` is given, ``hold_expected``,
        ``facing_expected`` and ``distance_range`` come from :func:`duet_env.genres.style_of`.
        """
        lj = np.asarray(leader_joints, np.float32)
        if lj.ndim != 3:
            raise ValueError(f"from_single: leader_joints must have shape (F, {NUM_JOINTS}, 3); got {lj.shape}")
        f = lj.shape[0]
        if music is None:
            music = np.zeros((f, MUSIC_DIM), np.float32)
            if music_beat is not None:
                music[:, BEAT_COLUMN] = np.asarray(music_beat, np.float32)
        music = np.asarray(music, np.float32)
        if music_beat is None:
            if music.shape != (f, MUSIC_DIM):
                raise ValueError(f"from_single: music must have shape ({f}, {MUSIC_DIM}); got {music.shape}")
            music_beat = music[:, BEAT_COLUMN] > 0.5
        if genre is not None:
            from duet_env.genres import style_of

            style = style_of(genre)
            hold_expected, facing_expected, distance_range = style.hold, style.facing, style.partner_distance
        pred = None if follower_root_velocity_pred is None else np.asarray(follower_root_velocity_pred)[None]
        return cls(
            leader_joints=lj[None], follower_joints=np.asarray(follower_joints)[None],
            music_beat=np.asarray(music_beat)[None], music=music[None],
            hold_expected=np.array([hold_expected]), facing_expected=np.array([facing_expected]),
            distance_range=np.asarray(distance_range, np.float32)[None], step=np.array([step]),
            is_last=np.array([is_last]), follower_root_velocity_pred=pred,
        )

    @classmethod
    def stack(cls, contexts: list["StepContext"]) -> "StepContext":
        """Concatenate contexts along the batch axis (all must agree on F and on having a prediction)."""
        if not contexts:
            raise ValueError("StepContext.stack needs at least one context")
        has_pred = {c.follower_root_velocity_pred is not None for c in contexts}
        if len(has_pred) != 1:
            raise ValueError("StepContext.stack: either all or none of the contexts carry follower_root_velocity_pred")
        kw = {}
        for fld in fields(cls):
            vals = [getattr(c, fld.name) for c in contexts]
            if fld.name in ("fps", "token_frames"):
                if len(set(vals)) != 1:
                    raise ValueError(f"StepContext.stack: contexts disagree on {fld.name}: {sorted(set(vals))}")
                kw[fld.name] = vals[0]
            elif vals[0] is None:
                kw[fld.name] = None
            else:
                kw[fld.name] = np.concatenate(vals, axis=0)
        return cls(**kw)

    def current(self, x: np.ndarray) -> np.ndarray:
        """The current token's frames of a (B, F, ...) array: ``x[:, -token_frames:]``."""
        return x[:, -self.token_frames:]


def context_window(x: np.ndarray, end: int, frames: int = CONTEXT_FRAMES) -> np.ndarray:
    """Frames ``end − frames … end − 1`` of a (T, ...) array; indices before 0 repeat frame 0."""
    idx = np.clip(np.arange(end - frames, end), 0, None)
    return x[idx]


def episode_contexts(leader_joints, follower_joints, music_beat, *, music=None, genre: str | None = None,
                     hold_expected: bool = False, facing_expected: float = np.pi, distance_range=(0.3, 1.5),
                     follower_root_velocity_pred=None, history_frames: int = HISTORY_FRAMES):
    """Yield the B = 1 :class:`StepContext` of every token of a whole recorded episode.

    leader_joints, follower_joints: (T, 55, 3); music_beat: (T,) bool; music: optional (T, 54);
    follower_root_velocity_pred: optional (T, 3) metres/frame. Token t covers frames 4t … 4t+3
    (a trailing partial token is dropped); the history before frame 0 repeats frame 0, as the
    env does at a clip start. For offline scoring of saved motion and for tests.
    """
    lj, fj = np.asarray(leader_joints, np.float32), np.asarray(follower_joints, np.float32)
    if lj.ndim != 3 or lj.shape[1:] != (NUM_JOINTS, 3) or fj.shape != lj.shape:
        raise ValueError(f"episode_contexts: leader_joints and follower_joints must both be (T, {NUM_JOINTS}, 3); "
                         f"got {lj.shape} and {fj.shape}")
    t_len = lj.shape[0]
    beats = np.asarray(music_beat, bool)
    if beats.shape != (t_len,):
        raise ValueError(f"episode_contexts: music_beat must have shape ({t_len},); got {beats.shape}")
    if music is None:
        music = np.zeros((t_len, MUSIC_DIM), np.float32)
        music[:, BEAT_COLUMN] = beats
    n_tokens = t_len // TOKEN_FRAMES
    if n_tokens == 0:
        raise ValueError(f"episode_contexts: need at least {TOKEN_FRAMES} frames; got {t_len}")
    f = history_frames + TOKEN_FRAMES
    for t in range(n_tokens):
        end = (t + 1) * TOKEN_FRAMES
        pred = None
        if follower_root_velocity_pred is not None:
            pred = np.asarray(follower_root_velocity_pred)[end - TOKEN_FRAMES:end]
        yield StepContext.from_single(
            context_window(lj, end, f), context_window(fj, end, f), context_window(beats, end, f),
            context_window(np.asarray(music, np.float32), end, f), hold_expected=hold_expected,
            facing_expected=facing_expected, distance_range=distance_range, step=t, is_last=t == n_tokens - 1,
            follower_root_velocity_pred=pred, genre=genre)
