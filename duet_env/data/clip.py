"""The in-memory form of one duet clip, shared by the loader, SynthDuet, the env and metrics."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import skeleton
from ..conventions import BEAT_COLUMN, MUSIC_DIM  # noqa: F401  (re-exported)


@dataclass
class Dancer:
    """One dancer's SMPL-X motion at 30 fps.

    poses: (T, 165) float32 axis-angle, SMPL-X joint order; transl: (T, 3) float32 metres;
    betas: (10,) float32; gender: "neutral" | "male" | "female"; joints: (T, 55, 3) float32
    world joint positions (computed by forward kinematics when not given).
    """

    poses: np.ndarray
    transl: np.ndarray
    betas: np.ndarray = field(default_factory=lambda: np.zeros(10, np.float32))
    gender: str = "neutral"
    joints: np.ndarray | None = None

    def __post_init__(self):
        self.poses = np.asarray(self.poses, np.float32)
        self.transl = np.asarray(self.transl, np.float32)
        if self.poses.ndim != 2 or self.poses.shape[1] != skeleton.POSE_DIM:
            raise ValueError(f"poses must have shape (T, {skeleton.POSE_DIM}); got {self.poses.shape}")
        if self.transl.shape != (self.poses.shape[0], 3):
            raise ValueError(f"transl must have shape ({self.poses.shape[0]}, 3); got {self.transl.shape}")
        if self.joints is None:
            self.joints = skeleton.forward_kinematics(self.poses, self.transl)
        self.joints = np.asarray(self.joints, np.float32)

    def __len__(self) -> int:
        return self.poses.shape[0]

    def slice(self, start: int, stop: int) -> "Dancer":
        return Dancer(self.poses[start:stop], self.transl[start:stop], self.betas, self.gender,
                      self.joints[start:stop])


@dataclass
class Clip:
    """A duet clip: music features and both dancers, all the same length T (30 fps).

    music: (T, 54) float32 features of :mod:`duet_env.music` (column 53 = beat one-hot).
    """

    name: str
    genre: str
    music: np.ndarray
    leader: Dancer
    follower: Dancer
    audio_path: str | None = None

    def __post_init__(self):
        t = len(self.leader)
        if len(self.follower) != t or self.music.shape != (t, MUSIC_DIM):
            raise ValueError(
                f"clip {self.name}: leader {len(self.leader)}, follower {len(self.follower)} frames and "
                f"music {self.music.shape} must share one length T with 54 music features"
            )

    def __len__(self) -> int:
        return len(self.leader)

    @property
    def beat_frames(self) -> np.ndarray:
        """Frame indices of the music beats (column 53 of the features)."""
        return np.flatnonzero(self.music[:, BEAT_COLUMN] > 0.5)

    def slice(self, start: int, stop: int) -> "Clip":
        return Clip(self.name, self.genre, self.music[start:stop], self.leader.slice(start, stop),
                    self.follower.slice(start, stop), self.audio_path)
