"""Cost of one training step at ``paper`` size: measured FLOPs per window and CPU seconds per step.

    python benchmarks/paper_step_cost.py [--batch 2] [--steps 3] [--threads 2]

For the GPT (``pretrain/configs/gpt_paper.json``) and two tokenizer VQ-VAEs of
``duet_env/tokenizer/configs/paper.json`` (``upper``, the largest pose part, and ``transl``) it
counts the floating-point operations of one forward + backward pass per training window
(torch.utils.flop_counter, on random inputs of the right shapes: the cost does not depend on the
values), times ``--steps`` optimiser steps at ``--batch`` windows on this CPU, and prints what the
config's full run (its ``steps`` × its batch) costs: total FLOPs and CPU time extrapolated
linearly in the batch. docs/scaling.md turns the FLOPs into GPU estimates; the CPU seconds are
the measured anchor.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402


def gpt_case(batch: int):
    from duet_env.conventions import FOLLOWER_STREAMS
    from pretrain.gpt import FollowerGPT, load_config, with_codebook_sizes

    cfg = with_codebook_sizes(load_config("paper"), {s: 512 for s in FOLLOWER_STREAMS})
    model = FollowerGPT(cfg)
    w, h = model.window, model.history

    def inputs(b: int):
        return (torch.randn(b, w, 216), torch.randint(0, 512, (b, w, 4)), torch.randint(0, 512, (b, h, 5)),
                torch.randint(0, 512, (b, h + 1, 5)))

    def step_loss(b: int) -> torch.Tensor:
        music, leader, follower, targets = inputs(b)
        return model.loss(model(music, leader, follower), targets)[0]

    return "GPT paper", model, step_loss, cfg["train"]["steps"], cfg["train"]["batch_size"], 1


def vq_case(stream: str, batch: int):
    from duet_env import motion
    from duet_env.tokenizer.config import build_model, load_config
    from pretrain.motion_data import Batch
    from pretrain.vqvae.train import run_config, stream_loss, train_config

    cfg = load_config("paper")
    tcfg = train_config(cfg, stream)
    model = build_model(run_config(cfg, stream, 0)).train()
    window = int(tcfg["window"])

    def step_loss(b: int) -> torch.Tensor:
        x = torch.randn(b, window, model.in_dim)
        rot = None if stream == "transl" else motion.axis_angle_to_matrix(0.3 * torch.randn(b, window, 55, 3))
        return stream_loss(model, Batch(x, rot), stream, tcfg, 0.5)[0]

    family = "transl" if stream == "transl" else "pose"
    steps = int(tcfg["steps"].get(stream, tcfg["steps"][family]))
    # the four pose parts cost about the same (the hands' inputs are smaller): upper stands for all four
    runs = 4 if stream != "transl" else 1
    return f"VQ-VAE paper {stream}", model, step_loss, steps, int(tcfg["batch"]), runs


def measure(case, batch: int, steps: int) -> dict:
    name, model, step_loss, total_steps, full_batch, runs = case
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    with FlopCounterMode(display=False) as counter:
        step_loss(1).backward()
    flops_per_window = counter.get_total_flops()
    opt.zero_grad(set_to_none=True)
    step_loss(batch).backward()  # warm-up
    opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        step_loss(batch).backward()
        opt.step()
    s_per_step = (time.perf_counter() - t0) / steps
    s_per_window = s_per_step / batch
    full_flops = flops_per_window * full_batch * total_steps * runs
    return {"name": name, "params": sum(p.numel() for p in model.parameters()), "flops_per_window": flops_per_window,
            "s_per_window": s_per_window, "batch": full_batch, "steps": total_steps, "runs": runs,
            "full_flops": full_flops, "cpu_days": s_per_window * full_batch * total_steps * runs / 86400}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=2, help="windows per timed step")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per model")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{args.threads} torch threads, batch {args.batch}, {args.steps} timed steps\n")
    print("| model | parameters | GFLOP per window (fwd+bwd) | CPU s per window | full run: steps × batch (× runs) "
          "| full run PFLOP | full run on this CPU (days) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for case in (gpt_case(args.batch), vq_case("upper", args.batch), vq_case("transl", args.batch)):
        r = measure(case, args.batch, args.steps)
        runs = f" (× {r['runs']})" if r["runs"] > 1 else ""
        print(f"| {r['name']} | {r['params'] / 1e6:.1f} M | {r['flops_per_window'] / 1e9:.1f} | "
              f"{r['s_per_window']:.3f} | {r['steps']} × {r['batch']}{runs} | {r['full_flops'] / 1e15:.0f} | "
              f"{r['cpu_days']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
