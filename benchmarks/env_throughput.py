"""Environment throughput, measured side by side in one run (not a test).

    python benchmarks/env_throughput.py [--steps 2000] [--threads N]

Every rate is the best of 5 rounds (this shared machine's speed drifts by ±25 % within a minute;
the best round is the least disturbed), and the eager and compiled rows alternate their rounds.

Prints: single-env steps/s (gym.make, default reward, "tokens" observation), with the eager
and the ``torch.compile`` d decode step (``compile_decoder``; duet_env/tokenizer/compiled.py); the same with
the env's decode on ``torch_threads=1`` (the default) versus torch's own thread count
(``torch_threads=None``), side by side; the cost of one ``torch.set_num_threads`` set + restore;
the same eager env with the default reward's numpy path instead of its compiled terms
(``DUET_JIT=0``; :mod:`rewards.kernels`); the default reward's cost per step with the shared
pass off (every term computes its own quantities, the oldest code), on (:mod:`rewards.shared`),
and compiled, on contexts recorded from the env;
vector-env steps/s (env steps, i.e. num_envs x batched steps) for 1, 8 and 64 envs; the step
time at episode step 10 versus step 1,000 (a clip tiled to 1,200 tokens); and the bare
streaming decoder's time for the same tokens (eager and compiled) and the env's step over it: the
median ratio of 40 pairs of back-to-back rounds (:func:`paired_ratios`), so the host's drift
cancels within a pair; the 64-env vector env over the single env the same way.
``--threads`` sets the process's torch threads first (default: torch's own, the cores).

Memory: the peak resident set size (``VmHWM``) of a process that makes one env, and of one
that makes a 64-env vector env, each then stepping 200 times; each in its own fresh Python
process, so the numbers do not mix (the data load's transient arrays count: it is a peak). Beside
it the process's RSS after the steps and the clip bank's arrays (shared by all envs of a
process). Worker processes of a first ``gym.make`` (:mod:`duet_env.workers`) are separate
processes and not included; with warm caches they only load clips.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import gymnasium as gym
import numpy as np
import torch

import duet_env  # noqa: F401  (registers the env)
from duet_env.jit import use_jit
from duet_env.threads import torch_threads


def _rate(fn, n: int) -> float:
    """Calls per second of ``fn``: the best of 5 rounds of ``n // 5`` calls after a warm-up (the
    statistic of every row, so rows compare like with like; see :func:`interleaved_rates`)."""
    return interleaved_rates({"fn": fn}, n)["fn"]


def _single_env_stepper(obs: str, **config):
    env = gym.make("DuetAccompany-v0", observation=obs, **config)
    env.reset(seed=0)
    acts = [env.action_space.sample() for _ in range(64)]
    i = [0]

    def one():
        _, _, term, trunc, _ = env.step(acts[i[0] % 64])
        i[0] += 1
        if term or trunc:
            env.reset()
    return one


def _numpy_reward(step):
    """``step`` with the reward's numpy reference path (:func:`duet_env.jit.use_jit` ``(False)``)."""
    def one():
        with use_jit(False):
            step()
    return one


def single_env_rate(steps: int, obs: str, **config) -> float:
    return _rate(_single_env_stepper(obs, **config), steps)


def interleaved_rates(fns: dict, steps: int, rounds: int = 5) -> dict:
    """Steps/s of each ``fns[name]`` (one step per call), measured in ``rounds`` alternating rounds
    of ``steps // rounds`` calls each; the best round of each counts. This machine's speed drifts
    by ±25 % within a minute (shared host), so rates measured one after the other can differ by
    more than the effect; alternating rounds expose every variant to the same drift."""
    best = {name: 0.0 for name in fns}
    for fn in fns.values():
        for _ in range(20):  # warm-up (and any compile)
            fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = max(best[name], _rate_no_warmup(fn, max(steps // rounds, 20)))
    return best


def paired_ratios(step_a, step_b, pairs: int = 40, steps: int = 100, steps_b: int | None = None
                  ) -> tuple[np.ndarray, tuple]:
    """Per-call time ratios a / b from ``pairs`` back-to-back rounds (``steps`` calls of a,
    ``steps_b`` of b; the order inside a pair alternates), and the two per-round call times (s)."""
    steps_b = steps if steps_b is None else steps_b
    for _ in range(20):  # warm-up (and any compile)
        step_a()
        step_b()
    a_t, b_t = [], []
    for k in range(pairs):
        order = ((a_t, step_a, steps), (b_t, step_b, steps_b))
        for out, fn, n in (order if k % 2 == 0 else order[::-1]):
            out.append(1.0 / _rate_no_warmup(fn, n))
    a_t, b_t = np.array(a_t), np.array(b_t)
    return a_t / b_t, (a_t, b_t)


def _rate_no_warmup(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def recorded_contexts(steps: int) -> list:
    """The StepContexts a single env (default reward) scores over ``steps`` random steps."""
    class Recorder:  # the env's reward, keeping a copy of every context it scores
        def __init__(self, reward):
            self.reward = reward

        def __getattr__(self, name):
            return getattr(self.reward, name)

        def __call__(self, ctx):
            contexts.append(dataclasses.replace(ctx, follower_joints=ctx.follower_joints.copy()))
            return self.reward(ctx)

    env = gym.make("DuetAccompany-v0")
    contexts = []
    env.unwrapped.core.reward = Recorder(env.unwrapped.core.reward)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(steps):
        if env.step(env.action_space.sample())[2]:
            env.reset()
    return contexts


def reward_pass_costs(contexts: list, rounds: int = 5) -> dict[str, float]:
    """The default reward's mean time per step (s): numpy with the shared pass off (the oldest
    code), numpy with it on, and the compiled terms (:mod:`rewards.kernels`, the default).

    Rounds alternate the three and the fastest round of each counts (on a busy machine the
    minimum is the least disturbed); every step runs on a fresh copy of its context, so nothing
    computed in an earlier round is reused.
    """
    from rewards import make_reward
    from rewards.shared import sharing

    variants = {"numpy, unshared": (False, False), "numpy, shared": (True, False), "compiled": (True, True)}
    best = {name: np.inf for name in variants}
    for _ in range(rounds):
        for name, (shared, compiled) in variants.items():
            fresh = [dataclasses.replace(c) for c in contexts]
            reward = make_reward("default")
            with sharing(shared), use_jit(compiled):
                t0 = time.perf_counter()
                for c in fresh:
                    reward(c)
                best[name] = min(best[name], (time.perf_counter() - t0) / len(fresh))
    return best


def set_threads_cost(reps: int = 2000) -> float:
    """Seconds of one ``torch.set_num_threads`` to another count and back (what a step pays
    when ``torch_threads`` differs from the process's setting)."""
    n = torch.get_num_threads()
    other = 1 if n != 1 else 2
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.set_num_threads(other)
        torch.set_num_threads(n)
    return (time.perf_counter() - t0) / reps


def _vector_stepper(num_envs: int, compile_decoder: bool = False):
    venv = gym.make_vec("DuetAccompany-v0", num_envs=num_envs, compile_decoder=compile_decoder)
    venv.reset(seed=0)
    acts = [venv.action_space.sample() for _ in range(16)]
    i = [0]

    def one():
        venv.step(acts[i[0] % 16])
        i[0] += 1
    return one


def vector_rate(num_envs: int, steps: int, compile_decoder: bool = False) -> float:
    return _rate(_vector_stepper(num_envs, compile_decoder), max(steps // num_envs, 20)) * num_envs


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
    core = DuetCore([tiled], tok, 1, 16, 8, None, make_reward("default"), torch_threads=1)  # as the env, eager
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


def _decoder_stepper(compile_decoder: bool, reps: int = 500):
    """One bare streaming-decoder step per call (B = 1, the default tokenizer, a train clip's
    leader frames and heading, random tokens), on one torch thread as the env's default."""
    from duet_env.env import _dataset_bank, load_tokenizer

    tok = load_tokenizer("default", "cpu")
    c = _dataset_bank("synth", "train", "default", "cpu")[0]
    dec = tok.streaming_decoder(1, compile_decoder)
    dec.reset()
    rng = np.random.default_rng(0)
    nvec = np.array([tok.codebook_sizes[s] for s in ("up", "down", "lhand", "rhand", "transl")])
    toks = [torch.from_numpy(rng.integers(0, nvec)[None]) for _ in range(reps)]
    fwd = tok.leader_heading(c.leader_joints.astype(np.float64)).astype(np.float32)
    frames = [slice(4 * j, 4 * j + 4) for j in (i % c.num_tokens for i in range(reps))]
    leader = [torch.from_numpy(c.leader_joints[f][None].copy()) for f in frames]
    heading = [torch.from_numpy(fwd[f][None].copy()) for f in frames]
    i = [0]

    def one():
        k = i[0] % reps
        with torch_threads(1):
            dec.step(toks[k], leader[k], heading[k])
        i[0] += 1
    return one


MEMORY_CHILD = r"""
import json, resource, sys
import gymnasium as gym
import numpy as np
import duet_env
n = int(sys.argv[1])
env = gym.make("DuetAccompany-v0") if n == 1 else gym.make_vec("DuetAccompany-v0", num_envs=n)
env.reset(seed=0)
env.action_space.seed(0)
for _ in range(200):
    terminated = env.step(env.action_space.sample())[2]
    if n == 1 and terminated:
        env.reset()
with open("/proc/self/statm") as f:
    rss_now = int(f.read().split()[1]) * resource.getpagesize()
bank = env.unwrapped.core.clips if n == 1 else env.core.clips
arrays = {id(a): a.nbytes for c in bank for a in (c.music, c.leader_joints, c.leader_tokens, c.follower_joints,
                                                   c.follower_tokens) if a is not None}
with open("/proc/self/status") as f:  # VmHWM: this process's own peak (ru_maxrss keeps the parent's)
    hwm = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:"))
print("RESULT " + json.dumps({"peak": hwm,
                              "now": rss_now, "bank": sum(arrays.values())}))
"""


def memory(num_envs: int) -> dict:
    """Peak RSS, RSS after 200 steps and clip-bank bytes of a fresh process with ``num_envs`` envs."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(num_envs)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe with {num_envs} envs failed:\n{proc.stderr[-2000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=None,
                    help="the process's torch intra-op threads (default: torch's own); the env's decode "
                         "uses its config torch_threads (default 1) either way")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    user_threads = torch.get_num_threads()
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    rows = []
    # compile_decoder is pinned in every row: the env's default "auto" would switch to the compiled
    # step after 1,000 steps, in the middle of a measurement.
    pair = interleaved_rates({"eager": _single_env_stepper("tokens", compile_decoder=False),
                              "compiled": _single_env_stepper("tokens", compile_decoder=True),
                              "numpy reward": _numpy_reward(_single_env_stepper("tokens", compile_decoder=False))},
                             3 * args.steps)
    s_tokens, s_comp = pair["eager"], pair["compiled"]
    rows.append(("single env, tokens obs, eager decode", f"{s_tokens:,.0f} steps/s (best of 5 rounds, "
                 f"alternating with the next two rows)"))
    rows.append(("single env, tokens obs, eager decode, numpy reward (DUET_JIT=0)",
                 f"{pair['numpy reward']:,.0f} steps/s (compiled reward: {s_tokens / pair['numpy reward']:.2f}x)"))
    rows.append(("single env, tokens obs, compiled decode", f"{s_comp:,.0f} steps/s ({s_comp / s_tokens:.2f}x eager; "
                 f"the default \"auto\" after its first 1,000 steps)"))
    s_default = single_env_rate(args.steps, "tokens", torch_threads=None, compile_decoder=False)
    rows.append((f"single env, torch_threads=1 vs None ({user_threads} threads)",
                 f"{s_tokens:,.0f} vs {s_default:,.0f} steps/s ({s_tokens / s_default:.2f}x)"))
    st = set_threads_cost()
    rows.append(("set_num_threads set + restore", f"{st * 1e6:.1f} us ({st * s_tokens * 100:.2f} % of a "
                 f"single-env step; paid only when the process is not on 1 thread)"))
    contexts = recorded_contexts(min(args.steps, 500))
    cost = reward_pass_costs(contexts)
    rows.append(("default reward per step: numpy unshared / numpy shared / compiled",
                 " / ".join(f"{v * 1e6:,.0f}" for v in cost.values()) + f" us (compiled "
                 f"{cost['numpy, shared'] / cost['compiled']:.1f}x faster than numpy shared; best of 5 "
                 f"alternating rounds over {len(contexts)} env contexts)"))
    rows.append(("single env, features obs, eager decode",
                 f"{single_env_rate(args.steps, 'features', compile_decoder=False):,.0f} steps/s"))
    for n in (1, 8, 64):
        r = vector_rate(n, args.steps * 4)
        rows.append((f"vector env, {n} envs, eager", f"{r:,.0f} env-steps/s ({r / s_tokens:.1f}x single eager)"))
    for n in (8, 64):
        r = vector_rate(n, args.steps * 4, compile_decoder=True)
        rows.append((f"vector env, {n} envs, compiled", f"{r:,.0f} env-steps/s ({r / s_comp:.1f}x single compiled, "
                     f"{r / s_tokens:.1f}x single eager)"))
    for mode, compiled in (("eager", False), ("compiled", True)):
        r, _ = paired_ratios(_single_env_stepper("tokens", compile_decoder=compiled),
                             _vector_stepper(64, compiled), pairs=20, steps=100, steps_b=10)
        speedup = 64.0 * r  # (64 env-steps / vector step time) / (1 / single step time)
        rows.append((f"64-env vector env / single env, {mode}, paired",
                     f"{np.median(speedup):.1f}x median of {len(r)} round pairs (quartiles "
                     f"{np.percentile(speedup, 25):.1f}–{np.percentile(speedup, 75):.1f})"))
    lt = long_episode_times()
    rows.append(("core step time at step 10", f"{lt[10] * 1e3:.3f} ms"))
    rows.append(("core step time at step 1000", f"{lt[1000] * 1e3:.3f} ms ({lt[1000] / lt[10]:.2f}x)"))
    # The env's overhead over its decoder: short rounds of an env and of a bare decoder back to
    # back, one ratio per pair of rounds, the median of many pairs (the host drifts by ±15 % within
    # a minute, more than the effect; a pair of 0.2 s rounds sees nearly the same host).
    ratios, times = {}, {}
    for mode, compiled in (("eager", False), ("compiled", True)):
        ratios[mode], times[mode] = paired_ratios(_single_env_stepper("tokens", compile_decoder=compiled),
                                                  _decoder_stepper(compiled))
    d, dc = np.median(times["eager"][1]), np.median(times["compiled"][1])
    rows.append(("bare streaming decoder step (B=1), eager vs compiled",
                 f"{d * 1e3:.3f} vs {dc * 1e3:.3f} ms ({d / dc:.2f}x; medians of the rounds below)"))
    for mode in ("eager", "compiled"):
        r = ratios[mode]
        rows.append((f"env step / decoder step, {mode}",
                     f"{np.median(r):.2f}x median of {len(r)} round pairs (quartiles {np.percentile(r, 25):.2f}–"
                     f"{np.percentile(r, 75):.2f}; env {np.median(times[mode][0]) * 1e3:.3f} ms)"))
    for n in (1, 64):
        m = memory(n)
        rows.append((f"peak RSS, {n} env{'s' if n > 1 else ''} (own process)",
                     f"{m['peak'] / 2**20:,.0f} MB (after 200 steps {m['now'] / 2**20:,.0f} MB; "
                     f"clip bank {m['bank'] / 2**20:,.0f} MB)"))
    width = max(len(r[0]) for r in rows)
    assert torch.get_num_threads() == user_threads, "an env changed the process's torch threads"
    print(f"torch threads: {user_threads} (process), load average at start: {load}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
