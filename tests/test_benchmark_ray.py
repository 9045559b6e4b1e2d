"""agents.benchmark --backend ray on a local Ray instance: the same cells give the same rows as the
local backend, finished cells are not submitted again, and without Ray the error names the extra."""
from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from agents.benchmark import CellSpec, Overrides, run_cell
from agents.benchmark.__main__ import main

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason='ray not installed (pip install -e ".[distributed]")')


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@needs_ray
def test_ray_cells_give_the_numbers_of_the_local_backend(local_ray, tiny_synth, tiny_tokenizer, tiny_gpt,
                                                         tmp_path, capsys):
    import agents
    from agents.benchmark.ray_backend import WORKER_ENV

    # the workers import the code under test (not another checkout), with one OpenMP thread
    probe = local_ray.remote(lambda: (__import__("agents").__file__, __import__("os").environ.get("OMP_NUM_THREADS")))
    assert local_ray.get(probe.options(runtime_env={"env_vars": WORKER_ENV}).remote()) == (agents.__file__, "1")

    out = tmp_path / "ray"
    argv = ["--backend", "ray", "--tasks", "in-distribution", "--algos", "pretrained,ac", "--seeds", "1",
            "--data", str(tiny_synth), "--tokenizer", str(tiny_tokenizer), "--policy", str(tiny_gpt),
            "--quick", "--eval-clips", "2", "--eval-tokens", "8", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["task"], r["algo"], r["seed"]) for r in rows] == [("in-distribution", "pretrained", 0),
                                                                 ("in-distribution", "ac", 0)]
    overrides = Overrides(str(tiny_synth), str(tiny_tokenizer), str(tiny_gpt))
    for r in rows:  # the local backend, in this process: the very same row
        here = run_cell(CellSpec("in-distribution", r["algo"], 0, 256, True, 2, 8, overrides), tmp_path / "local")
        assert r["metrics"] == here["metrics"] and r["curve"] == here["curve"]
        assert r["env_steps"] == here["env_steps"] == (256 if r["algo"] == "ac" else 0)

    # a rerun submits nothing: every cell is read back from its result.json, untouched
    results = sorted((out / "cells").rglob("result.json"))
    before = {p: p.stat().st_mtime_ns for p in results}
    capsys.readouterr()
    assert main(argv) == 0
    assert "2 cells (0 run, 2 already done)" in capsys.readouterr().err
    assert len(results) == 2 and {p: p.stat().st_mtime_ns for p in results} == before


def test_ray_backend_without_ray_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(SystemExit, match=r'duet\[distributed\]: pip install -e "\.\[distributed\]"'):
        main(["--backend", "ray", "--algos", "pretrained", "--out", str(tmp_path)])
    assert not (tmp_path / "cells").exists()  # nothing ran


def test_address_needs_the_ray_backend(tmp_path):
    with pytest.raises(SystemExit, match="--address needs --backend ray"):
        main(["--address", "auto", "--out", str(tmp_path)])
