"""DuetAccompany-v0: spec conformance, determinism, reward plumbing, errors (suite tests in the
spirit of dm_control's and Minigrid's)."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

import duet_env
from duet_env.tokens import FOLLOWER_STREAMS


def _rollout(env, seed, n):
    obs, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    out = [info["clip"], info["start"]]
    for _ in range(n):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        out.append((r, tuple(sorted(info["reward_components"].items()))))
        if term:
            break
    return out, obs


@pytest.mark.parametrize("observation", ["tokens", "features"])
def test_passes_gymnasium_and_sb3_checkers_without_warnings(env_kwargs, observation):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    env = gym.make("DuetAccompany-v0", observation=observation, **env_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check(env.unwrapped, skip_render_check=True)
        sb3_check(env.unwrapped, warn=True)


def test_registration_is_idempotent_and_works_by_module_prefix(env_kwargs):
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(duet_env)  # registering twice must not warn about re-registration
    code = ("import gymnasium as gym, json, sys; "
            "env = gym.make('duet_env:DuetAccompany-v0', **json.loads(sys.argv[1])); "
            "o, i = env.reset(seed=0); print(env.action_space.nvec.tolist())")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(env_kwargs)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == gym.make("DuetAccompany-v0", **env_kwargs).action_space.nvec.tolist()


def test_action_is_the_follower_token_tuple_and_obs_layout(env_kwargs):
    env = gym.make("DuetAccompany-v0", **env_kwargs)
    tok = env.unwrapped.core.tokenizer
    assert env.action_space.nvec.tolist() == [tok.codebook_sizes[s] for s in FOLLOWER_STREAMS]
    obs, info = env.reset(seed=3)
    h, a = env_kwargs["history_tokens"], env_kwargs["lookahead_tokens"]
    w = h + 1 + a
    assert obs["music"].shape == (w * 216,) and obs["leader"].shape == (w * 4,) and obs["follower"].shape == (h * 5,)
    pad = env.action_space.nvec
    assert (obs["follower"].reshape(h, 5) == pad).all()  # no history yet: all pad ids
    clip = env.unwrapped.core.clips[env.unwrapped.core.clip_index[0]]
    start = info["start"]
    # the current position (index h) of the leader window is the clip's leader token at the start
    assert (obs["leader"].reshape(w, 4)[h] == clip.leader_tokens[start]).all()
    assert (obs["leader"].reshape(w, 4)[:h] == [tok.codebook_sizes[s] for s in ("up", "down", "lhand", "rhand")]).all()
    actions = [env.action_space.sample() for _ in range(3)]
    for act in actions:
        obs, *_ = env.step(act)
    assert (obs["follower"].reshape(h, 5)[-3:] == np.array(actions)).all()
    assert (obs["leader"].reshape(w, 4)[h] == clip.leader_tokens[start + 3]).all()


def test_seeded_rollouts_reproduce_and_seeds_differ(env_kwargs):
    e1 = gym.make("DuetAccompany-v0", **env_kwargs)
    e2 = gym.make("DuetAccompany-v0", **env_kwargs)
    r1, o1 = _rollout(e1, 7, 8)
    r2, o2 = _rollout(e2, 7, 8)
    assert r1 == r2
    assert all(np.array_equal(o1[k], o2[k]) for k in o1)
    starts = {tuple(_rollout(e1, s, 0)[0]) for s in range(8)}
    assert len(starts) > 1  # different seeds pick different clips / starts


def test_episode_ends_when_the_clip_ends_and_reward_components_sum(env_kwargs):
    env = gym.make("DuetAccompany-v0", reward={"beat": 2.0, "facing": 1.0, "distance": 0.5}, **env_kwargs)
    env.reset(seed=0)
    n, term = 0, False
    while not term:
        _, r, term, trunc, info = env.step(env.action_space.sample())
        n += 1
        assert not trunc
        comp = info["reward_components"]
        assert set(comp) == {"beat", "facing", "distance"}
        assert r == pytest.approx(2.0 * comp["beat"] + comp["facing"] + 0.5 * comp["distance"], abs=1e-5)
    assert n == env_kwargs["episode_tokens"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.action_space.sample())


def test_follower_is_placed_relative_to_the_leader(env_kwargs):
    env = gym.make("DuetAccompany-v0", **env_kwargs)
    env.reset(seed=1)
    env.step(env.action_space.sample())
    core = env.unwrapped.core
    follower = env.unwrapped.follower_motion            # (4, 55, 3)
    leader = core.leader_context()[0, -4:]              # the same 4 frames of the leader
    gap = np.linalg.norm(follower[:, 0, [0, 2]] - leader[:, 0, [0, 2]], axis=-1)
    assert np.isfinite(follower).all() and (gap < 5.0).all()  # decoded offsets stay near the leader


def test_reward_swaps_by_set_reward_reset_option_and_env_method(env_kwargs):
    from stable_baselines3.common.env_util import make_vec_env

    env = gym.make("DuetAccompany-v0", reward="beat", **env_kwargs)
    _, info = env.reset(seed=0)
    assert list(info["reward_components"]) == ["beat"]
    env.unwrapped.set_reward({"facing": 1.0, "contact": 2.0})
    _, info = env.reset()
    assert set(info["reward_components"]) == {"facing", "contact"}
    _, info = env.reset(options={"reward": "distance"})
    assert list(info["reward_components"]) == ["distance"]
    venv = make_vec_env("DuetAccompany-v0", n_envs=2, env_kwargs=dict(observation="features", **env_kwargs))
    venv.env_method("set_reward", "facing")
    venv.reset()
    _, _, _, infos = venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
    assert all(list(i["reward_components"]) == ["facing"] for i in infos)
    with pytest.raises(ValueError, match="beat"):  # unknown names list the known ones
        env.unwrapped.set_reward("no_such_term")


def test_bad_actions_and_options_get_clear_errors(env_kwargs):
    env = gym.make("DuetAccompany-v0", **env_kwargs).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(4, np.int64))
    bad = np.zeros(5, np.int64)
    bad[1] = env.action_space.nvec[1]
    with pytest.raises(ValueError, match="down"):
        env.step(bad)
    with pytest.raises(ValueError, match="unknown clip"):
        env.reset(options={"clip": "Nope_01_1"})
    with pytest.raises(ValueError, match="unknown DuetAccompany config"):
        gym.make("DuetAccompany-v0", colour="red", **env_kwargs)
    with pytest.raises(ValueError, match="known"):
        gym.make("DuetAccompany-v0", reward={"beat": 1, "bogus": 2}, **env_kwargs)


def test_a_decoder_producing_nan_is_named_and_the_state_kept(env_kwargs):
    """The core builds its reward context unchecked, so it checks the decoded joints itself."""
    env = gym.make("DuetAccompany-v0", **env_kwargs).unwrapped
    env.reset(seed=0)
    env.step(np.zeros(5, np.int64))
    core = env.core
    good_step, t_before = core.decoder.step, core.t.copy()

    def nan_step(*args):
        out = dict(good_step(*args))
        out["joints"] = out["joints"] * float("nan")
        return out

    core.decoder.step = nan_step
    with pytest.raises(FloatingPointError, match="decoder produced NaN"):
        env.step(np.zeros(5, np.int64))
    np.testing.assert_array_equal(core.t, t_before)  # the episode did not advance
    assert np.isfinite(core.follower_joints_hist).all()


def test_reset_to_a_named_clip_and_start(env_kwargs):
    env = gym.make("DuetAccompany-v0", **env_kwargs)
    name = env.unwrapped.core.clips[0].name
    _, info = env.reset(options={"clip": name, "start": 5})
    assert info["clip"] == name and info["start"] == 5
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"clip": name, "start": 10**6})


def test_spec_round_trips_through_json_and_env_pickles(env_kwargs):
    env = gym.make("DuetAccompany-v0", observation="features", **env_kwargs)
    spec = gym.envs.registration.EnvSpec.from_json(env.spec.to_json())
    assert spec.kwargs == env.spec.kwargs
    env2 = gym.make(spec)
    r1, _ = _rollout(env, 5, 4)
    r2, _ = _rollout(env2, 5, 4)
    assert r1 == r2
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    r3, _ = _rollout(clone, 5, 4)
    assert r3 == r1


def test_vector_env_matches_single_envs(env_kwargs):
    venv = gym.make_vec("DuetAccompany-v0", num_envs=3, **env_kwargs)
    from duet_env.vector import DuetVectorEnv

    assert isinstance(venv.unwrapped, DuetVectorEnv)
    venv.reset(seed=0)
    core = venv.unwrapped.core
    clips, starts = core.clip_index.copy(), core.start.copy()
    rng = np.random.default_rng(0)
    acts = [rng.integers(0, core.nvec, size=(3, 5)) for _ in range(6)]
    vec_rewards = [venv.step(a)[1] for a in acts]
    for i in range(3):
        env = gym.make("DuetAccompany-v0", **env_kwargs)
        env.reset(options={"clip": int(clips[i]), "start": int(starts[i])})
        single = [env.step(a[i])[1] for a in acts]
        assert np.allclose(single, [v[i] for v in vec_rewards], atol=1e-4)


def test_single_and_vector_env_info_have_the_same_keys(env_kwargs):
    from duet_env.env import INFO_KEYS

    env = gym.make("DuetAccompany-v0", **env_kwargs)
    venv = gym.make_vec("DuetAccompany-v0", num_envs=2, **env_kwargs)
    _, info = env.reset(seed=0)
    _, infos = venv.reset(seed=0)
    assert set(info) == set(infos) == set(INFO_KEYS)
    _, _, _, _, info = env.step(env.action_space.sample())
    _, _, _, _, infos = venv.step(venv.action_space.sample())
    assert set(info) == set(infos) == set(INFO_KEYS)
    assert info["step"] == 1 and infos["step"].tolist() == [1, 1]
    assert infos["clip"][0] == venv.unwrapped.core.clips[infos["clip_index"][0]].name
    assert list(info["reward_components"]) == list(infos["reward_components"]) == env.unwrapped.reward_names


def test_vector_env_autoresets_in_the_same_step(env_kwargs):
    venv = gym.make_vec("DuetAccompany-v0", num_envs=2, **env_kwargs)
    venv.reset(seed=0)
    for _ in range(env_kwargs["episode_tokens"]):
        obs, r, term, trunc, infos = venv.step(venv.action_space.sample())
    assert term.all() and "final_obs" in infos
    assert (venv.unwrapped.core.t == 0).all()  # already in the next episode
    assert set(infos["final_info"][0]) == set(duet_env.env.INFO_KEYS)
    pad = venv.unwrapped.core.nvec
    assert (obs["follower"].reshape(2, -1, 5) == pad).all()


def test_user_music_and_leader_lengths_must_match(tmp_path, tiny_synth, tiny_tokenizer):
    import soundfile as sf

    from duet_env.data.dd100 import list_clips

    files = list_clips(tiny_synth)[0]
    y, sr = sf.read(files.music)
    short = tmp_path / "short.wav"
    sf.write(short, y[: sr * 5], sr)  # 5 s of music against a ~45 s leader
    with pytest.raises(ValueError, match="differ"):
        gym.make("DuetAccompany-v0", music_file=str(short), leader_file=str(files.leader),
                 tokenizer=str(tiny_tokenizer))
    env = gym.make("DuetAccompany-v0", music_file=str(files.music), leader_file=str(files.leader),
                   tokenizer=str(tiny_tokenizer), episode_tokens=0, genre="Waltz")
    _, info = env.reset(seed=0)
    assert info["start"] == 0


def test_rgb_array_render_draws_both_dancers(env_kwargs):
    env = gym.make("DuetAccompany-v0", render_mode="rgb_array", **env_kwargs)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    from duet_env.render import FOLLOWER_COLOUR, LEADER_COLOUR

    for colour in (LEADER_COLOUR, FOLLOWER_COLOUR):
        assert (np.abs(frame.astype(int) - colour).sum(-1) < 30).sum() > 20


def test_sb3_ppo_trains_on_features_with_subproc_vec_env(env_kwargs):
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv

    # spawned workers start fresh: the "module:" prefix imports duet_env (and registers) there
    venv = make_vec_env("duet_env:DuetAccompany-v0", n_envs=2, vec_env_cls=SubprocVecEnv,
                        vec_env_kwargs={"start_method": "spawn"},
                        env_kwargs=dict(observation="features", reward="facing", **env_kwargs))
    try:
        model = PPO("MlpPolicy", venv, n_steps=256, batch_size=128, n_epochs=2, seed=0, device="cpu")
        model.learn(total_timesteps=1024)
        assert model.num_timesteps >= 1024
        assert np.isfinite(model.logger.name_to_value["train/loss"])
    finally:
        venv.close()
