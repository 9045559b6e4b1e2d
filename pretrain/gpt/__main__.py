"""Command line: train (default), ``evaluate`` or ``export`` the follower GPT.

    python -m pretrain.gpt --data synth --config small --tokenizer default --out runs/gpt [--resume]
    python -m pretrain.gpt --exclude-genre HipHop --out runs/gpt-no-hiphop     # without a genre
    python -m pretrain.gpt --extra-train synth:seed=1,minutes=120 ...          # more training clips
    python -m pretrain.gpt evaluate --checkpoint runs/gpt --tokenizer default --data synth --split test --json OUT
    python -m pretrain.gpt export --checkpoint runs/gpt --out duet_env/checkpoints/default

Data-parallel: ``torchrun --nproc_per_node N -m pretrain.gpt ...`` (the same options; the config's
``batch_size`` is the global batch, split over the N ranks; docs/scaling.md).
"""
from __future__ import annotations

import argparse
import os
import sys

from pretrain.precision import PRECISIONS


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synth", help="'synth' (default SynthDuet), 'synth:seed=S,minutes=M' (another "
                                                    "SynthDuet) or a DD100-layout folder")
    p.add_argument("--tokenizer", default="default", help="tokenizer checkpoint name or folder")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:i]")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch CPU threads (0: leave)")
    p.add_argument("--cache", default=None, help="token cache folder (default: <duet cache>/gpt-tokens)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pretrain.gpt", description="Train the follower GPT.")
    _common(p)
    p.add_argument("--config", default="small", help="tiny | small | paper | path to a JSON config")
    p.add_argument("--out", default="runs/gpt", help="checkpoint folder")
    p.add_argument("--steps", type=int, default=None, help="total optimiser steps (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a checkpoint")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop with a checkpoint after this much wall time (resume later with --resume)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 autocast on a bf16-capable GPU, fp32 otherwise (pretrain/precision.py)")
    p.add_argument("--extra-train", action="append", default=[], metavar="SOURCE",
                   help="also train on the train split of SOURCE (e.g. synth:seed=1,minutes=120; repeatable): "
                        "replaces the config's train.extra_train, 'none' clears it; never validated or tested on")
    p.add_argument("--exclude-genre", action="append", default=[], metavar="G",
                   help="train (and validate) without the clips of genre G; repeatable or a comma list "
                        "(recorded in the checkpoint; the unseen-genre benchmark task's GPT)")
    return p


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pretrain.gpt evaluate",
                                description="Teacher-forced accuracy / cross-entropy against baselines.")
    _common(p)
    p.add_argument("--checkpoint", default="default", help="GPT checkpoint name or folder")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--json", default=None, help="write the result JSON here")
    return p


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pretrain.gpt export",
                                description="Copy a training checkpoint without optimiser state.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in ("train", "evaluate", "export") else "train"
    try:
        _run(command, argv)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        # bad input (missing data, wrong config, mismatched checkpoint): a message, not a traceback
        print(f"python -m pretrain.gpt {command}: error: {e}", file=sys.stderr)
        return 2
    return 0


def _run(command: str, argv: list[str]) -> None:
    if command == "evaluate":
        from .evaluate import main as run
        run(evaluate_parser().parse_args(argv))
    elif command == "export":
        from .train import export_weights
        args = export_parser().parse_args(argv)
        print(f"exported to {export_weights(args.checkpoint, args.out)}")
    else:
        from .train import main as run
        run(train_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
