"""Training without a genre (``python -m pretrain.gpt --exclude-genre``) and the ``unseen-genre``
benchmark task's GPT (trained once by the harness, cached, reused), on the tiny fixtures."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agents.benchmark import CellSpec, Overrides, get_task, run_cell
from agents.benchmark.held_out_gpt import GPTRecipe, cache_folder
from agents.benchmark.tasks import UNSEEN_GENRE
from duet_env.conventions import TOKEN_FRAMES
from pretrain.gpt.__main__ import main as gpt_main

REPO = Path(__file__).resolve().parent.parent


def train_clips(data) -> list:
    from duet_env.data import load_split

    return load_split(str(data), "train", progress=False)


def gpt_state(folder) -> dict:
    return json.loads((Path(folder) / "gpt.json").read_text())["state"]


@pytest.fixture(scope="module")
def no_hiphop(tmp_path_factory, gpt_train_args, gpt_validated_config):
    out = tmp_path_factory.mktemp("gpt_no_hiphop")
    assert gpt_main(["--config", str(gpt_validated_config), "--steps", "2", "--out", str(out),
                     "--exclude-genre", "HipHop", *gpt_train_args]) == 0
    return out


def test_exclude_genre_removes_its_clips_from_training_and_validation(no_hiphop, tiny_synth):
    state = gpt_state(no_hiphop)
    kept = [c for c in train_clips(tiny_synth) if c.genre != "HipHop"]
    assert kept and len(kept) < len(train_clips(tiny_synth))
    assert state["excluded_genres"] == ["HipHop"]
    held = set(state["validation_clips"])
    assert held and held <= {c.name for c in kept}  # validated on kept genres only
    training = [c for c in kept if c.name not in held]
    assert state["train_clips"] == len(training)
    # the sampler's windows are the training clips' tokens: no HipHop token was ever drawn from
    assert state["train_windows"] == sum(len(c.music) // TOKEN_FRAMES for c in training)
    assert gpt_state(no_hiphop / "best")["excluded_genres"] == ["HipHop"]


def test_exclude_genre_errors_name_the_problem(gpt_train_args, tmp_path, capsys):
    assert gpt_main(["--config", "tiny", "--steps", "1", "--out", str(tmp_path / "a"),
                     "--exclude-genre", "Salsa", *gpt_train_args]) == 2
    err = capsys.readouterr().err
    assert "Salsa" in err and "genres are Ballet, ChaCha, HipHop, Tango, Waltz" in err
    # repeated flags and comma lists add up; all five genres leave nothing
    assert gpt_main(["--config", "tiny", "--steps", "1", "--out", str(tmp_path / "b"), "--exclude-genre",
                     "Waltz,Tango", "--exclude-genre", "ChaCha", "--exclude-genre", "HipHop,Ballet", *gpt_train_args]) == 2
    assert "excludes every genre" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resume_with_another_exclusion_is_refused(no_hiphop, gpt_train_args, gpt_validated_config, capsys):
    before = (no_hiphop / "gpt.json").read_text()
    for other in (["--exclude-genre", "Waltz"], []):
        assert gpt_main(["--config", str(gpt_validated_config), "--steps", "4", "--out", str(no_hiphop), "--resume",
                         *other, *gpt_train_args]) == 2
        assert "trained with excluded genres ['HipHop']" in capsys.readouterr().err
    assert (no_hiphop / "gpt.json").read_text() == before


# -- the harness's held-out GPT -------------------------------------------------------------
def test_registered_task_follows_the_shipped_gpts_recipe():
    from agents.benchmark.held_out_gpt import recipe_settings
    from duet_env.checkpoint import resolve

    task = get_task("unseen-genre")
    assert task.genre == UNSEEN_GENRE and task.held_out_gpt == GPTRecipe(UNSEEN_GENRE, base="default")
    shipped = json.loads((resolve("default") / "gpt.json").read_text())
    config, steps, seed = recipe_settings(task.held_out_gpt)
    assert config == {k: v for k, v in shipped["config"].items() if k != "codebook_sizes"}
    assert steps == shipped["state"]["total_steps"] and seed == shipped["state"]["seed"]


@pytest.fixture(scope="module")
def recipe(tiny_gpt):
    """The tiny GPT's recipe (read from its gpt.json), 3 steps, without the task's genre."""
    return GPTRecipe(UNSEEN_GENRE, base=str(tiny_gpt), steps=3)


@pytest.fixture(scope="module")
def tiny_unseen(tiny_synth, tiny_tokenizer, recipe):
    """The unseen-genre task on the tiny data, tokenizer and recipe."""
    task = get_task("unseen-genre").with_overrides(data=str(tiny_synth), tokenizer=str(tiny_tokenizer))
    return dataclasses.replace(task, held_out_gpt=recipe)


def test_held_out_gpt_never_saw_the_genre_and_is_reused(tiny_unseen, tiny_synth, tiny_gpt, capfd):
    ready = tiny_unseen.with_policy_ready(progress=False)
    folder = Path(ready.policy)
    assert folder.name == "policy" and folder.parent.parent == Path(os.environ["DUET_CACHE_DIR"]) / "benchmark-gpt"
    assert "one-time cost" in capfd.readouterr().err
    state = gpt_state(folder)
    assert state["excluded_genres"] == [UNSEEN_GENRE] and state["step"] == 3
    assert state["train_clips"] == sum(c.genre != UNSEEN_GENRE for c in train_clips(tiny_synth))
    # the base's config (tiny) was trained, minus nothing but the genre
    base = json.loads((Path(tiny_gpt) / "gpt.json").read_text())["config"]
    assert json.loads((folder / "gpt.json").read_text())["config"] == base
    # a second request (another task object, as another cell would make) reuses it untouched
    stamp = (folder / "gpt.safetensors").stat().st_mtime_ns
    again = dataclasses.replace(tiny_unseen).with_policy_ready(progress=False)
    assert again.policy == ready.policy and (folder / "gpt.safetensors").stat().st_mtime_ns == stamp
    assert "one-time cost" not in capfd.readouterr().err
    # another recipe (the base retrained for more steps) is another cache entry
    other = dataclasses.replace(tiny_unseen.held_out_gpt, steps=4)
    assert cache_folder(other, tiny_unseen.data, tiny_unseen.tokenizer) != folder.parent


def test_unseen_genre_test_episodes_are_that_genre_only(tiny_unseen, tiny_synth):
    from duet_env.data import load_split

    clips = tiny_unseen.test_clips()
    expected = [c.name for c in load_split(str(tiny_synth), "test", progress=False) if c.genre == UNSEEN_GENRE]
    assert expected and [c.name for c in clips] == expected
    assert all(c.genre == UNSEEN_GENRE for c in clips)
    with pytest.raises(ValueError, match="no test clips of genre 'Salsa'.*test genres are"):
        dataclasses.replace(tiny_unseen, genre="Salsa").test_clips()


def test_cells_start_from_the_held_out_gpt(tiny_unseen, monkeypatch, tmp_path):
    from agents.benchmark.tasks import _TASKS

    # every genre's test clips here: the tiny data has one HipHop test clip, and the metrics need two
    monkeypatch.setitem(_TASKS._items, "unseen-genre", dataclasses.replace(tiny_unseen, genre=None))
    ready = tiny_unseen.with_policy_ready(progress=False)
    row = run_cell(CellSpec("unseen-genre", "pretrained", 0, 0, True, 2, 8, Overrides()), tmp_path)
    assert row["policy"] == ready.policy
    # --policy replaces the held-out GPT: nothing is trained for it
    assert tiny_unseen.with_overrides(policy="elsewhere").held_out_gpt is None


def test_concurrent_requests_train_once(tiny_unseen, tmp_path):
    """Two processes asking at once for a GPT not cached yet: one trains, both get the folder."""
    recipe = dataclasses.replace(tiny_unseen.held_out_gpt, steps=2)
    script = textwrap.dedent(f"""
        from agents.benchmark.held_out_gpt import GPTRecipe, held_out_gpt
        print("FOLDER", held_out_gpt(GPTRecipe(**{dataclasses.asdict(recipe)!r}), {tiny_unseen.data!r},
                                     {tiny_unseen.tokenizer!r}, progress=False))
    """)
    procs = []
    for i in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
               "NUMBA_CACHE_DIR": str(tmp_path / f"numba{i}")}
        procs.append(subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    folders = {line.split(" ", 1)[1] for o, _ in outs for line in o.splitlines() if line.startswith("FOLDER ")}
    assert len(folders) == 1
    assert sum("one-time cost" in e for _, e in outs) == 1  # exactly one of them trained
    assert gpt_state(folders.pop())["step"] == 2


def test_a_genre_the_data_lacks_stops_the_benchmark_clearly(tiny_unseen, monkeypatch, tmp_path):
    from agents.benchmark.cells import prepare_policies
    from agents.benchmark.tasks import _TASKS

    salsa = dataclasses.replace(tiny_unseen, held_out_gpt=dataclasses.replace(tiny_unseen.held_out_gpt,
                                                                               exclude_genre="Salsa"))
    monkeypatch.setitem(_TASKS._items, "unseen-genre", salsa)
    with pytest.raises(SystemExit, match="unseen-genre.*Salsa.*genres are Ballet, ChaCha, HipHop, Tango, Waltz"):
        prepare_policies([CellSpec("unseen-genre", "pretrained", 0, 0)], tmp_path, progress=False)
    assert not (tmp_path / "cells").exists()
