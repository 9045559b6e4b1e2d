"""Follower GPT decisions: the full-window path beside the KV-cached stream, in one run (not a test).

    python benchmarks/gpt_act.py [--checkpoint default ...] [--steps 200] [--threads 1]

For each checkpoint, at batch 1 and batch 64, a greedy rollout of ``--steps`` consecutive
decisions on SynthDuet test clips (teacher-forced follower history, so both paths see the same
observations):

* ``full window``: ``FollowerPolicy.act`` — every decision recomputes the whole observation window;
* ``KV cache``: ``FollowerPolicy.stream().act`` — only the new step (pretrain/gpt/stream.py); for a
  ``"window"``-architecture GPT the stream falls back to the full window (ratio ≈ 1).

Printed: ms per decision (median of 3 repeats; batch 64 rolls out a quarter of ``--steps``), the
speed-up, and the largest logit difference between the two paths over the rollout (the cache is
exact for the streaming architecture).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from duet_env.paths import cache_dir
from pretrain.gpt import FollowerPolicy
from pretrain.gpt.data import WindowSampler, load_split_tokens


def observations(policy: FollowerPolicy, batch: int, steps: int) -> list[dict]:
    """``steps`` consecutive batched "tokens" observations from the SynthDuet test split."""
    clips, sizes = load_split_tokens("synth", "test", policy.state.get("tokenizer", "default"),
                                     cache_folder=cache_dir() / "gpt-tokens", progress=False)
    sampler = WindowSampler(clips, sizes, policy.history, policy.lookahead)
    long_enough = [i for i, c in enumerate(clips) if len(c["follower"]) >= steps]
    if not long_enough:
        raise SystemExit(f"no SynthDuet test clip has {steps} tokens: pass a smaller --steps")
    rows = [long_enough[i % len(long_enough)] for i in range(batch)]
    out = []
    for t in range(steps):
        w = sampler.windows(rows, [t] * batch)
        out.append({key: w[key].reshape(batch, -1) for key in ("music", "leader", "leader_turn", "follower")})
    return out


def rollout_ms(act, obs: list[dict], repeats: int = 3, reset=None) -> float:
    times = []
    for _ in range(repeats):
        if reset is not None:
            reset()
        t0 = time.perf_counter()
        for o in obs:
            act(o)
        times.append((time.perf_counter() - t0) / len(obs) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", nargs="+", default=["default"])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, {args.steps} decisions per rollout at batch 1, "
          f"{max(args.steps // 4, 20)} at batch 64")
    print(f"{'checkpoint':<28} {'arch':<10} {'batch':>5} {'full window ms':>15} {'KV cache ms':>12} "
          f"{'speed-up':>9} {'max |Δ logit|':>14}")
    for name in args.checkpoint:
        policy = FollowerPolicy.load(name)
        arch = policy.model.arch
        for batch in (1, 64):
            steps = args.steps if batch == 1 else max(args.steps // 4, 20)  # batch 64's full window is slow
            obs = observations(policy, batch, steps)
            stream = policy.stream()
            diff = 0.0
            with torch.no_grad():
                for o in obs:
                    full = torch.cat(policy.act(o), -1)
                    diff = max(diff, (torch.cat(stream.act(o), -1) - full).abs().max().item())
            t_full = rollout_ms(policy.act, obs)
            t_stream = rollout_ms(stream.act, obs, reset=stream.reset)
            print(f"{name[-28:]:<28} {arch:<10} {batch:>5} {t_full:>15.2f} {t_stream:>12.2f} "
                  f"{t_full / t_stream:>8.1f}x {diff:>14.1e}")
    print("load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
