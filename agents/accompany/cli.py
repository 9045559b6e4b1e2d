"""Command line of ``python -m agents.accompany`` (see the package docstring)."""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from .errors import AccompanyError


def build_parser() -> argparse.ArgumentParser:
    from . import __doc__ as doc

    p = argparse.ArgumentParser(prog="python -m agents.accompany", description=doc.split("\n\nModules:")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--music", required=True, type=Path, help="the song: any file librosa reads (mp3, wav, ogg, flac)")
    p.add_argument("--leader", default="synth", metavar="SOURCE",
                   help="synth[:GENRE] (default: a SynthDuet leader on the song's beats), FILE.npy (DD100 SMPL-X), "
                        "FILE.npz (AMASS-style, any frame rate) or FILE.bvh (SMPL-X joint names)")
    p.add_argument("--policy", default="default", help="default | random | a GPT checkpoint folder")
    p.add_argument("--genre", default=None,
                   help="Waltz, Tango, ChaCha, HipHop or Ballet: the synth leader's dance (default: chosen by the "
                        "song's tempo); with a leader file it is only recorded (the policy sees no genre)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synth leader and of the rollout")
    p.add_argument("--out", type=Path, default=Path("accompany_out"), help="output folder (default: accompany_out)")
    p.add_argument("--smplx-model", type=Path, default=None, metavar="DIR",
                   help="SMPL-X model folder: draw meshes in the video instead of stick figures")
    p.add_argument("--no-video", action="store_true", help="skip duet.mp4")
    p.add_argument("--trim", action="store_true",
                   help="accept a leader file more than 1 s longer or shorter than the song: cut both to the shorter")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--tokenizer", default="default", help="tokenizer checkpoint (default: the shipped one)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the per-token work is small, and more threads only slow it "
                        "down on a busy CPU)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(max(1, args.threads))
    from .pipeline import AccompanyConfig, accompany

    cfg = AccompanyConfig(
        music=args.music, out=args.out, leader=args.leader, policy=args.policy, genre=args.genre, seed=args.seed,
        smplx_model=args.smplx_model, video=not args.no_video, trim=args.trim, overwrite=args.overwrite,
        tokenizer=args.tokenizer, progress=not args.quiet,
        command="python -m agents.accompany " + shlex.join(argv),
    )
    try:
        result = accompany(cfg)
    except AccompanyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result.out} ({result.frames / 30:.1f} s duet, {result.speed():.1f}x real time without video)")
    return 0
