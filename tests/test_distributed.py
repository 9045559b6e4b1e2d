"""Data-parallel training (pretrain.distributed): 2 gloo ranks on the CPU against one process.

One spawn of two processes (``torch.multiprocessing``, the env variables torchrun would set, a
free port, one thread each) runs every multi-rank check, so the processes start once: the tiny
GPT trained with a kill and ``resume`` on both ranks, a tiny VQ-VAE with codebook restarts, and
the refusal of a batch the world does not divide. The parent compares with single-process runs
on the same global batches (and a tiny learned-reward fit). Also: the single-process API is the identity, and the bf16 autocast
path (forced on the CPU) keeps the quantiser in fp32.
"""
from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch

from duet_env import checkpoint
from duet_env.tokenizer.config import load_config as load_tokenizer_config
from duet_env.tokenizer.quantizer import EMAQuantizer
from pretrain import distributed
from pretrain.gpt import FollowerGPT
from pretrain.gpt.train import train
from pretrain.motion_data import MotionWindows
from pretrain.precision import autocast_dtype
from pretrain.vqvae.train import train_stream
from tests.motion_fixtures import random_clip
from pretrain.reward_model.train import train_reward_model
from tests.test_gpt import SIZES, fake_clip, tiny_config
from tests.test_reward_model import walking_duet

WORLD = 2
GPT_STEPS, KILL_AT, SEED = 8, 5, 3


def gpt_setup():
    """The tiny GPT config (global batch 32, checkpoint every 3 steps) and its token clips."""
    rng = np.random.default_rng(7)
    clips = [fake_clip(rng, n, f"c{i}") for i, n in enumerate((30, 41, 25, 52))]
    return tiny_config(steps=GPT_STEPS, checkpoint_every=3), clips


def vq_setup():
    """The tiny VQ-VAE config with a global batch of 8 and restarts throughout, and its windows."""
    cfg = load_tokenizer_config("tiny")
    cfg["train"].update(batch=8, save_every=4, restart_until=1.0)
    return cfg, MotionWindows([random_clip(0, 64), random_clip(1, 80)], "lower", 16)


def reward_model_setup() -> dict:
    """Arguments of a tiny learned-reward fit (global batch 8 window pairs)."""
    demos = [walking_duet(48, s) for s in range(2)]
    return dict(demos=demos, noise_levels=(0.0, 0.5, 1.0), hidden=8, batch_size=8, steps=6, seed=SEED,
                progress=False)


class _Killed(Exception):
    pass


def _kill(step: int, loss: float) -> None:
    if step == KILL_AT:  # after the checkpoint of step 3: steps 4-5 are lost, resume redoes them
        raise _Killed


def _rank_main(rank: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import pretrain.gpt.train as gpt_train

    models = []

    class Recorded(gpt_train.FollowerGPT):  # keeps every rank's model for the comparison
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            models.append(self)

    gpt_train.FollowerGPT = Recorded
    device = distributed.init("cpu")
    result = {"world": distributed.world_size(), "rank": distributed.rank(), "device": str(device)}
    try:
        cfg, clips = gpt_setup()
        try:
            train(cfg, clips, SIZES, f"{out}/gpt", seed=SEED, progress=False, on_step=_kill)
        except _Killed:
            pass
        result["checkpoint_files_after_kill"] = sorted(os.listdir(f"{out}/gpt"))
        state = train(cfg, clips, SIZES, f"{out}/gpt", seed=SEED, resume=True, progress=False)
        result["gpt_loss"] = state["loss"]
        torch.save(models[-1].state_dict(), f"{out}/gpt_rank{rank}.pt")
        bad = tiny_config(steps=1, batch_size=31)
        try:
            train(bad, clips, SIZES, f"{out}/bad", seed=SEED, progress=False)
        except ValueError as e:
            result["odd_batch_error"] = str(e)
        vq_cfg, windows = vq_setup()
        vq = train_stream("lower", vq_cfg, windows, f"{out}/vq", steps=8, seed=SEED, progress=False)
        torch.save(vq.state_dict(), f"{out}/vq_rank{rank}.pt")
        rm, _ = train_reward_model(**reward_model_setup(), out=f"{out}/rm")
        torch.save(rm.state_dict(), f"{out}/rm_rank{rank}.pt")
        distributed.barrier()
    finally:
        distributed.cleanup()
    with open(f"{out}/rank{rank}.json", "w") as fh:
        json.dump(result, fh)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run :func:`_rank_main` on 2 gloo ranks; the folder with their outputs."""
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ddp")
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned ranks
    try:
        ctx = mp.start_processes(_rank_main, args=(_free_port(), str(out)), nprocs=WORLD, join=False,
                                 start_method="spawn")
        for _ in range(240):  # ranks that deadlock fail the test instead of hanging the suite
            if ctx.join(timeout=0.5):
                break
        else:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the 2 data-parallel ranks did not finish within 120 s")
    finally:
        if old is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old
    return out


def _assert_state_dicts(a: dict, b: dict, atol: float, exact: bool = False) -> None:
    assert set(a) == set(b)
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=k)


def test_two_gloo_ranks_train_the_tiny_gpt_as_one_process_on_the_global_batch(two_ranks, tmp_path):
    info = [json.loads((two_ranks / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert [i["world"] for i in info] == [WORLD, WORLD] and [i["rank"] for i in info] == [0, 1]
    rank0 = torch.load(two_ranks / "gpt_rank0.pt")
    rank1 = torch.load(two_ranks / "gpt_rank1.pt")
    _assert_state_dicts(rank0, rank1, 0.0, exact=True)  # DDP keeps the replicas identical
    # rank 0 alone wrote; the kill at step 5 left the checkpoint of step 3, resumed on both ranks
    saved, _, state = checkpoint.load(two_ranks / "gpt", "gpt")
    assert state["step"] == GPT_STEPS
    assert [h["step"] for h in state["loss_history"]] == [3, 6, 8]
    _assert_state_dicts({k: v for k, v in saved.items() if not k.startswith("optim/")}, rank0, 0.0, exact=True)

    cfg, clips = gpt_setup()
    single = train(cfg, clips, SIZES, tmp_path / "single", seed=SEED, progress=False)  # uninterrupted
    one, config, _ = checkpoint.load(tmp_path / "single", "gpt")
    one = {k: v for k, v in one.items() if not k.startswith("optim/")}
    _assert_state_dicts(one, rank0, atol=2e-5)
    assert info[0]["gpt_loss"] == pytest.approx(single["loss"], rel=1e-5)
    # not vacuous: training moved the weights far beyond that tolerance
    torch.manual_seed(SEED)
    init = FollowerGPT(config).state_dict()
    assert max((init[k] - one[k]).abs().max().item() for k in init if k.endswith("weight")) > 1e-3


def test_two_gloo_ranks_share_one_vq_codebook_equal_to_one_process(two_ranks, tmp_path):
    rank0 = torch.load(two_ranks / "vq_rank0.pt")
    rank1 = torch.load(two_ranks / "vq_rank1.pt")
    _assert_state_dicts(rank0, rank1, 0.0, exact=True)
    cfg, windows = vq_setup()
    single = train_stream("lower", cfg, windows, tmp_path / "vq", steps=8, seed=SEED, progress=False).state_dict()
    _assert_state_dicts(single, rank0, atol=1e-4)
    fresh = EMAQuantizer(16, 8)
    assert not torch.allclose(rank0["quantizer.codebook"], fresh.codebook)  # initialised and moved from data
    assert (two_ranks / "vq" / "vqvae_lower.json").exists()


def test_two_gloo_ranks_fit_the_learned_reward_as_one_process(two_ranks, tmp_path):
    rank0 = torch.load(two_ranks / "rm_rank0.pt")
    _assert_state_dicts(rank0, torch.load(two_ranks / "rm_rank1.pt"), 0.0, exact=True)
    single, _ = train_reward_model(**reward_model_setup(), out=tmp_path / "rm")
    # The last bias cancels in r(better) − r(worse): its true gradient is 0, and Adam turns the
    # rounding noise of that 0 into steps of ±lr, so it is compared between ranks only (above).
    one = {k: v for k, v in single.state_dict().items() if k != "head.2.bias"}
    _assert_state_dicts(one, {k: rank0[k] for k in one}, atol=2e-5)
    assert (two_ranks / "rm" / "reward_model.json").exists()  # written by rank 0
    from rewards.learned import RewardModel
    torch.manual_seed(SEED)
    init = RewardModel(hidden=8).state_dict()
    assert max((init[k] - rank0[k]).abs().max().item() for k in init) > 1e-3  # the fit moved the weights


def test_a_batch_the_world_does_not_divide_is_refused_on_every_rank(two_ranks):
    for r in range(WORLD):
        msg = json.loads((two_ranks / f"rank{r}.json").read_text())["odd_batch_error"]
        assert "31" in msg and "2 data-parallel ranks" in msg
    assert not (two_ranks / "bad" / "gpt.json").exists()


def test_single_process_api_is_the_identity():
    assert distributed.env_world_size() == int(os.environ.get("WORLD_SIZE", "1")) == 1
    assert distributed.init("cpu") == torch.device("cpu")
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap(net) is net and distributed.unwrap(net) is net
    assert distributed.shard_rows(7) == slice(0, 7)
    batch = {"a": np.arange(6), "b": torch.arange(6)}
    assert distributed.shard(batch)["a"].tolist() == list(range(6))
    assert distributed.mean_loss(torch.tensor(2.5)) == 2.5 and distributed.any_rank(True)
    with distributed.main_first():
        distributed.barrier()
    distributed.cleanup()


def test_precision_choices():
    assert autocast_dtype("cpu", "auto") is None  # the CPU never autocasts unless forced
    assert autocast_dtype("cpu", "fp32") is None
    assert autocast_dtype("cpu", "bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        autocast_dtype("cpu", "fp16")


def test_bf16_autocast_keeps_the_quantiser_in_fp32():
    torch.manual_seed(0)
    q = EMAQuantizer(8, 4).train()
    z = torch.randn(3, 4, 5)
    q_ref = EMAQuantizer(8, 4).train()
    q_ref.load_state_dict(q.state_dict())
    zb = z.to(torch.bfloat16)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        zq, codes, commit = q(zb)
    torch.manual_seed(1)
    zq_ref, codes_ref, commit_ref = q_ref(zb.float())
    assert zq.dtype == commit.dtype == q.codebook.dtype == torch.float32
    assert torch.equal(codes, codes_ref) and torch.equal(q.codebook, q_ref.codebook)
    assert torch.equal(zq, zq_ref) and torch.equal(commit, commit_ref)


def test_bf16_training_path_runs_on_the_cpu(tmp_path):
    cfg, clips = gpt_setup()
    cfg["train"].update(steps=2, checkpoint_every=2)
    state = train(cfg, clips, SIZES, tmp_path / "gpt", seed=0, progress=False, precision="bf16")
    tensors, _, _ = checkpoint.load(tmp_path / "gpt", "gpt")
    assert np.isfinite(state["loss"]) and all(v.dtype != torch.bfloat16 for v in tensors.values())
    vq_cfg, windows = vq_setup()
    model = train_stream("lower", vq_cfg, windows, tmp_path / "vq", steps=2, progress=False, precision="bf16")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.quantizer.codebook.dtype == torch.float32 and torch.isfinite(model.quantizer.codebook).all()
