"""The benchmark's outputs: ``results.jsonl`` (one line per cell), ``results.md`` (per task, a
table of algorithm × metrics, mean ± std over seeds, with the number of seeds, and rliable's
interval estimates when it is installed) and the plots of :mod:`agents.benchmark.plots`.

The tables are rebuilt from the cells' rows every run, so a rerun that adds seeds or
algorithms extends them; nothing is aggregated anywhere else.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from agents.benchmark import plots
from duet_env.atomic import atomic_write_text

# The table's columns, in order (reward components r_* are inserted after "reward").
HEAD = ["reward"]
TAIL = ["BAS", "BED", "FID_k", "FID_cd", "rule_error_cm", "env_steps", "wall_s"]
LOWER_IS_BETTER = {"FID_k", "FID_cd", "rule_error_cm"}  # BED (beat echo) is an alignment score: higher is better


def flat(row: dict) -> dict[str, float]:
    """A cell row's numbers in one dict (metrics + env steps + wall time)."""
    return {**row["metrics"], "env_steps": row["env_steps"], "wall_s": row["wall_s"]}


def columns(rows: list[dict]) -> list[str]:
    comps = sorted({k for r in rows for k in r["metrics"] if k.startswith("r_")})
    return HEAD + comps + TAIL


def mean_std(values: list[float]) -> str:
    """"m ± s" (sample std) of the finite values; counts (ints) and values ≥ 100 without decimals."""
    kept = [x for x in values if x is not None and math.isfinite(x)]
    if not kept:
        return "–"
    v = np.asarray(kept, np.float64)
    digits = 0 if abs(v.mean()) >= 100 or all(isinstance(x, int) for x in kept) else 3
    if v.size == 1:
        return f"{v.mean():.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def task_table(rows: list[dict]) -> str:
    """Markdown table of one task's rows: one line per algorithm (first-seen order)."""
    cols = columns(rows)
    algos = list(dict.fromkeys(r["algo"] for r in rows))
    head = ["algorithm", "seeds"] + [f"{c} ↓" if c in LOWER_IS_BETTER else c for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in algos:
        mine = [flat(r) for r in rows if r["algo"] == a]
        cells = [a, str(len(mine))] + [mean_std([m.get(c) for m in mine]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def finished_rows(out: Path) -> list[dict]:
    """Every finished cell under ``out/cells`` (its ``result.json``), in registry order: tasks as
    registered, then algorithms as registered, then seeds. Cells of names no longer registered
    (a user's own task or algorithm in another session) come after, alphabetically.

    This lets one report cover cells run by several invocations (e.g. cheap algorithms on every
    task, then an expensive one on a few), which one invocation's cartesian product cannot."""
    from agents.benchmark.algorithms import algorithm_names
    from agents.benchmark.cells import RESULT
    from agents.benchmark.tasks import task_names

    cells = Path(out) / "cells"
    if not cells.is_dir():
        raise FileNotFoundError(f"{cells}: no benchmark cells here (run `python -m agents.benchmark --out {out}` first)")
    rows = []
    for path in cells.glob(f"*/*/seed*/{RESULT}"):
        try:
            rows.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as e:  # result.json is written atomically: this is not ours
            raise ValueError(f"{path}: not a readable cell result ({e})") from e
    tasks, algos = task_names(), algorithm_names()

    def order(names: list[str], name: str) -> tuple[int, str]:
        return (names.index(name), "") if name in names else (len(names), name)

    rows.sort(key=lambda r: (order(tasks, r["task"]), order(algos, r["algo"]), r["seed"]))
    return rows


def write_report(rows: list[dict], out: Path, command: str = "") -> tuple[Path, Path]:
    """Write ``out/results.jsonl`` and ``out/results.md`` from the cells' rows."""
    out = Path(out)
    rows = [{k: v for k, v in r.items() if k != "skipped"} for r in rows]
    jsonl = out / "results.jsonl"
    atomic_write_text(jsonl, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    parts = ["# Benchmark results", ""]
    if command:
        parts += [f"`{command}`", ""]
    parts += ["Mean ± standard deviation over seeds (greedy evaluation on each task's fixed test episodes). "
              "reward and r_*: mean per token; ↓: lower is better; env_steps: training steps; wall_s: "
              "training + evaluation seconds of one cell.", ""]
    rliable = plots.have_rliable()
    all_stats = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        ev = mine[0]["eval"]
        parts += [f"## {task}", "",
                  f"{ev['clips'] or 'all'} test clips × {ev['tokens'] or 'whole'} tokens; "
                  f"training budget {max(r['budget_steps'] for r in mine)} env steps (the reference rows do not "
                  "train).", "", task_table(mine), ""]
        if rliable:
            all_stats[task] = plots.interval_stats(rows, task)
            parts += [f"Interquartile mean and probability of improvement, stratified bootstrap "
                      f"({plots.REPS} resamples):", "", plots.stats_table(all_stats[task]), ""]
    figures = []
    if plots.plot_learning_curves(rows, out / "learning_curves.png"):
        figures.append("learning_curves.png")
    if all_stats:
        if plots.plot_improvement(rows, out / "improvement.png"):
            figures.append("improvement.png")
        figures.append(plots.plot_intervals(all_stats, out / "intervals.png").name)
    if not rliable:
        parts += ["(IQM and probability-of-improvement intervals need rliable: `pip install -e \".[bench]\"`.)", ""]
    parts += [f"![{f}]({f})" for f in figures]
    md = out / "results.md"
    atomic_write_text(md, "\n".join(parts))
    return jsonl, md
