"""Is it the KL anchor that keeps the GPT fine-tuners from facing the way a HipHop follower does?

    python benchmarks/unseen_genre_anchor.py --kl-coef 0 --seeds 5 --out runs/unseen-kl0

Runs the benchmark's ``ac`` cell on the ``unseen-genre`` task (agents.benchmark: the GPT trained
without HipHop, played on the HipHop test clips, 8192 env steps, greedy scoring on every test clip)
with ``kl_coef`` replaced, everything else as the published cells (lr 1e-4). Its cells go to
``--out`` (never the published folder: the cell layout does not record the anchor, so the folder
does, in ``anchor.json``, and refuses another one); finished cells are skipped. Prints per seed the test reward per token and the facing, distance and beat
terms, then their means beside the published ``ac`` cells' (kl_coef 0.3) from
``benchmarks/results``. About 65 s a cell on one core.
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kl-coef", type=float, required=True, help="KL(π_ref ‖ π) weight of the ac cells")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.out.resolve() == PUBLISHED.parents[2].resolve():
        raise SystemExit("--out must not be benchmarks/results: those cells are the published kl_coef 0.3 run")
    marker = args.out / "anchor.json"  # the cells do not record the anchor: the folder does
    if marker.is_file() and json.loads(marker.read_text())["kl_coef"] != args.kl_coef:
        raise SystemExit(f"{args.out} holds cells of kl_coef {json.loads(marker.read_text())['kl_coef']}, "
                         f"not {args.kl_coef}: use another --out")
    args.out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"kl_coef": args.kl_coef}))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    import agents.benchmark.algorithms as algorithms
    from agents.benchmark.cells import CellSpec, run_cell

    published_config = algorithms.finetune_config

    def with_anchor(algo, task, budget):  # the published cell's config, only the anchor replaced
        return dataclasses.replace(published_config(algo, task, budget), kl_coef=args.kl_coef)

    algorithms.finetune_config = with_anchor
    rows = []
    for seed in range(args.seeds):
        m = run_cell(CellSpec("unseen-genre", "ac", seed, 8192), args.out)["metrics"]
        rows.append(m)
        print(f"kl_coef {args.kl_coef} seed {seed}: " + "  ".join(f"{k} {m[k]:.3f}" for k in TERMS), flush=True)
    published = [json.loads(p.read_text())["metrics"] for p in sorted(PUBLISHED.glob("seed*/result.json"))]
    for name, rs in ((f"kl_coef {args.kl_coef}", rows), ("published (kl_coef 0.3)", published)):
        if rs:
            print(f"mean over {len(rs)} seeds, {name}: " + "  ".join(f"{k} {np.mean([r[k] for r in rs]):.3f}"
                                                                      for k in TERMS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
