"""Streaming decode step of the tokenizer, measured side by side in one run (not a test).

    python benchmarks/decode_step.py [--checkpoint default] [--steps 300] [--threads 1]

Rows, at batch 1, 64 and 256 (one token per stream per step, 4 frames out):
* ``v1 reference``: the first tokenizer's decoder (frame-rate position + rotation decoders, joints
  from positions; benchmarks/legacy_v1_decoder.py, random weights of the shipped v1 shapes);
* ``v2 decoder``: the shipped tokenizer's ``StreamingDecoder.step`` (token-rate keyframe decoder,
  Hermite frames, joints by forward kinematics of the decoded rotations);
* ``v2 compiled``: the same step through ``torch.compile`` (``compile=True``;
  duet_env/tokenizer/compiled.py), compiled in the warm-up;
* ``v2 of which FK``: the decoder's forward kinematics alone on the same batch
  (``skeleton.joint_positions``, frames-last from 64 frames on), beside ``FK 4x4``, the batched
  4x4 matmul of ``skeleton.global_transforms`` that the decoder ran before (and training runs).
Times are the median over 5 repeats of ``--steps`` steps after a warm-up, in ms per step.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from legacy_v1_decoder import V1StreamingDecoder  # noqa: E402

from duet_env import skeleton  # noqa: E402
from duet_env.tokenizer import Tokenizer  # noqa: E402


def _ms_per_step(fn, steps: int, repeats: int = 5) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        times.append((time.perf_counter() - t0) / steps * 1e3)
    return statistics.median(times)


def _leader(batch: int) -> torch.Tensor:
    rest = torch.from_numpy(skeleton.rest_joints()).float()
    return (rest + torch.tensor([0.0, 0.95, 0.0])).expand(batch, 4, -1, -1).contiguous()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="default")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tk = Tokenizer.load(args.checkpoint)
    k = torch.tensor([tk.codebook_sizes[s] for s in ("up", "down", "lhand", "rhand", "transl")])
    rows = []
    for batch in (1, 64, 256):
        g = torch.Generator().manual_seed(0)
        tokens = [(torch.rand(batch, 5, generator=g) * k).long() for _ in range(16)]
        lead = _leader(batch)
        v1 = V1StreamingDecoder(batch)
        v2 = tk.streaming_decoder(batch)
        v2c = tk.streaming_decoder(batch, compile=True)
        i = [0]

        def step_v1():
            v1.step(tokens[i[0] % 16], lead)
            i[0] += 1

        fwd = torch.tensor([0.0, 0.0, 1.0]).expand(batch, 4, 3).contiguous()

        def step_v2():
            v2.step(tokens[i[0] % 16], lead, fwd)
            i[0] += 1

        def step_v2c():
            v2c.step(tokens[i[0] % 16], lead, fwd)
            i[0] += 1

        rot = torch.eye(3).expand(batch, 4, 55, 3, 3).contiguous()
        transl = torch.zeros(batch, 4, 3)
        t_v1 = _ms_per_step(step_v1, args.steps)
        t_v2 = _ms_per_step(step_v2, args.steps)
        t_v2c = _ms_per_step(step_v2c, args.steps)  # its warm-up compiles
        t_fk = _ms_per_step(lambda: skeleton.joint_positions(rot, transl), args.steps)
        t_fk4 = _ms_per_step(lambda: skeleton.global_transforms(rot, transl), args.steps)
        rows.append((batch, t_v1, t_v2, t_v2c, t_fk, t_fk4))
    print(f"decode step, ms (median of 5 x {args.steps} steps, {args.threads} thread(s), checkpoint {args.checkpoint})")
    print("| batch | v1 reference | v2 decoder | v2 / v1 | v2 compiled | compiled / v1 | v2 of which FK | FK 4x4 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for b, a, c, cc, f, f4 in rows:
        print(f"| {b} | {a:.3f} | {c:.3f} | {c / a:.2f}x | {cc:.3f} | {cc / a:.2f}x | {f:.3f} | {f4:.3f} |")


if __name__ == "__main__":
    main()
