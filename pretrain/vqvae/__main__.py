"""``python -m pretrain.vqvae [train options]`` trains the four body-part VQ-VAEs;
``python -m pretrain.vqvae evaluate …`` measures a tokenizer on a split;
``python -m pretrain.vqvae export …`` copies the weights of a training run (no optimiser) to a
shippable checkpoint folder.

Data-parallel training: ``torchrun --nproc_per_node N -m pretrain.vqvae [train options]`` (the
config's ``train.batch`` is the global batch, split over the N ranks; docs/scaling.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from duet_env import checkpoint
from duet_env.conventions import PART_NAMES
from duet_env.tokenizer.config import STREAMS, checkpoint_stem, heading_sigma_of, load_config
from duet_env.tokenizer.floor import floor_heights
from pretrain import distributed
from pretrain.precision import PRECISIONS


def add_train_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--data", default="synth", help="'synth' (default SynthDuet) or a DD100-layout folder")
    ap.add_argument("--config", default="small", help="small | paper | tiny | path to a JSON config")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="runs/vqvae", help="checkpoint folder")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    ap.add_argument("--steps", type=int, default=None, help="total steps (default: from the config)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS,
                    help="auto: bf16 autocast of encoder/decoder on a bf16-capable GPU, fp32 otherwise")


def with_measured_floor(cfg: dict, clips) -> dict:
    """``cfg`` with ``model.floor`` measured from the train clips (both dancers;
    duet_env/tokenizer/floor.py) where it is ``"data"`` or absent; unchanged otherwise."""
    if cfg["model"].get("floor", "data") != "data":
        return cfg
    heights = floor_heights([np.asarray(d.joints) for c in clips for d in (c.leader, c.follower)])
    return {**cfg, "model": {**cfg["model"], "floor": heights}}


def train_main(argv: list[str], streams_choice: tuple[str, ...], prog: str, default_streams: str) -> None:
    from pretrain.motion_data import MotionWindows, load_clips
    from .train import train_stream

    ap = argparse.ArgumentParser(prog=prog, description=__doc__)
    if len(streams_choice) > 1:
        ap.add_argument("--part", default=default_streams, choices=list(streams_choice) + ["all"])
    add_train_args(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    part = getattr(args, "part", default_streams)
    streams = [s for s in streams_choice] if part == "all" else [part]
    device = distributed.init(args.device)
    try:
        with distributed.main_first():  # rank 0 builds the dataset caches, the others read them
            clips = load_clips(args.data, "train", progress=distributed.is_main())
        if "lower" in streams:  # only the lower part's checkpoint stores the floor
            cfg = with_measured_floor(cfg, clips)
        for s in streams:
            t0 = time.time()
            data = MotionWindows(clips, s, cfg["train"]["window"], heading_sigma_of(cfg["model"]))
            train_stream(s, cfg, data, args.out, args.steps, args.resume, args.seed, str(device),
                         precision=args.precision)
            if distributed.is_main():
                print(f"[{s}] done in {time.time() - t0:.0f} s -> {args.out}/{checkpoint_stem(s)}.safetensors")
        distributed.barrier()  # no rank leaves while rank 0 still writes
    finally:
        distributed.cleanup()


def evaluate_main(argv: list[str]) -> None:
    from duet_env.tokenizer import Tokenizer
    from pretrain.motion_data import load_clips
    from .evaluate import evaluate

    ap = argparse.ArgumentParser(prog="python -m pretrain.vqvae evaluate")
    ap.add_argument("--checkpoint", default="default", help="shipped name or folder")
    ap.add_argument("--data", default="synth")
    ap.add_argument("--split", default="test", choices=["train", "test", "all"])
    ap.add_argument("--json", default=None, help="write the metrics here")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference-split", default="train", choices=["train", "test", "all"],
                    help="split whose ground-truth followers give the recon_FID reference statistics")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clips = load_clips(args.data, args.split)
    reference = clips if args.reference_split == args.split else load_clips(args.data, args.reference_split)
    result = evaluate(Tokenizer.load(args.checkpoint, args.device), clips, reference_clips=reference)
    result.update(checkpoint=str(args.checkpoint), data=str(args.data), split=args.split,
                  reference_split=args.reference_split)
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.json:
        checkpoint.atomic_write_json(args.json, result)


def export_main(argv: list[str]) -> None:
    from .train import model_tensors

    ap = argparse.ArgumentParser(prog="python -m pretrain.vqvae export")
    ap.add_argument("--from", dest="src", default="runs/vqvae", help="training run folder")
    ap.add_argument("--to", dest="dst", required=True, help="checkpoint folder to write")
    args = ap.parse_args(argv)
    for s in STREAMS:
        stem = checkpoint_stem(s)
        tensors, cfg, state = checkpoint.load(args.src, stem)
        checkpoint.save(args.dst, stem, model_tensors(tensors), cfg,
                        {"step": state.get("step"), "total_steps": state.get("total_steps")})
        print(f"exported {stem} (step {state.get('step')}) -> {Path(args.dst) / stem}.safetensors")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        evaluate_main(argv[1:])
    elif argv and argv[0] == "export":
        export_main(argv[1:])
    else:
        if argv and argv[0] == "train":
            argv = argv[1:]
        train_main(argv, PART_NAMES, "python -m pretrain.vqvae", "all")


if __name__ == "__main__":
    main()
