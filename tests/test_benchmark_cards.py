"""``python -m agents.benchmark cards`` on the tiny fixtures: one row per reference follower, the
headroom is the difference of two rows, cells are reused, and stale cells are refused."""
from __future__ import annotations

import json
import math

import pytest

from agents.benchmark.__main__ import main
from agents.benchmark.algorithms import REFERENCES
from agents.benchmark.cards import fmt

TASKS = ("in-distribution", "foreign-music")


@pytest.fixture(scope="module")
def cards_run(tmp_path_factory, tiny_synth, tiny_tokenizer, tiny_gpt):
    out = tmp_path_factory.mktemp("cards")
    argv = ["cards", "--tasks", ",".join(TASKS), "--out", str(out), "--cards", str(out / "docs" / "tasks.md"),
            "--data", str(tiny_synth), "--tokenizer", str(tiny_tokenizer), "--policy", str(tiny_gpt),
            "--quick", "--eval-clips", "2", "--eval-tokens", "8", "--no-progress"]
    assert main(argv) == 0
    return out, argv


def card_tables(md: str) -> dict[str, dict[str, dict[str, str]]]:
    """task -> first cell of a row -> column -> text, from the cards' markdown tables."""
    out, task, head = {}, None, None
    for line in md.splitlines():
        if line.startswith("## "):
            task, head = line[3:].strip(), None
            out[task] = {}
        elif line.startswith("| ") and task:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if head is None:
                head = [c.replace(" ↓", "") for c in cells]
            else:
                out[task][cells[0]] = dict(zip(head[1:], cells[1:]))
    return out


def result(out, task, algo) -> dict:
    return json.loads((out / "cells" / task / algo / "seed0" / "result.json").read_text())["metrics"]


def test_cards_have_one_row_per_reference_and_the_headroom(cards_run):
    out, _ = cards_run
    tables = card_tables((out / "docs" / "tasks.md").read_text())
    assert list(tables) == list(TASKS)
    for task, rows in tables.items():
        labels = list(rows)
        assert len(labels) == len(REFERENCES) + 1 and labels[-1].startswith("**headroom**")
        assert [lab.split()[0] for lab in labels[:-1]] == list(REFERENCES)
        gt_tokens, pretrained = result(out, task, "gt-tokens"), result(out, task, "pretrained")
        by_algo = dict(zip(REFERENCES, labels))
        for col in ("reward", "rule_error_cm", "FID_k"):
            assert rows[labels[-1]][col] == fmt(gt_tokens[col] - pretrained[col])
            for algo in REFERENCES:  # each row shows its cell's number
                assert rows[by_algo[algo]][col] == fmt(result(out, task, algo)[col])
        # the recorded ground truth scores with the same reward terms, and is its own rule answer
        gt = result(out, task, "gt")
        assert gt["rule_error_cm"] == 0.0 and math.isfinite(gt["reward"])
        assert {k for k in gt if k.startswith("r_")} == {k for k in pretrained if k.startswith("r_")}
        assert set(rows[by_algo["gt"]]) == set(rows[by_algo["pretrained"]])


def test_cards_reuse_finished_cells(cards_run, capsys):
    out, argv = cards_run
    results = sorted((out / "cells").rglob("result.json"))
    assert len(results) == len(TASKS) * len(REFERENCES)
    before = {p: p.stat().st_mtime_ns for p in results}
    md = (out / "docs" / "tasks.md").read_text()
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in results} == before
    assert (out / "docs" / "tasks.md").read_text() == md


def test_cards_refuse_cells_scored_on_other_episodes(cards_run):
    out, argv = cards_run
    other = [a if a != "8" else "12" for a in argv]  # --eval-tokens 12
    with pytest.raises(SystemExit, match="scored on other test episodes"):
        main(other)
