"""Cells: one (task, algorithm, seed) = one independent, resumable job with its own directory.

    OUT/cells/<task>/<algo>/seed<k>/
        result.json   the cell's row (written atomically, last): its presence means "done"
        train/        the algorithm's working directory (checkpoints, exported GPT, SB3 zip)
        log.txt       what the algorithm printed (stdout and stderr)

A rerun skips every cell with a ``result.json``. A cell without one was killed mid-way: a
resumable algorithm (agents.finetune's) continues from its last checkpoint in ``train/``, any
other starts again from an empty directory. Cells share nothing on disk, so they run in any
order, in any process: :func:`run_cells` runs them in ``workers`` spawned local processes.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from agents.benchmark.algorithms import Budget, get_algorithm
from agents.benchmark.tasks import get_task
from agents.evaluate import json_safe
from duet_env.atomic import atomic_write_json

RESULT = "result.json"


@dataclass(frozen=True)
class Overrides:
    """Task settings replaced for every cell (tests: tiny data, tokenizer and GPT)."""
    data: str | None = None
    tokenizer: str | None = None
    policy: str | None = None


@dataclass(frozen=True)
class CellSpec:
    task: str
    algo: str
    seed: int
    steps: int
    quick: bool = False
    eval_clips: int = 0      # 0 = every test clip
    eval_tokens: int = 0     # 0 = whole clips
    overrides: Overrides = field(default_factory=Overrides)

    def directory(self, out: Path) -> Path:
        return Path(out) / "cells" / self.task / self.algo / f"seed{self.seed}"


def score(task, trained, seed: int, eval_clips: int, eval_tokens: int) -> dict[str, float]:
    """Greedy rollouts of the trained policy on the task's fixed test episodes: every reward
    component, BAS, BED, FID_k, FID_cd, contact, penetration, rule_error_cm; NaN -> None in the row
    (:func:`agents.finetune.evaluate_policy`, the same for every algorithm). Recorded motion (the
    ``gt`` row) has no policy to roll out: :func:`score_motion` scores it with the same metrics."""
    from agents.finetune import evaluate_policy

    clips = task.test_clips(eval_clips, eval_tokens)
    if trained.recorded_followers is not None:
        return score_motion(clips, trained.recorded_followers(clips), task.reference(), task.reward)
    return evaluate_policy(trained.policy_for(clips), clips, task.reference(), task.reward, seed, task.tokenizer,
                           observation=trained.observation)


def score_motion(clips, followers, reference, reward) -> dict[str, float]:
    """The row :func:`agents.finetune.evaluate_policy` gives, for follower joints given directly:
    the reward per token of each clip (the env's 32-frame contexts, :func:`agents.reward_table.score_offline`)
    averaged over clips as the env rows are, and the same metrics on the same duets."""
    import numpy as np

    from agents.evaluate import duets_of, rule_error_cm
    from agents.reward_table import score_offline
    from duet_env.metrics import evaluate_duets

    per_clip = [score_offline([c], [f], reward) for c, f in zip(clips, followers)]
    row = {"reward": float(np.mean([r["reward"] for r in per_clip]))}
    for name in per_clip[0]:
        if name not in ("reward", "tokens"):
            row[f"r_{name}"] = float(np.mean([r[name] for r in per_clip]))
    metrics = evaluate_duets(duets_of(clips, followers), reference)
    row.update({k: float(metrics[k]) for k in ("BAS", "BED", "FID_k", "FID_cd", "contact_freq", "penetration")})
    row["rule_error_cm"] = rule_error_cm(clips, followers)
    return row


def prepare_policies(specs: list[CellSpec], out: Path, progress: bool = True) -> None:
    """Train (once, cached) every held-out GPT an unfinished cell will start from, here, before the
    cells run: in this process it gets every core, and the cells then find it ready."""
    seen = set()
    for spec in specs:
        key = (spec.task, spec.overrides)
        if key in seen or (spec.directory(out) / RESULT).is_file() or not get_algorithm(spec.algo).needs_policy:
            continue
        seen.add(key)
        task = get_task(spec.task).with_overrides(**asdict(spec.overrides))
        task.check_available()
        try:
            task.with_policy_ready(progress=progress)
        except (ValueError, FileNotFoundError) as e:  # e.g. a dataset without the held-out genre
            raise SystemExit(f"task {spec.task!r}: cannot train its pretrained GPT: {e}") from e


def run_cell(spec: CellSpec, out: Path) -> dict:
    """Run one cell unless it is done; returns its row (``"skipped": True`` when it was done)."""
    cell = spec.directory(out)
    result = cell / RESULT
    if result.is_file():
        return {**json.loads(result.read_text()), "skipped": True}
    task = get_task(spec.task).with_overrides(**asdict(spec.overrides))
    task.check_available()
    algo = get_algorithm(spec.algo)
    if algo.needs_policy:  # unseen-genre: its GPT, trained once and cached (outside the cell's clock)
        task = task.with_policy_ready()
    workdir = cell / "train"
    if cell.exists() and not algo.resumable:
        shutil.rmtree(cell)  # a killed non-resumable cell: start afresh
    workdir.mkdir(parents=True, exist_ok=True)
    task.test_clips(spec.eval_clips, spec.eval_tokens)  # load (cached per process) outside the clock
    task.reference()
    started = time.perf_counter()
    with open(cell / "log.txt", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        trained = algo.train(task, workdir, Budget(spec.steps, spec.seed, spec.quick))
        train_s = time.perf_counter() - started
        metrics = json_safe(score(task, trained, spec.seed, spec.eval_clips, spec.eval_tokens))
    row = {"task": spec.task, "algo": spec.algo, "seed": spec.seed, "budget_steps": spec.steps,
           "env_steps": trained.env_steps, "train_s": train_s, "wall_s": time.perf_counter() - started,
           "metrics": metrics, "curve": trained.curve,
           "eval": {"clips": spec.eval_clips, "tokens": spec.eval_tokens, "mode": "greedy"},
           "overrides": asdict(spec.overrides), "policy": task.policy if algo.needs_policy else None}
    atomic_write_json(result, row)
    return {**row, "skipped": False}


def _worker_init() -> None:
    """One thread per worker (the cells already run side by side) and a private numba cache
    (two processes compiling into one cache can segfault librosa)."""
    import tempfile

    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"duet-bench-numba-{os.getpid()}")
    import torch

    torch.set_num_threads(1)


def run_cells(specs: list[CellSpec], out: Path, workers: int = 1, progress: bool = True) -> list[dict]:
    """Run every cell (``workers`` > 1: that many spawned processes); rows in ``specs`` order."""
    rows: list[dict | None] = [None] * len(specs)
    bar = tqdm(total=len(specs), desc="cells", unit="cell", disable=not progress)
    if workers <= 1:
        for i, spec in enumerate(specs):
            bar.set_postfix_str(f"{spec.task}/{spec.algo}/seed{spec.seed}")
            rows[i] = run_cell(spec, out)
            bar.update()
    else:
        # OMP_NUM_THREADS must be in the environment before a worker imports torch; spawned
        # workers copy the parent's environment when they start.
        old = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"
        try:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
                futures = {pool.submit(run_cell, spec, out): i for i, spec in enumerate(specs)}
                for fut in as_completed(futures):
                    rows[futures[fut]] = fut.result()
                    bar.update()
        finally:
            if old is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = old
    bar.close()
    return rows
