"""Training windows for the tokenizer's VQ-VAEs, cut from duet clips.

Every train clip gives two pose *tracks* — the leader's and the follower's motion, both in the
leader's heading frame (duet_env.tokenizer.features) — and one relative-translation track. A batch
is ``batch`` random crops of ``window`` frames, drawn uniformly over all valid crop starts (so
longer clips are sampled proportionally more), from a seeded ``numpy.random.Generator``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from duet_env import motion
from duet_env.data.clip import Clip
from duet_env.tokenizer import features


def load_clips(data: str | os.PathLike, split: str, progress: bool = True) -> list[Clip]:
    """Clips of a split of ``data`` ("synth" = the default SynthDuet folder, or a DD100-layout folder)."""
    from duet_env.data import load_split

    clips = load_split(data, split, progress=progress)
    if not clips:
        raise ValueError(f"dataset {data} has no {split!r} clips")
    return clips


@dataclass
class Batch:
    x: torch.Tensor            # (B, W, C) encoder input / position target
    rot: torch.Tensor | None   # (B, W, 55, 3, 3) local rotations of all joints (root in the leader frame)


def _track_arrays(clip: Clip, stream: str, heading_sigma: float) -> list[tuple[np.ndarray, np.ndarray | None]]:
    lead = torch.from_numpy(np.asarray(clip.leader.joints, np.float64))
    fwd = features.leader_heading(lead, heading_sigma)
    if stream == "transl":
        foll = torch.from_numpy(np.asarray(clip.follower.joints, np.float64))
        return [(features.transl_features(foll, lead, fwd).float().numpy(), None)]
    out = []
    for dancer in (clip.leader, clip.follower):
        j = torch.from_numpy(np.asarray(dancer.joints, np.float64))
        x = features.pose_features(j, fwd)[stream].float().numpy()
        rot = features.rotation_targets(torch.from_numpy(np.asarray(dancer.poses, np.float64)), fwd)
        # all 55 joints: the loss runs forward kinematics with the other parts held at the data
        # (teacher forcing). Stored as axis-angle (3 floats/joint, not 9); the batch converts back.
        aa = motion.matrix_to_axis_angle(rot).float().numpy()
        out.append((x, aa))
    return out


class MotionWindows:
    """Random fixed-length windows of one stream's features (a body part, or "transl")."""

    def __init__(self, clips: list[Clip], stream: str, window: int,
                 heading_sigma: float = features.HEADING_SIGMA_FRAMES):
        if window % 4:
            raise ValueError(f"window must be a multiple of 4 frames, got {window}")
        self.stream, self.window = stream, window
        xs, aas, starts, offset = [], [], [], 0
        for clip in clips:
            for x, aa in _track_arrays(clip, stream, heading_sigma):
                t = x.shape[0]
                if not np.isfinite(x).all():
                    raise ValueError(f"clip {clip.name}: non-finite motion values")
                if t >= window:
                    starts.append(offset + np.arange(t - window + 1))
                xs.append(x)
                aas.append(aa)
                offset += t
        if not starts:
            raise ValueError(f"no clip is at least {window} frames long")
        self.x = np.concatenate(xs)
        self.aa = None if aas[0] is None else np.concatenate(aas)
        self.starts = np.concatenate(starts)

    def __len__(self) -> int:
        return len(self.starts)

    def sample(self, rng: np.random.Generator, batch: int, device: str | torch.device = "cpu",
               rows: slice | None = None) -> Batch:
        """``batch`` random windows; ``rows`` keeps only those rows of them (a data-parallel rank's
        shard): the generator draws the whole batch either way, so every rank stays in step."""
        s = self.starts[rng.integers(len(self.starts), size=batch)]
        if rows is not None:
            s = s[rows]
        idx = s[:, None] + np.arange(self.window)[None]
        x = torch.from_numpy(self.x[idx]).to(device)
        rot = None
        if self.aa is not None:
            rot = motion.axis_angle_to_matrix(torch.from_numpy(self.aa[idx]).to(device))
        return Batch(x, rot)
