"""benchmarks/music_reliance.py: each condition changes exactly the music the policy hears (and
nothing else), and inside a real rollout the policy is given that music."""

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script

from duet_env.conventions import BEAT_COLUMN, MUSIC_DIM, ONSET_COLUMN, TOKEN_FRAMES


@pytest.fixture(scope="module")
def reliance():
    return load_benchmark_script("music_reliance")


def _music(rows: int = 3, frames: int = 8) -> np.ndarray:
    """Observation music (rows, frames·54) with every value non-zero except one padding frame."""
    rng = np.random.default_rng(0)
    m = rng.uniform(0.5, 2.0, (rows, frames, MUSIC_DIM)).astype(np.float32)
    m[0, -1] = 0.0  # outside the clip
    return m.reshape(rows, -1)


def test_each_condition_changes_only_its_columns(reliance):
    music = _music()
    frames = music.reshape(3, -1, MUSIC_DIM)
    assert np.array_equal(reliance.heard_music(music, "full"), music)

    no_beat = reliance.heard_music(music, "no-beat").reshape(frames.shape)
    assert not no_beat[..., BEAT_COLUMN].any()
    others = np.ones(MUSIC_DIM, bool)
    others[BEAT_COLUMN] = False
    assert np.array_equal(no_beat[..., others], frames[..., others])

    no_rhythm = reliance.heard_music(music, "no-rhythm").reshape(frames.shape)
    assert not no_rhythm[..., [BEAT_COLUMN, ONSET_COLUMN]].any()
    others[ONSET_COLUMN] = False
    assert np.array_equal(no_rhythm[..., others], frames[..., others])

    mean = np.linspace(-1, 1, MUSIC_DIM).astype(np.float32)
    flat = reliance.heard_music(music, "mean-music", mean).reshape(frames.shape)
    assert np.array_equal(flat[0, -1], np.zeros(MUSIC_DIM))  # padding stays padding
    assert np.array_equal(flat[1:], np.broadcast_to(mean, flat[1:].shape))
    assert np.array_equal(flat[0, :-1], np.broadcast_to(mean, flat[0, :-1].shape))

    other = reliance.heard_music(music, "other-song")
    assert np.array_equal(other, music[[1, 2, 0]])
    assert np.array_equal(reliance.heard_music(music, "other-leader"), music)  # the duet changes, not the music
    assert np.array_equal(music, _music())  # the input is never written to


def test_bad_conditions_are_refused(reliance):
    with pytest.raises(ValueError, match="unknown condition"):
        reliance.heard_music(_music(), "silence")
    with pytest.raises(ValueError, match="music_mean"):
        reliance.heard_music(_music(), "mean-music")
    with pytest.raises(ValueError, match="at least 2 clips"):
        reliance.heard_music(_music(rows=1), "other-song")


class _Listener:
    """A stand-in policy that records the music it is given and always picks token 0."""

    def __init__(self, config):
        self.config, self.heard, self.streamed = config, [], False

    def stream(self):
        self.streamed = True
        return self

    def sample(self, observation, mode="greedy", generator=None):
        self.heard.append(np.array(observation["music"], copy=True))
        return np.zeros((len(observation["music"]), 5), np.int64)


@pytest.mark.parametrize("condition", ["no-rhythm", "other-song"])
def test_a_rollout_hears_the_condition_and_scores_the_real_music(reliance, condition, tiny_synth, tiny_tokenizer):
    from agents.rollout import generate_followers
    from duet_env.data import load_split
    from duet_env.env import load_tokenizer

    clips = load_split(str(tiny_synth), "test", progress=False)[:2]
    tok = load_tokenizer(str(tiny_tokenizer), "cpu")
    config = {"history": 4, "lookahead": 2}
    plain, inner = _Listener(config), _Listener(config)
    base = generate_followers(plain, clips, tokenizer=tok, reward="default", progress=False)
    heard = generate_followers(reliance.HearingPolicy(inner, condition), clips, tokenizer=tok, reward="default",
                               progress=False)
    assert inner.streamed  # the wrapped policy's own stream() is used, as for the GPT
    assert len(inner.heard) == len(plain.heard) > 0
    for got, sent in zip(inner.heard, plain.heard):
        np.testing.assert_array_equal(got, reliance.heard_music(sent, condition))
    assert any(not np.array_equal(a, b) for a, b in zip(inner.heard, plain.heard))
    # the same tokens were chosen, so the motion, and the reward scored on the real music, are unchanged
    for a, b in zip(base, heard):
        np.testing.assert_array_equal(a.joints, b.joints)
        assert a.reward == b.reward
    assert plain.heard[0].shape[-1] % (TOKEN_FRAMES * MUSIC_DIM) == 0


def test_other_leader_duets_keep_the_music_and_take_the_next_leader_placed_as_their_own(reliance, tiny_synth):
    from duet_env.data import load_split
    from duet_env.motion import heading_from_joints

    clips = load_split(str(tiny_synth), "test", progress=False)
    assert len(clips) >= 2
    for i, (clip, duet) in enumerate(zip(clips, reliance.with_other_leaders(clips))):
        other = clips[(i + 1) % len(clips)].leader
        n = min(len(clip), len(other))
        assert len(duet) == n
        np.testing.assert_array_equal(duet.music, clip.music[:n])
        np.testing.assert_array_equal(duet.follower.joints, clip.follower.joints[:n])
        np.testing.assert_array_equal(duet.beat_frames, clip.beat_frames[clip.beat_frames < n])
        # the other leader's motion, moved rigidly: same shape every frame, same height, his own path turned and shifted
        got, his = duet.leader.joints.astype(np.float64), other.joints[:n].astype(np.float64)
        for f in (0, n // 2, n - 1):
            np.testing.assert_allclose(np.linalg.norm(got[f] - got[f, :1], axis=-1),
                                       np.linalg.norm(his[f] - his[f, :1], axis=-1), atol=1e-4)
        np.testing.assert_allclose(got[:, 0, 1], his[:, 0, 1], atol=1e-4)
        np.testing.assert_allclose(np.linalg.norm(got[-1, 0, [0, 2]] - got[0, 0, [0, 2]]),
                                   np.linalg.norm(his[-1, 0, [0, 2]] - his[0, 0, [0, 2]]), atol=1e-4)
        # ... starting where this clip's own leader starts, facing his way
        np.testing.assert_allclose(got[0, 0, [0, 2]], clip.leader.joints[0, 0, [0, 2]], atol=1e-4)
        assert heading_from_joints(got[0]) @ heading_from_joints(clip.leader.joints[0].astype(np.float64)) > 1 - 1e-6
    with pytest.raises(ValueError, match="at least 2 clips"):
        reliance.with_other_leaders(clips[:1])


def test_tokens_changed_counts_the_common_length(reliance):
    a = [np.zeros((4, 5), np.int64), np.zeros((3, 5), np.int64)]
    b = [np.zeros((6, 5), np.int64), np.zeros((2, 5), np.int64)]
    b[0][1, 3] = 1  # one of the 4 common decisions of clip 0
    b[1][0] = 2     # one of the 2 of clip 1
    assert reliance.share_changed(a, b) == pytest.approx(2 / 6)
