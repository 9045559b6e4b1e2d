"""agents.sb3.GPTPolicy: stable-baselines3 PPO / A2C on the pretrained follower GPT.

At initialisation its action distribution is the pretrained policy's (FollowerPolicy); a short
PPO or A2C run changes the policy head (and only it: the same split as agents.finetune); SB3's
save/load and the exported GPT give back the same distribution; spaces it cannot read are
refused with the env config that fixes them; rl-zoo3 trains it from the shipped hyperparameter file.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import duet_env  # noqa: F401  (registers DuetAccompany-v0)
from agents.sb3 import GPTPolicy, tokens_space_of
from duet_env import checkpoint
from pretrain.gpt import FollowerPolicy
from pretrain.gpt.policy import load_model

REPO = Path(__file__).resolve().parents[1]
PPO_KW = dict(n_steps=16, batch_size=8, n_epochs=1, learning_rate=1e-3, seed=0, device="cpu")


@pytest.fixture(scope="module")
def sharp_gpt(tmp_path_factory, tiny_gpt):
    """The tiny GPT with heads scaled up: far from uniform, so a wrong stream, position or
    normalisation shows up in the probabilities (an untrained head is almost uniform)."""
    model, config, _ = load_model(str(tiny_gpt))
    with torch.no_grad():
        for head in model.heads:
            head.weight.mul_(40.0)
            head.bias.normal_(0.0, 1.0)
    folder = tmp_path_factory.mktemp("gpt_sharp")
    checkpoint.save(folder, "gpt", model.state_dict(), config)
    return str(folder)


@pytest.fixture(scope="module")
def tokens_env(env_kwargs):
    return gym.make("DuetAccompany-v0", **env_kwargs)


@pytest.fixture(scope="module")
def env_observations(tokens_env):
    """A batch of real "tokens" observations: the episode start (all-pad history) and later steps."""
    env = tokens_env
    obs, _ = env.reset(seed=1)
    env.action_space.seed(1)
    seen = [obs]
    for _ in range(10):
        obs, _, term, _, _ = env.step(env.action_space.sample())
        seen.append(obs)
        if term:
            obs, _ = env.reset()
    return {k: np.stack([o[k] for o in seen]) for k in seen[0]}


def probs(policy: GPTPolicy, batch: dict) -> list[torch.Tensor]:
    obs, _ = policy.obs_to_tensor(batch)
    with torch.no_grad():
        return [d.probs for d in policy.get_distribution(obs).distribution]


def reference_probs(gpt: str, batch: dict) -> list[torch.Tensor]:
    return [torch.softmax(lg, -1) for lg in FollowerPolicy.load(gpt).act(batch)]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 1e-5) -> None:
    assert len(a) == len(b) == 5
    for x, y in zip(a, b):
        assert x.shape == y.shape
        assert (x - y).abs().max().item() <= atol


def max_change(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def test_initial_distribution_is_the_follower_policy_on_env_observations(tokens_env, env_observations, sharp_gpt):
    from stable_baselines3 import PPO

    model = PPO(GPTPolicy, tokens_env, policy_kwargs={"gpt": sharp_gpt}, **PPO_KW)
    ours = probs(model.policy, env_observations)
    ref = reference_probs(sharp_gpt, env_observations)
    assert_same(ours, ref)
    assert max(p.max().item() for p in ref) > 0.5  # the check is not between two uniform distributions
    # forward: SB3's rollout step — log π of the actions is the sum over streams, values are (B, 1)
    obs, _ = model.policy.obs_to_tensor(env_observations)
    with torch.no_grad():
        actions, values, logp = model.policy(obs, deterministic=True)
    assert actions.shape == (len(ref[0]), 5) and values.shape == (len(ref[0]), 1)
    want = sum(torch.log(p.gather(-1, actions[:, i:i + 1]).squeeze(-1)) for i, p in enumerate(ref))
    assert torch.allclose(logp, want, atol=1e-4)
    greedy, _ = model.predict(env_observations, deterministic=True)
    assert np.array_equal(greedy, FollowerPolicy.load(sharp_gpt).sample(env_observations, mode="greedy"))


def test_shipped_gpt_loads_by_name_with_the_same_distribution():
    """policy_kwargs={"gpt": "default"}: the shipped GPT, observations of its window and codebooks."""
    ref_policy = FollowerPolicy.load("default")
    space = tokens_space_of(ref_policy.config)
    actions = gym.spaces.MultiDiscrete(ref_policy.codebook_sizes)
    policy = GPTPolicy(space, actions, lambda _: 1e-5, gpt="default")
    space.seed(0)
    rng = np.random.default_rng(0)
    samples = [space.sample() for _ in range(3)]
    batch = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    batch["music"] = rng.normal(0.0, 3.0, batch["music"].shape).astype(np.float32)  # feature-like scale
    assert_same(probs(policy, batch), reference_probs("default", batch))
    policy.set_training_mode(True)  # as during PPO's updates: the shipped GPT's dropout (0.1) stays off
    assert policy.gpt.config["dropout"] > 0
    assert_same(probs(policy, batch), reference_probs("default", batch))


@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_short_run_changes_the_policy_head_and_only_it(tokens_env, env_observations, sharp_gpt, algo):
    import stable_baselines3

    kw = dict(PPO_KW) if algo == "PPO" else dict(n_steps=8, learning_rate=1e-3, seed=0, device="cpu")
    model = getattr(stable_baselines3, algo)(GPTPolicy, tokens_env, policy_kwargs={"gpt": sharp_gpt}, **kw)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    p0 = probs(model.policy, env_observations)
    model.learn(16)
    after = model.policy.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    split = model.policy.split
    head_prefixes = tuple(f"gpt.blocks.{b}." for b in range(split, model.policy.gpt.n_blocks)) + ("gpt.ln_f.", "gpt.heads.")
    head = {k for k in before if k.startswith(head_prefixes)}
    assert any(k.startswith("critic.") for k in changed)
    assert changed - {k for k in before if k.startswith("critic.")} <= head  # the state network is frozen
    assert len(changed & head) > 0
    assert max_change(probs(model.policy, env_observations), p0) > 1e-4


def test_save_load_and_exported_gpt_keep_the_distribution(tokens_env, env_observations, sharp_gpt, tmp_path):
    from stable_baselines3 import PPO

    model = PPO(GPTPolicy, tokens_env, policy_kwargs={"gpt": sharp_gpt}, **PPO_KW)
    model.learn(16)
    trained = probs(model.policy, env_observations)
    assert max_change(trained, reference_probs(sharp_gpt, env_observations)) > 1e-4  # it moved
    obs, _ = model.policy.obs_to_tensor(env_observations)
    values = model.policy.predict_values(obs)

    model.save(tmp_path / "ppo.zip")
    loaded = PPO.load(tmp_path / "ppo.zip", device="cpu")
    assert isinstance(loaded.policy, GPTPolicy)
    assert_same(probs(loaded.policy, env_observations), trained, atol=1e-7)
    assert torch.allclose(loaded.policy.predict_values(obs), values, atol=1e-6)

    model.policy.save(str(tmp_path / "policy.pth"))  # SB3's policy-only save
    assert_same(probs(GPTPolicy.load(str(tmp_path / "policy.pth"), device="cpu"), env_observations), trained, atol=1e-7)

    exported = model.policy.export_gpt(tmp_path / "run")  # agents.evaluate / FollowerPolicy read this
    assert_same(reference_probs(exported, env_observations), trained)


def test_refuses_spaces_it_cannot_read(env_kwargs, tokens_env, sharp_gpt):
    from stable_baselines3 import PPO

    features = gym.make("DuetAccompany-v0", **{**env_kwargs, "observation": "features"})
    with pytest.raises(ValueError, match=r'"tokens" observation.*MlpPolicy'):
        PPO(GPTPolicy, features, policy_kwargs={"gpt": sharp_gpt}, device="cpu")
    shorter = gym.make("DuetAccompany-v0", **{**env_kwargs, "history_tokens": 3})
    with pytest.raises(ValueError, match="history_tokens=4, lookahead_tokens=2"):
        PPO(GPTPolicy, shorter, policy_kwargs={"gpt": sharp_gpt}, device="cpu")
    with pytest.raises(ValueError, match="history_tokens=16, lookahead_tokens=8"):  # the shipped GPT's window
        PPO(GPTPolicy, tokens_env, policy_kwargs={"gpt": "default"}, device="cpu")
    config = FollowerPolicy.load(sharp_gpt).config
    other_codebooks = tokens_space_of({**config, "codebook_sizes": {k: v + 1 for k, v in config["codebook_sizes"].items()}})
    with pytest.raises(ValueError, match="tokenizer the GPT was trained with"):
        GPTPolicy(other_codebooks, tokens_env.action_space, lambda _: 1e-4, gpt=sharp_gpt)
    with pytest.raises(ValueError, match="action space"):
        GPTPolicy(tokens_env.observation_space, gym.spaces.MultiDiscrete([3, 3, 3, 3, 3]), lambda _: 1e-4, gpt=sharp_gpt)
    with pytest.raises(ValueError, match="gSDE"):
        PPO(GPTPolicy, tokens_env, use_sde=True, policy_kwargs={"gpt": sharp_gpt}, device="cpu")
    with pytest.raises(checkpoint.CheckpointError):
        GPTPolicy(tokens_env.observation_space, tokens_env.action_space, lambda _: 1e-4, gpt=str(REPO / "no_such_gpt"))


@pytest.mark.skipif(importlib.util.find_spec("rl_zoo3") is None,
                    reason='rl_zoo3 is not installed (pip install -e ".[bench]")')
def test_rl_zoo3_trains_gpt_policy_from_the_shipped_hyperparameters(env_kwargs, sharp_gpt, tmp_path):
    """The documented command (docs/benchmarks.md), on the tiny env and GPT, for 256 steps."""
    from stable_baselines3 import PPO

    env_args = [f"{k}:{v!r}" for k, v in env_kwargs.items()]
    cmd = [sys.executable, "-m", "rl_zoo3.train", "--algo", "ppo", "--env", "DuetAccompany-v0",
           "--gym-packages", "duet_env", "--conf-file", str(REPO / "agents/hyperparams/ppo.yml"),
           "-n", "256", "-f", str(tmp_path / "logs"), "--seed", "0", "--eval-freq", "-1", "--num-threads", "1",
           "--env-kwargs", *env_args,
           "--hyperparams", f"policy_kwargs:dict(gpt={sharp_gpt!r})", "n_envs:2", "n_steps:64", "batch_size:64",
           "n_epochs:1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    zips = sorted((tmp_path / "logs" / "ppo").glob("DuetAccompany-v0_*/DuetAccompany-v0.zip"))
    assert len(zips) == 1, out.stdout[-2000:]
    model = PPO.load(zips[0], device="cpu")
    assert isinstance(model.policy, GPTPolicy) and model.num_timesteps >= 256
    start, _, _ = load_model(sharp_gpt)
    assert not torch.equal(model.policy.gpt.heads[0].weight, start.heads[0].weight)  # it trained
    assert torch.equal(model.policy.gpt.blocks[0].qkv.weight, start.blocks[0].qkv.weight)  # the state net did not
