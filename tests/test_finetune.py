"""agents.finetune on tiny configurations: losses on hand-computed inputs, replay memory
semantics, observation rebuilding, resume, and that a reward for one token raises its probability."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from agents import finetune as ft


def test_td_error_and_losses_on_hand_computed_inputs():
    values = torch.tensor([[1.0, 2.0, 0.5]])
    rewards = torch.tensor([[0.5, -1.0, 2.0]])
    # δ0 = 0.5 + 2 − 1 = 1.5 ; δ1 = −1 + 0.5 − 2 = −2.5 ; δ2 = 2 + 0 − 0.5 = 1.5 (V = 0 after the end)
    delta = ft.td_errors(values, rewards)
    assert torch.allclose(delta, torch.tensor([[1.5, -2.5, 1.5]]))
    assert ft.critic_loss(values, rewards).item() == pytest.approx((1.5**2 + 2.5**2 + 1.5**2) / 3)
    logp = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    loss = ft.actor_loss(logp, delta.reshape(-1), rho=torch.tensor([1.0, 0.5, 1.0]))
    assert loss.item() == pytest.approx(-(1.5 * -1.0 + 0.5 * -2.5 * -2.0 + 1.5 * -0.5) / 3)
    loss.backward()  # gradient flows to log π only: d/dlogp = −ρδ/3
    assert torch.allclose(logp.grad, torch.tensor([-1.5, 1.25, -1.5]) / 3)


def test_reward_target_loss_matches_duolando_formula():
    logits = [torch.log(torch.tensor([[0.7, 0.3], [0.2, 0.8]]))]
    actions = torch.tensor([[0], [1]])
    rewards = torch.tensor([[1.0, -1.0]])  # one episode of two steps
    r = (rewards - rewards.mean()) / (rewards.std() + 1e-6)
    big_r = torch.stack([r[0, 0] + 0.2 * r[0, 1], r[0, 1]])
    y = torch.sigmoid(3 * big_r)
    p = torch.tensor([0.7, 0.8])
    want = (-torch.log(1.001 - (p - y).abs())).mean()
    assert ft.reward_target_loss(logits, actions, rewards).item() == pytest.approx(want.item(), rel=1e-5)


def test_replay_memory_keeps_everything_and_samples_with_replacement(tmp_path):
    mem = ft.EpisodeMemory()
    for r in range(3):
        mem.add({"clip": np.full(4, r), "start": np.arange(4), "music_clip": np.full(4, r),
                 "music_start": np.arange(4), "round": np.full(4, r),
                 "actions": np.zeros((4, 2, 5), np.int64), "rewards": np.full((4, 2), r, np.float32),
                 "logp_mu": np.zeros((4, 2), np.float32)})
    assert len(mem) == 12  # unbounded: the first round's episodes are still there
    rng = np.random.default_rng(0)
    s = mem.sample(3000, rng)
    counts = np.bincount(s["round"], minlength=3)
    assert s["actions"].shape == (3000, 2, 5)
    assert (np.abs(counts / 3000 - 1 / 3) < 0.05).all()  # uniform over all stored episodes
    small = mem.sample(100, np.random.default_rng(1))
    idx_pairs = set(zip(small["round"].tolist(), small["start"].tolist()))
    assert len(idx_pairs) <= 12 < 100  # with replacement: 100 draws from 12 episodes repeat
    mem.save(tmp_path / "m.npz")
    back = ft.EpisodeMemory.load(tmp_path / "m.npz")
    assert len(back) == 12 and np.array_equal(np.stack(back.data["rewards"]), np.stack(mem.data["rewards"]))


@pytest.fixture(scope="module")
def tiny_run_parts(tiny_synth, tiny_tokenizer, tiny_gpt):
    from duet_env.core import DuetCore
    from duet_env.data.dd100 import load_split
    from duet_env.episodes import episode_clips
    from duet_env.tokenizer import Tokenizer
    from pretrain.gpt.policy import load_model
    from rewards import make_reward

    tok = Tokenizer.load(str(tiny_tokenizer))
    model, _, _ = load_model(str(tiny_gpt))
    bank = episode_clips(load_split(tiny_synth, "train", progress=False), tok)
    cfg = ft.FinetuneConfig(num_envs=3, episode_tokens=6, device="cpu", threads=1)
    core = DuetCore(bank, tok, cfg.num_envs, model.history, model.lookahead, cfg.episode_tokens,
                    make_reward("default"))
    return cfg, core, model


@pytest.mark.parametrize("leader_turn", [False, True])
def test_rebuilt_observations_equal_what_the_policy_saw(tiny_run_parts, monkeypatch, leader_turn):
    """The update's rebuilt windows are exactly the rollout's inputs — for a GPT that reads the
    leader's turn too (appended to the music, also when the music is another clip's)."""
    from pretrain.gpt.model import FollowerGPT

    cfg, core, model = tiny_run_parts
    if leader_turn:
        model = FollowerGPT({**model.config, "leader_turn": True}).eval()
    learner = ft.Learner(model, cfg, torch.device("cpu"))
    seen = []
    orig = ft.FollowerStream.logits  # the rollout's (KV-cached) policy

    def spy(self, music, leader, follower, restart=None):
        seen.append((music.clone(), leader.clone(), follower.clone()))
        return orig(self, music, leader, follower, restart)

    monkeypatch.setattr(ft.FollowerStream, "logits", spy)
    ep = ft.collect(learner, core, cfg, np.random.default_rng(0), torch.Generator().manual_seed(0), 0, ood_share=0.5)
    mus, lead, fol = ft.episode_windows(core.clips, ep, core.history, core.lookahead, core.leader_pad, core.follower_pad,
                                        leader_turn=core.clip_leader_turn if leader_turn else None)
    n, e = ep["actions"].shape[:2]
    assert len(seen) == e and mus.shape[-1] == 216 + 4 * leader_turn
    if leader_turn:  # the turn is the leader's own, from the clip's whole-sequence heading
        assert np.abs(mus[..., 216:]).max() > 0
    for t, (m, l, f) in enumerate(seen):  # seen[t] is the batch of all envs at step t
        for i in range(n):
            assert np.array_equal(mus[i * e + t], m[i].numpy())
            assert np.array_equal(lead[i * e + t], l[i].numpy())
            assert np.array_equal(fol[i * e + t], f[i].numpy())
    assert (ep["logp_mu"] <= 0).all() and np.isfinite(ep["rewards"]).all()


def test_episode_sequences_score_every_step_as_its_window(tiny_run_parts):
    """A streaming GPT's update scores each episode in one pass (episode_windows(sequences=True));
    its logits, reference logits and critic values equal the per-step windows', and the rollout's
    KV-cached sampling log-probs are those of the same policy."""
    cfg, core, model = tiny_run_parts
    assert model.streaming
    learner = ft.Learner(model, cfg, torch.device("cpu"))
    with torch.no_grad():  # a non-trivial policy head and critic
        for p in [*learner.model.parameters(), *learner.critic.parameters()]:
            p.add_(0.2 * torch.randn_like(p))
    ep = ft.collect(learner, core, cfg, np.random.default_rng(1), torch.Generator().manual_seed(1), 0, 0.0)
    n, e = ep["actions"].shape[:2]
    args = (core.clips, ep, core.history, core.lookahead, core.leader_pad, core.follower_pad)
    win = [torch.from_numpy(x) for x in ft.episode_windows(*args)]
    seq = [torch.from_numpy(x) for x in ft.episode_windows(*args, sequences=True)]
    assert seq[2].shape[:2] == (n, core.history - 1 + e)
    with torch.no_grad():
        s_win, s_seq = learner.state(*win), learner.state(*seq)
        for a, b in zip(learner.logits(s_win), learner.logits(s_seq, e)):
            assert torch.allclose(a, b, atol=1e-5)
        for a, b in zip(learner.ref_logits(s_win), learner.ref_logits(s_seq, e)):
            assert torch.allclose(a, b, atol=1e-5)
        assert torch.allclose(learner.critic(s_win), learner.critic(s_seq, e), atol=1e-5)
        actions = torch.from_numpy(ep["actions"].reshape(-1, 5))
        logits = [lg / cfg.temperature for lg in learner.logits(s_seq, e)]
        logp = ft.log_prob_taken(logits, actions).view(n, e).numpy()
    assert np.allclose(logp, ep["logp_mu"], atol=1e-4)


def _cfg(tiny_synth, tiny_tokenizer, tiny_gpt, **kw):
    base = dict(data=str(tiny_synth), tokenizer=str(tiny_tokenizer), policy=str(tiny_gpt), num_envs=4,
                episode_tokens=6, steps=4 * 6 * 2, minibatch=4, actor_iters=1, critic_iters=1, eval_clips=2,
                device="cpu", threads=1)
    base.update(kw)
    return ft.FinetuneConfig(**base)


@pytest.mark.parametrize("algo", ["offpolicy", "ac"])
def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, tiny_synth, tiny_tokenizer, tiny_gpt, algo):
    from safetensors.torch import load_file

    cfg = _cfg(tiny_synth, tiny_tokenizer, tiny_gpt, algo=algo, steps=4 * 6 * 3)
    full = ft.run(cfg, tmp_path / "full", progress=False)
    assert ft.run(cfg, tmp_path / "killed", progress=False, stop_after=2) is None
    with pytest.raises(SystemExit, match="resume"):
        ft.run(cfg, tmp_path / "killed", progress=False)  # no silent overwrite
    resumed = ft.run(cfg, tmp_path / "killed", resume=True, progress=False)
    a = load_file(str(tmp_path / "full" / "checkpoint.safetensors"))
    b = load_file(str(tmp_path / "killed" / "checkpoint.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert full["curve"] == resumed["curve"] and full["after"] == resumed["after"]
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert {"before", "after"} <= set(summary) and "BAS" in summary["after"]
    assert (tmp_path / "killed" / "learning_curve.png").stat().st_size > 1000
    if algo == "offpolicy":
        mem = ft.EpisodeMemory.load(tmp_path / "killed" / "memory.npz")
        assert len(mem) == 3 * cfg.num_envs
    bad = _cfg(tiny_synth, tiny_tokenizer, tiny_gpt, algo=algo, steps=4 * 6 * 3, lr=0.5)
    with pytest.raises(SystemExit, match="lr"):
        ft.run(bad, tmp_path / "killed", resume=True, progress=False)
    if algo == "ac":  # re-scoring the finished run (the exported policy) reproduces its numbers
        again = ft.reevaluate(tmp_path / "killed")
        assert again["after"] == pytest.approx(resumed["after"], rel=1e-5)
        assert again["before"] == pytest.approx(resumed["before"], rel=1e-5)
        assert again["after"]["rule_error_cm"] > 0 and again["ground_truth"]["rule_error_cm"] == 0
        with pytest.raises(SystemExit, match="no finished run"):
            ft.reevaluate(tmp_path / "nothing")


@pytest.mark.parametrize("algo", ["offpolicy", "ac"])
def test_a_reward_for_one_token_raises_its_probability(tmp_path, tiny_run_parts, tiny_synth, tiny_tokenizer,
                                                       tiny_gpt, algo):
    import rewards

    target = 3

    @rewards.register("pays_up_token_3", range=(0.0, 1.0))
    def pays(ctx):
        # the registry is global: other tests may call this term on contexts without tokens
        if ctx.follower_tokens is None:
            return np.zeros(ctx.batch_size, np.float32)
        return (ctx.follower_tokens[:, 0] == target).astype(np.float32)

    cfg = _cfg(tiny_synth, tiny_tokenizer, tiny_gpt, algo=algo, reward="pays_up_token_3", steps=4 * 6 * 12,
               lr=3e-3, kl_coef=0.0)
    ft.run(cfg, tmp_path / "run", progress=False)
    from pretrain.gpt.policy import load_model

    _, core, model0 = tiny_run_parts
    model1, _, _ = load_model(str(tmp_path / "run" / "policy"))
    learner0 = ft.Learner(model0, cfg, torch.device("cpu"))
    ep = ft.collect(learner0, core, cfg, np.random.default_rng(5), torch.Generator().manual_seed(5), 0, 0.0)
    mus, lead, fol = (torch.from_numpy(x) for x in ft.episode_windows(
        core.clips, ep, core.history, core.lookahead, core.leader_pad, core.follower_pad))
    with torch.no_grad():
        p0 = torch.softmax(model0(mus, lead, fol, last_only=True)[0], -1)[:, target].mean().item()
        p1 = torch.softmax(model1(mus, lead, fol, last_only=True)[0], -1)[:, target].mean().item()
    assert p1 > 2 * p0 and p1 > 0.05, (p0, p1)


def test_every_config_field_is_settable_from_the_command_line():
    import dataclasses

    fields = dataclasses.fields(ft.FinetuneConfig)
    argv, want = ["--out", "somewhere", "--resume"], {}
    for f in fields:
        d = f.default
        if "choices" in f.metadata:
            value = [c for c in f.metadata["choices"] if c != d][0]
        elif isinstance(d, bool) or not isinstance(d, (int, float, str)):
            value = {"beat": 2.0}
        elif isinstance(d, (int, float)):
            value = type(d)(d + 3)
        else:
            value = d + "_x"
        want[f.name] = value
        argv += [f"--{f.name.replace('_', '-')}", json.dumps(value) if isinstance(value, dict) else str(value)]
    cfg, out, resume = ft.parse_args(argv)
    assert dataclasses.asdict(cfg) == want and str(out) == "somewhere" and resume
    assert ft.parse_args([])[0] == ft.FinetuneConfig()
    # the reward flag takes a JSON {term: weight} dict (the module docstring's example) or a name
    weights = {"beat": 1, "contact": 1}
    assert ft.parse_args(["--reward", json.dumps(weights)])[0].reward == weights
    assert ft.parse_args(["--reward", "e3d2"])[0].reward == "e3d2"


def test_genre_keeps_one_genres_clips_and_names_bad_ones(tiny_synth, tiny_tokenizer, tiny_gpt):
    from duet_env.data import load_split

    train = load_split(str(tiny_synth), "train", progress=False)
    waltz = ft.clips_of_genre(train, "Waltz", "train", "tiny")
    assert waltz and all(c.genre == "Waltz" for c in waltz)
    assert len(waltz) == sum(c.genre == "Waltz" for c in train)
    assert ft.clips_of_genre(train, "", "train", "tiny") is train
    with pytest.raises(SystemExit, match="unknown genre.*HipHop"):
        ft.clips_of_genre(train, "Salsa", "train", "tiny")
    with pytest.raises(SystemExit, match="no Ballet clip"):
        ft.clips_of_genre([c for c in train if c.genre != "Ballet"], "Ballet", "train", "tiny")
    cfg = _cfg(tiny_synth, tiny_tokenizer, tiny_gpt, genre="Tango", eval_clips=0, eval_tokens=5)
    scored = ft.scored_test_clips(cfg)
    test = load_split(str(tiny_synth), "test", progress=False)
    assert [c.name for c in scored] == [c.name for c in test if c.genre == "Tango"]
    assert all(len(c) == 5 * 4 for c in scored)


def test_a_run_saved_before_a_config_field_existed_resumes(tmp_path, tiny_synth, tiny_tokenizer, tiny_gpt):
    """A field added later (here ``genre``) counts as its default for an older run's config."""
    cfg = _cfg(tiny_synth, tiny_tokenizer, tiny_gpt, algo="ac", steps=4 * 6 * 2)
    assert ft.run(cfg, tmp_path / "run", progress=False, stop_after=1, score=False) is None
    path = tmp_path / "run" / "checkpoint.json"
    saved = json.loads(path.read_text())
    del saved["config"]["genre"]
    path.write_text(json.dumps(saved))
    assert ft.run(cfg, tmp_path / "run", resume=True, progress=False, score=False)["curve"]
    with pytest.raises(SystemExit, match="genre"):  # but a different genre is a different run
        ft.run(dataclasses.replace(cfg, genre="Waltz"), tmp_path / "run", resume=True, progress=False)
