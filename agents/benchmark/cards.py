"""Task cards: per task, what the reference followers score, so its headroom is visible.

    python -m agents.benchmark cards --out runs/bench --cards docs/tasks.md [--tasks a,b] [--quick]

A card is the task's description, its env config and reward, and a table of the reference rows
(:data:`agents.benchmark.algorithms.REFERENCES`): ``gt`` (the recorded ground-truth follower,
scored offline), ``gt-tokens`` (its tokens as the env plays them), ``pretrained`` (the task's GPT,
greedy) and ``random``, with the reward and each component, BAS, BED, FID_k, FID_cd and
rule_error_cm, then the headroom row: ``gt-tokens`` − ``pretrained``, the most a fine-tuned GPT
can gain while playing tokens. The rows come from the harness's own cells (:mod:`cells`) in
``--out``, so cells a benchmark run already finished are reused, and a card run leaves cells a
later benchmark run reuses.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from agents.benchmark.algorithms import REFERENCES
from agents.benchmark.report import LOWER_IS_BETTER
from agents.benchmark.tasks import Task
from duet_env.atomic import atomic_write_text

CEILING, FLOOR = "gt-tokens", "pretrained"   # headroom = CEILING − FLOOR
METRICS = ["BAS", "BED", "FID_k", "FID_cd", "rule_error_cm"]
LABELS = {"gt": "gt (recorded motion, offline)", "gt-tokens": "gt-tokens (ground-truth tokens replayed)",
          "pretrained": "pretrained (the task's GPT, greedy)", "random": "random tokens"}


def card_columns(rows: list[dict]) -> list[str]:
    """reward, its components (r_*, sorted), then the metrics."""
    comps = sorted({k for r in rows for k in r["metrics"] if k.startswith("r_")})
    return ["reward"] + comps + METRICS


def reference_means(rows: list[dict]) -> dict[str, dict[str, float]]:
    """algorithm -> column -> mean over its seeds (finite values only; NaN when none)."""
    cols = card_columns(rows)
    out = {}
    for algo in REFERENCES:
        mine = [r["metrics"] for r in rows if r["algo"] == algo]
        if not mine:
            continue
        out[algo] = {}
        for c in cols:
            kept = [m[c] for m in mine if m.get(c) is not None and math.isfinite(m[c])]
            out[algo][c] = float(np.mean(kept)) if kept else math.nan
    return out


def headroom(means: dict[str, dict[str, float]]) -> dict[str, float]:
    """Column -> ``gt-tokens`` − ``pretrained`` (NaN where either is undefined)."""
    return {c: means[CEILING][c] - means[FLOOR][c] for c in means[CEILING]}


def fmt(x: float) -> str:
    """Three decimals below 100, none above; "–" for undefined values."""
    if x is None or not math.isfinite(x):
        return "–"
    text = f"{x:.0f}" if abs(x) >= 100 else f"{x:.3f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.000"


def reference_table(rows: list[dict]) -> str:
    """Markdown: one line per reference row present, then the headroom line."""
    cols = card_columns(rows)
    means = reference_means(rows)
    head = ["follower"] + [f"{c} ↓" if c in LOWER_IS_BETTER else c for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for algo, m in means.items():
        lines.append("| " + " | ".join([LABELS.get(algo, algo)] + [fmt(m[c]) for c in cols]) + " |")
    if CEILING in means and FLOOR in means:
        h = headroom(means)
        lines.append("| " + " | ".join([f"**headroom** ({CEILING} − {FLOOR})"] + [fmt(h[c]) for c in cols]) + " |")
    return "\n".join(lines)


def _reward_text(spec) -> str:
    from rewards import make_reward
    from rewards.registry import composite_weights

    weights = composite_weights(spec) if isinstance(spec, str) else None
    terms = weights if weights is not None else spec
    lo, hi = make_reward(spec).range
    return f"`{spec}` = {terms} (range [{lo:g}, {hi:g}] per token)" if weights else f"`{spec}` (range [{lo:g}, {hi:g}])"


def task_card(task: Task, rows: list[dict]) -> str:
    """The markdown card of one task from its reference cells' rows."""
    ev = rows[0]["eval"]
    policy = next((r.get("policy") for r in rows if r["algo"] == FLOOR and r.get("policy")), task.policy)
    held = task.held_out_gpt  # None when --policy replaced it
    gpt = f"`{policy}`" + (f" (trained without {held.exclude_genre} by the harness with the `{held.base}` GPT's "
                           "recipe, cached)" if held else "")
    episodes = (f"{ev['clips'] or 'every'} test clip(s)"
                + (f" of genre {task.genre}" if task.genre else ", round-robin over genres")
                + (", each leader with the music of the next clip of another genre" if task.foreign_music else "")
                + f", {ev['tokens'] or 'whole clips'} tokens each, greedy")
    h = headroom(reference_means(rows)) if {CEILING, FLOOR} <= {r["algo"] for r in rows} else None
    lines = [f"## {task.name}", "", task.description + ".", "",
             f"- env: `gym.make(\"DuetAccompany-v0\", data={task.data!r}, tokenizer={task.tokenizer!r}, "
             f"reward={task.reward!r})` (history and look-ahead: the GPT's window)",
             f"- reward: {_reward_text(task.reward)}",
             f"- pretrained GPT: {gpt}",
             f"- test episodes: {episodes}",
             ""]
    if h is not None:
        lines += [f"Headroom ({CEILING} − {FLOOR}): reward per token {fmt(h['reward'])}, "
                  f"rule_error_cm {fmt(h['rule_error_cm'])}.", ""]
    lines += [reference_table(rows), ""]
    return "\n".join(lines)


def write_cards(rows: list[dict], path: Path, tasks: list[Task], command: str = "") -> Path:
    """One card per task (in ``tasks`` order) into the markdown file ``path``."""
    parts = ["# Task cards", ""]
    if command:
        parts += [f"`{command}`", ""]
    parts += ["What reference followers score on each benchmark task (`python -m agents.benchmark cards`): "
              "`gt` is the recorded ground-truth follower scored offline (no tokenizer: `skating` uses its "
              "planted-foot fallback), `gt-tokens` the tokenizer's encoding of it replayed in the env (the "
              "ceiling a token policy can reach), `pretrained` the task's GPT and `random` uniform tokens. "
              "reward and r_*: mean per token; ↓: lower is better; headroom = gt-tokens − pretrained.", ""]
    for task in tasks:
        mine = [r for r in rows if r["task"] == task.name]
        if mine:
            parts.append(task_card(task, mine))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(parts))
    return path
