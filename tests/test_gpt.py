"""Follower GPT: no leakage, look-ahead reach, policy API, learning, checkpoints, resume."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from duet_env.tokens import FOLLOWER_STREAMS, window_length
from duet_env import checkpoint
from pretrain.gpt import FollowerGPT, FollowerPolicy, encoder_bands, load_config, with_codebook_sizes
from pretrain.gpt.data import IGNORE, WindowSampler, music_per_token, observation
from pretrain.gpt.evaluate import evaluate_tokens
from pretrain.gpt.train import export_weights, train

SIZES = {"up": 7, "down": 6, "lhand": 5, "rhand": 5, "transl": 4}
K = [SIZES[s] for s in FOLLOWER_STREAMS]



def tiny_config(**train) -> dict:
    cfg = load_config("tiny")
    cfg["train"].update(train)
    return with_codebook_sizes(cfg, SIZES)


def fake_clip(rng: np.random.Generator, n: int, name: str = "c", rule: bool = False) -> dict:
    leader = np.stack([rng.integers(0, SIZES[s], n) for s in FOLLOWER_STREAMS[:4]], 1)
    if rule:  # follower token at t = leader token at t (transl: leader up mod K_transl)
        follower = np.concatenate([leader, leader[:, :1] % SIZES["transl"]], 1)
    else:
        follower = np.stack([rng.integers(0, SIZES[s], n) for s in FOLLOWER_STREAMS], 1)
    music = rng.normal(size=(n, 216)).astype(np.float32)
    turn = rng.normal(size=(n, 4)).astype(np.float32)
    return {"name": name, "music": music, "leader": leader.astype(np.int64), "leader_turn": turn,
            "follower": follower.astype(np.int64)}


@pytest.fixture(scope="module")
def model() -> FollowerGPT:
    torch.manual_seed(0)
    cfg = tiny_config()
    # the first ("window") architecture; the streaming one has its own tests (test_gpt_stream.py)
    cfg["arch"], cfg["history"], cfg["lookahead"], cfg["enc_layers"] = "window", 5, 3, 2
    m = FollowerGPT(cfg).eval()
    with torch.no_grad():  # larger random weights so every path carries a visible signal
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def _inputs(m: FollowerGPT, seed: int = 0, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    w, h = m.window, m.history
    music = torch.randn(batch, w, 216, generator=g)
    leader = torch.stack([torch.randint(0, K[i], (batch, w), generator=g) for i in range(4)], -1)
    follower = torch.stack([torch.randint(0, K[i], (batch, h), generator=g) for i in range(5)], -1)
    return music, leader, follower


def _logits(m, music, leader, follower):
    with torch.no_grad():
        return torch.cat(m(music, leader, follower), -1)[0]  # (L, ΣK)


def test_encoder_bands_sum_to_lookahead():
    assert encoder_bands(8, 2) == [4, 4]
    assert encoder_bands(8, 3) == [3, 3, 2]
    assert encoder_bands(29, 4) == [8, 7, 7, 7]
    assert sum(encoder_bands(2, 5)) == 2


def test_no_leakage_and_real_lookahead(model):
    m = model
    h, a = m.history, m.lookahead
    music, leader, follower = _inputs(m)
    base = _logits(m, music, leader, follower)
    # window position p holds time p; the follower input at p is the token of time p-1.
    # Masked positions get exactly zero attention weight, so "no leakage" is bitwise equality.
    for t in range(h + 1):
        # follower tokens at or after t: history index j holds time j (follower[:, j] = token j)
        if t < h:
            f2 = follower.clone()
            f2[0, t:] = (f2[0, t:] + 1) % torch.tensor(K)
            changed = _logits(m, music, leader, f2)
            assert torch.equal(changed[t], base[t]), f"follower >= {t} leaked into logits at {t}"
            assert not torch.allclose(changed[h], base[h], atol=1e-4)  # but later positions do see it
        # leader / music beyond t + A
        if t + a + 1 < m.window:
            l2, m2 = leader.clone(), music.clone()
            l2[0, t + a + 1:] = (l2[0, t + a + 1:] + 1) % torch.tensor(K[:4])
            m2[0, t + a + 1:] += 3.0
            changed = _logits(m, m2, l2, follower)
            assert torch.equal(changed[t], base[t]), f"future beyond t+A leaked into logits at {t}"
        # leader at exactly t + A (and music at t + A) must matter
        l3 = leader.clone()
        l3[0, t + a] = (l3[0, t + a] + 1) % torch.tensor(K[:4])
        assert (_logits(m, music, l3, follower)[t] - base[t]).abs().max() > 1e-4
        m3 = music.clone()
        m3[0, t + a] += 100.0
        # music reaches the logits through LayerNorms and near-uniform random attention, a
        # weak path at init; any change is meaningful since a cut path is bitwise equal
        assert (_logits(m, m3, leader, follower)[t] - base[t]).abs().max() > 1e-7


def test_split_forward_equals_full(model):
    music, leader, follower = _inputs(model, seed=1, batch=3)
    with torch.no_grad():
        full = model(music, leader, follower)
        split = model.head(model.state(music, leader, follower, n_blocks=1), start_block=1)
    for x, y in zip(full, split):
        assert torch.allclose(x, y, atol=1e-6)


def test_observation_layout_matches_windows():
    rng = np.random.default_rng(0)
    clip = fake_clip(rng, 6)
    h, a = 4, 2
    obs = observation(clip, 0, SIZES, h, a)
    w = window_length(h, a)
    assert obs["music"].shape == (w, 216) and obs["leader"].shape == (w * 4,) and obs["follower"].shape == (h * 5,)
    assert np.all(obs["music"][:h] == 0) and np.allclose(obs["music"][h], clip["music"][0])
    assert obs["leader"].reshape(w, 4)[:h].tolist() == [[7, 6, 5, 5]] * h
    assert obs["follower"].reshape(h, 5).tolist() == [[7, 6, 5, 5, 4]] * h
    last = observation(clip, 5, SIZES, h, a)  # clip end: look-ahead beyond N is padding
    assert np.all(last["music"][h + 1:] == 0)
    assert last["leader"].reshape(w, 4)[h + 1:].tolist() == [[7, 6, 5, 5]] * a
    assert last["follower"].reshape(h, 5).tolist() == clip["follower"][1:5].tolist()
    win = WindowSampler([clip], SIZES, h, a).windows([0], [2])
    assert win["targets"][0, :h - 2].tolist() == [[IGNORE] * 5] * (h - 2)
    assert win["targets"][0, h - 2:].tolist() == clip["follower"][:3].tolist()
    # an env episode [2, 5) inside the clip: padded outside it exactly like the clip ends
    ep = WindowSampler([clip], SIZES, h, a).windows([0], [3], lo=[2], hi=[5])  # times -1 … 5
    assert np.all(ep["music"][0, :3] == 0) and np.all(ep["music"][0, 6] == 0)
    assert np.allclose(ep["music"][0, 3:6], clip["music"][2:5])
    assert ep["leader"][0, 6].tolist() == [7, 6, 5, 5] and ep["leader"][0, 2].tolist() == [7, 6, 5, 5]
    assert ep["follower"][0, :3].tolist() == [[7, 6, 5, 5, 4]] * 3 and ep["follower"][0, 3].tolist() == clip["follower"][2].tolist()
    assert ep["targets"][0, :3].tolist() == [[IGNORE] * 5] * 3 and ep["targets"][0, 3:].tolist() == clip["follower"][2:4].tolist()
    batch = WindowSampler([clip], SIZES, h, a).sample(np.random.default_rng(0), 200, episode_tokens=3, episode_fraction=1.0)
    valid_history = (batch["follower"][:, :, 0] != 7).sum(1)
    assert valid_history.max() == 2  # an episode of 3 tokens never shows more than 2 past tokens
    frames = np.arange(9 * 54, dtype=np.float32).reshape(9, 54)
    per_tok = music_per_token(frames, 3)
    assert np.array_equal(per_tok[1], frames[4:8].reshape(-1)) and np.all(per_tok[2, 54:] == 0)


@pytest.fixture(scope="module")
def policy() -> FollowerPolicy:
    torch.manual_seed(1)
    m = FollowerGPT(tiny_config())
    with torch.no_grad():
        for p in m.heads.parameters():
            p.mul_(100.0)  # peaked logits so top-k / sampling differ visibly
    return FollowerPolicy(m)


def _obs(policy, seed: int, n: int = 12) -> list[dict]:
    rng = np.random.default_rng(seed)
    clip = fake_clip(rng, n)
    return [observation(clip, t, SIZES, policy.history, policy.lookahead) for t in range(n)]


def test_act_batched_equals_unbatched_and_greedy(policy):
    obs = _obs(policy, 0)
    batch = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    batched = policy.act(batch)
    assert [tuple(x.shape) for x in batched] == [(len(obs), k) for k in K]
    torch_batch = {k: torch.as_tensor(v) for k, v in batch.items()}
    for i, o in enumerate(obs):
        single = policy.act(o)
        assert [tuple(x.shape) for x in single] == [(k,) for k in K]
        for s in range(5):
            assert torch.allclose(single[s], batched[s][i], atol=1e-5)
    greedy = policy.sample(torch_batch, mode="greedy")
    assert greedy.shape == (len(obs), 5) and greedy.dtype == np.int64
    assert np.array_equal(greedy, np.stack([x.argmax(-1).numpy() for x in batched], -1))
    assert policy.sample(obs[3]).shape == (5,)


def test_sampling_support_top_k_and_no_pad(policy):
    obs = _obs(policy, 1, n=1)[0]
    rep = {k: np.repeat(v[None], 400, 0) for k, v in obs.items()}
    logits = policy.act(obs)
    g = torch.Generator().manual_seed(0)
    drawn = policy.sample(rep, mode="sample", temperature=50.0, generator=g)
    assert all(drawn[:, s].max() < K[s] and drawn[:, s].min() >= 0 for s in range(5))  # pad id K never
    assert all(len(np.unique(drawn[:, s])) >= 3 for s in range(5))  # hot temperature spreads
    top2 = policy.sample(rep, mode="sample", temperature=50.0, top_k=2, generator=g)
    for s in range(5):
        allowed = set(logits[s].topk(2).indices.tolist())
        assert set(np.unique(top2[:, s]).tolist()) <= allowed
        assert len(np.unique(top2[:, s])) == 2
    top1 = policy.sample(rep, mode="sample", top_k=1, generator=g)
    assert np.all(top1 == policy.sample(obs))


def test_window_mismatch_and_bad_input_errors(policy):
    obs = _obs(policy, 2, n=3)[0]
    short = dict(obs, music=obs["music"][1:], leader=obs["leader"][4:])
    with pytest.raises(ValueError, match=r"history 4.*lookahead 2"):
        policy.act(short)
    with pytest.raises(ValueError, match="window"):
        policy.act(dict(obs, follower=obs["follower"][5:]))
    with pytest.raises(ValueError, match="NaN"):
        policy.act(dict(obs, music=np.full_like(obs["music"], np.nan)))
    bad = obs["leader"].copy()
    bad[0] = 99
    with pytest.raises(ValueError, match="token ids"):
        policy.act(dict(obs, leader=bad))
    with pytest.raises(ValueError, match="mode"):
        policy.sample(obs, mode="beam")


def test_training_learns_a_rule_far_below_unigram(tmp_path):
    rng = np.random.default_rng(0)
    clips = [fake_clip(rng, 60, f"c{i}", rule=True) for i in range(6)]
    test = [fake_clip(rng, 40, "t", rule=True)]
    cfg = tiny_config(steps=250, batch_size=32, checkpoint_every=1000, warmup_steps=20, lr=0.003)
    train(cfg, clips, SIZES, tmp_path / "run", seed=0, progress=False)
    pol = FollowerPolicy.load(tmp_path / "run")
    res = evaluate_tokens(pol.model, test, clips, SIZES, progress=False)
    total = res["sum_cross_entropy"]
    assert total["unigram"] > 7.0  # log(7)+log(6)+2log(5)+log(4) ≈ 8.2 for near-uniform tokens
    assert total["gpt"] < 0.25 * total["unigram"], total
    assert total["gpt"] < total["repeat_previous"]
    assert all(res["streams"][s]["gpt"]["accuracy"] > 0.9 for s in FOLLOWER_STREAMS), res["streams"]


def test_checkpoint_round_trip_and_config_mismatch(tmp_path):
    rng = np.random.default_rng(3)
    clips = [fake_clip(rng, 20, f"c{i}") for i in range(2)]
    cfg = tiny_config(steps=3, checkpoint_every=3, batch_size=4)
    train(cfg, clips, SIZES, tmp_path / "run", seed=0, progress=False)
    pol = FollowerPolicy.load(tmp_path / "run")
    assert pol.config["codebook_sizes"] == SIZES and pol.config["history"] == 4
    export_weights(tmp_path / "run", tmp_path / "shipped")
    shipped = FollowerPolicy.load(str(tmp_path / "shipped"))
    tensors, _, _ = checkpoint.load(tmp_path / "shipped", "gpt")
    assert not any(k.startswith("optim/") for k in tensors)
    obs = observation(clips[0], 7, SIZES, 4, 2)
    for x, y in zip(pol.act(obs), shipped.act(obs)):
        assert torch.equal(x, y)
    # the music normalisation is part of the weights
    assert torch.allclose(shipped.model.music_std, torch.ones(54), atol=0.2)
    other = tiny_config(steps=6, checkpoint_every=3, batch_size=4)
    other["width"] = 16
    with pytest.raises(checkpoint.CheckpointError, match="width"):
        train(other, clips, SIZES, tmp_path / "run", seed=0, resume=True, progress=False)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, clips, SIZES, tmp_path / "run", seed=0, progress=False)
    meta = json.loads((tmp_path / "run" / "gpt.json").read_text())
    meta["config"]["codebook_sizes"]["up"] = 99
    (tmp_path / "run" / "gpt.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError):
        FollowerPolicy.load(tmp_path / "run")


def test_resume_equals_uninterrupted(tmp_path):
    rng = np.random.default_rng(4)
    clips = [fake_clip(rng, 30, f"c{i}") for i in range(3)]
    cfg = tiny_config(steps=8, checkpoint_every=3, batch_size=8)
    cfg["dropout"] = 0.1  # dropout masks must be reproduced too
    train(cfg, clips, SIZES, tmp_path / "full", seed=5, progress=False)

    class Killed(Exception):
        pass

    def kill(step, loss):
        if step == 5:  # after the checkpoint at step 3; steps 4-5 are lost
            raise Killed

    with pytest.raises(Killed):
        train(cfg, clips, SIZES, tmp_path / "cut", seed=5, progress=False, on_step=kill)
    assert json.loads((tmp_path / "cut" / "gpt.json").read_text())["state"]["step"] == 3
    state = train(cfg, clips, SIZES, tmp_path / "cut", seed=5, resume=True, progress=False)
    assert state["step"] == 8
    a, _, sa = checkpoint.load(tmp_path / "full", "gpt")
    b, _, sb = checkpoint.load(tmp_path / "cut", "gpt")
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert sb["loss"] == pytest.approx(sa["loss"], rel=1e-9)


def test_tokenize_clips_with_the_real_tokenizer_trims_like_the_env():
    from duet_env.data.clip import Clip, Dancer
    from duet_env.tokenizer import Tokenizer
    from pretrain.gpt.data import tokenize_clips

    tok = Tokenizer.from_config("tiny")
    rng = np.random.default_rng(0)

    def dancer(t):
        return Dancer(rng.normal(0, 0.2, (t, 165)).astype(np.float32), rng.normal(0, 0.1, (t, 3)).astype(np.float32))

    music = rng.normal(size=(42, 54)).astype(np.float32)
    clip = Clip("x", "Waltz", music, dancer(42), dancer(42))
    (out,) = tokenize_clips([clip], tok, progress=False)
    direct = tok.encode(clip.leader.joints[:40], clip.follower.joints[:40])
    assert out["music"].shape == (10, 216) and np.array_equal(out["music"][9], music[36:40].reshape(-1))
    assert np.array_equal(out["leader"], direct["leader"]) and np.array_equal(out["follower"], direct["follower"])
    sizes = tok.codebook_sizes
    assert all(out["follower"][:, i].max() < sizes[s] for i, s in enumerate(FOLLOWER_STREAMS))


def test_training_windows_equal_the_env_observation_inside_an_episode():
    """The env's "tokens" observation, stepped with the true follower tokens, is exactly the
    training window of the same step with the episode's padding."""
    from duet_env.core import DuetCore
    from duet_env.data.clip import Clip, Dancer
    from duet_env.episodes import episode_clips
    from duet_env.observations import observation_factory
    from duet_env.tokenizer import Tokenizer
    from pretrain.gpt.data import tokenize_clips
    from rewards import make_reward

    tok = Tokenizer.from_config("tiny")
    rng = np.random.default_rng(0)

    def dancer(t):
        return Dancer(rng.normal(0, 0.2, (t, 165)).astype(np.float32), rng.normal(0, 0.1, (t, 3)).astype(np.float32))

    clip = Clip("Waltz_01_01", "Waltz", rng.normal(size=(83, 54)).astype(np.float32), dancer(83), dancer(83))
    h, a, episode, start = 4, 2, 8, 5
    core = DuetCore(episode_clips([clip], tok), tok, 1, h, a, episode, make_reward("default"))
    tokens_obs = observation_factory("tokens")
    (tc,) = tokenize_clips([clip], tok, progress=False)
    sampler = WindowSampler([tc], tok.codebook_sizes, h, a)
    core.reset_slot(0, 0, start, episode)
    for t in range(start, start + episode):
        env = tokens_obs.observe(core)
        ours = sampler.windows([0], [t], lo=[start], hi=[start + episode])
        assert np.array_equal(env["music"][0], ours["music"][0].reshape(-1)), t
        assert np.array_equal(env["leader"][0], ours["leader"][0].reshape(-1)), t
        assert np.array_equal(env["follower"][0], ours["follower"][0].reshape(-1)), t
        assert np.array_equal(env["leader_turn"][0], ours["leader_turn"][0].reshape(-1)), t
        core.step(tc["follower"][t][None])
    assert np.abs(tc["leader_turn"]).max() > 0  # the random leader turns: the check compares numbers


def test_music_augmentation_transposes_chroma_and_keeps_beats_and_padding():
    from pretrain.gpt.augment import augment_music

    rng = np.random.default_rng(0)
    music = rng.normal(size=(64, 7, 216)).astype(np.float32)
    music[:, :2] = 0.0  # padding before the clip start
    mean, std = np.zeros(54, np.float32), np.ones(54, np.float32)
    out = augment_music(music, np.random.default_rng(1), mean, std, probability=1.0, p_drop=0.0)
    x, y = music.reshape(64, 7, 4, 54), out.reshape(64, 7, 4, 54)
    assert np.array_equal(y[:, :2], x[:, :2])  # padding stays zero
    assert np.array_equal(y[..., 53], x[..., 53])  # the beat column is never touched
    # chroma: every window is a circular shift of itself (a transposition), and some shift is not 0
    shifts = []
    for i in range(64):
        a, b = x[i, 2:, :, 40:52], y[i, 2:, :, 40:52]
        match = [k for k in range(12) if np.array_equal(np.roll(a, k, axis=-1), b)]
        assert len(match) == 1, i
        shifts.append(match[0])
    assert len(set(shifts)) > 5
    assert not np.allclose(y[..., :40], x[..., :40])  # timbre and loudness move
    clean = augment_music(music, np.random.default_rng(1), mean, std, probability=0.0)
    assert np.array_equal(clean, music)


def test_leader_desync_swaps_whole_leader_windows_and_keeps_padding():
    from pretrain.gpt.augment import desync_leader

    rng = np.random.default_rng(0)
    leader = rng.integers(0, 50, size=(64, 7, 4))
    pad = np.array([60, 61, 62, 63])
    leader[:, :2] = pad  # padding before the clip start, as the sampler writes it
    out = desync_leader(leader, np.random.default_rng(1), 0.5, pad)
    changed = [i for i in range(64) if not np.array_equal(out[i], leader[i])]
    assert 16 < len(changed) < 48  # about half the rows
    for i in changed:
        assert (out[i, :2] == pad).all()  # the row's own padding is kept
        donors = [j for j in range(64) if j != i and np.array_equal(out[i, 2:], leader[j, 2:])]
        assert donors  # another row's leader, whole
    assert np.array_equal(desync_leader(leader, np.random.default_rng(1), 0.0, pad), leader)


def test_hold_out_and_best_checkpoint_follow_the_validation_loss(tmp_path):
    from pretrain.gpt.train import hold_out

    rng = np.random.default_rng(5)
    clips = [fake_clip(rng, 40, f"c{i:02d}", rule=True) for i in range(8)]
    kept, held = hold_out(clips, 0.25)
    assert len(held) == 2 and len(kept) == 6
    assert not {c["name"] for c in kept} & {c["name"] for c in held}
    with pytest.raises(ValueError, match="validation_fraction"):
        hold_out(clips, 0.6)
    cfg = tiny_config(steps=120, checkpoint_every=40, batch_size=16, music_augment=0.5)
    state = train(cfg, kept, SIZES, tmp_path / "run", seed=0, progress=False, val_clips=held)
    vals = [h["val_ce"] for h in state["loss_history"]]
    assert len(vals) == 3 and state["best"]["val_ce"] == pytest.approx(min(vals))
    assert state["best"]["step"] == 40 * (1 + int(np.argmin(vals)))
    assert state["validation_clips"] == [c["name"] for c in held]
    best = FollowerPolicy.load(tmp_path / "run" / "best")
    from pretrain.gpt.train import validation_cross_entropy

    assert validation_cross_entropy(best.model, held, SIZES) == pytest.approx(state["best"]["val_ce"], rel=1e-5)


def test_turn_focus_draws_the_steps_near_a_leader_spin_and_changes_nothing_when_off():
    """WindowSampler.turn_steps finds exactly the steps whose window holds a fast leader turn;
    a focus share draws them that often; focus_fraction 0 gives the very batch of before."""
    rng = np.random.default_rng(0)
    clips = [fake_clip(rng, 60, "a"), fake_clip(rng, 50, "b")]
    for c in clips:
        c["leader_turn"][:] = 0.1
    clips[1]["leader_turn"][30, 2] = 3.0  # one spinning frame, token 30 of clip b
    h, a = 4, 2
    sampler = WindowSampler(clips, SIZES, h, a)
    steps = sampler.turn_steps(1.5)
    # the window of step t covers tokens t−H … t+A: token 30 is in it for t = 28 … 34
    assert steps.tolist() == [60 + t for t in range(30 - a, 30 + h + 1)]
    batch = sampler.sample(np.random.default_rng(1), 400, focus=steps, focus_fraction=0.5)
    share = (np.abs(batch["leader_turn"]).max(axis=(1, 2)) > 1.5).mean()
    assert 0.4 < share < 0.6  # without focus: 7 of 110 steps, about 6 %
    plain = sampler.sample(np.random.default_rng(2), 32, 8, 0.5)
    off = sampler.sample(np.random.default_rng(2), 32, 8, 0.5, focus=steps, focus_fraction=0.0)
    assert all(np.array_equal(plain[k], off[k]) for k in plain)


def test_shipped_gpt_is_the_documented_small_recipe_on_the_shipped_tokenizer():
    """GPT_CARD.md says the shipped GPT is config ``small`` (+ the extra clips it names) trained on
    the shipped tokenizer's codes: a config edited without retraining, or weights exported from
    another recipe, fails here."""
    from duet_env.tokenizer import Tokenizer

    try:
        shipped = json.loads((checkpoint.resolve("default") / "gpt.json").read_text())["config"]
    except checkpoint.CheckpointError:
        pytest.skip("no shipped default GPT")
    documented = load_config("small")

    def recipe(cfg: dict) -> dict:
        train = {k: v for k, v in cfg["train"].items() if k != "extra_train"}  # a CLI option, recorded
        return {**{k: v for k, v in cfg.items() if k not in ("name", "codebook_sizes", "train")}, "train": train}

    assert recipe(shipped) == recipe(documented)
    assert shipped["train"].get("extra_train") == ["synth:seed=1,minutes=120"]  # the card's command
    assert shipped["codebook_sizes"] == Tokenizer.load("default").codebook_sizes
