"""The streaming follower GPT: exact receptive field, a KV cache equal to the full window, and
training windows whose positions are the env's decisions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from duet_env.tokens import FOLLOWER_STREAMS
from pretrain.gpt import FollowerGPT, FollowerPolicy, load_config, with_codebook_sizes
from pretrain.gpt.config import main_bands
from pretrain.gpt.data import IGNORE, WindowSampler
from pretrain.gpt.stream import FollowerStream
from pretrain.gpt.train import decision_targets, training_history

SIZES = {"up": 7, "down": 6, "lhand": 5, "rhand": 5, "transl": 4}
K = [SIZES[s] for s in FOLLOWER_STREAMS]


def streaming_model(history: int = 6, lookahead: int = 3, layers: int = 3, enc_layers: int = 2,
                    seed: int = 0, leader_turn: bool = False) -> FollowerGPT:
    cfg = with_codebook_sizes(load_config("tiny"), SIZES)
    cfg.update(arch="streaming", history=history, lookahead=lookahead, n_layers=layers, enc_layers=enc_layers,
               leader_turn=leader_turn)
    torch.manual_seed(seed)
    m = FollowerGPT(cfg).eval()
    with torch.no_grad():  # larger random weights (and biases per offset) so every path carries a signal
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m


def clip(rng, n: int, name: str = "c") -> dict:
    return {"name": name, "music": rng.normal(size=(n, 216)).astype(np.float32),
            "leader": np.stack([rng.integers(0, SIZES[s], n) for s in FOLLOWER_STREAMS[:4]], 1),
            "leader_turn": rng.normal(size=(n, 4)).astype(np.float32),
            "follower": np.stack([rng.integers(0, SIZES[s], n) for s in FOLLOWER_STREAMS], 1)}


def windows(sampler: WindowSampler, clips, t, m: FollowerGPT | None = None):
    """music (the GPT's input: with the leader's turn appended for a ``leader_turn`` model ``m``),
    leader and follower windows of steps ``t`` of ``clips``."""
    w = sampler.windows(list(clips), list(t))
    music = torch.from_numpy(w["music"])
    if m is not None:
        music = m.music_input(music, torch.from_numpy(w["leader_turn"]))
    return [music] + [torch.from_numpy(w[k]) for k in ("leader", "follower")]


def decision(m, music, leader, follower) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(m(music, leader, follower, last_only=True), -1)


def test_main_bands_reach_the_window_exactly():
    assert main_bands(16, 4) == [4, 4, 4, 3]
    assert sum(main_bands(6, 3)) == 5
    assert main_bands(2, 3) == [1, 0, 0]


def test_the_decision_sees_exactly_the_observation_window():
    """The decision at t depends on follower tokens t−H … t−1 and music/leader t−H+1 … t+A; not on
    window position 0's music/leader (time t−H), and every reach is used (a cut path is bitwise equal)."""
    m = streaming_model()
    h, a = m.history, m.lookahead
    rng = np.random.default_rng(0)
    music, leader, follower = windows(WindowSampler([clip(rng, 40)], SIZES, h, a), [0], [20])
    base = decision(m, music, leader, follower)
    m2, l2 = music.clone(), leader.clone()
    m2[0, 0] += 5.0
    l2[0, 0] = (l2[0, 0] + 1) % torch.tensor(K[:4])
    assert torch.equal(decision(m, m2, l2, follower), base)
    f2 = follower.clone()
    f2[0, 0] = (f2[0, 0] + 1) % torch.tensor(K)  # the oldest follower token, t − H
    assert (decision(m, music, leader, f2) - base).abs().max() > 1e-5
    l3 = leader.clone()
    l3[0, 1] = (l3[0, 1] + 1) % torch.tensor(K[:4])  # leader at t − H + 1 (main reach H − 1)
    assert (decision(m, music, l3, follower) - base).abs().max() > 1e-5
    l4 = leader.clone()
    l4[0, -1] = (l4[0, -1] + 1) % torch.tensor(K[:4])  # leader at t + A
    assert (decision(m, music, l4, follower) - base).abs().max() > 1e-5


def test_a_leader_turn_gpt_reads_the_turn_inside_its_window_only():
    """With config leader_turn the decision depends on the leader's turn at t − H + 1 … t + A (as on
    his tokens) and not at t − H; a GPT without it ignores the turn; a missing turn is refused."""
    m = streaming_model(leader_turn=True)
    h, a = m.history, m.lookahead
    rng = np.random.default_rng(5)
    sampler = WindowSampler([clip(rng, 40)], SIZES, h, a)
    w = sampler.windows([0], [20])
    music, leader, follower = (torch.from_numpy(w[k]) for k in ("music", "leader", "follower"))
    turn = torch.from_numpy(w["leader_turn"])
    base = decision(m, m.music_input(music, turn), leader, follower)
    for time, moves in ((0, False), (1, True), (h + a, True)):
        t2 = turn.clone()
        t2[0, time] += 3.0
        changed = (decision(m, m.music_input(music, t2), leader, follower) - base).abs().max() > 1e-5
        assert bool(changed) == moves, time
    plain = streaming_model()
    assert torch.equal(plain.music_input(music, turn + 3.0), music)
    with pytest.raises(ValueError, match="leader_turn"):
        m.music_input(music, None)
    with pytest.raises(ValueError, match="music_input"):
        m(music, leader, follower)  # the music without the turn: a clear shape error


@pytest.mark.parametrize("layers,enc_layers,lookahead,leader_turn", [(3, 2, 3, False), (2, 1, 2, False),
                                                                     (4, 3, 0, False), (3, 2, 3, True)])
def test_kv_cache_equals_the_full_window_over_a_300_step_rollout(layers, enc_layers, lookahead, leader_turn):
    m = streaming_model(history=6, lookahead=lookahead, layers=layers, enc_layers=enc_layers if lookahead else 0,
                        leader_turn=leader_turn)
    rng = np.random.default_rng(1)
    clips = [clip(rng, 300, f"c{i}") for i in range(2)]
    sampler = WindowSampler(clips, SIZES, m.history, m.lookahead)
    stream = FollowerStream(m)
    worst = 0.0
    for t in range(300):  # the window slides from step H on; the clip's end pads the look-ahead
        music, leader, follower = windows(sampler, [0, 1], [t, t], m)
        full = decision(m, music, leader, follower)
        cached = torch.cat(stream.logits(music, leader, follower), -1)
        worst = max(worst, (cached - full).abs().max().item())
    assert worst < 1e-4
    assert full.abs().max() > 1e-2  # the logits are not trivially equal


def test_restarted_rows_are_recomputed_from_their_window():
    m = streaming_model()
    rng = np.random.default_rng(2)
    clips = [clip(rng, 60, f"c{i}") for i in range(3)]
    sampler = WindowSampler(clips, SIZES, m.history, m.lookahead)
    stream = FollowerStream(m)
    for t in range(20):
        stream.logits(*windows(sampler, [0, 1], [t, t]))
    # row 1 jumps to clip 2 at step 0 (a new episode); row 0 goes on
    worst = 0.0
    for k in range(25):
        music, leader, follower = windows(sampler, [0, 2], [20 + k, k])
        restart = torch.tensor([False, k == 0])
        cached = torch.cat(stream.logits(music, leader, follower, restart=restart), -1)
        worst = max(worst, (cached - decision(m, music, leader, follower)).abs().max().item())
    assert worst < 1e-4


def test_training_window_positions_are_the_env_decisions():
    """A long training window's kept positions equal the decision at that time from the
    observation-sized window; the positions whose reach leaves the window are ignored."""
    m = streaming_model()
    config = {**m.config, "train": {"window_targets": 5}}
    h_train = training_history(config)
    assert h_train == m.history - 1 + 5
    rng = np.random.default_rng(3)
    c = clip(rng, 50)
    long = WindowSampler([c], SIZES, h_train, m.lookahead)
    short = WindowSampler([c], SIZES, m.history, m.lookahead)
    t = 30
    w = long.windows([0], [t])
    targets = decision_targets(w["targets"], config)
    keep = targets[0, :, 0] != IGNORE
    assert keep.sum() == 5 and keep[-5:].all()
    with torch.no_grad():
        logits = torch.cat(m(*[torch.from_numpy(w[k]) for k in ("music", "leader", "follower")]), -1)[0]
    for p in np.flatnonzero(keep):
        time = t - h_train + 1 + p
        assert targets[0, p, 0] == c["follower"][time, 0]
        assert torch.allclose(logits[p], decision(m, *windows(short, [0], [time]))[0], atol=1e-5)


def test_streaming_policy_samples_what_the_stateless_policy_samples():
    m = streaming_model()
    policy = FollowerPolicy(m)
    streaming = policy.stream()
    rng = np.random.default_rng(4)
    c = clip(rng, 40)
    sampler = WindowSampler([c], SIZES, m.history, m.lookahead)
    for t in range(40):
        w = sampler.windows([0], [t])
        obs = {"music": w["music"][0].reshape(-1), "leader": w["leader"][0].reshape(-1),
               "follower": w["follower"][0].reshape(-1)}
        assert np.array_equal(streaming.sample(obs), policy.sample(obs))


def test_stream_refuses_a_model_in_training_mode():
    """Dropout would make the cached keys differ from the window's: the stream says so."""
    m = streaming_model()
    rng = np.random.default_rng(3)
    sampler = WindowSampler([clip(rng, 30, "c0")], SIZES, m.history, m.lookahead)
    m.train()
    with pytest.raises(ValueError, match="training mode"):
        FollowerStream(m).logits(*windows(sampler, [0], [0]))
    m.eval()
    assert len(FollowerStream(m).logits(*windows(sampler, [0], [0]))) == 5


@pytest.mark.parametrize("arch", ["streaming", "window"])
def test_self_fed_history_puts_the_models_own_prediction_of_each_token_in_its_place(arch):
    """train.self_feed: history token i becomes the greedy prediction *of token i* (the position
    that predicts it, per arch); pads stay; share 0 changes nothing; the share is respected."""
    from pretrain.gpt.self_feed import self_fed_history, self_feed_share

    m = streaming_model() if arch == "streaming" else None
    if m is None:
        cfg = with_codebook_sizes(load_config("tiny"), SIZES)
        cfg.update(arch="window", history=6, lookahead=3)
        torch.manual_seed(0)
        m = FollowerGPT(cfg).eval()
    rng = np.random.default_rng(6)
    sampler = WindowSampler([clip(rng, 60)], SIZES, 12 if m.streaming else 6, m.lookahead)
    music, leader, follower = windows(sampler, [0, 0], [5, 30])  # row 0 starts with padding
    pad = torch.tensor(K)
    fed = self_fed_history(m, music, leader, follower, 1.0, pad)
    with torch.no_grad():
        pred = torch.stack([lg.argmax(-1) for lg in m(music, leader, follower)], -1)
    want = torch.cat([follower[:, :1], pred[:, :-1]], 1) if m.streaming else pred[:, :follower.shape[1]]
    want = torch.where(follower == pad, follower, want)
    assert torch.equal(fed, want)
    assert (follower[0] == pad).any() and not torch.equal(fed, follower)
    assert torch.equal(self_fed_history(m, music, leader, follower, 0.0, pad), follower)
    half = self_fed_history(m, music, leader, follower, 0.5, pad, torch.Generator().manual_seed(0))
    changed = (half != follower)[follower != pad].float().mean()
    could = (want != follower)[follower != pad].float().mean()
    assert 0.3 * could < changed < 0.7 * could
    assert self_feed_share(0.3, 0, 100) == 0.0 and self_feed_share(0.3, 25, 100) == pytest.approx(0.15)
    assert self_feed_share(0.3, 90, 100) == 0.3 and self_feed_share(0.0, 90, 100) == 0.0
