"""Small synthetic duet clips for the tokenizer tests: FK of smooth random poses."""
from __future__ import annotations

import numpy as np

from duet_env import skeleton
from duet_env.data.clip import Clip, Dancer


def smooth_noise(rng: np.random.Generator, t: int, dim: int, scale: float, width: int = 8) -> np.ndarray:
    x = rng.normal(size=(t + width, dim))
    kernel = np.hanning(width) / np.hanning(width).sum()
    out = np.stack([np.convolve(x[:, d], kernel, mode="valid")[:t] for d in range(dim)], 1)
    return out * scale / max(out.std(), 1e-9)


def random_dancer(rng: np.random.Generator, t: int, start: np.ndarray, yaw0: float) -> Dancer:
    poses = smooth_noise(rng, t, skeleton.POSE_DIM, 0.15)
    yaw = yaw0 + np.cumsum(smooth_noise(rng, t, 1, 0.02)[:, 0])
    poses[:, 0:3] = 0.0
    poses[:, 1] = yaw  # root rotation about the vertical axis
    transl = start + np.cumsum(smooth_noise(rng, t, 3, 0.01), 0) * np.array([1.0, 0.2, 1.0])
    return Dancer(poses.astype(np.float32), transl.astype(np.float32))


def random_clip(seed: int, t: int = 96, name: str = "Waltz_1_1") -> Clip:
    rng = np.random.default_rng(seed)
    leader = random_dancer(rng, t, np.array([0.0, 0.9, 0.0]), 0.3)
    follower = random_dancer(rng, t, np.array([0.2, 0.9, 0.8]), 0.3 + np.pi)
    return Clip(name, name.split("_")[0], np.zeros((t, 54), np.float32), leader, follower)
