"""How far do the test-split metrics move between test sets? The sampling spread of FID_k, FID_g,
FID_cd, BAS and rule error at the test split's size, for the ground truth and a policy (not a test).

    python benchmarks/metric_noise.py [--pool synth:seed=7,minutes=240] [--policy default]
                                      [--scales 1,2,4] [--draws 1000] [--json OUT]

The published metrics of a policy come from one test split: SynthDuet's 14 clips (3 ChaCha,
3 HipHop, 3 Tango, 3 Waltz, 2 Ballet). FID fits a Gaussian with a full covariance to one feature
vector per clip (72-d kinetic, 32-d geometric, 100-d cross-dancer distances), so with 14 clips the
fitted covariance has rank 13 and the distance is dominated by which clips were drawn. This script
measures by how much:

1. the pool: every clip (train and test split) of another SynthDuet (``--pool``, default seed 7,
   240 minutes, about 320 clips). Its choreographies, music and partners are new draws of the same
   generator, and no checkpoint saw them (the shipped GPT trained on seeds 0 and 1);
2. per pool clip, once: the ground truth's and the policy's (greedy, ``agents.rollout``) kinetic,
   geometric and cross-dancer features, BAS, and the policy's rule error against the clip's own
   follower;
3. ``--draws`` random test sets of ``k`` × the test split's genre counts (``--scales``; k = 1 is
   the published split's size and make-up), the same sets for the ground truth and the policy; each
   set scored exactly as ``agents.evaluate`` scores the test split (reference statistics: the
   default SynthDuet's train split; BAS: mean over clips; rule error: frames pooled);
4. printed per set size: percentiles 2.5 / 25 / 50 / 75 / 97.5 of every metric, for both, and the
   share of sets that score at least as well as the published split does (where the published
   number falls among the sets); and, paired on the same sets, the policy's BAS over the ground
   truth's.

The whole-pool scores (about 320 clips) are printed too: the closest this machine gets to the
metric without sampling noise. Every number comes from this one run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("NUMBA_CACHE_DIR", f"/tmp/numba_metric_noise_{os.getpid()}")

FEATURES = {"FID_k": "kinetic", "FID_g": "geometric", "FID_cd": "partner"}
LOWER_IS_BETTER = {"FID_k", "FID_g", "FID_cd", "rule_error_cm"}
PERCENTILES = (2.5, 25, 50, 75, 97.5)


def clip_scores(duets) -> dict[str, np.ndarray]:
    """Per duet ``(follower, leader, music beats)`` (``agents.evaluate.duets_of``): the three feature
    vectors, BAS against the music beats, frame count — each computed as agents.evaluate does."""
    from duet_env.metrics import alignment_score, geometric_features, kinetic_features, motion_beats
    from duet_env.metrics import partner_distance_features

    rows = {"kinetic": [], "geometric": [], "partner": [], "BAS": [], "frames": []}
    for follower, leader, beats in duets:
        rows["kinetic"].append(kinetic_features(follower))
        rows["geometric"].append(geometric_features(follower))
        rows["partner"].append(partner_distance_features(follower, leader))
        rows["BAS"].append(alignment_score(beats, motion_beats(follower)))
        rows["frames"].append(len(follower))
    return {k: np.asarray(v) for k, v in rows.items()}


def set_metrics(stats, scores: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, float]:
    """One test set's metrics, aggregated as agents.evaluate aggregates them."""
    out = {m: getattr(stats, name).fid_and_div(scores[name][idx])[0] for m, name in FEATURES.items()}
    out["BAS"] = float(np.nanmean(scores["BAS"][idx]))
    if "rule" in scores:  # cm, frames pooled over clips
        w = scores["frames"][idx]
        out["rule_error_cm"] = float((scores["rule"][idx] * w).sum() / w.sum())
    return out


def stratified_draw(rng: np.random.Generator, genres: np.ndarray, counts: dict[str, int], k: int) -> np.ndarray:
    return np.concatenate([rng.choice(np.flatnonzero(genres == g), c * k, replace=False) for g, c in counts.items()])


def followers_of(policy: str, clips, seed: int, chunk: int = 40) -> list[np.ndarray]:
    """The policy's greedy followers, in chunks of ``chunk`` clips (bounded memory)."""
    from agents.rollout import generate_followers

    out = []
    for i in range(0, len(clips), chunk):
        out += [np.asarray(g.joints) for g in generate_followers(policy, clips[i:i + chunk], seed=seed, reward=None,
                                                                progress=False)]
        print(f"  {policy}: {min(i + chunk, len(clips))}/{len(clips)} clips", file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", default="synth:seed=7,minutes=240",
                    help="the dataset the test sets are drawn from (not the default SynthDuet: its train split is "
                         "the reference and the GPT's training data)")
    ap.add_argument("--policy", default="default", help="default | random | a checkpoint folder ('none': ground truth only)")
    ap.add_argument("--scales", default="1,2,4", help="test set sizes as multiples of the test split's genre counts")
    ap.add_argument("--draws", type=int, default=1000, help="random test sets per size")
    ap.add_argument("--seed", type=int, default=0, help="the draws' and the policy's seed")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--json", default=None, help="write every number here")
    args = ap.parse_args(argv)

    import torch

    from agents.evaluate import duets_of, rule_error_cm
    from duet_env.data import load_split, resolve_root
    from duet_env.data.default import synth_source
    from duet_env.metrics import ReferenceStats

    if synth_source(args.pool) == synth_source("synth"):
        raise SystemExit("--pool must not be the default SynthDuet: its train split is the reference and the "
                         "GPT's training data, its test split the published one; use e.g. synth:seed=7,minutes=240")
    scales = [int(s) for s in args.scales.split(",") if s.strip()]
    if not scales or min(scales) < 1 or args.draws < 1:
        raise SystemExit("--scales must be positive integers and --draws at least 1")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    root = resolve_root("synth")
    stats = ReferenceStats.from_duets(duets_of(load_split(root, "train", progress=False)))
    test = load_split(root, "test", progress=False)
    counts = dict(Counter(c.genre for c in test))
    pool = load_split(resolve_root(args.pool), "all", progress=False)
    genres = np.array([c.genre for c in pool])
    short = {g: c * max(scales) for g, c in counts.items() if (genres == g).sum() < c * max(scales)}
    if short:
        raise SystemExit(f"--pool {args.pool} has too few clips of {sorted(short)} for scale {max(scales)} "
                         f"(needs {short}); use a larger pool (minutes=) or smaller --scales")
    print(f"pool {args.pool}: {len(pool)} clips {dict(Counter(genres.tolist()))}; test split {counts}",
          file=sys.stderr, flush=True)

    followers = {"ground truth": ([c.follower.joints for c in pool], [c.follower.joints for c in test])}
    if args.policy != "none":
        followers[args.policy] = (followers_of(args.policy, pool, args.seed), followers_of(args.policy, test, args.seed))
    scores, published = {}, {}
    for name, (pool_followers, test_followers) in followers.items():
        scores[name] = clip_scores(duets_of(pool, pool_followers))
        t = clip_scores(duets_of(test, test_followers))
        if name != "ground truth":  # rule error of each clip against its own ground-truth follower
            scores[name]["rule"] = np.array([rule_error_cm([c], [f]) for c, f in zip(pool, pool_followers)])
            t["rule"] = np.array([rule_error_cm([c], [f]) for c, f in zip(test, test_followers)])
        published[name] = set_metrics(stats, t, np.arange(len(test)))

    rng = np.random.default_rng(args.seed)
    report = {"pool": args.pool, "pool_clips": len(pool), "test_split": counts, "draws": args.draws,
              "published_split": published,
              "whole_pool": {n: set_metrics(stats, s, np.arange(len(pool))) for n, s in scores.items()},
              "sets": {}}
    for k in scales:
        draws = [stratified_draw(rng, genres, counts, k) for _ in range(args.draws)]
        per = {n: [set_metrics(stats, s, idx) for idx in draws] for n, s in scores.items()}
        report["sets"][str(len(test) * k)] = {
            n: {m: {"percentiles": np.percentile([r[m] for r in rows], PERCENTILES).tolist(),
                    # share of the sets scoring at least as well as the published split does
                    "as_good_as_published": float(np.mean([(r[m] <= published[n][m]) if m in LOWER_IS_BETTER
                                                           else (r[m] >= published[n][m]) for r in rows]))}
                for m in rows[0]}
            for n, rows in per.items()}
        for n, rows in per.items():  # paired: the policy's BAS over the ground truth's on the same clips
            if n != "ground truth":
                ratio = [r["BAS"] / g["BAS"] for r, g in zip(rows, per["ground truth"])]
                report["sets"][str(len(test) * k)][n]["BAS_over_ground_truth"] = {
                    "percentiles": np.percentile(ratio, PERCENTILES).tolist()}

    print(f"\nReference: the default SynthDuet's train split. Published split: its test split ({len(test)} clips). "
          f"Sets: {args.draws} stratified draws from {len(pool)} clips of {args.pool}. {time.perf_counter() - started:.0f} s.")
    print(f"{'clips':>5} {'who':<14} {'metric':<14} {'published':>9} {'whole pool':>10}   "
          f"{'2.5 %':>7} {'25 %':>7} {'median':>7} {'75 %':>7} {'97.5 %':>7}  sets as good as published")
    for n_clips, per_who in report["sets"].items():
        for n, per_metric in per_who.items():
            for m, r in per_metric.items():
                p = " ".join(f"{v:>7.3f}" for v in r["percentiles"])
                if m == "BAS_over_ground_truth":
                    print(f"{n_clips:>5} {n:<14} {'BAS / GT BAS':<14} {'':>9} {'':>10}   {p}  (paired: the same sets)")
                    continue
                print(f"{n_clips:>5} {n:<14} {m:<14} {published[n][m]:>9.3f} {report['whole_pool'][n][m]:>10.3f}   "
                      + p + f"  {100 * r['as_good_as_published']:.0f} %")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
