"""More training clips for the follower GPT (``train.extra_train`` / ``--extra-train``) and the
``synth:seed=S,minutes=M`` data names they are usually given as, on the tiny fixtures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from duet_env.conventions import TOKEN_FRAMES
from duet_env.data import load_split
from duet_env.data.default import synth_source
from pretrain.gpt.__main__ import main as gpt_main
from pretrain.gpt.train import hold_out

EXTRA = "synth:seed=1,minutes=1"  # about a minute of another SynthDuet, generated into the test cache


@pytest.mark.parametrize("name, expected", [
    ("synth", (0, 60.0)),
    ("synth:seed=3", (3, 60.0)),
    ("synth:minutes=7.5", (0, 7.5)),
    ("synth: seed=1 , minutes=120", (1, 120.0)),
    ("runs/my_data", None),
    ("synthetic", None),
])
def test_synth_source_reads_seed_and_minutes(name, expected):
    assert synth_source(name) == expected


@pytest.mark.parametrize("name", ["synth:", "synth:seed=x", "synth:speed=1", "synth:seed=1,seed=2",
                                  "synth:minutes=-2", "synth:minutes=nan", "synth:seed=-1", "synth:seed"])
def test_malformed_synth_source_is_refused_with_the_name(name):
    with pytest.raises(ValueError, match="synth:seed=S,minutes=M") as info:
        synth_source(name)
    assert repr(name) in str(info.value)


@pytest.fixture(scope="module")
def with_extra(tmp_path_factory, gpt_train_args, gpt_validated_config):
    out = tmp_path_factory.mktemp("gpt_extra") / "run"
    assert gpt_main(["--config", str(gpt_validated_config), "--steps", "2", "--out", str(out), "--extra-train", EXTRA,
                     "--exclude-genre", "HipHop", *gpt_train_args]) == 0
    return out


def _tokens(clips) -> int:
    return sum(len(c.music) // TOKEN_FRAMES for c in clips)


def test_extra_train_clips_are_trained_on_but_never_validated_or_tested(with_extra, tiny_synth):
    doc = json.loads((with_extra / "gpt.json").read_text())
    state = doc["state"]
    assert doc["config"]["train"]["extra_train"] == [EXTRA]  # recorded: the held-out GPT's recipe repeats it
    own = [c for c in load_split(str(tiny_synth), "train", progress=False) if c.genre != "HipHop"]
    extra = [c for c in load_split(EXTRA, "train", progress=False) if c.genre != "HipHop"]
    assert extra and load_split(EXTRA, "test", progress=False)  # the extra data has test clips to leave out
    # validation is exactly the hold-out of --data's own clips, as without extra data
    _, held = hold_out([{"name": c.name} for c in own], 0.25)
    assert set(state["validation_clips"]) == {h["name"] for h in held}
    training = [c for c in own if c.name not in set(state["validation_clips"])]
    assert state["train_clips"] == len(training) + len(extra)
    # the windows are those of the training clips and the extra train clips, HipHop excluded from both
    assert state["train_windows"] == _tokens(training) + _tokens(extra)


def test_resuming_with_other_extra_data_is_refused(with_extra, gpt_train_args, gpt_validated_config, capsys):
    before = (with_extra / "gpt.json").read_text()
    assert gpt_main(["--config", str(gpt_validated_config), "--steps", "4", "--out", str(with_extra), "--resume",
                     "--extra-train", "none", "--exclude-genre", "HipHop", *gpt_train_args]) == 2
    assert "extra_train" in capsys.readouterr().err
    assert (with_extra / "gpt.json").read_text() == before


def test_extra_train_errors_name_the_source(gpt_train_args, tiny_synth, tmp_path: Path, capsys):
    for source, message in [(str(tiny_synth), "is the same dataset as the training data"),
                            ("synth:seed=x", "synth:seed=S,minutes=M"),
                            (str(tmp_path / "missing"), "does not exist")]:
        out = tmp_path / "run"
        assert gpt_main(["--config", "tiny", "--steps", "1", "--out", str(out), "--extra-train", source,
                         *gpt_train_args]) == 2
        err = capsys.readouterr().err
        assert message in err, err
        assert not out.exists()
