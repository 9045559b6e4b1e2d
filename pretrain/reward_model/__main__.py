"""Command line: train (default), ``evaluate`` or ``export`` the learned reward model.

    python -m pretrain.reward_model --data synth --policy default --out runs/reward_model [--resume]
    python -m pretrain.reward_model evaluate --checkpoint default --json OUT
    python -m pretrain.reward_model export --checkpoint runs/reward_model --out duet_env/checkpoints/default
    torchrun --nproc_per_node 2 -m pretrain.reward_model --out runs/reward_model   # data-parallel fit
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="synth", help="'synth' (default SynthDuet) or a DD100-layout folder")
    p.add_argument("--policy", default="default", help="pretrained GPT whose rollouts are ranked (name or folder)")
    p.add_argument("--tokenizer", default="default", help="tokenizer checkpoint name or folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the rollouts (and of training)")
    p.add_argument("--demos", default=None,
                   help="demonstration cache folder (default: <duet cache>/reward-demos/<key of data, tokenizer, "
                        "policy, seed>)")
    p.add_argument("--clip-tokens", type=int, default=128,
                   help="demonstrations dance the first N tokens of each clip (N x 4 frames; 0 = whole clips): "
                        "rollouts cost in proportion, and windows are 32 frames")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch CPU threads (0: leave)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pretrain.reward_model",
                                description="Build ranked demonstrations and fit the Bradley-Terry reward model.")
    _common(p)
    p.add_argument("--out", default="runs/reward_model", help="checkpoint folder")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps")
    p.add_argument("--batch-size", type=int, default=64, help="window pairs per step")
    p.add_argument("--hidden", type=int, default=128, help="conv / MLP width")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--resume", action="store_true", help="continue the training checkpoint in --out")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a model")
    p.add_argument("--no-evaluate", action="store_true", help="skip the held-out evaluation on the test split")
    return p


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pretrain.reward_model evaluate",
                                description="Pairwise accuracy and mean reward per level on held-out clips.")
    _common(p)
    p.add_argument("--checkpoint", default="default", help="reward model checkpoint name or folder")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--json", default=None, help="write the report here")
    return p


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pretrain.reward_model export",
                                description="Copy a trained reward model (no training state) into a checkpoint folder.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    return p


def _setup(args):
    """(clips loader, policy, tokenizer, demo folder) shared by train and evaluate."""
    import torch

    from duet_env.env import load_tokenizer
    from duet_env.paths import cache_dir
    from pretrain.gpt import FollowerPolicy

    from .demos import cache_key

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    folder = Path(args.demos) if args.demos else cache_dir() / "reward-demos" / cache_key(
        args.data, args.tokenizer, args.policy, args.seed, args.clip_tokens)
    return FollowerPolicy.load(args.policy), load_tokenizer(args.tokenizer), folder


def evaluate_split(model, config, args, split: str, policy, tokenizer, folder: Path) -> dict:
    from .demos import build_demos, demo_clips, demo_sources
    from .evaluate import evaluate_demos

    clips = demo_clips(args.data, split, args.clip_tokens, progress=not args.quiet)
    sources = demo_sources()
    demos = build_demos(clips, split, folder, policy, tokenizer, seed=args.seed + 1, sources=sources,
                        progress=not args.quiet)
    report = evaluate_demos(model, config, clips, demos, sources, rule_error=True)
    return {"data": args.data, "split": split, "clips": len(clips), "demos": str(folder), **report}


def format_report(report: dict) -> str:
    lines = [f"{'level':<18}{'reward':>8}{'score':>9}{'rule_error_cm':>15}"]
    for r in report["levels"]:
        lines.append(f"{r['name']:<18}{r['mean_reward']:>8.3f}{r['mean_score']:>9.2f}{r.get('rule_error_cm', float('nan')):>15.2f}")
    lines.append(f"pairwise accuracy, noise pairs with eps gap >= 0.5: {report['accuracy_eps_gap_0.5']:.3f}")
    lines.append(f"mean reward falls monotonically: {report['monotonic']}")
    if "spearman_reward_vs_rule_error" in report:
        lines.append(f"Spearman(reward, rule_error_cm) over levels: {report['spearman_reward_vs_rule_error']['rho']:.3f}")
    return "\n".join(lines)


def run_train(args) -> None:
    """Demonstrations, fit, held-out evaluation. Under ``torchrun`` the fit is data-parallel (gloo:
    the model is small and trains on the CPU); rank 0 builds the demonstration cache first and
    alone writes the checkpoints and the evaluation."""
    from duet_env.atomic import atomic_write_json
    from pretrain import distributed
    from rewards.learned import CHECKPOINT_STEM

    from .demos import build_demos, demo_clips, demo_sources, ranked_triples
    from .train import TRAINING_STEM, train_reward_model

    out = Path(args.out)
    if (out / f"{CHECKPOINT_STEM}.json").exists() and not (out / f"{TRAINING_STEM}.json").exists() \
            and not args.overwrite:
        raise FileExistsError(f"{out} already holds a reward model: pass --overwrite to replace it")
    if (out / f"{TRAINING_STEM}.json").exists() and not (args.resume or args.overwrite):
        raise FileExistsError(f"{out} already holds a reward-model training checkpoint: pass --resume to continue "
                              f"it, or --overwrite to start afresh")
    distributed.init("cpu")
    try:
        main_rank = distributed.is_main()
        if args.overwrite and main_rank:
            for stem in (CHECKPOINT_STEM, TRAINING_STEM):
                for ext in ("json", "safetensors"):
                    (out / f"{stem}.{ext}").unlink(missing_ok=True)
        policy, tokenizer, folder = _setup(args)
        sources = demo_sources()
        with distributed.main_first():  # rank 0 rolls the demonstrations out, the others read its cache
            clips = demo_clips(args.data, "train", args.clip_tokens, progress=not args.quiet and main_rank)
            demos = build_demos(clips, "train", folder, policy, tokenizer, seed=args.seed, sources=sources,
                                progress=not args.quiet and main_rank)
        model, config = train_reward_model(ranked_triples(clips, demos, sources), out, hidden=args.hidden,
                                           steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                           resume=args.resume, progress=not args.quiet)
        if not main_rank:
            return
        print(f"reward model written to {out} (final loss {config.train['final_loss']:.4f}, "
              f"ranking accuracy on a fresh training batch {config.train['ranking_accuracy']:.3f})")
        if not args.no_evaluate:
            report = evaluate_split(model, config, args, "test", policy, tokenizer, folder)
            atomic_write_json(out / "evaluation.json", report)
            print(format_report(report))
            print(f"held-out report: {out / 'evaluation.json'}")
    finally:
        distributed.cleanup()


def run_evaluate(args) -> None:
    from duet_env.atomic import atomic_write_json
    from rewards.learned import load_reward_model

    model, config = load_reward_model(args.checkpoint)
    policy, tokenizer, folder = _setup(args)
    report = {"checkpoint": str(args.checkpoint), **evaluate_split(model, config, args, args.split, policy,
                                                                     tokenizer, folder)}
    print(format_report(report))
    if args.json:
        atomic_write_json(Path(args.json), report)
        print(f"written to {args.json}")


def run_export(args) -> None:
    from duet_env.atomic import atomic_write
    from duet_env.checkpoint import resolve
    from rewards.learned import CHECKPOINT_STEM, load_reward_model

    load_reward_model(args.checkpoint)  # refuse a torn or foreign checkpoint before copying it
    src, dst = resolve(args.checkpoint), Path(args.out)
    dst.mkdir(parents=True, exist_ok=True)
    for ext in ("safetensors", "json"):  # weights first, JSON last, as checkpoint.save does
        name = f"{CHECKPOINT_STEM}.{ext}"
        atomic_write(dst / name, lambda tmp, name=name: shutil.copyfile(src / name, tmp))
    print(f"exported {src} to {dst}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in ("train", "evaluate", "export") else "train"
    parser = {"train": train_parser, "evaluate": evaluate_parser, "export": export_parser}[command]()
    args = parser.parse_args(argv)
    try:
        {"train": run_train, "evaluate": run_evaluate, "export": run_export}[command](args)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        # bad input (missing data, mismatched checkpoint, existing run): a message, not a traceback
        print(f"python -m pretrain.reward_model {command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
