"""A reward model learned from automatically ranked demonstrations (E3D2, Wang et al., AAAI 2024).

E3D2 ranks demonstrations without human labels: a demonstration generated with a smaller
noise level ε is assumed better than one with a larger ε, and a reward model r(·) is fitted to
these rankings. Here the fit uses the Bradley–Terry pairwise loss (the E3D2 poster does not
spell out its loss):

    P(a ≻ b) = σ(r(a) − r(b)),      L = −log σ(r(better) − r(worse)) = softplus(r(worse) − r(better)).

Here a demonstration is a duet (leader and follower joints) and the model scores a window of
``window`` frames (the step context, 32 frames by default) of both dancers. Demonstrations are
either passed pre-ranked as ``(leader_joints, follower_joints, level)`` triples — ``level`` a
noise level ε (lower is better) or a :class:`DemoLevel` (a rank within a chain, for rankings
that are only partial: ``python -m pretrain.reward_model`` ranks GPT rollouts at rising token
noise and, separately, at rising sampling temperature, both below the ground truth and the
greedy GPT) — or made from clean duets by :func:`perturb_follower` at ``noise_levels``.

Features (rotation- and translation-invariant): the 22 body joints of both dancers, in the
leader's heading frame at the window's last frame with the origin at the leader's pelvis
(ground-projected), and their per-frame velocities (m/s × 0.1), i.e. 264 numbers per frame.

Model: two 1-D convolutions over time (kernel 5, GELU, the second with stride 2), a mean over
time, and a 2-layer MLP to a scalar. The checkpoint is a folder holding ``reward_model.safetensors``
and ``reward_model.json`` (config, including the mean/std of the scores on the training
windows, used to squash the term into [0, 1]).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d
from torch import nn

from duet_env import checkpoint
from duet_env.conventions import BODY_JOINTS, FPS
from duet_env.skeleton import NUM_JOINTS

from .context import CONTEXT_FRAMES, StepContext
from .primitives import body_heading
from .registry import RewardTerm, register

FEATURE_DIM = 2 * 2 * len(BODY_JOINTS) * 3  # 2 dancers × (position, velocity) × 22 joints × xyz
CHECKPOINT_STEM = "reward_model"
DEFAULT_NOISE_LEVELS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # E3D2's ablation spans ε = 0.02 … 1.0


@dataclass(frozen=True)
class DemoLevel:
    """Where a demonstration stands in the automatic ranking: lower ``rank`` is better.

    Two levels are compared only when they share a ``chain`` or one of them has none (``""``:
    comparable with every level, e.g. the ground truth). So the chains "noise" (ε = 0.02 … 1)
    and "temperature" (T = 0.7 … 1.3) are each ordered, and both lie below the unchained ground
    truth and greedy GPT, without claiming how a noise level compares with a temperature.
    """

    name: str
    rank: float
    chain: str = ""

    def comparable(self, other: "DemoLevel") -> bool:
        return self.rank != other.rank and (not self.chain or not other.chain or self.chain == other.chain)


def noise_level(eps: float) -> DemoLevel:
    """The level of a demonstration made with noise ε (one chain, ranked by ε)."""
    return DemoLevel(f"eps={float(eps):g}", float(eps))


def pair_features(leader: np.ndarray, follower: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Window features ``(..., W, 264)`` float32 of joints ``(..., W, 55, 3)`` (see module docstring)."""
    lj, fj = leader[..., list(BODY_JOINTS), :], follower[..., list(BODY_JOINTS), :]
    anchor = leader[..., -1, 0, :].copy()  # (..., 3) leader pelvis at the last frame
    anchor[..., 1] = 0.0  # keep heights absolute: the ground is meaningful
    yaw = body_heading(leader[..., -1, :, :])  # (...,)
    c, s = np.cos(-yaw)[..., None, None, None], np.sin(-yaw)[..., None, None, None]

    def to_frame(x: np.ndarray) -> np.ndarray:
        x = x - anchor[..., None, None, :]
        return np.stack([c[..., 0] * x[..., 0] + s[..., 0] * x[..., 2], x[..., 1],
                         -s[..., 0] * x[..., 0] + c[..., 0] * x[..., 2]], axis=-1)

    out = []
    for x in (to_frame(lj), to_frame(fj)):
        vel = np.diff(x, axis=-3, prepend=x[..., :1, :, :]) * (fps * 0.1)
        out += [x, vel]
    flat = [o.reshape(*o.shape[:-2], -1) for o in out]
    return np.concatenate(flat, axis=-1).astype(np.float32)


class RewardModel(nn.Module):
    """Scalar score of a duet window: features ``(N, W, 264)`` -> ``(N,)`` (unbounded)."""

    def __init__(self, hidden: int = 64, feature_dim: int = FEATURE_DIM):
        super().__init__()
        self.hidden, self.feature_dim = hidden, feature_dim
        self.conv = nn.Sequential(
            nn.Conv1d(feature_dim, hidden, 5, padding=2), nn.GELU(),
            nn.Conv1d(hidden, hidden, 5, stride=2, padding=2), nn.GELU(),
        )
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if feats.ndim != 3 or feats.shape[-1] != self.feature_dim:
            raise ValueError(f"RewardModel expects features (N, W, {self.feature_dim}); got {tuple(feats.shape)}")
        h = self.conv(feats.transpose(1, 2)).mean(-1)
        return self.head(h).squeeze(-1)


@dataclass
class RewardModelConfig:
    window: int = CONTEXT_FRAMES
    hidden: int = 64
    score_mean: float = 0.0
    score_std: float = 1.0
    noise_levels: list[float] = field(default_factory=lambda: list(DEFAULT_NOISE_LEVELS))
    train: dict[str, Any] = field(default_factory=dict)


def perturb_follower(follower: np.ndarray, eps: float, rng: np.random.Generator) -> np.ndarray:
    """A worse demonstration: follower joints ``(T, 55, 3)`` with noise of level ``eps``.

    Adds ``eps`` × (5 cm of temporally smooth per-joint jitter (σ = 3 frames) + 30 cm of slow
    whole-body drift (σ = 15 frames)), each noise signal normalised to unit std before scaling.
    """
    if eps == 0:
        return follower.copy()

    def smooth(shape, sigma):
        n = gaussian_filter1d(rng.standard_normal(shape), sigma, axis=0, mode="nearest")
        return n / max(float(n.std()), 1e-9)

    t = follower.shape[0]
    jitter = smooth((t, NUM_JOINTS, 3), 3.0) * 0.05
    drift = smooth((t, 1, 3), 15.0) * 0.30
    drift[..., 1] = 0.0  # drifting through the floor is not a dance error worth learning
    return (follower + eps * (jitter + drift)).astype(np.float32)


def save_reward_model(folder: str | os.PathLike, model: RewardModel, config: RewardModelConfig) -> Path:
    """Write the checkpoint ``folder/reward_model.{safetensors,json}`` (duet_env.checkpoint.save)."""
    return checkpoint.save(folder, CHECKPOINT_STEM, model.state_dict(), asdict(config))


def load_reward_model(folder: str | os.PathLike = "default") -> tuple[RewardModel, RewardModelConfig]:
    """Read a checkpoint written by :func:`save_reward_model` (a folder, or a shipped name such as
    ``"default"``); clear errors for missing/corrupt files."""
    try:
        folder = checkpoint.resolve(folder)
    except checkpoint.CheckpointError as e:
        raise FileNotFoundError(f"learned reward checkpoint: {e} (train one with python -m pretrain.reward_model)") from e
    for p in (folder / f"{CHECKPOINT_STEM}.safetensors", folder / f"{CHECKPOINT_STEM}.json"):
        if not p.is_file():
            raise FileNotFoundError(f"learned reward checkpoint: missing {p} (train one with python -m pretrain.reward_model)")
    tensors, raw_config, _ = checkpoint.load(folder, CHECKPOINT_STEM)
    try:
        config = RewardModelConfig(**raw_config)
    except TypeError as e:
        raise checkpoint.CheckpointError(f"learned reward checkpoint {folder}: corrupt config: {e}") from e
    model = RewardModel(hidden=config.hidden)
    checkpoint.load_state_dict_strict(model, tensors, f"{folder}/{CHECKPOINT_STEM}")
    model.eval()
    return model, config


@register("learned")
class LearnedTerm(RewardTerm):
    """Score of a reward model trained on automatically ranked demonstrations (E3D2).

    ``R = σ((r(window) − μ) / s)`` with r the :class:`RewardModel` score of the last ``window``
    context frames of both dancers, and μ, s the mean and std of the scores on the training
    windows (stored in the checkpoint). ``checkpoint``: a folder written by
    ``python -m pretrain.reward_model`` (:func:`pretrain.reward_model.train_reward_model`), or a shipped name; the
    default is the model shipped with the package, trained on SynthDuet (its card:
    ``duet_env/checkpoints/default/REWARD_MODEL_CARD.md``).

    Range: [0, 1].
    """

    range = (0.0, 1.0)

    def __init__(self, checkpoint: str = "default"):
        self.model, self.model_config = load_reward_model(checkpoint)
        self.config = {"checkpoint": str(checkpoint)}

    def compute(self, ctx: StepContext) -> np.ndarray:
        w = self.model_config.window
        if ctx.num_frames < w:
            raise ValueError(f"learned reward model needs {w} context frames; the step context has {ctx.num_frames}")
        feats = pair_features(ctx.leader_joints[:, -w:], ctx.follower_joints[:, -w:], ctx.fps)
        with torch.no_grad():
            r = self.model(torch.from_numpy(feats)).numpy()
        z = (r - self.model_config.score_mean) / self.model_config.score_std
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
