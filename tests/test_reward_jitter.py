"""Jitter cannot pay the hand-written rewards (issue 11): a SynthDuet ground-truth follower
against the same follower plus high-frequency noise, scored token by token as the env scores
them (rewards.episode_contexts: the env's 32-frame context, history padded at the clip start)."""
from __future__ import annotations

import numpy as np
import pytest

from duet_env import skeleton
from duet_env.conventions import BODY_JOINTS, FPS
from rewards import episode_contexts, make_reward, make_term
from rewards.terms.beat import BeatTerm, dance_beats

SECONDS = 10.0
BPM = 120.0


def _joints(dancer: dict) -> np.ndarray:
    return skeleton.forward_kinematics(dancer["poses"], dancer["transl"]).astype(np.float32)


@pytest.fixture(scope="module", params=["Waltz", "HipHop"])
def duet(request):
    """A SynthDuet leader and ground-truth rule follower dancing to exact beats (no audio)."""
    from duet_env.data import synth

    clip = synth.dance_to_beats(request.param, np.arange(0.4, SECONDS + 3.0, 60.0 / BPM), SECONDS, seed=0)
    leader, follower = _joints(clip.leader), _joints(clip.follower)
    beats = np.zeros(len(follower), bool)
    frames = np.asarray(clip.meta["beat_frames"])
    beats[frames[frames < len(follower)]] = True
    return {"genre": request.param, "leader": leader, "follower": follower, "beats": beats}


def white_noise(follower: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1 cm (std) white noise on every joint coordinate, every frame."""
    return follower + rng.normal(0.0, 0.01, follower.shape).astype(np.float32)


def wobble(follower: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The whole body shaking at 12 Hz with a 1.5 cm amplitude (random phase per axis)."""
    t = np.arange(len(follower))[:, None, None] / FPS
    return follower + (0.015 * np.sin(2 * np.pi * 12.0 * t + rng.uniform(0, 2 * np.pi, 3))).astype(np.float32)


JITTERS = {"white_noise": white_noise, "wobble": wobble}


def score(duet, follower, spec="default") -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-token total and components of ``spec`` over the whole clip, one fresh reward per episode."""
    reward = make_reward(spec)
    totals, comps = [], {}
    for ctx in episode_contexts(duet["leader"], follower, duet["beats"], genre=duet["genre"]):
        total, c = reward(ctx)
        totals.append(total[0])
        for name, v in c.items():
            comps.setdefault(name, []).append(v[0])
    return np.array(totals), {k: np.array(v) for k, v in comps.items()}


def n_dance_beats(follower: np.ndarray, depth: float) -> int:
    term = BeatTerm()
    return int(dance_beats(follower[None][:, :, list(BODY_JOINTS)], FPS, term.sigma, term.radius, depth,
                           term.half_window).sum())


@pytest.mark.parametrize("jitter", sorted(JITTERS))
def test_jitter_earns_less_beat_and_less_default_reward(duet, jitter):
    gt = duet["follower"]
    noisy = JITTERS[jitter](gt, np.random.default_rng(0))
    gt_total, gt_comps = score(duet, gt)
    j_total, j_comps = score(duet, noisy)
    assert len(gt_total) == len(j_total) == len(gt) // 4
    assert j_comps["beat"].mean() < gt_comps["beat"].mean()
    assert j_total.mean() < gt_total.mean()
    lo, hi = make_reward("default").range
    assert lo <= j_total.min() and j_total.max() <= hi and lo <= gt_total.min() and gt_total.max() <= hi


@pytest.mark.parametrize("jitter", sorted(JITTERS))
def test_depth_rule_keeps_ground_truth_beats_and_drops_jitter_minima(duet, jitter):
    gt = duet["follower"]
    noisy = JITTERS[jitter](gt, np.random.default_rng(1))
    depth = BeatTerm().depth
    assert depth > 0
    gt_plain, gt_deep = n_dance_beats(gt, 0.0), n_dance_beats(gt, depth)
    j_plain, j_deep = n_dance_beats(noisy, 0.0), n_dance_beats(noisy, depth)
    assert gt_plain >= SECONDS * BPM / 60 / 2  # the ground truth slows down on (most) beats
    assert gt_deep >= 0.9 * gt_plain  # ... and those are real dips
    assert j_plain >= gt_plain  # the jitter's minima: as many or more ...
    assert j_deep <= 0.1 * j_plain  # ... but shallow
    # Beat reward of the jittery follower under the plain (Bailando++) rule vs the depth rule:
    # the depth rule takes away what its spurious minima earned.
    plain = score(duet, noisy, {"beat": {"weight": 1, "depth": 0.0}})[1]["beat"].mean()
    deep = score(duet, noisy, "beat")[1]["beat"].mean()
    assert deep < plain


@pytest.mark.parametrize("jitter", sorted(JITTERS))
def test_smooth_is_one_on_ground_truth_and_drops_under_jitter(duet, jitter):
    term = make_term("smooth")
    gt = np.array([term(c)[0] for c in episode_contexts(duet["leader"], duet["follower"], duet["beats"])])
    noisy = JITTERS[jitter](duet["follower"], np.random.default_rng(2))
    jit = np.array([term(c)[0] for c in episode_contexts(duet["leader"], noisy, duet["beats"])])
    lo, hi = term.range
    for v in (gt, jit):
        assert v.dtype == np.float32 and ((v >= lo) & (v <= hi)).all()
    assert np.mean(gt == 1.0) > 0.75  # the bound is the ground truth's 95th percentile of jerk
    assert jit.mean() < 0.5 * gt.mean()
    assert (jit < gt).mean() > 0.5
