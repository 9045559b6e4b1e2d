"""The leader's turn: the yaw rate of the tokenizer's leader frame, which the follower's tokens
live in and the leader's own tokens cannot show (duet_env/tokens.py "leader_turn")."""
import numpy as np
import pytest

from duet_env.conventions import TOKEN_FRAMES
from duet_env.motion import turn_rate


@pytest.mark.parametrize("omega", [2.5, -1.0])
def test_turn_rate_reads_a_steady_turn_across_the_wrap(omega):
    t = np.arange(120) / 30.0
    yaw = 3.0 + omega * t  # passes ±π (the unwrapped angle is differentiated)
    forward = np.stack([np.sin(yaw), np.zeros_like(yaw), np.cos(yaw)], 1)
    assert np.allclose(turn_rate(forward), omega, atol=1e-4)
    assert turn_rate(forward[:1]).tolist() == [0.0]
    with pytest.raises(ValueError, match="shape"):
        turn_rate(forward[:, :2])


def test_the_env_shows_a_spinning_leader_his_turn_rate_and_zero_outside_the_episode():
    from duet_env.core import DuetCore
    from duet_env.data.clip import Clip, Dancer
    from duet_env.episodes import episode_clips
    from duet_env.observations import observation_factory
    from duet_env.tokenizer import Tokenizer
    from rewards import make_reward

    omega, n = 2.0, 160  # rad/s: a spot turn's pace; 160 frames = 40 tokens
    t = np.arange(n) / 30.0
    spin = np.zeros((n, 165), np.float32)
    spin[:, 1] = omega * t  # root orientation: yaw ωt (axis-angle about +y)
    still = np.zeros((n, 165), np.float32)
    transl = np.tile(np.float32([0.0, 0.9, 0.0]), (n, 1))
    clip = Clip("ChaCha_01_01", "ChaCha", np.zeros((n, 54), np.float32), Dancer(spin, transl),
                Dancer(still, transl + np.float32([0.0, 0.0, 0.8])))
    tok = Tokenizer.from_config("tiny")
    h, a = 4, 2
    core = DuetCore(episode_clips([clip], tok), tok, 1, h, a, 20, make_reward("default"))
    obs_type = observation_factory("tokens")
    core.reset_slot(0, 0, 10, 20)  # tokens 10 … 29: far from the clip's ends (the heading's filter edges)
    turn = obs_type.observe(core)["leader_turn"][0].reshape(-1, TOKEN_FRAMES)  # window t−H … t+A at t = 0
    assert np.all(turn[:h] == 0.0)  # before the episode: padding
    assert np.allclose(turn[h:], omega, atol=0.05)
    for _ in range(18):
        core.step(np.zeros(5, np.int64), single=True)
    turn = obs_type.observe(core)["leader_turn"][0].reshape(-1, TOKEN_FRAMES)  # t = 18: t+A is past the episode
    assert np.allclose(turn[:h + 2], omega, atol=0.05) and np.all(turn[h + 2:] == 0.0)
