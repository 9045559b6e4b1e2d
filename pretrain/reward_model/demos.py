"""Automatically ranked demonstrations for the learned reward (E3D2's recipe, no human labels).

For every clip of a split, the follower is danced at these levels, best first:

==================  =====  ==============  ==================================================
level               rank   chain           follower
==================  =====  ==============  ==================================================
``ground_truth``    0      (all)           the ground-truth follower's tokens, decoded in the env
``greedy``          1      (all)           the pretrained GPT, greedy
``temperature=T``   1 + T  temperature     the GPT sampling softmax(logits / T), T = 0.7, 1.0, 1.3
``noise=ε``         1 + ε  noise           the greedy GPT whose token of each stream is replaced,
                                           with probability ε, by a uniformly random one;
                                           ε = 0.02, 0.25, 0.5, 0.75, 1 (1 = random tokens)
==================  =====  ==============  ==================================================

Ranking (:class:`rewards.learned.DemoLevel`): a lower rank is better; levels of the two chains
are not compared with each other (it is not known whether T = 1.3 is worse than ε = 0.25), only
within their chain and against the two unchained levels above them.

Departures from E3D2 (Wang et al., AAAI 2024), which perturbs its behaviour-cloned policy with
noise ε and ranks by ε: (1) the ground truth is the ground-truth *tokens* decoded by the
env's frozen decoder, not the captured motion, so the model learns what a policy can reach
rather than to tell decoded from captured motion; (2) the temperature chain is added (as the
issue asks); (3) noise replaces each token stream independently, since our action is a tuple
of five tokens. Every follower is produced by the env's own batched rollout
(:func:`agents.rollout.generate_followers`), so it is the motion the env shows and the reward
will score.

Demonstrations are cached per level (``<duet cache>/reward-demos/<key>/<split>/<level>.npz``,
keyed by the dataset files, the tokenizer, the policy checkpoint and the seed): a killed run
keeps every finished level, and ``evaluate`` reuses the test split's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from duet_env.atomic import atomic_save_npz, atomic_write_json
from duet_env.conventions import FOLLOWER_STREAMS
from duet_env.data.clip import Clip
from rewards.learned import DemoLevel

TEMPERATURES = (0.7, 1.0, 1.3)
NOISE_EPSILONS = (0.02, 0.25, 0.5, 0.75, 1.0)
DEMO_CACHE_VERSION = 1


@dataclass(frozen=True)
class DemoSource:
    """How the follower of one level is produced: ``kind`` in {ground_truth, greedy, temperature, noise}."""

    level: DemoLevel
    kind: str
    value: float = 0.0


def demo_sources(temperatures=TEMPERATURES, epsilons=NOISE_EPSILONS) -> list[DemoSource]:
    """The ranked levels of the module docstring, best first."""
    out = [DemoSource(DemoLevel("ground_truth", 0.0), "ground_truth"), DemoSource(DemoLevel("greedy", 1.0), "greedy")]
    out += [DemoSource(DemoLevel(f"temperature={t:g}", 1.0 + t, "temperature"), "temperature", t) for t in temperatures]
    out += [DemoSource(DemoLevel(f"noise={e:g}", 1.0 + e, "noise"), "noise", e) for e in epsilons]
    return out


class TemperaturePolicy:
    """The GPT sampling at temperature ``t`` (FollowerPolicy.sample in "sample" mode)."""

    def __init__(self, policy, t: float):
        self.policy, self.t, self.config = policy, float(t), policy.config

    def sample(self, obs, mode: str = "greedy", generator=None):
        return self.policy.sample(obs, mode="sample", temperature=self.t, generator=generator)


class NoisyPolicy:
    """ε-noise on the greedy GPT: each stream's token is replaced by a uniform one with probability ε."""

    def __init__(self, policy, epsilon: float, nvec: np.ndarray, seed: int):
        self.policy, self.epsilon, self.config = policy, float(epsilon), policy.config
        self.nvec = np.asarray(nvec, np.int64)
        self.rng = np.random.default_rng(seed)

    def sample(self, obs, mode: str = "greedy", generator=None):
        n = len(obs["follower"])
        random = self.rng.integers(0, self.nvec, size=(n, len(self.nvec)))
        if self.epsilon >= 1.0:  # every token replaced: the GPT's choice is never used
            return random
        act = np.asarray(self.policy.sample(obs, mode="greedy", generator=generator))
        replace = self.rng.random(act.shape) < self.epsilon
        return np.where(replace, random, act)


def _follower_tokens(clips: list[Clip], tokenizer) -> list[np.ndarray]:
    from duet_env.episodes import episode_clips

    return [b.follower_tokens for b in episode_clips(clips, tokenizer, with_follower=True)]


def rollout_level(source: DemoSource, clips: list[Clip], policy, tokenizer, seed: int) -> list[np.ndarray]:
    """The follower joints ``(T_i, 55, 3)`` of every clip at one level (env rollout, no reward)."""
    from agents.rollout import ReplayPolicy, generate_followers

    if source.kind == "ground_truth":
        actor = ReplayPolicy(_follower_tokens(clips, tokenizer))
    elif source.kind == "greedy":
        actor = policy
    elif source.kind == "temperature":
        actor = TemperaturePolicy(policy, source.value)
    elif source.kind == "noise":
        nvec = np.array([tokenizer.codebook_sizes[s] for s in FOLLOWER_STREAMS], np.int64)
        actor = NoisyPolicy(policy, source.value, nvec, seed)
    else:
        raise ValueError(f"unknown demonstration kind {source.kind!r}")
    mode = "sample" if source.kind == "temperature" else "greedy"
    out = generate_followers(actor, clips, seed=seed, tokenizer=tokenizer, reward=None, mode=mode, progress=False)
    return [o.joints for o in out]


def demo_clips(data: str, split: str, clip_tokens: int, progress: bool = True) -> list[Clip]:
    """The split's clips, each cut to its first ``clip_tokens`` tokens (0: whole clips)."""
    from duet_env.conventions import TOKEN_FRAMES
    from duet_env.data import load_split

    clips = load_split(data, split, progress=progress)
    if not clips:
        raise ValueError(f"dataset {data!r} has no clips in split {split!r}")
    return [c.slice(0, clip_tokens * TOKEN_FRAMES) for c in clips] if clip_tokens else clips


def cache_key(data: str, tokenizer_name: str, policy_name: str, seed: int, clip_tokens: int) -> str:
    """Identify a demonstration set by the dataset files, tokenizer, policy checkpoint, seed and length."""
    from duet_env.checkpoint import resolve
    from duet_env.data import resolve_root
    from pretrain.gpt.data import _fingerprint, dataset_fingerprint, tokenizer_fingerprint

    root = resolve_root(data)
    gpt = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(resolve(policy_name).glob("gpt.*"))]
    return _fingerprint([DEMO_CACHE_VERSION, str(Path(root).resolve()), dataset_fingerprint(root),
                         tokenizer_fingerprint(tokenizer_name), str(resolve(policy_name).resolve()), gpt, seed,
                         clip_tokens])


def level_path(folder: Path, split: str, level: DemoLevel) -> Path:
    return Path(folder) / split / f"{level.name}.npz"


def load_level(path: Path, clips: list[Clip]) -> list[np.ndarray] | None:
    """A cached level, or None when missing or not matching ``clips`` (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            if z["names"].tolist() != [c.name for c in clips]:
                return None
            joints = [z[f"follower/{i}"] for i in range(len(clips))]
    except Exception:  # a torn file is rebuilt, never trusted
        return None
    if any(j.shape[1:] != (55, 3) or len(j) > len(c) or not np.isfinite(j).all() for j, c in zip(joints, clips)):
        return None
    return joints


def build_demos(clips: list[Clip], split: str, folder: Path, policy, tokenizer, seed: int = 0,
                sources: list[DemoSource] | None = None, progress: bool = True) -> dict[str, list[np.ndarray]]:
    """Every level's followers for ``clips`` (level name -> joints per clip), cached in ``folder``.

    Finished levels are read back; missing ones are rolled out and written atomically, so a
    killed run resumes at the level it was on.
    """
    sources = sources or demo_sources()
    folder = Path(folder)
    out: dict[str, list[np.ndarray]] = {}
    bar = tqdm(sources, desc=f"demonstrations ({split})", disable=not progress)
    for i, src in enumerate(bar):
        bar.set_postfix(level=src.level.name, refresh=True)
        path = level_path(folder, split, src.level)
        joints = load_level(path, clips)
        if joints is None:
            joints = rollout_level(src, clips, policy, tokenizer, seed + 1000 * i)
            arrays = {f"follower/{k}": j.astype(np.float32) for k, j in enumerate(joints)}
            atomic_save_npz(path, {**arrays, "names": np.array([c.name for c in clips])})
        out[src.level.name] = joints
    atomic_write_json(folder / split / "levels.json",
                      [vars(s.level) | {"kind": s.kind, "value": s.value} for s in sources])
    return out


def ranked_triples(clips: list[Clip], demos: dict[str, list[np.ndarray]], sources: list[DemoSource]) -> list[tuple]:
    """``(leader joints, follower joints, DemoLevel)`` triples for :func:`pretrain.reward_model.train_reward_model`."""
    out = []
    for src in sources:
        for clip, joints in zip(clips, demos[src.level.name]):
            n = min(len(joints), len(clip))
            out.append((clip.leader.joints[:n], joints[:n], src.level))
    return out
