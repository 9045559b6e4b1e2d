"""The learned reward: ranked demonstrations, Bradley–Terry training with resume, held-out
evaluation, the shipped default model and the e3d2 composite."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rewards
from duet_env.skeleton import NUM_JOINTS
from pretrain.reward_model import __main__ as cli
from pretrain.reward_model.demos import DemoSource, NoisyPolicy, demo_sources
from pretrain.reward_model.evaluate import evaluate_demos
from rewards import make_reward
from pretrain.reward_model.train import _comparable_pairs, _sample_pairs, train_reward_model
from rewards.learned import DemoLevel, RewardModelConfig, load_reward_model


def walking_duet(frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two smooth dancers (T, 55, 3): a leader and a follower a metre in front of it."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.3, (NUM_JOINTS, 3)).astype(np.float32)
    t = np.arange(frames)[:, None, None] / 30.0
    leader = base[None] + 0.1 * np.sin(2 * np.pi * 0.8 * t + rng.uniform(0, 6, (1, NUM_JOINTS, 3)))
    follower = leader + np.array([0.0, 0.0, 1.0], np.float32)
    return leader.astype(np.float32), follower.astype(np.float32)


def test_levels_of_two_chains_are_never_compared():
    sources = demo_sources()
    names = [s.level.name for s in sources]
    assert names[:2] == ["ground_truth", "greedy"] and "noise=1" in names and "temperature=1.3" in names
    group = [(None, None, s.level) for s in sources]
    pairs = _comparable_pairs(group)
    for i, j in pairs:
        a, b = sources[i].level, sources[j].level
        assert a.rank < b.rank and (a.chain == b.chain or "" in (a.chain, b.chain))
    # ground truth and greedy above everything; no temperature-vs-noise pair
    assert all((0, j) in pairs for j in range(1, len(sources)))
    assert not any({sources[i].kind, sources[j].kind} == {"noise", "temperature"} for i, j in pairs)
    assert DemoLevel("a", 1.0, "x").comparable(DemoLevel("b", 2.0, "x"))
    assert not DemoLevel("a", 1.0, "x").comparable(DemoLevel("b", 2.0, "y"))


def test_sampled_pairs_put_the_better_level_first():
    leader, follower = walking_duet(48, 0)
    # the follower's offset encodes its level: better (lower rank) = smaller x offset
    group = [(leader, follower + np.array([r, 0, 0], np.float32), DemoLevel(f"r{r}", r)) for r in (0.0, 0.5, 1.0)]
    fb, fw = _sample_pairs([group], 16, 64, np.random.default_rng(0))
    assert fb.shape == fw.shape == (64, 16, 264)
    # leader–follower pelvis distance (columns 0:3 leader, 132:135 follower positions): 1, 1.12, 1.41 m
    assert (pelvis_distance(fb) < pelvis_distance(fw) - 0.1).all()


def pelvis_distance(feats) -> np.ndarray:
    """Mean over frames of the leader–follower pelvis distance in window features (N, W, 264)."""
    d = np.linalg.norm(np.asarray(feats[:, :, 132:135]) - np.asarray(feats[:, :, 0:3]), axis=-1)
    return d.mean(1)


def test_noisy_policy_replaces_tokens_at_rate_epsilon():
    class Constant:
        config = {"history": 4, "lookahead": 2}

        def sample(self, obs, mode="greedy", generator=None):
            return np.zeros((len(obs["follower"]), 5), np.int64)

    obs = {"follower": np.zeros((4000, 20))}
    nvec = np.array([512, 512, 64, 64, 256])
    assert (NoisyPolicy(Constant(), 0.0, nvec, 0).sample(obs) == 0).all()
    half = NoisyPolicy(Constant(), 0.5, nvec, 0).sample(obs)
    changed = (half != 0).mean()
    assert 0.47 < changed < 0.51  # 0.5 × (1 − 1/K) of the tokens differ
    full = NoisyPolicy(Constant(), 1.0, nvec, 0).sample(obs)
    assert (full < nvec).all() and (full != 0).mean() > 0.98


def test_training_resumed_after_a_stop_equals_an_uninterrupted_run(tmp_path):
    demos = [walking_duet(64, s) for s in range(2)]
    kw = dict(noise_levels=(0.0, 0.5, 1.0), hidden=8, batch_size=8, seed=3, progress=False, checkpoint_every=5)
    full, _ = train_reward_model(demos, tmp_path / "full", steps=12, **kw)
    train_reward_model(demos, tmp_path / "part", steps=7, **kw)  # stopped at step 7 (a kill resumes from 5)
    resumed, _ = train_reward_model(demos, tmp_path / "part", steps=12, resume=True, **kw)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(Exception, match="hidden"):
        train_reward_model(demos, tmp_path / "part", steps=12, resume=True, **{**kw, "hidden": 16})


def test_evaluation_counts_wins_per_pair_and_checks_monotonic_falls():
    class NegativeOffset(torch.nn.Module):
        """Scores a window by minus the leader–follower pelvis distance."""
        def forward(self, feats):
            return -torch.from_numpy(pelvis_distance(feats.numpy()))

    class Clip:
        def __init__(self, leader):
            self.leader = type("D", (), {"joints": leader})()
            self.follower = self.leader

    leader, follower = walking_duet(64, 1)
    sources = [DemoSource(DemoLevel("ground_truth", 0.0), "ground_truth"), DemoSource(DemoLevel("greedy", 1.0), "greedy")]
    sources += [DemoSource(DemoLevel(f"noise={e:g}", 1 + e, "noise"), "noise", e) for e in (0.25, 1.0)]
    offsets = {"ground_truth": 0.0, "greedy": 0.1, "noise=0.25": 0.3, "noise=1": 0.2}  # noise=1 out of order
    demos = {n: [follower + np.array([o, 0, 0], np.float32)] for n, o in offsets.items()}
    report = evaluate_demos(NegativeOffset(), RewardModelConfig(window=16), [Clip(leader)], demos, sources,
                            rule_error=False)
    acc = {(p["better"], p["worse"]): p["accuracy"] for p in report["pairwise_accuracy"]}
    assert acc[("ground_truth", "greedy")] == 1.0 and acc[("noise=0.25", "noise=1")] == 0.0
    # gap >= 0.5: (greedy, noise=1) right, (noise=0.25, noise=1) wrong; (greedy, noise=0.25) not counted
    assert report["accuracy_eps_gap_0.5"] == pytest.approx(0.5)
    assert report["monotonic"]["noise"] is False
    rewards_by_level = [r["mean_reward"] for r in report["levels"]]
    assert rewards_by_level[0] > rewards_by_level[1] > rewards_by_level[3] > rewards_by_level[2]


def test_cli_trains_evaluates_and_refuses_to_overwrite(tmp_path, tiny_synth, tiny_tokenizer, tiny_gpt, capsys):
    common = ["--data", str(tiny_synth), "--policy", str(tiny_gpt), "--tokenizer", str(tiny_tokenizer),
              "--demos", str(tmp_path / "demos"), "--clip-tokens", "10", "--threads", "1", "--quiet"]
    out = tmp_path / "rm"
    assert cli.main(common + ["--out", str(out), "--steps", "6", "--hidden", "8", "--batch-size", "8"]) == 0
    model, config = load_reward_model(out)
    assert config.hidden == 8 and config.train["steps"] == 6
    assert {lv["name"] for lv in config.train["levels"]} == {s.level.name for s in demo_sources()}
    report = json.loads((out / "evaluation.json").read_text())
    assert len(report["levels"]) == len(demo_sources()) and report["split"] == "test"
    assert all(0.0 <= p["accuracy"] <= 1.0 and p["windows"] > 0 for p in report["pairwise_accuracy"])
    gt = next(r for r in report["levels"] if r["name"] == "ground_truth")
    assert gt["rule_error_cm"] < next(r for r in report["levels"] if r["name"] == "noise=1")["rule_error_cm"]
    # the demonstrations are cached per level: evaluate reuses the test split's
    cached = sorted(p.name for p in (tmp_path / "demos" / "test").glob("*.npz"))
    assert len(cached) == len(demo_sources())
    assert cli.main(["evaluate", "--checkpoint", str(out), "--json", str(tmp_path / "e.json")] + common) == 0
    assert json.loads((tmp_path / "e.json").read_text())["levels"] == report["levels"]
    # a second training run into the same folder is refused, naming the way out
    assert cli.main(common + ["--out", str(out), "--steps", "6", "--hidden", "8"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_shipped_learned_reward_needs_no_path_and_mixes_with_hand_terms():
    model, config = load_reward_model("default")
    assert config.window == rewards.CONTEXT_FRAMES
    assert make_reward("learned").names == ("learned",)
    mix = make_reward({"learned": 1, "beat": 0.5})
    assert mix.range == (-1.0, 2.0)
    e3d2 = make_reward("e3d2")
    assert set(e3d2.names) == {"learned", "beat", "facing", "contact"} and e3d2.range == (-2.0, 5.0)


def test_shipped_learned_reward_prefers_the_data_to_random_tokens(tiny_synth):
    """The shipped model, on a SynthDuet clip it never saw: the decoded ground-truth tokens earn
    more per step than random tokens (tokenizer = the shipped one)."""
    from agents.rollout import ReplayPolicy, generate_followers
    from duet_env.data import load_split
    from duet_env.env import load_tokenizer
    from duet_env.episodes import episode_clips

    clips = [c.slice(0, 60 * 4) for c in load_split(str(tiny_synth), "test", progress=False)[:2]]
    tok = load_tokenizer("default")
    gt = ReplayPolicy([b.follower_tokens for b in episode_clips(clips, tok, with_follower=True)])
    good = generate_followers(gt, clips, tokenizer=tok, reward="learned", progress=False)
    bad = generate_followers("random", clips, tokenizer=tok, reward="learned", progress=False)
    assert np.mean([o.reward for o in good]) > np.mean([o.reward for o in bad]) + 0.2
