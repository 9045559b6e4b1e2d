"""The floor under the decoded follower (duet_env/tokenizer/floor.py): feet never below it, frames
above it untouched, one motion kept (joints = FK of the rotations and the lifted pelvis, exports
reload to the env's joints), streaming = whole decode, and training measures and stores it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from duet_env import checkpoint, skeleton
from duet_env.conventions import FOOT_JOINTS
from duet_env.tokenizer import Tokenizer, compiled
from duet_env.tokenizer.config import load_config, stream_config
from duet_env.tokenizer.floor import FLOOR_QUANTILE, check_floor, floor_heights
from pretrain.vqvae.__main__ import with_measured_floor
from tests.motion_fixtures import random_clip


def _tokenizers(floor_at_quantile: float = 0.5) -> tuple[Tokenizer, Tokenizer, dict]:
    """A tiny tokenizer with rotations far from rest (as trained ones), and the same models with a
    floor at the given quantile of its own decoded foot heights (so part of the frames sink)."""
    tk = Tokenizer.from_config("tiny", seed=5)
    for m in tk.models.values():
        with torch.no_grad():
            m.decoder.conv_out.conv.weight.mul_(20.0)
    plain = Tokenizer(tk.models, configs=tk.configs)
    clip = random_clip(2, t=96)
    tokens = torch.randint(0, 16, (24, 5), generator=torch.Generator().manual_seed(1)).numpy()
    ref = plain.decode(tokens, clip.leader.joints)
    feet = ref["joints"][:, list(FOOT_JOINTS), 1]
    floor = [float(np.quantile(feet[:, k], floor_at_quantile)) for k in range(4)]
    configs = {s: dict(c) for s, c in tk.configs.items()}
    configs["lower"]["floor"] = floor
    return plain, Tokenizer(tk.models, configs=configs), {"clip": clip, "tokens": tokens, "ref": ref, "floor": floor}


def test_feet_never_sink_and_frames_above_the_floor_are_untouched():
    plain, floored, d = _tokenizers()
    out = floored.decode(d["tokens"], d["clip"].leader.joints)
    ref, floor = d["ref"], np.array(d["floor"])
    feet_ref = ref["joints"][:, list(FOOT_JOINTS), 1]
    sinks = (feet_ref < floor).any(axis=1)
    assert 0.3 < sinks.mean() < 1.0  # a mix of frames
    assert (out["joints"][:, list(FOOT_JOINTS), 1] >= floor - 1e-6).all()
    np.testing.assert_array_equal(out["joints"][~sinks], ref["joints"][~sinks])
    np.testing.assert_array_equal(out["rotmats"], ref["rotmats"])  # the pose never changes
    lift = (floor - feet_ref).max(axis=1).clip(0)
    np.testing.assert_allclose(out["joints"] - ref["joints"], np.stack(
        [np.zeros_like(lift), lift, np.zeros_like(lift)], -1)[:, None].repeat(55, 1), atol=1e-6)
    # some foot touches the floor exactly where the body was lifted
    touch = (out["joints"][sinks][:, list(FOOT_JOINTS), 1] - floor).min(axis=1)
    np.testing.assert_allclose(touch, 0.0, atol=1e-6)
    # one motion: joints = FK of the decoded rotations and the lifted pelvis
    fk = skeleton.forward_kinematics(out["rotmats"].astype(np.float64),
                                     (out["root"] - skeleton.REST_OFFSETS[0]).astype(np.float64))
    np.testing.assert_allclose(out["joints"], fk, atol=1e-5)
    np.testing.assert_allclose(out["root_velocity"], ref["root_velocity"])


def test_streaming_equals_whole_decode_with_a_floor():
    _, floored, d = _tokenizers()
    lead = torch.from_numpy(d["clip"].leader.joints[None])
    tokens = torch.from_numpy(d["tokens"][None])
    whole = floored.decode(tokens, lead)
    fwd = floored.leader_heading(lead)
    sd = floored.streaming_decoder(1)
    steps = [sd.step(tokens[:, i], lead[:, 4 * i:4 * i + 4], fwd[:, 4 * i:4 * i + 4]) for i in range(tokens.shape[1])]
    for key in ("joints", "root", "rotmats"):
        got = torch.cat([s[key] for s in steps], 1)
        assert (got - whole[key]).abs().max().item() < 1e-5, key


def test_exported_files_of_a_floored_decode_reload_to_the_env_joints(tmp_path):
    from agents.evaluate import FollowerSet, save_dd100, saved_followers
    from agents.rollout import generate_followers

    _, floored, _ = _tokenizers(0.9)  # most frames lifted
    clips = [random_clip(0, 64, "Waltz_5_1")]
    motions = generate_followers("random", clips, seed=0, tokenizer=floored, progress=False)
    followers = FollowerSet([m.joints for m in motions], [m.poses for m in motions], [m.transl for m in motions])
    save_dd100(tmp_path, clips, followers)
    reloaded = saved_followers(tmp_path, clips)
    err = np.linalg.norm(reloaded.joints[0] - motions[0].joints, axis=-1)
    assert err.max() < 1e-3, err.max()
    assert (motions[0].joints[:, list(FOOT_JOINTS), 1] >= np.array(floored.floor) - 1e-6).all()


def test_training_measures_the_floor_and_checkpoints_keep_it(tmp_path):
    clips = [random_clip(i, t=80) for i in range(3)]
    cfg = load_config("tiny")
    measured = with_measured_floor(cfg, clips)["model"]["floor"]
    y = np.concatenate([np.asarray(d.joints)[:, list(FOOT_JOINTS), 1] for c in clips for d in (c.leader, c.follower)])
    assert measured[0] == measured[1] == pytest.approx(np.quantile(y[:, :2], FLOOR_QUANTILE))
    assert measured[2] == measured[3] == pytest.approx(np.quantile(y[:, 2:], FLOOR_QUANTILE))
    assert measured == floor_heights([np.asarray(d.joints) for c in clips for d in (c.leader, c.follower)])
    # "off" and explicit heights are kept as given; only the lower part's config carries it
    assert "floor" not in stream_config(with_measured_floor({**cfg, "model": {**cfg["model"], "floor": "off"}}, clips),
                                        "lower")
    mcfg = with_measured_floor(cfg, clips)
    assert stream_config(mcfg, "lower")["floor"] == measured and "floor" not in stream_config(mcfg, "upper")
    with pytest.raises(ValueError, match="floor"):
        stream_config({**cfg, "model": {**cfg["model"], "floor": "yes"}}, "lower")
    with pytest.raises(ValueError, match="floor"):
        check_floor([0.1, 0.1, float("nan"), 0.0])
    # save / load round trip; a broken value in a checkpoint is refused by name
    tk = Tokenizer.from_config(mcfg, seed=0)
    assert tk.floor == measured
    tk.save(tmp_path / "tok")
    assert Tokenizer.load(tmp_path / "tok").floor == measured
    meta = json.loads((tmp_path / "tok" / "vqvae_lower.json").read_text())
    meta["config"]["floor"] = [0.1, 0.2]
    (tmp_path / "tok" / "vqvae_lower.json").write_text(json.dumps(meta))
    with pytest.raises(checkpoint.CheckpointError, match="floor"):
        Tokenizer.load(tmp_path / "tok")
    # the shipped tokenizer carries SynthDuet's floor: ankle 7.5 cm, toe base 1.7 cm
    np.testing.assert_allclose(Tokenizer.load("default").floor, [0.075, 0.075, 0.017, 0.017], atol=1e-6)


@pytest.mark.skipif(compiled.unavailable_reason(torch.device("cpu")) is not None,
                    reason="torch.compile cannot build here (no C++ compiler)")
def test_compiled_step_with_a_floor_equals_the_eager_step():
    """The env compiles its decode step ("auto"): the floor must survive compilation."""
    _, floored, d = _tokenizers()
    lead = torch.from_numpy(np.stack([d["clip"].leader.joints] * 2))
    tokens = torch.from_numpy(np.stack([d["tokens"], d["tokens"][::-1].copy()]))
    fwd = floored.leader_heading(lead)
    eager, comp = floored.streaming_decoder(2), floored.streaming_decoder(2, compile=True)
    lifted = 0
    for i in range(tokens.shape[1]):
        args = (tokens[:, i], lead[:, 4 * i:4 * i + 4], fwd[:, 4 * i:4 * i + 4])
        a, b = eager.step(*args), comp.step(*args)
        assert (a["joints"] - b["joints"]).abs().max().item() < 1e-5
        feet = a["joints"][..., list(FOOT_JOINTS), 1]
        lifted += int(((feet - torch.tensor(d["floor"])).abs() < 1e-6).any())
    assert comp.is_compiled and lifted > 0
