"""Data-parallel GPT training on this machine: 1 rank against 2 gloo ranks, side by side in one run.

    python benchmarks/ddp_throughput.py [--configs tiny,small] [--steps tiny=300,small=20]

For each GPT config, three runs on the default SynthDuet train tokens (the cached tokens of the
shipped tokenizer) at the config's global batch: 1 rank × 1 torch thread, 1 rank × 2 threads (the
other way to use two cores) and 2 ranks × 1 thread (torch DistributedDataParallel over gloo, the
code path of ``torchrun --nproc_per_node 2 -m pretrain.gpt``). Every run is a fresh process group
started the same way (torch.multiprocessing spawn), so process start-up is not in the numbers:
steps/s is timed from the end of step ``warmup`` to the end of the last step but one (the last
step holds the final validation). Printed: steps/s and windows/s, speed-up against 1 × 1, the
training loss (EMA of the global batch's loss, as the trainer logs it) and the cross-entropy on
held-out clips (every 8th train clip, whatever the config says) after the run.

What bounds it: a 2-core machine (often shared). Two ranks can at most double one single-threaded
rank, and the gradient all-reduce of every step costs the same at any batch, so the tiny model
(a few ms of compute per step) cannot gain and the small one gains only if a core is free. Results and a reading of them:
docs/scaling.md (one run took 8 minutes on the busy machine, mostly the 1 × 2-thread rows).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RUNS = ((1, 1), (1, 2), (2, 1))  # (ranks, torch threads per rank)
VALIDATION = 0.125  # share of train clips held out and scored after each run


def _rank_main(rank: int, world: int, threads: int, config_name: str, steps: int, warmup: int, port: int,
               out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    import torch

    from duet_env.paths import cache_dir
    from pretrain import distributed
    from pretrain.gpt.config import load_config
    from pretrain.gpt.data import load_split_tokens
    from pretrain.gpt.train import hold_out, train

    torch.set_num_threads(threads)
    device = distributed.init("cpu")
    try:
        with distributed.main_first():
            clips, sizes = load_split_tokens("synth", "train", "default", cache_folder=cache_dir() / "gpt-tokens",
                                             progress=False)
        config = load_config(config_name)
        config["train"]["checkpoint_every"] = steps  # one validation, at the end
        clips, val_clips = hold_out(clips, VALIDATION)
        stamps: list[float] = []
        with contextlib.redirect_stdout(io.StringIO()):  # the trainer's validation line: the table only
            state = train(config, clips, sizes, Path(out) / "run", steps=steps, seed=0, device=str(device),
                          progress=False, on_step=lambda step, loss: stamps.append(time.perf_counter()),
                          val_clips=val_clips)
        if distributed.is_main():
            timed = len(stamps) - 1 - warmup  # steps warmup+1 … n−1
            result = {"steps_per_s": timed / (stamps[-2] - stamps[warmup - 1]), "loss": state["loss"],
                      "val_ce": (state.get("best") or {}).get("val_ce"), "batch": config["train"]["batch_size"]}
            Path(out, "result.json").write_text(json.dumps(result))
        distributed.barrier()
    finally:
        distributed.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(world: int, threads: int, config: str, steps: int, warmup: int) -> dict:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="ddp_bench_") as out:
        mp.start_processes(_rank_main, args=(world, threads, config, steps, warmup, _free_port(), out), nprocs=world,
                           start_method="spawn")
        return json.loads(Path(out, "result.json").read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="tiny,small")
    ap.add_argument("--steps", default="tiny=300,small=20", help="steps per config, NAME=N,...")
    ap.add_argument("--warmup", type=int, default=5, help="steps before the clock starts")
    args = ap.parse_args(argv)
    steps = {k: int(v) for k, v in (item.split("=") for item in args.steps.split(","))}
    os.environ["OMP_NUM_THREADS"] = "1"  # ranks set their own torch threads; no OpenMP oversubscription
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPU cores, load average {load:.2f} at the start\n")
    print("| config | ranks × threads | global batch | steps | steps/s | windows/s | speed-up vs 1 × 1 "
          "| train loss (EMA) | held-out CE |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for config in args.configs.split(","):
        base = None
        for world, threads in RUNS:
            r = run(world, threads, config, steps[config], args.warmup)
            base = base or r["steps_per_s"]
            ce = "" if r["val_ce"] is None else f"{r['val_ce']:.4f}"
            print(f"| {config} | {world} × {threads} | {r['batch']} | {steps[config]} | {r['steps_per_s']:.2f} | "
                  f"{r['steps_per_s'] * r['batch']:.0f} | {r['steps_per_s'] / base:.2f}× | {r['loss']:.4f} | {ce} |",
                  flush=True)


if __name__ == "__main__":
    main()
