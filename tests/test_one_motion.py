"""One motion (issue: "the decoder's joints, rewards, metrics and exported SMPL-X files must be the
same dance"): the joints the env decodes are forward kinematics of the rotations and pelvis it
decodes, and the SMPL-X files an export writes reload to those joints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from duet_env import checkpoint, skeleton
from duet_env.tokenizer import Tokenizer
from duet_env.tokenizer.config import STREAMS, checkpoint_stem, load_config, stream_config
from tests.motion_fixtures import random_clip


def _trained_scale_tokenizer() -> Tokenizer:
    """A tiny tokenizer whose decoders output rotations far from the rest pose (as trained ones do)."""
    tk = Tokenizer.from_config("tiny", seed=5)
    for s in STREAMS:
        with torch.no_grad():
            tk.models[s].decoder.conv_out.conv.weight.mul_(20.0)
    return Tokenizer(tk.models, configs=tk.configs)


def test_decoded_joints_are_fk_of_decoded_rotations_and_pelvis():
    tk = _trained_scale_tokenizer()
    clip = random_clip(2, t=64)
    tokens = torch.randint(0, 16, (16, 5), generator=torch.Generator().manual_seed(1)).numpy()
    out = tk.decode(tokens, clip.leader.joints)
    assert np.degrees(np.arccos(np.clip(out["rotmats"][..., 1, 1], -1, 1))).max() > 5  # not the rest pose
    fk = skeleton.forward_kinematics(out["rotmats"].astype(np.float64),
                                     (out["root"] - skeleton.REST_OFFSETS[0]).astype(np.float64))
    np.testing.assert_allclose(out["joints"], fk, atol=1e-5)
    np.testing.assert_allclose(out["joints"][:, 0], out["root"], atol=1e-6)


def test_exported_smplx_files_reload_to_the_env_joints_within_1mm(tmp_path):
    from agents.evaluate import FollowerSet, save_dd100, saved_followers
    from agents.rollout import generate_followers

    tk = _trained_scale_tokenizer()
    clips = [random_clip(0, 64, "Waltz_5_1"), random_clip(1, 48, "Tango_5_1")]
    motions = generate_followers("random", clips, seed=0, tokenizer=tk, progress=False)
    followers = FollowerSet([m.joints for m in motions], [m.poses for m in motions], [m.transl for m in motions])
    save_dd100(tmp_path, clips, followers)
    reloaded = saved_followers(tmp_path, clips)
    for m, joints in zip(motions, reloaded.joints):
        assert joints.shape == m.joints.shape
        err = np.linalg.norm(joints - m.joints, axis=-1)
        assert err.max() < 1e-3, err.max()
    # the random follower really moves (the check is not trivially met by a still body)
    assert np.linalg.norm(np.diff(motions[0].joints[:, 20], axis=0), axis=-1).mean() > 1e-3


def test_a_checkpoint_of_the_first_architecture_is_refused_with_a_clear_message(tmp_path):
    tk = Tokenizer.from_config("tiny", seed=0)
    cfg = load_config("tiny")
    for s in STREAMS:
        old = {k: v for k, v in stream_config(cfg, s).items() if k not in ("arch", "out_dim")}
        checkpoint.save(tmp_path, checkpoint_stem(s), tk.models[s].state_dict(), old)
    with pytest.raises(checkpoint.CheckpointError, match="architecture"):
        Tokenizer.load(tmp_path)
