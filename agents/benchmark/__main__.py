"""The command line of :mod:`agents.benchmark` (``python -m agents.benchmark --help``)."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from agents.benchmark.algorithms import REFERENCES, algorithm_names
from agents.benchmark.cells import CellSpec, Overrides, prepare_policies, run_cells
from agents.benchmark.report import finished_rows, write_report
from agents.benchmark.tasks import TaskNotAvailable, get_task, task_names

# --quick: a budget that still makes a few updates, scored on a few short test episodes.
QUICK = {"steps": 256, "eval_clips": 3, "eval_tokens": 16}


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def build_parser(cards: bool = False) -> argparse.ArgumentParser:
    """The benchmark's options; ``cards``: those of ``python -m agents.benchmark cards`` (every
    task by default, the reference algorithms only, no training budget, ``--cards FILE``)."""
    if cards:
        ap = argparse.ArgumentParser(prog="python -m agents.benchmark cards",
                                     description="Task cards: the reference rows (" + ", ".join(REFERENCES)
                                     + ") of every task and its headroom, as markdown.")
        ap.add_argument("--tasks", default=",".join(task_names()), help="comma-separated (default: every task)")
        ap.add_argument("--cards", type=Path, default=None, help="the markdown file (default OUT/tasks.md)")
    else:
        ap = argparse.ArgumentParser(prog="python -m agents.benchmark",
                                     description="RL algorithms side by side on DuetAccompany-v0 tasks "
                                                 "(`python -m agents.benchmark cards --help`: the task cards; "
                                                 "`python -m agents.benchmark report --out DIR`: one report "
                                                 "of every finished cell).")
        ap.add_argument("--tasks", default="in-distribution", help=f"comma-separated, of: {', '.join(task_names())}")
        ap.add_argument("--algos", default="pretrained,random,ac",
                        help=f"comma-separated, of: {', '.join(algorithm_names())}")
        ap.add_argument("--steps", type=int, default=None,
                        help="training env steps per cell (default 8192; --quick 256)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0 .. N-1 per (task, algorithm)")
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark"),
                    help="output folder (cells already finished in it are reused)")
    ap.add_argument("--workers", type=int, default=1, help="cells run as this many local processes (--backend local)")
    ap.add_argument("--backend", choices=("local", "ray"), default="local",
                    help="local processes (default), or Ray tasks (optional extra duet[distributed])")
    ap.add_argument("--address", default=None,
                    help="--backend ray: the Ray cluster to submit to (default: as ray.init(): RAY_ADDRESS, "
                         "a cluster started here with `ray start`, else a new local Ray instance)")
    ap.add_argument("--ray-cpus-per-cell", type=float, default=1, help="--backend ray: CPUs Ray reserves per cell")
    ap.add_argument("--quick", action="store_true",
                    help=f"tiny budget ({QUICK['steps']} steps, {QUICK['eval_clips']} test clips × "
                         f"{QUICK['eval_tokens']} tokens): minutes, for smoke tests")
    ap.add_argument("--eval-clips", type=int, default=None, help="test clips per task (default all; --quick 3)")
    ap.add_argument("--eval-tokens", type=int, default=None, help="tokens per test clip (default 192; --quick 16)")
    ap.add_argument("--data", default=None, help="override every task's data (\"synth\" or a DD100 folder)")
    ap.add_argument("--tokenizer", default=None, help="override every task's tokenizer (name or folder)")
    ap.add_argument("--policy", default=None, help="override every task's pretrained GPT (name or folder)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def specs_from_args(args: argparse.Namespace) -> list[CellSpec]:
    """Every (task, algorithm, seed) cell the arguments name; unknown names fail before anything runs."""
    tasks, algos = _names(args.tasks), _names(args.algos)
    unknown_t = [t for t in tasks if t not in task_names()]
    unknown_a = [a for a in algos if a not in algorithm_names()]
    if unknown_t or unknown_a or not tasks or not algos:
        msgs = []
        if unknown_t or not tasks:
            msgs.append(f"unknown task(s) {unknown_t}; known tasks: {', '.join(task_names())}")
        if unknown_a or not algos:
            msgs.append(f"unknown algorithm(s) {unknown_a}; known algorithms: {', '.join(algorithm_names())}")
        raise SystemExit("; ".join(msgs))
    if args.seeds < 1:
        raise SystemExit("--seeds must be at least 1")
    overrides = Overrides(args.data, args.tokenizer, args.policy)
    for t in tasks:  # e.g. unseen-genre without --policy: say so now, not in a worker
        try:
            get_task(t).with_overrides(policy=args.policy).check_available()
        except TaskNotAvailable as e:
            raise SystemExit(str(e)) from None
    steps = args.steps if args.steps is not None else (QUICK["steps"] if args.quick else 8192)
    clips = args.eval_clips if args.eval_clips is not None else (QUICK["eval_clips"] if args.quick else 0)
    tokens = args.eval_tokens if args.eval_tokens is not None else (QUICK["eval_tokens"] if args.quick else 192)
    return [CellSpec(t, a, s, steps, args.quick, clips, tokens, overrides)
            for t in tasks for a in algos for s in range(args.seeds)]


def check_backend(args: argparse.Namespace) -> None:
    """``--backend ray`` without the extra, or ``--address`` without it: stop before anything runs."""
    if args.backend == "ray":
        from agents.benchmark.ray_backend import import_ray

        import_ray()
    elif args.address is not None:
        raise SystemExit("--address needs --backend ray")


def run_specs(specs: list[CellSpec], args: argparse.Namespace) -> list[dict]:
    """Every cell on the chosen backend, after the held-out GPTs they start from are ready
    (unseen-genre's, trained once here on every core)."""
    prepare_policies(specs, args.out, progress=not args.no_progress)
    if args.backend == "ray":
        from agents.benchmark.ray_backend import run_cells_ray

        return run_cells_ray(specs, args.out, address=args.address, cpus_per_cell=args.ray_cpus_per_cell,
                             progress=not args.no_progress)
    return run_cells(specs, args.out, workers=args.workers, progress=not args.no_progress)


def cards_main(argv: list[str]) -> int:
    """``python -m agents.benchmark cards``: run the reference cells of every task (finished ones
    are reused) and write one card per task."""
    from agents.benchmark.cards import write_cards

    args = build_parser(cards=True).parse_args(argv)
    check_backend(args)
    args.algos, args.steps = ",".join(REFERENCES), 0  # references do not train
    specs = specs_from_args(args)
    rows = run_specs(specs, args)
    stale = [f"{r['task']}/{r['algo']}/seed{r['seed']}" for r, s in zip(rows, specs)
             if (r["eval"]["clips"], r["eval"]["tokens"]) != (s.eval_clips, s.eval_tokens)]
    if stale:
        raise SystemExit(f"cells {stale} in {args.out} were scored on other test episodes than asked "
                         f"({specs[0].eval_clips or 'all'} clips × {specs[0].eval_tokens or 'whole'} tokens): "
                         "use another --out, or the same --quick / --eval-clips / --eval-tokens")
    overrides = Overrides(args.data, args.tokenizer, args.policy)
    tasks = [get_task(t).with_overrides(**vars(overrides)) for t in _names(args.tasks)]
    command = "python -m agents.benchmark cards " + shlex.join(argv)
    path = write_cards(rows, args.cards or args.out / "tasks.md", tasks, command)
    print(f"{len(tasks)} task card(s) -> {path}", file=sys.stderr)
    return 0


def report_main(argv: list[str]) -> int:
    """``python -m agents.benchmark report --out DIR``: results.jsonl, results.md and the plots of
    every finished cell in DIR, whichever invocations ran them; runs nothing."""
    ap = argparse.ArgumentParser(prog="python -m agents.benchmark report",
                                 description="Rebuild results.jsonl, results.md and the plots from every "
                                             "finished cell in --out (cells of several runs in one report).")
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark"), help="the benchmark's output folder")
    args = ap.parse_args(argv)
    try:
        rows = finished_rows(args.out)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(str(e)) from None
    if not rows:
        raise SystemExit(f"{args.out}: no finished cells yet")
    jsonl, md = write_report(rows, args.out, "python -m agents.benchmark report " + shlex.join(argv))
    print(f"{len(rows)} finished cells -> {jsonl}, {md}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "cards":
        return cards_main(argv[1:])
    if argv and argv[0] == "report":
        return report_main(argv[1:])
    args = build_parser().parse_args(argv)
    check_backend(args)
    specs = specs_from_args(args)
    started = time.perf_counter()
    rows = run_specs(specs, args)
    command = "python -m agents.benchmark " + shlex.join(argv)
    jsonl, md = write_report(rows, args.out, command)
    done = sum(not r["skipped"] for r in rows)
    print(f"{len(rows)} cells ({done} run, {len(rows) - done} already done) in "
          f"{time.perf_counter() - started:.0f} s -> {jsonl}, {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
