"""Per-token reward that followers earn on a dataset split: every term and the weighted total.

    python -m agents.reward_table [--reward default] [--followers gt,gt-tokens,default,random]
        [--jitter-cm 1.0] [--data synth] [--split test] [--seed 0] [--json OUT.json]

Rows (``--followers``, comma-separated):

- ``gt``: the split's ground-truth follower joints, scored offline token by token with
  :func:`rewards.episode_contexts` (the env's 32-frame context, history padded at the clip start).
  No tokenizer is involved, so there is no decoder root-velocity prediction and ``skating``
  scores its planted-foot-sliding fallback.
- ``gt+jitter``: the same joints plus white noise of ``--jitter-cm`` (std, every joint
  coordinate, every frame; seeded), scored the same way: what jitter earns.
- ``gt-tokens``: the ground-truth follower tokens (the tokenizer's encoding of the ground
  truth) replayed as actions in the env core: what the env pays a follower that plays the
  ground truth's tokens (decoded joints, skating against the decoder's root velocity).
- ``random``, ``default`` or a checkpoint PATH: followers generated in the env core by
  :func:`agents.rollout.generate_followers` (greedy).

Every value is a mean over all tokens of the split (tokens pooled over clips). ``--reward`` is
a name or a JSON spec (``'{"beat": {"weight": 1, "depth": 0}, "facing": 1}'``); terms needing a
checkpoint take it in the spec.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from duet_env.conventions import BEAT_COLUMN

ROWS = ("gt", "gt+jitter", "gt-tokens", "random", "default")


def parse_reward(text: str):
    text = text.strip()
    return json.loads(text) if text.startswith("{") else text


def score_offline(clips, followers: list[np.ndarray], reward_spec) -> dict[str, float]:
    """Pooled per-token total and components of ``reward_spec`` on given follower joints."""
    from rewards import episode_contexts, make_reward

    totals, comps = [], {}
    for clip, follower in zip(clips, followers):
        reward = make_reward(reward_spec)  # fresh state per episode
        n = min(len(follower), len(clip))
        beats = clip.music[:n, BEAT_COLUMN] > 0.5
        for ctx in episode_contexts(clip.leader.joints[:n], follower[:n], beats, music=clip.music[:n],
                                    genre=clip.genre):
            total, c = reward(ctx)
            totals.append(float(total[0]))
            for name, v in c.items():
                comps.setdefault(name, []).append(float(v[0]))
    return {"reward": float(np.mean(totals)), **{k: float(np.mean(v)) for k, v in comps.items()},
            "tokens": len(totals)}


def score_env(clips, policy, reward_spec, seed: int) -> dict[str, float]:
    """Pooled per-token total and components paid by the env core to ``policy``'s followers."""
    from agents.rollout import generate_followers

    out = generate_followers(policy, clips, seed=seed, reward=reward_spec, mode="greedy", progress=False)
    n = np.array([len(o.tokens) for o in out], np.float64)
    row = {"reward": float(np.dot(n, [o.reward for o in out]) / n.sum())}
    for name in out[0].components:
        row[name] = float(np.dot(n, [o.components[name] for o in out]) / n.sum())
    row["tokens"] = int(n.sum())
    return row


def score_rows(clips, rows: list[str], reward_spec, jitter_cm: float = 1.0, seed: int = 0) -> dict[str, dict]:
    out = {}
    for row in rows:
        if row == "gt":
            out[row] = score_offline(clips, [c.follower.joints for c in clips], reward_spec)
        elif row == "gt+jitter":
            rng = np.random.default_rng(seed)
            noisy = [c.follower.joints + rng.normal(0.0, jitter_cm / 100.0, c.follower.joints.shape).astype(np.float32)
                     for c in clips]
            out[f"gt+jitter {jitter_cm:g} cm"] = score_offline(clips, noisy, reward_spec)
        elif row == "gt-tokens":
            from agents.rollout import ReplayPolicy
            from duet_env.env import load_tokenizer
            from duet_env.episodes import episode_clips

            bank = episode_clips(clips, load_tokenizer("default"), with_follower=True)
            out[row] = score_env(clips, ReplayPolicy([b.follower_tokens for b in bank]), reward_spec, seed)
        else:
            out[row] = score_env(clips, row, reward_spec, seed)
    return out


def format_table(rows: dict[str, dict]) -> str:
    names = list(rows)
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    lines = [f"{'per token':<14}" + "".join(f"{n:>20}" for n in names)]
    for k in keys:
        cells = "".join(f"{rows[n].get(k, float('nan')):>20.4f}" if k != "tokens" else f"{rows[n].get(k, 0):>20d}"
                        for n in names)
        lines.append(f"{k:<14}" + cells)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.reward_table", description=__doc__.split("\n")[0])
    parser.add_argument("--reward", default="default", help="a reward name or a JSON {term: weight} spec")
    parser.add_argument("--followers", default="gt,gt-tokens", help=f"comma-separated rows: {', '.join(ROWS)} or PATH")
    parser.add_argument("--jitter-cm", type=float, default=1.0, help="noise std of the gt+jitter row, cm")
    parser.add_argument("--data", default="synth", help="'synth' (default SynthDuet) or a DD100-layout folder")
    parser.add_argument("--split", default="test", choices=["train", "test", "all"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args(argv)

    from duet_env.data import load_split, resolve_root
    from rewards import make_reward

    spec = parse_reward(args.reward)
    try:
        reward = make_reward(spec)
    except ValueError as e:
        raise SystemExit(f"--reward: {e}") from e
    clips = load_split(resolve_root(args.data), args.split)
    rows = score_rows(clips, [r.strip() for r in args.followers.split(",") if r.strip()], spec, args.jitter_cm,
                      args.seed)
    print(f"reward {reward.to_json()}, range {reward.range}; {len(clips)} {args.split} clips", file=sys.stderr)
    print(format_table(rows))
    if args.json:
        from duet_env.atomic import atomic_write_json

        atomic_write_json(args.json, {"reward": reward.spec, "range": list(reward.range), "data": args.data,
                                      "split": args.split, "seed": args.seed, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
