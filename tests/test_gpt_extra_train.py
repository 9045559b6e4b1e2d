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
    ("synth", (0, 60.0, None)),
    ("synth:seed=3", (3, 60.0, None)),
    ("synth:minutes=7.5", (0, 7.5, None)),
    ("synth: seed=1 , minutes=120", (1, 120.0, None)),
    ("synth:seed=2,minutes=60,tempo=130-180", (2, 60.0, (130.0, 180.0))),
    ("runs/my_data", None),
    ("synthetic", None),
])
def test_synth_source_reads_seed_minutes_and_tempo_band(name, expected):
    assert synth_source(name) == expected


@pytest.mark.parametrize("name", ["synth:", "synth:seed=x", "synth:speed=1", "synth:seed=1,seed=2",
                                  "synth:minutes=-2", "synth:minutes=nan", "synth:seed=-1", "synth:seed",
                                  "synth:tempo=130", "synth:tempo=180-130", "synth:tempo=0-90", "synth:tempo=a-b"])
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


def test_a_tempo_band_source_is_its_own_dataset_with_only_fast_songs(session_cache):
    """``synth:...,tempo=LOW-HIGH`` is generated into its own cache folder (never mistaken for the
    band-less SynthDuet of the same seed and length), and its clips' songs lie in the band."""
    from duet_env.data import resolve_root

    root = resolve_root("synth:seed=1,minutes=1,tempo=130-180")
    assert root.name.endswith("seed1-1min-tempo130-180") and root != resolve_root("synth:seed=1,minutes=1")
    meta = json.loads((root / "synth_meta" / "dataset.json").read_text())
    assert meta["tempo_band_bpm"] == [130.0, 180.0] and "Ballet" not in meta["genres"]
    bpms = [json.loads(p.read_text())["bpm"] for p in (root / "synth_meta").glob("*_1.json")]
    assert bpms and all(130.0 <= b <= 180.0 for b in bpms)
    assert {c.genre for c in load_split(root, "all", progress=False)} == set(meta["genres"])
