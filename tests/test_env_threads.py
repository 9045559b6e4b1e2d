"""The env's torch thread setting (config ``torch_threads``): used for its decode, never leaked."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import duet_env  # noqa: F401  (registers the env)
from duet_env.threads import check_torch_threads, torch_threads

USER_THREADS = 3  # neither the env's default (1) nor this 2-core machine's torch default


@pytest.fixture
def user_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(USER_THREADS)
    yield USER_THREADS
    torch.set_num_threads(before)


def _spy_decode(core) -> list[int]:
    """Record torch.get_num_threads() inside every decoder step of ``core``."""
    seen, step = [], core.decoder.step

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return step(*args, **kwargs)

    core.decoder.step = spy
    return seen


@pytest.mark.parametrize("setting, inside", [({}, 1), ({"torch_threads": 2}, 2),
                                             ({"torch_threads": None}, USER_THREADS)])
def test_single_env_decodes_with_its_threads_and_restores_the_users(env_kwargs, user_threads, setting, inside):
    env = gym.make("DuetAccompany-v0", **env_kwargs, **setting)
    seen = _spy_decode(env.unwrapped.core)
    env.reset(seed=0)
    assert torch.get_num_threads() == user_threads
    for _ in range(5):
        env.step(env.action_space.sample())
        assert torch.get_num_threads() == user_threads
    assert seen == [inside] * 5


def test_vector_env_restores_the_users_threads_across_autoreset(env_kwargs, user_threads):
    venv = gym.make_vec("DuetAccompany-v0", num_envs=3, **env_kwargs)
    seen = _spy_decode(venv.unwrapped.core)
    venv.reset(seed=0)
    for _ in range(env_kwargs["episode_tokens"] + 2):  # through an autoreset
        venv.step(venv.action_space.sample())
        assert torch.get_num_threads() == user_threads
    assert set(seen) == {1}


def test_threads_restored_when_the_decode_fails(env_kwargs, user_threads):
    env = gym.make("DuetAccompany-v0", **env_kwargs)
    env.reset(seed=0)

    def broken(*args, **kwargs):
        assert torch.get_num_threads() == 1
        raise RuntimeError("decoder failed")

    env.unwrapped.core.decoder.step = broken
    with pytest.raises(RuntimeError, match="decoder failed"):
        env.step(env.action_space.sample())
    assert torch.get_num_threads() == user_threads


def test_rollouts_do_not_depend_on_the_thread_setting(env_kwargs):
    def rollout(**setting):
        env = gym.make("DuetAccompany-v0", **env_kwargs, **setting)
        env.reset(seed=4)
        env.action_space.seed(4)
        out = [env.step(env.action_space.sample())[1] for _ in range(8)]
        return np.array(out), env.unwrapped.follower_motion

    r1, m1 = rollout()
    r2, m2 = rollout(torch_threads=2)
    np.testing.assert_allclose(r1, r2, atol=1e-5)
    np.testing.assert_allclose(m1, m2, atol=1e-5)


def test_bad_thread_settings_get_clear_errors(env_kwargs):
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="torch_threads"):
            gym.make("DuetAccompany-v0", **env_kwargs, torch_threads=bad)
    assert check_torch_threads(None) is None and check_torch_threads(4) == 4


def test_context_manager_sets_only_when_needed_and_restores(user_threads, monkeypatch):
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    with torch_threads(user_threads):
        assert torch.get_num_threads() == user_threads
    with torch_threads(None):
        pass
    assert calls == []  # already right or not asked: no set_num_threads call at all
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert calls == [1, user_threads] and torch.get_num_threads() == user_threads
