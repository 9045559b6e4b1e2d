"""Environment throughput, measured side by side in one run (not a test).

    python benchmarks/env_throughput.py [--steps 2000] [--threads 1]

Prints: single-env steps/s (gym.make, default reward, "tokens" observation); vector-env
steps/s (env steps, i.e. num_envs x batched steps) for 1, 8 and 64 envs; the step time at
episode step 10 versus step 1,000 (a clip tiled to 1,200 tokens); and the bare streaming
decoder's time for the same tokens, so the env's overhead over decoding is visible.
"""
from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import duet_env  # noqa: F401  (registers the env)


def _rate(fn, n: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def single_env_rate(steps: int, obs: str) -> float:
    env = gym.make("DuetAccompany-v0", observation=obs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = [env.action_space.sample() for _ in range(64)]
    i = [0]

    def one():
        _, _, term, trunc, _ = env.step(acts[i[0] % 64])
        i[0] += 1
        if term or trunc:
            env.reset()
    del rng
    return _rate(one, steps)


def vector_rate(num_envs: int, steps: int) -> float:
    venv = gym.make_vec("DuetAccompany-v0", num_envs=num_envs)
    venv.reset(seed=0)
    acts = [venv.action_space.sample() for _ in range(16)]
    i = [0]

    def one():
        venv.step(acts[i[0] % 16])
        i[0] += 1
    return _rate(one, max(steps // num_envs, 20)) * num_envs


def long_episode_times(n_tokens: int = 1200, probe=(10, 1000), reps: int = 50):
    """Mean step time around episode step 10 and step 1,000 on one long tiled clip."""
    from duet_env.core import DuetCore
    from duet_env.env import _dataset_bank, load_tokenizer
    from duet_env.episodes import EpisodeClip
    from rewards import make_reward

    tok = load_tokenizer("default", "cpu")
    c = _dataset_bank("synth", "train", "default", "cpu")[0]
    reps_needed = -(-n_tokens // c.num_tokens)
    tiled = EpisodeClip(c.name, c.genre, c.style, np.tile(c.music, (reps_needed, 1))[: n_tokens * 4],
                        np.tile(c.leader_joints, (reps_needed, 1, 1))[: n_tokens * 4],
                        np.tile(c.leader_tokens, (reps_needed, 1))[:n_tokens])
    core = DuetCore([tiled], tok, 1, 16, 8, None, make_reward("default"))
    core.reset_slot(0, 0, 0, n_tokens)
    rng = np.random.default_rng(0)
    times = {}
    for t in range(max(probe) + reps + 1):
        a = rng.integers(0, core.nvec)[None]
        t0 = time.perf_counter()
        core.step(a)
        dt = time.perf_counter() - t0
        for p in probe:
            if p <= t < p + reps:
                times.setdefault(p, []).append(dt)
    return {p: float(np.median(v)) for p, v in times.items()}


def decoder_time(reps: int = 500) -> float:
    from duet_env.env import _dataset_bank, load_tokenizer

    tok = load_tokenizer("default", "cpu")
    c = _dataset_bank("synth", "train", "default", "cpu")[0]
    dec = tok.streaming_decoder(1)
    dec.reset()
    rng = np.random.default_rng(0)
    nvec = np.array([tok.codebook_sizes[s] for s in ("up", "down", "lhand", "rhand", "transl")])
    toks = [torch.from_numpy(rng.integers(0, nvec)[None]) for _ in range(reps)]
    fwd = tok.leader_heading(c.leader_joints.astype(np.float64)).astype(np.float32)
    frames = [slice(4 * j, 4 * j + 4) for j in (i % c.num_tokens for i in range(reps))]
    leader = [torch.from_numpy(c.leader_joints[f][None].copy()) for f in frames]
    heading = [torch.from_numpy(fwd[f][None].copy()) for f in frames]
    dec.step(toks[0], leader[0], heading[0])
    t0 = time.perf_counter()
    for i in range(reps):
        dec.step(toks[i], leader[i], heading[i])
    return (time.perf_counter() - t0) / reps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest for B=1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    s_tokens = single_env_rate(args.steps, "tokens")
    rows.append(("single env, tokens obs", f"{s_tokens:,.0f} steps/s"))
    rows.append(("single env, features obs", f"{single_env_rate(args.steps, 'features'):,.0f} steps/s"))
    for n in (1, 8, 64):
        r = vector_rate(n, args.steps * 4)
        rows.append((f"vector env, {n} envs", f"{r:,.0f} env-steps/s ({r / s_tokens:.1f}x single)"))
    lt = long_episode_times()
    rows.append(("core step time at step 10", f"{lt[10] * 1e3:.3f} ms"))
    rows.append(("core step time at step 1000", f"{lt[1000] * 1e3:.3f} ms ({lt[1000] / lt[10]:.2f}x)"))
    d = decoder_time()
    rows.append(("bare streaming decoder step (B=1)", f"{d * 1e3:.3f} ms"))
    rows.append(("env step / decoder step", f"{(1 / s_tokens) / d:.2f}x"))
    width = max(len(r[0]) for r in rows)
    print(f"torch threads: {torch.get_num_threads()}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
