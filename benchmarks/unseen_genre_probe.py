"""What keeps the GPT fine-tuners from facing the way a HipHop follower does on ``unseen-genre``?

    python benchmarks/unseen_genre_probe.py --kl-coef 0 --out runs/unseen-kl0
    python benchmarks/unseen_genre_probe.py --facing-margin-deg 165 --out runs/unseen-facing165

Runs the benchmark's ``ac`` cell on the ``unseen-genre`` task (agents.benchmark: the GPT trained
without HipHop, played on the HipHop test clips, 8192 env steps, greedy scoring with the default
reward on every test clip) with training settings replaced, everything else as the published
cells (kl_coef 0.3, lr 1e-4, the default reward):

* ``--kl-coef K``: the KL(π_ref ‖ π) anchor's weight (does the anchor hold the policy back?);
* ``--steps N``: a larger training budget;
* ``--temperature T``: the rollouts' sampling temperature (a hotter one proposes unlikely tokens
  more often);
* ``--train-genre G``: fine-tune on genre G's train clips only (``agents.finetune --genre``; the
  published cells train on every genre, so HipHop leads about a fifth of their episodes);
* ``--facing-margin-deg M``: *training* reward = the default with its ``facing`` term given a
  linear slope out to M degrees beyond its 15° tolerance (the default is gaussian with 0.1 at
  60° beyond, ≈ 0 from about 100° off, so a follower facing the wrong way gets no gradient from
  it); the cells are still *scored* with the default reward.

``--gt-likelihood`` instead scores the HipHop test clips' own ground-truth tokens, teacher-forced
(the GPT reads the ground-truth history at every step), under the GPT trained without HipHop and
under the shipped GPT: per follower stream the mean log-probability of the ground-truth token and
how often it is the argmax. Tokens a GPT gives e^−10 are tokens its sampling never proposes.

Cells go to ``--out``, never to the published folder: the cell layout does not record these
settings, so the folder does (``probe.json``) and refuses other ones; finished cells are
skipped. Prints per seed the test reward per token and the facing, distance and beat terms, then
their means beside the published ``ac`` cells' from ``benchmarks/results``. A cell of 8192 steps takes
about 2.5 min on one core (training about 70 s, then loading and scoring).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np

TERMS = ("reward", "r_facing", "r_distance", "r_beat", "BAS", "FID_k")
PUBLISHED = Path(__file__).resolve().parent / "results" / "cells" / "unseen-genre" / "ac"
DEFAULT_TERMS = ("beat", "facing", "contact", "distance", "penetration", "skating", "smooth")


def training_reward(facing_margin_deg: float | None):
    """The default reward, or the default with a facing term sloped out to ``facing_margin_deg``."""
    if facing_margin_deg is None:
        return "default"
    spec = {name: 1.0 for name in DEFAULT_TERMS}
    spec["facing"] = {"weight": 1.0, "tolerance_deg": 15.0, "margin_deg": facing_margin_deg, "sigmoid": "linear"}
    return spec


def gt_likelihood(tokens_per_clip: int = 192) -> None:
    """Print, per GPT and follower stream, the teacher-forced mean log-probability and top-1 rate
    of the HipHop test clips' ground-truth tokens (module docstring)."""
    import torch

    from agents.benchmark.tasks import get_task
    from agents.rollout import load_policy, whole_clip_core
    from duet_env.conventions import FOLLOWER_STREAMS, TOKEN_FRAMES
    from duet_env.data import load_split
    from duet_env.env import load_tokenizer
    from duet_env.episodes import episode_clips
    from duet_env.observations import observation_factory

    task = get_task("unseen-genre").with_policy_ready()  # the cached GPT trained without HipHop
    tok = load_tokenizer("default", "cpu")
    clips = [c.slice(0, tokens_per_clip * TOKEN_FRAMES) for c in load_split("synth", "test", progress=False)
             if c.genre == task.genre]
    bank = episode_clips(clips, tok, with_follower=True)
    observe = observation_factory("tokens").observe
    for name, path in ((f"GPT trained without {task.genre}", task.policy), ("shipped GPT", "default")):
        pol = load_policy(path)
        core = whole_clip_core(bank, tok, pol.config["history"], pol.config["lookahead"])
        logp, top1 = [], []
        for t in range(int(core.length.min())):
            gt = np.stack([c.follower_tokens[t] for c in bank])
            with torch.no_grad():
                logits = pol.act(observe(core))
            lp = [torch.log_softmax(lg.float(), -1).numpy() for lg in logits]
            logp.append([l[np.arange(len(bank)), gt[:, s]] for s, l in enumerate(lp)])
            top1.append([l.argmax(-1) == gt[:, s] for s, l in enumerate(lp)])
            core.step(gt)  # teacher forcing: the ground truth's token, whatever the GPT preferred
        logp, top1 = np.asarray(logp), np.asarray(top1)  # (steps, streams, clips)
        print(f"{name}: " + "  ".join(f"{s} log p {logp[:, k].mean():.2f}, top-1 {top1[:, k].mean():.1%}"
                                       for k, s in enumerate(FOLLOWER_STREAMS)), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kl-coef", type=float, default=0.3, help="KL(π_ref ‖ π) weight (published: 0.3)")
    ap.add_argument("--facing-margin-deg", type=float, default=None,
                    help="train with a linear facing term out to this margin (default: the default reward)")
    ap.add_argument("--train-genre", default=None,
                    help="train on this genre's clips only, e.g. HipHop (default: every genre, as published)")
    ap.add_argument("--temperature", type=float, default=None,
                    help="rollout sampling temperature (published: agents.finetune's 0.7)")
    ap.add_argument("--steps", type=int, default=8192, help="training env steps per cell (published: 8192)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="cell folder (required unless --gt-likelihood)")
    ap.add_argument("--gt-likelihood", action="store_true",
                    help="only print how likely each GPT finds the HipHop ground truth's tokens")
    args = ap.parse_args(argv)
    if args.gt_likelihood:
        gt_likelihood()
        return 0
    if args.out is None:
        ap.error("--out is required")
    if args.out.resolve() == PUBLISHED.parents[2].resolve():
        raise SystemExit("--out must not be benchmarks/results: those cells are the published run")
    setting = {"kl_coef": args.kl_coef, "facing_margin_deg": args.facing_margin_deg, "steps": args.steps,
               "train_genre": args.train_genre, "temperature": args.temperature}
    marker = args.out / "probe.json"  # the cells do not record the setting: the folder does
    if marker.is_file() and json.loads(marker.read_text()) != setting:
        raise SystemExit(f"{args.out} holds cells of {json.loads(marker.read_text())}, not {setting}: "
                         "use another --out")
    args.out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(setting))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    import agents.benchmark.algorithms as algorithms
    from agents.benchmark.cells import CellSpec, run_cell

    published_config = algorithms.finetune_config
    reward = training_reward(args.facing_margin_deg)

    def probed(algo, task, budget):  # the published cell's config, only the probed settings replaced
        cfg = dataclasses.replace(published_config(algo, task, budget), kl_coef=args.kl_coef, reward=reward,
                                  genre=args.train_genre or "")
        if args.temperature is not None:
            cfg = dataclasses.replace(cfg, temperature=args.temperature)
        return cfg

    algorithms.finetune_config = probed
    rows = []
    for seed in range(args.seeds):
        m = run_cell(CellSpec("unseen-genre", "ac", seed, args.steps), args.out)["metrics"]
        rows.append(m)
        print(f"{setting} seed {seed}: " + "  ".join(f"{k} {m[k]:.3f}" for k in TERMS), flush=True)
    published = [json.loads(p.read_text())["metrics"] for p in sorted(PUBLISHED.glob("seed*/result.json"))]
    for name, rs in ((str(setting), rows), ("published (kl_coef 0.3, default reward)", published)):
        if rs:
            print(f"mean over {len(rs)} seeds, {name}: " + "  ".join(f"{k} {np.mean([r[k] for r in rs]):.3f}"
                                                                      for k in TERMS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
