"""benchmarks/beat_search.py: its beat score prefers a follower whose speed dips on the music's
beats, and its search continues every slot from the kept candidate, so the kept tokens replayed
through the env's rollout give the very motion the search reports."""

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script

from duet_env.conventions import FPS


@pytest.fixture(scope="module")
def beat_search():
    return load_benchmark_script("beat_search")


def _dancer(frames: int, dip_frames: np.ndarray, period: float) -> np.ndarray:
    """Joints (frames, 55, 3): the whole body moving along x, its speed dipping at ``dip_frames``."""
    t = np.arange(frames)
    speed = 1.0 + 0.8 * np.cos(2 * np.pi * (t - dip_frames[0] - period / 2) / period)  # lowest at the dips
    x = np.cumsum(speed) / FPS
    joints = np.zeros((frames, 55, 3))
    joints[..., 0] = x[:, None] + np.linspace(0, 0.5, 55)[None]
    joints[..., 1] = np.linspace(0, 1.7, 55)[None]
    return joints


def test_beat_score_prefers_dips_on_the_beats(beat_search):
    frames, period = 32, 12
    beats = np.array([20])  # inside the scored frames F − 16 … F − 7
    music = np.zeros((2, frames), bool)
    music[:, beats] = True
    on = _dancer(frames, beats, period)
    off = _dancer(frames, beats + period // 2, period)  # dips half a period away from the beat
    score = beat_search.beat_scores(np.stack([on, off]).astype(np.float32), music)
    # exp(−d²/18) with d the frames from the beat to the nearest speed minimum: within a frame
    # for the dancer on the beat (the speed is a difference of positions), 6 frames for the other
    assert score[0] >= np.exp(-1 / 18) - 1e-9
    assert score[1] == pytest.approx(np.exp(-36 / 18), abs=0.02)
    quiet = np.zeros((1, frames), bool)  # no music beat in the window: nothing to score
    assert beat_search.beat_scores(on[None].astype(np.float32), quiet)[0] == 0.0


def test_search_continues_from_the_kept_candidate(beat_search, tiny_synth, tiny_tokenizer, tiny_gpt, monkeypatch):
    from agents.rollout import ReplayPolicy, generate_followers, load_policy
    from duet_env.data import load_split
    from duet_env.data.clip import Clip
    from duet_env.env import load_tokenizer

    c = load_split(str(tiny_synth), "test", progress=False)[0]
    n = 10 * 4
    clip = Clip(c.name, c.genre, c.music[:n], c.leader.slice(0, n), c.follower.slice(0, n))
    tok, pol = load_tokenizer(str(tiny_tokenizer), "cpu"), load_policy(str(tiny_gpt))

    greedy, greedy_tokens, switched = beat_search.generate(pol, tok, clip, 1, 8)
    assert switched == 0.0
    reference = generate_followers(pol, [clip], tokenizer=tok, reward=None, progress=False)[0]
    np.testing.assert_allclose(greedy, reference.joints, atol=1e-6)  # candidates=1 is the published rollout

    # Force the kept candidate to alternate between slots, so every step continues from a copied state.
    calls = iter(range(1000))
    monkeypatch.setattr(beat_search, "beat_scores",
                        lambda joints, music: np.eye(len(joints))[1 + next(calls) % (len(joints) - 1)])
    searched, tokens, switched = beat_search.generate(pol, tok, clip, 3, 8, seed=1)
    assert switched == 1.0
    assert not np.array_equal(tokens, greedy_tokens)  # the sampled candidates were really kept
    replayed = generate_followers(ReplayPolicy([tokens]), [clip], tokenizer=tok, reward=None, progress=False)[0]
    np.testing.assert_allclose(searched, replayed.joints, atol=1e-5)
