"""Statistics over seeds with rliable, and the benchmark's PNG plots.

With a handful of seeds a mean ± std says little. Following Agarwal et al. (NeurIPS 2021,
"Deep RL at the edge of the statistical precipice"; the ``rliable`` library), each task reports:

- the interquartile mean (IQM) of the test reward over seeds, with a 95 % stratified-bootstrap
  confidence interval (robust to one odd seed, less noisy than the median);
- the probability of improvement P(algo > pretrained): the chance that a seed of the algorithm
  scores above a seed of ``pretrained`` (0.5 = no difference), with its bootstrap interval.

Tasks are kept apart (one "task" column per bootstrap): their rewards are on different scales.
rliable is optional (``pip install -e ".[bench]"``); without it the report has the mean ± std
tables and the learning curves only.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np

from duet_env.atomic import atomic_write

REPS = 2000          # bootstrap resamples (seeded: the intervals are reproducible)
REFERENCE = "pretrained"


def have_rliable() -> bool:
    try:
        from rliable import library  # noqa: F401
    except ImportError:
        return False
    return True


def reward_scores(rows: list[dict], task: str) -> dict[str, np.ndarray]:
    """{algo: (seeds, 1) test rewards} of one task."""
    out: dict[str, list[float]] = {}
    for r in rows:
        if r["task"] == task and r["metrics"].get("reward") is not None:
            out.setdefault(r["algo"], []).append(float(r["metrics"]["reward"]))
    return {a: np.asarray(v, np.float64)[:, None] for a, v in out.items()}


def interval_stats(rows: list[dict], task: str) -> dict[str, dict]:
    """{algo: {"iqm": (point, lo, hi), "poi": (point, lo, hi) or None}} for one task."""
    return _interval_stats(reward_scores(rows, task))


def _interval_stats(scores: dict[str, np.ndarray]) -> dict[str, dict]:
    with warnings.catch_warnings(), _global_numpy_seed(0):
        warnings.simplefilter("ignore", FutureWarning)  # arch deprecates the RandomState rliable passes
        return _bootstrap(scores)


@contextlib.contextmanager
def _global_numpy_seed(seed: int):
    """Seed NumPy's global RNG for the block, then put the caller's state back.

    Why: rliable's ``StratifiedBootstrap.update_indices`` (rliable 1.2) draws its resamples with
    ``np.random.choice``, the global RNG, and ignores the ``random_state`` it is given; without
    this the report's intervals changed from one run to the next. Restoring the state keeps the
    user's own global seed untouched."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _bootstrap(scores: dict[str, np.ndarray]) -> dict[str, dict]:
    from rliable import library as rly
    from rliable import metrics

    iqm, iqm_ci = rly.get_interval_estimates(scores, lambda x: np.array([metrics.aggregate_iqm(x)]),
                                             reps=REPS, random_state=np.random.RandomState(0))
    stats = {a: {"iqm": (float(iqm[a][0]), float(iqm_ci[a][0, 0]), float(iqm_ci[a][1, 0])), "poi": None}
             for a in scores}
    if REFERENCE in scores:
        pairs = {a: [scores[a], scores[REFERENCE]] for a in scores if a != REFERENCE}
        if pairs:
            poi, poi_ci = rly.get_interval_estimates(pairs, metrics.probability_of_improvement,
                                                     reps=REPS, random_state=np.random.RandomState(0))
            for a in pairs:
                lo, hi = np.ravel(poi_ci[a])
                stats[a]["poi"] = (float(np.ravel(poi[a])[0]), float(lo), float(hi))
    return stats


def stats_table(stats: dict[str, dict]) -> str:
    lines = ["| algorithm | IQM reward [95 % CI] | P(algo > pretrained) [95 % CI] |", "|---|---|---|"]
    for a, s in stats.items():
        m, lo, hi = s["iqm"]
        poi = "–" if s["poi"] is None else "{:.2f} [{:.2f}, {:.2f}]".format(*s["poi"])
        lines.append(f"| {a} | {m:.3f} [{lo:.3f}, {hi:.3f}] | {poi} |")
    return "\n".join(lines)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _pyplot():
    import matplotlib  # here, not at the top: choosing the Agg backend must not affect importers

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(rows: list[dict], path: Path) -> Path | None:
    """One panel per task: mean training reward per round/rollout against env steps, a band of
    ± one std over seeds (the seeds of one cell config share their x positions)."""
    tasks = [t for t in dict.fromkeys(r["task"] for r in rows) if any(r["curve"] for r in rows if r["task"] == t)]
    if not tasks:
        return None
    plt = _pyplot()
    color = {a: f"C{i % 10}" for i, a in enumerate(dict.fromkeys(r["algo"] for r in rows if r["curve"]))}
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for algo in dict.fromkeys(r["algo"] for r in rows if r["task"] == task and r["curve"]):
            curves = [r["curve"] for r in rows if r["task"] == task and r["algo"] == algo and r["curve"]]
            n = min(len(c) for c in curves)
            x = np.asarray([p["env_steps"] for p in curves[0][:n]])
            y = np.asarray([[p["train_reward"] for p in c[:n]] for c in curves])
            mean, std = y.mean(0), y.std(0)
            ax.plot(x, mean, label=f"{algo} ({len(curves)} seeds)", color=color[algo])  # one colour per algorithm
            ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=color[algo])
        ax.set_title(task)
        ax.set_xlabel("env steps")
        ax.set_ylabel("training reward per token")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path


def plot_intervals(all_stats: dict[str, dict[str, dict]], path: Path) -> Path:
    """Per task: IQM test reward with its 95 % CI, and P(algo > pretrained) with its CI."""
    plt = _pyplot()
    tasks = list(all_stats)
    order = list(dict.fromkeys(a for s in all_stats.values() for a in s))
    color = {a: f"C{i % 10}" for i, a in enumerate(order)}  # one colour per algorithm in every panel
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 0.5 + 0.45 * max(len(s) for s in all_stats.values())
                                                        * len(tasks) + 0.6 * len(tasks)), squeeze=False)
    for (ax_iqm, ax_poi), task in zip(axes, tasks):
        stats = all_stats[task]
        algos = list(stats)
        for i, a in enumerate(algos):
            m, lo, hi = stats[a]["iqm"]
            ax_iqm.errorbar(m, i, xerr=[[m - lo], [hi - m]], fmt="o", capsize=4, color=color[a])
        ax_iqm.set_yticks(range(len(algos)), algos)
        ax_iqm.set_title(f"{task}: IQM test reward (95 % CI)")
        ax_iqm.grid(alpha=0.3)
        others = [a for a in algos if stats[a]["poi"] is not None]
        for i, a in enumerate(others):
            p, lo, hi = stats[a]["poi"]
            ax_poi.errorbar(p, i, xerr=[[p - lo], [hi - p]], fmt="o", capsize=4, color=color[a])
        ax_poi.axvline(0.5, color="grey", ls="--", lw=1)
        ax_poi.set_xlim(0, 1)
        ax_poi.set_yticks(range(len(others)), others)
        ax_poi.set_title(f"{task}: P(algo > {REFERENCE})")
        ax_poi.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    return path


HEADROOM = "gt-tokens"  # the ground truth's tokens as the env plays them: what a token policy can reach


def improvement_stats(rows: list[dict], task: str) -> tuple[dict[str, tuple[float, float, float]], float | None]:
    """Per trained algorithm of one task: IQM of (test reward − the mean ``pretrained`` reward) over
    seeds with its 95 % stratified-bootstrap CI; and the task's headroom, the mean ``gt-tokens``
    reward − the mean ``pretrained`` reward (None without those cells).

    Only cells that trained (env_steps > 0) are kept: the question is how much of the headroom
    training takes."""
    scores = reward_scores(rows, task)
    if REFERENCE not in scores:
        return {}, None
    base = float(scores[REFERENCE].mean())
    trained = list(dict.fromkeys(r["algo"] for r in rows if r["task"] == task and r["env_steps"] > 0))
    diffs = {a: scores[a] - base for a in trained if a in scores}
    headroom = float(scores[HEADROOM].mean()) - base if HEADROOM in scores else None
    if not diffs:
        return {}, headroom
    return {a: s["iqm"] for a, s in _interval_stats(diffs).items()}, headroom


def plot_improvement(rows: list[dict], path: Path) -> Path | None:
    """The headline plot: per task, each trained algorithm's IQM improvement over ``pretrained``
    (test reward per token, 95 % CI) beside the task's headroom (``gt-tokens`` − ``pretrained``).

    The axis spans the headroom and the fine-tuned algorithms; an algorithm far below it (e.g. a
    from-scratch policy) is drawn at the left edge with its value written beside it."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    panels = [(t, *improvement_stats(rows, t)) for t in tasks]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    plt = _pyplot()
    order = list(dict.fromkeys(a for _, s, _ in panels for a in s))
    color = {a: f"C{i % 10}" for i, a in enumerate(order)}
    cols = min(2, len(panels))
    rows_n = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(6 * cols, 0.8 + 0.45 * len(order) * rows_n + 0.9 * rows_n),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (task, stats, headroom) in zip(axes.flat, panels):
        near = [v for s in stats.values() for v in s if headroom is None or abs(v) <= 3 * abs(headroom)]
        span = max([abs(v) for v in near] + [abs(headroom or 0.0), 1e-3])
        lo_x, hi_x = -1.3 * span, 1.3 * span
        algos = list(stats)
        for i, a in enumerate(algos):
            m, lo, hi = stats[a]
            if m < lo_x:
                ax.plot(lo_x, i, marker="<", color=color[a], ms=9)
                ax.annotate(f"{m:+.2f} (off the axis)", (lo_x, i), xytext=(10, -3), textcoords="offset points",
                            fontsize=8, color=color[a])
                continue
            ax.errorbar(m, i, xerr=[[m - max(lo, lo_x)], [hi - m]], fmt="o", capsize=4, color=color[a])
        ax.axvline(0.0, color="grey", ls="--", lw=1, label=f"{REFERENCE} (0)")
        if headroom is not None:
            ax.axvline(headroom, color="green", ls=":", lw=1.5, label=f"{HEADROOM}: headroom {headroom:+.3f}")
        ax.set_xlim(lo_x, hi_x)
        ax.set_ylim(-0.6, len(algos) + 0.5)  # room above the rows for the legend
        ax.set_yticks(range(len(algos)), algos)
        ax.set_title(f"{task}: test reward − {REFERENCE} (IQM, 95 % CI)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right", ncols=2)
    fig.tight_layout()
    _save(fig, path)
    return path
