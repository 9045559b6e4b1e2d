"""Held-out evaluation of a learned reward model on ranked demonstrations of the test split.

Windows: for every clip and every env step t (one token = 4 frames) whose context is complete,
the window is the ``W`` frames (the model's window, 32) ending at the step's last frame — what
the ``learned`` term sees in the env once an episode has run W frames.

* ``pairwise_accuracy`` for every comparable pair of levels (a better, b worse):
  ``mean over clips and windows of [r(a) > r(b)]`` on the same clip and window;
* ``accuracy_eps_gap_0.5``: the same, pooled over the pairs of the noise chain (with the
  greedy GPT as ε = 0) whose ε differ by at least 0.5 — the issue's target is ≥ 0.9;
* ``levels``: per level the mean per-token reward the term pays, σ((r − μ)/s), the mean raw
  score r, and ``rule_error_cm`` (:func:`agents.evaluate.rule_error_cm`, SynthDuet only);
* ``monotonic``: whether the mean reward falls strictly along
  ground truth > greedy > ε = 0.02 > … > ε = 1 (and along greedy > T = 0.7 > … > T = 1.3);
* ``spearman_reward_vs_rule_error``: Spearman's ρ between the levels' mean reward and their
  rule_error_cm (SynthDuet: the ground-truth rule is known), expected strongly negative.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.stats import spearmanr

from duet_env.conventions import TOKEN_FRAMES
from rewards.learned import RewardModel, RewardModelConfig, pair_features

from .demos import DemoSource


@torch.no_grad()
def window_scores(model: RewardModel, leader: np.ndarray, follower: np.ndarray, window: int,
                  batch: int = 512) -> np.ndarray:
    """Raw scores r of every step window (end frames W, W+4, …, T) of one duet."""
    n = min(len(leader), len(follower))
    ends = np.arange(max(window, TOKEN_FRAMES), n + 1, TOKEN_FRAMES)
    if len(ends) == 0:
        return np.zeros(0, np.float32)
    idx = ends[:, None] - window + np.arange(window)[None]
    out = []
    for s in range(0, len(idx), batch):
        feats = pair_features(leader[idx[s:s + batch]], follower[idx[s:s + batch]])
        out.append(model(torch.from_numpy(feats)).numpy())
    return np.concatenate(out)


def evaluate_demos(model: RewardModel, config: RewardModelConfig, clips, demos: dict[str, list[np.ndarray]],
                   sources: list[DemoSource], rule_error: bool = True) -> dict:
    """The report of the module docstring for one split's demonstrations."""
    from agents.evaluate import rule_error_cm

    scores = {s.level.name: [window_scores(model, c.leader.joints, j, config.window)
                             for c, j in zip(clips, demos[s.level.name])] for s in sources}
    levels = []
    for s in sources:
        raw = np.concatenate(scores[s.level.name])
        reward = 1.0 / (1.0 + np.exp(-np.clip((raw - config.score_mean) / config.score_std, -50, 50)))
        row = {"name": s.level.name, "rank": s.level.rank, "chain": s.level.chain,
               "mean_reward": float(reward.mean()), "mean_score": float(raw.mean()), "windows": int(raw.size)}
        if rule_error:
            row["rule_error_cm"] = rule_error_cm(clips, demos[s.level.name])
        levels.append(row)
    pairs = []
    for a, b in itertools.permutations(sources, 2):
        if not (a.level.comparable(b.level) and a.level.rank < b.level.rank):
            continue
        wins = np.concatenate([sa > sb for sa, sb in zip(scores[a.level.name], scores[b.level.name])])
        pairs.append({"better": a.level.name, "worse": b.level.name, "accuracy": float(wins.mean()),
                      "windows": int(wins.size), "eps_gap": _eps_gap(a, b)})
    big = [p for p in pairs if p["eps_gap"] is not None and p["eps_gap"] >= 0.5 - 1e-9]
    by_name = {r["name"]: r["mean_reward"] for r in levels}
    report = {
        "levels": levels,
        "pairwise_accuracy": pairs,
        "accuracy_eps_gap_0.5": (float(np.average([p["accuracy"] for p in big], weights=[p["windows"] for p in big]))
                                 if big else None),
        # each chain, below the unchained levels (ground truth, greedy), listed best first
        "monotonic": {chain: _falls(by_name, [s.level.name for s in sources if s.level.chain in ("", chain)])
                      for chain in ("noise", "temperature")},
    }
    if rule_error:
        rho, p = spearmanr([r["mean_reward"] for r in levels], [r["rule_error_cm"] for r in levels])
        report["spearman_reward_vs_rule_error"] = {"rho": float(rho), "p": float(p), "levels": len(levels)}
    return report


def _eps_gap(a: DemoSource, b: DemoSource) -> float | None:
    """|ε_a − ε_b| on the noise chain, the greedy GPT counting as ε = 0; None otherwise."""
    def eps(s: DemoSource):
        return 0.0 if s.kind == "greedy" else (s.value if s.kind == "noise" else None)
    ea, eb = eps(a), eps(b)
    return None if ea is None or eb is None else abs(ea - eb)


def _falls(by_name: dict[str, float], names: list[str]) -> bool:
    """Names are listed best first: True if their values fall strictly."""
    values = [by_name[n] for n in names]
    return bool(all(x > y for x, y in zip(values, values[1:])))
