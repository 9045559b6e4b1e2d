"""The CUDA path: the env, rollouts, fine-tuning and bf16 pretraining on a GPU, each against the
CPU. Marked ``gpu``: skipped without CUDA (the CPU tests cover the plumbing that does not need one:
tests/test_distributed.py forces the bf16 autocast path on the CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu


def test_env_on_cuda_steps_like_the_cpu_env(env_kwargs):
    import gymnasium as gym

    runs = {}
    for device in ("cpu", "cuda"):
        env = gym.make("DuetAccompany-v0", device=device, **env_kwargs)
        obs, info = env.reset(seed=0)
        env.action_space.seed(0)
        rewards = [env.step(env.action_space.sample())[1] for _ in range(6)]
        assert env.unwrapped.core.device.type == device
        runs[device] = rewards
    # cuDNN may run the decoder's convolutions in TF32: equal up to that rounding, not bit for bit
    np.testing.assert_allclose(runs["cuda"], runs["cpu"], atol=0.05)


def test_rollout_on_cuda_generates_the_cpu_followers(tiny_synth, tiny_tokenizer, tiny_gpt):
    from agents.rollout import generate_followers
    from duet_env.data import load_split

    clips = [c.slice(0, 64) for c in load_split(str(tiny_synth), "test", progress=False)[:2]]
    out = {d: generate_followers(str(tiny_gpt), clips, tokenizer=str(tiny_tokenizer), device=d, progress=False)
           for d in ("cpu", "cuda")}
    for a, b in zip(out["cpu"], out["cuda"]):
        assert a.joints.shape == b.joints.shape and np.isfinite(b.joints).all()
        assert (a.tokens == b.tokens).mean() > 0.95  # greedy: only near-ties may flip


def test_finetune_runs_on_cuda(tmp_path, tiny_synth, tiny_tokenizer, tiny_gpt):
    from agents import finetune as ft

    cfg = ft.FinetuneConfig(data=str(tiny_synth), tokenizer=str(tiny_tokenizer), policy=str(tiny_gpt), num_envs=4,
                            episode_tokens=6, steps=48, minibatch=4, eval_clips=2, device="cuda", threads=1)
    result = ft.run(cfg, tmp_path / "run", progress=False)
    assert np.isfinite(result["after"]["BAS"])


def test_gpt_trains_in_bf16_on_cuda_close_to_fp32(tmp_path):
    from pretrain.gpt.train import train
    from tests.test_distributed import gpt_setup
    from tests.test_gpt import SIZES

    cfg, clips = gpt_setup()
    bf16 = train(cfg, clips, SIZES, tmp_path / "bf16", seed=0, device="cuda", progress=False)  # auto: bf16
    fp32 = train(cfg, clips, SIZES, tmp_path / "fp32", seed=0, device="cuda", progress=False, precision="fp32")
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=0.05)
    assert torch.cuda.is_bf16_supported() or bf16["loss"] == fp32["loss"]
