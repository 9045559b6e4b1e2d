"""agents.benchmark on the tiny fixtures: a quick run writes one row per cell, reruns skip
finished cells, killed cells are redone or resumed, the pretrained row is deterministic, and
bad names fail before anything runs."""
from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from agents.benchmark import CellSpec, Overrides, get_task, run_cell
from agents.benchmark.__main__ import main
from agents.benchmark import plots
from agents.benchmark.algorithms import Budget, finetune_config
from agents.benchmark.report import mean_std
from agents.benchmark.tasks import foreign_music_pairs, genre_round_robin

# BAS and BED are reported too, but BED is NaN (None in the row) when the motion has no kinematic
# beat (the tiny untrained GPT barely moves over 8 tokens), so only their presence is checked.
METRICS = ("reward", "FID_k", "FID_cd", "rule_error_cm")


@pytest.fixture(scope="module")
def tiny_args(tiny_synth, tiny_tokenizer, tiny_gpt):
    return ["--data", str(tiny_synth), "--tokenizer", str(tiny_tokenizer), "--policy", str(tiny_gpt),
            "--quick", "--eval-clips", "2", "--eval-tokens", "8", "--no-progress"]


@pytest.fixture(scope="module")
def overrides(tiny_synth, tiny_tokenizer, tiny_gpt):
    return Overrides(str(tiny_synth), str(tiny_tokenizer), str(tiny_gpt))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, tiny_args):
    out = tmp_path_factory.mktemp("bench")
    argv = ["--tasks", "in-distribution,foreign-music", "--algos", "pretrained,ac", "--seeds", "2",
            "--out", str(out), *tiny_args]
    assert main(argv) == 0
    return out, argv


def rows_of(out) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_quick_run_writes_one_plausible_row_per_cell(quick_run):
    out, _ = quick_run
    rows = rows_of(out)
    keys = {(r["task"], r["algo"], r["seed"]) for r in rows}
    assert len(rows) == 8 and keys == {(t, a, s) for t in ("in-distribution", "foreign-music")
                                       for a in ("pretrained", "ac") for s in (0, 1)}
    for r in rows:
        assert all(math.isfinite(r["metrics"][k]) for k in METRICS), r["metrics"]
        assert r["metrics"]["FID_k"] >= 0 and r["metrics"]["rule_error_cm"] > 0 and {"BAS", "BED"} <= set(r["metrics"])
        assert any(k.startswith("r_") for k in r["metrics"])  # reward components are reported
        assert (out / "cells" / r["task"] / r["algo"] / f"seed{r['seed']}" / "result.json").is_file()
        if r["algo"] == "pretrained":
            assert r["env_steps"] == 0 and r["curve"] == []
        else:  # quick ac: 4 envs x 16 tokens a round, 256 steps -> 4 rounds, one curve point each
            assert r["env_steps"] == 256 and [c["env_steps"] for c in r["curve"]] == [64, 128, 192, 256]
    md = (out / "results.md").read_text()
    assert "## in-distribution" in md and "## foreign-music" in md
    assert md.count("| pretrained | 2 |") == 2 and md.count("| ac | 2 |") == 2
    assert "rule_error_cm" in md and " ± " in md
    assert (out / "learning_curves.png").stat().st_size > 0  # ac has a curve
    if plots.have_rliable():
        assert (out / "intervals.png").stat().st_size > 0 and md.count("IQM reward [95 % CI]") == 2


def test_pretrained_is_deterministic(quick_run, overrides, tmp_path):
    out, _ = quick_run
    by = {(r["task"], r["algo"], r["seed"]): r["metrics"] for r in rows_of(out)}
    # greedy: the seed does not matter, and a fresh evaluation gives the very same numbers
    assert by[("in-distribution", "pretrained", 0)] == by[("in-distribution", "pretrained", 1)]
    again = run_cell(CellSpec("in-distribution", "pretrained", 0, 256, True, 2, 8, overrides), tmp_path)
    assert again["metrics"] == by[("in-distribution", "pretrained", 0)]


def test_rerun_skips_finished_cells(quick_run, capsys):
    out, argv = quick_run
    results = sorted((out / "cells").rglob("result.json"))
    before = {p: p.stat().st_mtime_ns for p in results}
    capsys.readouterr()
    assert main(argv) == 0
    assert "8 cells (0 run, 8 already done)" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in results} == before
    assert len(rows_of(out)) == 8


def test_killed_cells_are_redone(tmp_path, overrides):
    from agents import finetune as ft

    # a non-resumable cell killed mid-way: a directory with a stray file and no result.json
    spec = CellSpec("in-distribution", "random", 0, 256, True, 2, 8, overrides)
    cell = spec.directory(tmp_path)
    (cell / "train").mkdir(parents=True)
    (cell / "train" / "partial.bin").write_bytes(b"torn")
    row = run_cell(spec, tmp_path)
    assert not row["skipped"] and (cell / "result.json").is_file()
    assert not (cell / "train" / "partial.bin").exists()  # started afresh

    # a resumable (agents.finetune) cell killed after 2 of its 4 rounds continues from there
    spec = CellSpec("in-distribution", "ac", 0, 256, True, 2, 8, overrides)
    cell = spec.directory(tmp_path)
    task = get_task("in-distribution").with_overrides(**vars(overrides))
    cfg = finetune_config("ac", task, Budget(steps=256, seed=0, quick=True))  # what the cell runs
    assert ft.run(cfg, cell / "train", progress=False, stop_after=2, score=False) is None
    row = run_cell(spec, tmp_path)
    assert "resuming" in (cell / "log.txt").read_text()
    assert [c["env_steps"] for c in row["curve"]] == [64, 128, 192, 256]
    fresh = run_cell(spec, tmp_path / "fresh")  # resuming loses nothing: the same numbers as one run
    assert fresh["metrics"] == row["metrics"] and fresh["curve"] == row["curve"]


def test_gt_tokens_replays_the_ground_truth(tmp_path, overrides):
    """The ground-truth row: its tokens are the tokenizer's encoding of the test followers, so
    its motion is the tokenizer's reconstruction of them (far closer than any policy's)."""
    gt = run_cell(CellSpec("in-distribution", "gt-tokens", 0, 256, True, 2, 8, overrides), tmp_path)
    rnd = run_cell(CellSpec("in-distribution", "random", 0, 256, True, 2, 8, overrides), tmp_path)
    assert gt["env_steps"] == 0 and math.isfinite(gt["metrics"]["reward"])
    assert gt["metrics"]["rule_error_cm"] < rnd["metrics"]["rule_error_cm"]


def test_sb3_cells_run_and_score(tmp_path, overrides):
    for algo in ("ppo", "ppo-mlp"):
        row = run_cell(CellSpec("e3d2", algo, 0, 128, True, 2, 8, overrides), tmp_path)
        assert row["env_steps"] >= 128 and len(row["curve"]) >= 1
        assert "r_learned" in row["metrics"] and math.isfinite(row["metrics"]["FID_k"])


def test_foreign_music_pairs_genres(tiny_synth):
    from duet_env.data import load_split

    clips = genre_round_robin(load_split(str(tiny_synth), "test", progress=False))
    pairs = foreign_music_pairs(clips)
    by_name = {c.name: c for c in clips}
    for lead, p in zip(clips, pairs):
        music = by_name[p.name.split("+music:")[1]]
        assert p.name.startswith(lead.name + "+music:") and music.genre != lead.genre
        assert (p.music == music.music[:len(p)]).all() and (p.leader.joints == lead.leader.joints[:len(p)]).all()


def test_bad_names_fail_clearly(tmp_path, tiny_args):
    with pytest.raises(SystemExit, match="unknown task.*'nope'.*known tasks: in-distribution"):
        main(["--tasks", "nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown algorithm.*'sac'.*known algorithms: pretrained"):
        main(["--algos", "pretrained,sac", "--out", str(tmp_path)])
    assert not (tmp_path / "cells").exists()  # nothing ran


def test_report_mean_and_std():
    assert mean_std([1.0, 3.0]) == "2.000 ± 1.414"
    assert mean_std([0.5]) == "0.500" and mean_std([256, 256]) == "256 ± 0"


def test_local_workers_give_the_numbers_of_one_process(tiny_args, overrides, tmp_path):
    """--workers 2 (spawned processes) runs the same cells to the same rows as in-process."""
    argv = ["--tasks", "in-distribution", "--algos", "pretrained,random", "--seeds", "1", "--workers", "2",
            "--out", str(tmp_path / "workers"), *tiny_args]
    assert main(argv) == 0
    rows = rows_of(tmp_path / "workers")
    assert [r["algo"] for r in rows] == ["pretrained", "random"]
    for r in rows:
        here = run_cell(CellSpec("in-distribution", r["algo"], 0, 256, True, 2, 8, overrides), tmp_path / "here")
        assert r["metrics"] == here["metrics"]


@pytest.mark.skipif(importlib.util.find_spec("rliable") is None, reason='rliable not installed (pip install -e ".[bench]")')
def test_interval_stats_on_known_scores():
    def rows(algo, rewards):
        return [{"task": "t", "algo": algo, "seed": i, "metrics": {"reward": r}} for i, r in enumerate(rewards)]

    stats = plots.interval_stats(rows("pretrained", [1.0, 1.0, 1.0, 1.0]) + rows("better", [2.0, 2.0, 3.0, 2.0])
                                 + rows("same", [1.0, 1.0, 1.0, 1.0]), "t")
    assert stats["pretrained"]["iqm"] == (1.0, 1.0, 1.0) and stats["pretrained"]["poi"] is None
    assert stats["better"]["iqm"][0] == pytest.approx(2.0)  # IQM: the middle half of 2, 2, 2, 3
    assert stats["better"]["poi"] == (1.0, 1.0, 1.0)  # every seed beats every pretrained seed
    assert stats["same"]["poi"] == (0.5, 0.5, 0.5)  # ties count one half


@pytest.mark.skipif(importlib.util.find_spec("rliable") is None, reason='rliable not installed (pip install -e ".[bench]")')
def test_intervals_are_reproducible_and_leave_the_global_rng_alone():
    """rliable draws its resamples from NumPy's global RNG; the report's intervals must still be
    the same on every run, whatever the caller's global state, and leave that state as it was."""
    rewards = {"pretrained": [1.0, 1.1, 0.9, 1.05, 0.95], "ac": [1.2, 0.8, 1.4, 1.0, 1.3]}
    table = [{"task": "t", "algo": a, "seed": i, "metrics": {"reward": r}}
             for a, rs in rewards.items() for i, r in enumerate(rs)]
    np.random.seed(123)
    first = plots.interval_stats(table, "t")
    after_first = np.random.rand()
    np.random.seed(7)
    second = plots.interval_stats(table, "t")
    assert first == second
    assert first["ac"]["iqm"][1] < first["ac"]["iqm"][0] < first["ac"]["iqm"][2]  # a real interval
    np.random.seed(123)
    assert np.random.rand() == after_first  # the caller's stream continues as if nothing ran


def test_report_gathers_the_cells_of_several_runs(quick_run, tiny_args, tmp_path, capsys):
    """`report` covers cells that no single invocation's tasks × algorithms product names: the
    quick run's cells plus a random cell run separately, in registry order, rows unchanged."""
    import shutil

    out = tmp_path / "bench"
    shutil.copytree(quick_run[0] / "cells", out / "cells")
    assert main(["--tasks", "foreign-music", "--algos", "random", "--seeds", "1", "--out", str(out), *tiny_args]) == 0
    assert len(rows_of(out)) == 1  # a run reports its own cells only
    assert main(["report", "--out", str(out)]) == 0
    rows = rows_of(out)
    assert [(r["task"], r["algo"], r["seed"]) for r in rows] == [
        ("in-distribution", "pretrained", 0), ("in-distribution", "pretrained", 1),
        ("in-distribution", "ac", 0), ("in-distribution", "ac", 1),
        ("foreign-music", "pretrained", 0), ("foreign-music", "pretrained", 1),
        ("foreign-music", "random", 0),
        ("foreign-music", "ac", 0), ("foreign-music", "ac", 1)]
    before = {(r["task"], r["algo"], r["seed"]): r for r in rows_of(quick_run[0])}
    assert all(r == before[(r["task"], r["algo"], r["seed"])] for r in rows if r["algo"] != "random")
    md = (out / "results.md").read_text()
    assert md.count("| random | 1 |") == 1 and md.count("| ac | 2 |") == 2
    with pytest.raises(SystemExit, match="no benchmark cells"):
        main(["report", "--out", str(tmp_path / "empty")])


@pytest.mark.skipif(importlib.util.find_spec("rliable") is None, reason='rliable not installed (pip install -e ".[bench]")')
def test_improvement_over_pretrained_and_headroom(tmp_path):
    def rows(algo, rewards, steps):
        return [{"task": "t", "algo": algo, "seed": i, "env_steps": steps, "curve": [], "metrics": {"reward": r}}
                for i, r in enumerate(rewards)]

    table = (rows("pretrained", [1.0, 1.0], 0) + rows("gt-tokens", [3.0], 0) + rows("random", [0.0, 0.1], 0)
             + rows("ac", [1.5, 1.5, 1.5, 1.5], 64) + rows("worse", [0.0, -1.0, -1.0, -1.0], 64))
    stats, headroom = plots.improvement_stats(table, "t")
    assert headroom == pytest.approx(2.0)
    assert set(stats) == {"ac", "worse"}  # references do not train
    assert stats["ac"] == pytest.approx((0.5, 0.5, 0.5))
    assert stats["worse"][0] == pytest.approx(-2.0)  # differences -1, -2, -2, -2: IQM of the middle two
    assert plots.plot_improvement(table, tmp_path / "improvement.png").stat().st_size > 0
