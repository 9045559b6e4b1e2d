"""duet_env.tokenizer: shapes, frame convention, streaming == whole decode, pad rejection, loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from duet_env.tokenizer import Tokenizer
from duet_env import checkpoint, skeleton
from duet_env.tokenizer.config import STREAMS, checkpoint_stem, load_config, stream_config
from tests.motion_fixtures import random_clip


def yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@pytest.fixture(scope="module")
def tk():
    return Tokenizer.from_config("tiny", seed=0)


@pytest.fixture(scope="module")
def clip():
    return random_clip(1, t=96)


def test_encode_shapes_numpy_and_torch(tk, clip):
    lead, foll = clip.leader.joints, clip.follower.joints
    out = tk.encode(lead[:66], foll[:66])  # 66 frames -> 16 tokens (2 trailing frames dropped)
    assert out["leader"].shape == (16, 4) and out["follower"].shape == (16, 5)
    assert out["leader"].dtype == np.int64 and isinstance(out["follower"], np.ndarray)
    batched = tk.encode(torch.from_numpy(np.stack([lead, lead])), torch.from_numpy(np.stack([foll, foll])))
    assert isinstance(batched["leader"], torch.Tensor) and batched["follower"].shape == (2, 24, 5)
    np.testing.assert_array_equal(batched["follower"][0].numpy(), batched["follower"][1].numpy())
    # encoding is per clip: the first 16 tokens of the 96-frame clip differ only near the cut
    assert set(tk.encode(lead)) == {"leader"}
    for s, k in tk.codebook_sizes.items():
        col = ["up", "down", "lhand", "rhand", "transl"].index(s)
        assert batched["follower"][..., col].max() < k
    assert tk.codebook_sizes == {"up": 16, "down": 16, "lhand": 16, "rhand": 16, "transl": 16}


def test_encode_is_invariant_to_turning_both_dancers(tk, clip):
    lead, foll = clip.leader.joints.astype(np.float64), clip.follower.joints.astype(np.float64)
    rot = yaw(1.1)
    shift = np.array([3.0, 0.0, -2.0])
    a = tk.encode(lead, foll)
    b = tk.encode(lead @ rot.T + shift, foll @ rot.T + shift)
    assert (a["leader"] == b["leader"]).mean() >= 0.99
    assert (a["follower"] == b["follower"]).mean() >= 0.99
    # turning only the follower changes its tokens (it is encoded relative to the leader)
    c = tk.encode(lead, (foll - foll[:, :1]) @ rot.T + foll[:, :1])
    assert (c["follower"][:, :4] != a["follower"][:, :4]).any()


def test_decode_places_follower_relative_to_leader(tk, clip):
    lead = clip.leader.joints.astype(np.float64)
    tokens = tk.encode(lead, clip.follower.joints)["follower"]
    out = tk.decode(tokens, lead)
    assert out["joints"].shape == (96, 55, 3) and out["rotmats"].shape == (96, 55, 3, 3)
    assert out["root"].shape == (96, 3) and out["root_velocity"].shape == (96, 3)
    np.testing.assert_allclose(out["joints"][:, 0], out["root"], atol=1e-6)
    rot = yaw(-0.8)
    shift = np.array([1.5, 0.1, 4.0])
    moved = tk.decode(tokens, lead @ rot.T + shift)
    np.testing.assert_allclose(moved["joints"], out["joints"] @ rot.T + shift, atol=1e-4)
    np.testing.assert_allclose(moved["root_velocity"], out["root_velocity"] @ rot.T, atol=1e-4)
    np.testing.assert_allclose(moved["rotmats"][:, 0], rot @ out["rotmats"][:, 0], atol=1e-5)
    np.testing.assert_allclose(moved["rotmats"][:, 1:], out["rotmats"][:, 1:], atol=1e-6)
    # decoded rotations are rotations
    r = out["rotmats"].astype(np.float64)
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_streaming_decode_equals_whole_decode(clip, dtype):
    tk = Tokenizer.from_config("tiny", seed=3, dtype=dtype)
    lead = torch.from_numpy(np.stack([clip.leader.joints, clip.follower.joints])).to(dtype)
    n = lead.shape[1] // 4
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 16, (2, n, 5), generator=g)
    whole = tk.decode(tokens, lead)
    sd = tk.streaming_decoder(2)
    fwd = tk.leader_heading(lead)
    steps = [sd.step(tokens[:, i], lead[:, 4 * i:4 * i + 4], fwd[:, 4 * i:4 * i + 4]) for i in range(n)]
    for key, ref in whole.items():
        got = torch.cat([s[key] for s in steps], 1)
        assert got.shape == ref.shape
        assert (got - ref).abs().max().item() < 1e-5, key
    # reset env 0 only: it restarts from rest, env 1 keeps its history
    new_tokens = torch.randint(0, 16, (2, 6, 5), generator=g)
    sd.reset(np.array([True, False]))
    part = [sd.step(torch.stack([new_tokens[0, i], tokens[1, i]]), lead[:, 4 * i:4 * i + 4], fwd[:, 4 * i:4 * i + 4])
            for i in range(6)]
    fresh = tk.decode(new_tokens[:1], lead[:1, :24], leader_forward=fwd[:1, :24])
    assert (torch.cat([p["joints"][:1] for p in part], 1) - fresh["joints"]).abs().max().item() < 1e-5
    continued = torch.cat([p["joints"][1:] for p in part], 1)
    assert (continued - whole["joints"][1:, :24]).abs().max().item() > 1e-3  # env 1 was not reset


def test_pad_and_out_of_range_tokens_are_rejected(tk, clip):
    lead = torch.from_numpy(clip.leader.joints[:8])
    tokens = torch.zeros(2, 5, dtype=torch.long)
    tokens[1, 4] = tk.codebook_sizes["transl"]  # the pad id
    with pytest.raises(ValueError, match="pad id 16"):
        tk.decode(tokens, lead)
    sd = tk.streaming_decoder(1)
    with pytest.raises(ValueError, match="pad id"):
        sd.step(tokens[1:], lead[None, :4], torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="outside the codebook"):
        tk.decode(-torch.ones(2, 5, dtype=torch.long), lead)
    with pytest.raises(ValueError, match="shape"):
        tk.decode(torch.zeros(2, 5, dtype=torch.long), lead[:7])
    with pytest.raises(ValueError, match="NaN"):
        tk.encode(np.full((8, 55, 3), np.nan))


def test_load_round_trip_and_config_refusal(tmp_path, tk, clip):
    cfg = load_config("tiny")
    for s in STREAMS:
        checkpoint.save(tmp_path, checkpoint_stem(s), tk.models[s].state_dict(), stream_config(cfg, s))
    loaded = Tokenizer.load(tmp_path)
    a = tk.encode(clip.leader.joints, clip.follower.joints)
    b = loaded.encode(clip.leader.joints, clip.follower.joints)
    np.testing.assert_array_equal(a["follower"], b["follower"])
    np.testing.assert_allclose(tk.decode(a["follower"], clip.leader.joints)["joints"],
                               loaded.decode(b["follower"], clip.leader.joints)["joints"], atol=1e-6)
    # a checkpoint whose weights do not fit its config is refused with a message
    bad = dict(stream_config(cfg, "upper"), width=32)
    checkpoint.save(tmp_path, "vqvae_upper", tk.models["upper"].state_dict(), bad)
    with pytest.raises(checkpoint.CheckpointError, match="does not match the model"):
        Tokenizer.load(tmp_path)


def test_shipped_default_loads():
    try:
        checkpoint.resolve("default")
        tk = Tokenizer.load("default")
    except checkpoint.CheckpointError:
        pytest.skip("no shipped default tokenizer yet")
    assert set(tk.codebook_sizes) == {"up", "down", "lhand", "rhand", "transl"}
    assert all(k >= 16 for k in tk.codebook_sizes.values())


def test_fingerprint_follows_the_weights():
    a = Tokenizer.from_config("tiny", seed=0)
    b = Tokenizer.from_config("tiny", seed=0)
    c = Tokenizer.from_config("tiny", seed=1)
    assert a.fingerprint == b.fingerprint
    assert a.codebook_sizes == c.codebook_sizes and a.fingerprint != c.fingerprint


def test_leader_heading_keeps_turns_removes_wobble_and_turns_with_the_leader():
    from duet_env import motion
    from duet_env.tokenizer import features

    t = np.arange(240)
    turn = 0.02 * t                                   # a steady turn: 0.6 rad/s
    wobble = 0.15 * np.sin(2 * np.pi * t / 8)         # hip twists at 3.75 Hz
    yaw_angles = turn + wobble
    rest = skeleton.rest_joints()
    lead = np.stack([rest @ yaw(a).T for a in yaw_angles])
    tk = Tokenizer.from_config("tiny", seed=0)
    fwd = tk.leader_heading(lead)
    assert fwd.shape == (240, 3) and np.allclose(np.linalg.norm(fwd, axis=-1), 1.0)
    got = np.unwrap(np.arctan2(fwd[:, 0], fwd[:, 2]))
    inner = slice(30, -30)
    assert np.abs(got[inner] - turn[inner]).max() < 0.02       # the turn is kept, the wobble gone
    raw = motion.heading_from_joints(lead)
    raw_yaw = np.unwrap(np.arctan2(raw[:, 0], raw[:, 2]))
    assert np.abs(np.diff(got, 3)).mean() < 0.05 * np.abs(np.diff(raw_yaw, 3)).mean()
    # turning the whole leader turns the heading by the same angle
    turned = tk.leader_heading(lead @ yaw(0.7).T)
    np.testing.assert_allclose(turned, fwd @ yaw(0.7).T, atol=1e-9)
    assert tk.heading_sigma == features.HEADING_SIGMA_FRAMES > 0


def test_heading_sigma_is_part_of_the_tokenizer_and_its_checkpoints(tmp_path):
    """A tokenizer reads the leader frame with the σ it was trained with: saved in every model's
    JSON, read back, and a checkpoint without the key (older) gets the old default."""
    import json

    from duet_env import checkpoint
    from duet_env.tokenizer import features
    from duet_env.tokenizer.config import load_config

    t = np.arange(120)
    lead = np.stack([skeleton.rest_joints() @ yaw(a).T for a in 0.3 * np.sin(2 * np.pi * t / 30)])
    cfg = load_config("tiny")
    cfg = {**cfg, "model": {**cfg["model"], "heading_sigma": 20.0}}
    wide = Tokenizer.from_config(cfg, seed=0)
    assert wide.heading_sigma == 20.0
    wide.save(tmp_path / "wide")
    back = Tokenizer.load(tmp_path / "wide")
    assert back.heading_sigma == 20.0
    narrow = Tokenizer.from_config("tiny", seed=0)
    # a wider Gaussian removes more of a slow (1 s) sway of the leader's hips
    sway = [np.abs(np.diff(np.unwrap(np.arctan2(f[:, 0], f[:, 2])))).mean()
            for f in (narrow.leader_heading(lead), back.leader_heading(lead))]
    assert sway[1] < 0.2 * sway[0]
    # an old checkpoint (no key) reads with the old default; models that disagree are refused
    for stem in ("vqvae_upper", "transl"):
        meta = json.loads((tmp_path / "wide" / f"{stem}.json").read_text())
        if stem == "vqvae_upper":
            meta["config"].pop("heading_sigma")
        (tmp_path / "wide" / f"{stem}.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match="heading_sigma"):
        Tokenizer.load(tmp_path / "wide")
    with pytest.raises(ValueError, match="heading_sigma"):
        Tokenizer.from_config({**cfg, "model": {**cfg["model"], "heading_sigma": -1}})
    assert features.HEADING_SIGMA_FRAMES == 6.0
