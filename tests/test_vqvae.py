"""pretrain.vqvae: EMA codebook + dead-code restart, causal decoders, training data, resume."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from duet_env import checkpoint
from pretrain.motion_data import MotionWindows
from duet_env.tokenizer import features
from duet_env.tokenizer.config import load_config
from duet_env.tokenizer.model import FusedDecoder, KeyframeDecoder, hermite_frames
from duet_env.tokenizer.quantizer import EMAQuantizer
from pretrain.vqvae.train import train_stream
from tests.motion_fixtures import random_clip


def test_ema_update_known_answer():
    q = EMAQuantizer(2, 2, decay=0.99, eps=0.0)
    q.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    q.cluster_size.fill_(1.0)
    q.embed_sum.copy_(q.codebook)
    q.initialised.fill_(True)
    q.restart_enabled = False
    q.train()
    z = torch.ones(1, 2, 4)  # four vectors at (1, 1): all nearest to code 0
    _, codes, commit = q(z)
    assert codes.tolist() == [[0, 0, 0, 0]]
    assert q.cluster_size.tolist() == pytest.approx([1.03, 0.99])
    # e_0 = S_0 / N_0 with N_0 = 0.99 + 0.01*4 and S_0 = 0.01 * 4 * (1, 1)
    assert q.codebook[0].tolist() == pytest.approx([0.04 / 1.03] * 2, rel=1e-5)
    assert q.codebook[1].tolist() == pytest.approx([10.0, 10.0], rel=1e-5)
    assert float(commit) == pytest.approx(1.0)  # ||z - e_0||^2 per element with e_0 = 0 before the update


def test_dead_codes_restart_onto_the_data():
    torch.manual_seed(0)
    q = EMAQuantizer(16, 4, restart_threshold=1.0)
    q.codebook.copy_(torch.randn(16, 4) * 5 + 20.0)  # far from the data
    q.cluster_size.fill_(0.5)  # all below threshold: "unused for a while"
    q.embed_sum.copy_(q.codebook * 0.5)
    q.initialised.fill_(True)
    q.train()
    point = torch.tensor([1.0, -2.0, 0.5, 3.0])
    z = (point[None, :, None] + 1e-3 * torch.randn(8, 4, 8))
    before = (q.codebook - point).norm(dim=1)
    q(z)
    after = (q.codebook - point).norm(dim=1)
    assert before.min() > 5.0
    # the one code that won the batch follows its EMA (moves part way); every other code was
    # dead and now sits on an encoder output
    assert int((after < 0.05).sum()) == 15
    assert after.max() < 0.7 * before.max()
    # in eval mode nothing moves
    q.eval()
    snapshot = q.codebook.clone()
    q(z + 1.0)
    assert torch.equal(snapshot, q.codebook)


def test_first_batch_initialises_codebook_from_data():
    torch.manual_seed(0)
    q = EMAQuantizer(8, 3).train()
    z = torch.randn(4, 3, 5) * 0.01 + 7.0
    q(z)
    assert bool(q.initialised) and (q.codebook - 7.0).abs().max() < 0.1


def test_decoder_is_causal_and_fused_equals_separate():
    torch.manual_seed(0)
    decs = [KeyframeDecoder(6, 12, out, 2, 3, torch.randn(out)) for out in (5, 9, 3)]
    for d in decs:  # trained-like output scale (the init shrinks the output conv)
        d.conv_out.conv.weight.data.normal_()
    z = torch.randn(2, 6, 7)
    ref = decs[0](z)
    z2 = z.clone()
    z2[:, :, 4:] += 1.0  # change codes 4.. : frames < 16 must not change
    out2 = decs[0](z2)
    assert ref.shape == (2, 28, 5)
    assert torch.allclose(ref[:, :16], out2[:, :16], atol=1e-6)
    assert (ref[:, 16:] - out2[:, 16:]).abs().max() > 1e-3
    zs = [torch.randn(2, 6, 7) for _ in decs]
    fused = FusedDecoder(decs)
    out = fused(torch.stack([x.transpose(1, 2) for x in zs]))
    assert out.shape == (3, 2, 28, 9)
    for g, (d, x) in enumerate(zip(decs, zs)):
        assert torch.allclose(out[g, :, :, :d.out_dim], d(x), atol=1e-5)
        assert torch.all(out[g, :, :, d.out_dim:] == 0)


def test_hermite_frames_reproduce_a_cubic_and_start_at_rest():
    # keyframes/tangents sampled from a cubic f(t) at the tokens' last frames t = 4k + 3 (tangent
    # per segment = 4 f'(t)) -> every frame of tokens 1.. equals f exactly
    f = lambda t: 0.3 * t ** 3 - 2.0 * t ** 2 + t - 4.0
    df = lambda t: 0.9 * t ** 2 - 4.0 * t + 1.0
    t_end = torch.arange(6, dtype=torch.float64) * 4 + 3
    frames = hermite_frames(f(t_end)[:, None], 4 * df(t_end)[:, None])
    t = torch.arange(24, dtype=torch.float64)
    assert torch.allclose(frames[4:, 0], f(t[4:]), atol=1e-9)
    # token 0 has no predecessor: it holds its own keyframe (no flight in from the origin)
    assert torch.allclose(frames[:4, 0], f(t_end[0]).expand(4) + 4 * df(t_end[0]) * torch.tensor(
        [0.25 ** 3 - 0.25 ** 2, 0.5 ** 3 - 0.5 ** 2, 0.75 ** 3 - 0.75 ** 2, 0.0], dtype=torch.float64), atol=1e-9)


def test_rot6d_round_trip():
    from duet_env import motion
    r = motion.axis_angle_to_matrix(torch.randn(10, 3, dtype=torch.float64))
    assert torch.allclose(features.rot6d_to_matrix(features.matrix_to_rot6d(r)), r, atol=1e-10)


def test_motion_windows_match_features():
    clips = [random_clip(0, 80), random_clip(1, 60, "Tango_2_1")]
    data = MotionWindows(clips, "lhand", 16)
    assert len(data) == 2 * (80 - 15) + 2 * (60 - 15)  # both dancers of both clips
    batch = data.sample(np.random.default_rng(0), 5)
    assert batch.x.shape == (5, 16, 45) and batch.rot.shape == (5, 16, 55, 3, 3)
    # the first track is the first clip's leader: its features at frame 0 are fingers - wrist, x10
    lead = clips[0].leader.joints.astype(np.float64)
    j0 = lead[0, 25:40] - lead[0, 20]
    assert np.linalg.norm(data.x[0].reshape(15, 3), axis=1) == pytest.approx(10 * np.linalg.norm(j0, axis=1), rel=1e-4)
    tr = MotionWindows(clips, "transl", 16)
    f = clips[0].follower.joints[0, 0] - clips[0].leader.joints[0, 0]
    assert np.linalg.norm(tr.x[0]) == pytest.approx(np.linalg.norm(f), rel=1e-4)
    with pytest.raises(ValueError, match="multiple of 4"):
        MotionWindows(clips, "upper", 10)


class _Killed(RuntimeError):
    pass


class _KillAfter:
    """Wraps MotionWindows and raises after ``n`` batches: a run killed mid-way."""

    def __init__(self, data, n):
        self.data, self.n = data, n

    def sample(self, *a, **k):
        if self.n == 0:
            raise _Killed
        self.n -= 1
        return self.data.sample(*a, **k)


@pytest.fixture(scope="module")
def lower_windows():
    return MotionWindows([random_clip(0, 64), random_clip(1, 64)], "lower", 16)


def test_resume_equals_uninterrupted_run_and_mismatch_is_refused(tmp_path, lower_windows):
    cfg = load_config("tiny")
    cfg = copy.deepcopy(cfg)
    cfg["train"]["save_every"] = 3
    full = train_stream("lower", cfg, lower_windows, tmp_path / "a", steps=6, progress=False)
    with pytest.raises(_Killed):
        train_stream("lower", cfg, _KillAfter(lower_windows, 4), tmp_path / "b", steps=6, progress=False)
    _, _, state = checkpoint.load(tmp_path / "b", "vqvae_lower")
    assert state["step"] == 3  # the checkpoint of step 3 survived the kill at step 4
    resumed = train_stream("lower", cfg, lower_windows, tmp_path / "b", steps=6, resume=True, progress=False)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    other = copy.deepcopy(cfg)
    other["model"]["code_dim"] = 4
    with pytest.raises(checkpoint.CheckpointError, match="code_dim"):
        train_stream("lower", other, lower_windows, tmp_path / "b", steps=6, resume=True, progress=False)


def test_training_reduces_reconstruction_error(lower_windows):
    from pretrain.vqvae.train import stream_loss

    cfg = copy.deepcopy(load_config("tiny"))
    cfg["train"].update(batch=8, save_every=1000)
    rng = np.random.default_rng(1)
    batch = lower_windows.sample(rng, 16)
    torch.manual_seed(0)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        first = train_stream("lower", cfg, lower_windows, d, steps=1, progress=False)
        first.train()
        loss0, _ = stream_loss(first, batch, "lower", cfg["train"])
        model = train_stream("lower", cfg, lower_windows, d, steps=300, progress=False)
    model.train()
    model.quantizer.restart_enabled = False
    loss1, _ = stream_loss(model, batch, "lower", cfg["train"])
    assert loss1.item() < 0.7 * loss0.item()


def test_evaluate_reports_consistent_metrics():
    from duet_env.tokenizer import Tokenizer
    from pretrain.vqvae.evaluate import evaluate

    tk = Tokenizer.from_config("tiny", seed=0)
    clips = [random_clip(0, 64), random_clip(1, 48, "Tango_2_1")]
    res = evaluate(tk, clips, progress=False)
    # body parts are measured the same way in both tables; hands differ (wrist-relative vs composed)
    assert res["mpjpe_cm"]["lower"] == pytest.approx(res["composed_mpjpe_cm"]["lower"])
    assert res["mpjpe_cm"]["upper"] == pytest.approx(res["composed_mpjpe_cm"]["upper"])
    used = set()
    for c in clips:
        for d in (c.leader, c.follower):
            used.update(tk.encode(c.leader.joints, d.joints)["follower"][:, 0].tolist())
    assert res["codebook_usage"]["up"] == pytest.approx(len(used) / 16)
    assert 0 < res["rot_err_deg"] <= 180 and res["transl_err_cm"] > 0 and res["clips"] == 2
