"""Architecture guards: the layers import one way, and every motion file goes through the
restricted unpickler (duet_env.data.safe_pickle) — checked on each entry point that reads one."""
from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("duet_env", "rewards", "agents", "pretrain")


def _sources(*packages: str):
    for pkg in packages:
        yield from sorted((REPO / pkg).rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_duet_env_and_rewards_import_neither_pretrain_nor_agents():
    bad = [f"{p.relative_to(REPO)} imports {m}" for p in _sources("duet_env", "rewards")
           for m in sorted(_imported_modules(p)) if m.split(".")[0] in ("pretrain", "agents")]
    assert bad == []


def test_only_safe_pickle_calls_np_load_with_allow_pickle():
    found = []
    for path in _sources(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                            for k in node.keywords)):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == []


# ---- malicious motion files ---------------------------------------------------------------------

class _Payload:
    """Unpickling this would create the directory ``marker`` (os.mkdir): visible, harmless."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _write_malicious(path: Path, marker: Path) -> None:
    d = {"poses": np.zeros((8, 165), np.float32), "transl": np.zeros((8, 3), np.float32),
         "betas": np.zeros(10, np.float32), "gender": "neutral", "extra": _Payload(marker)}
    np.save(path, d, allow_pickle=True)


@pytest.fixture
def poisoned(tmp_path, tiny_synth):
    """A copy of the tiny SynthDuet folder whose first clip's leader and follower files are
    malicious; returns (root, clip name, the marker that must never appear)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_synth, root, ignore=shutil.ignore_patterns("prepared", ".duet_cache"))
    motion = root / "motion" / "smplx" / "all"
    name = sorted(p.stem[:-3] for p in motion.glob("*_01.npy"))[0]
    marker = tmp_path / "pwned"
    for suffix in ("_00", "_01"):
        _write_malicious(motion / f"{name}{suffix}.npy", marker)
    return root, name, marker


def test_malicious_file_to_the_loader(poisoned):
    from duet_env.data import DataError, dd100, load_split

    root, name, marker = poisoned
    with pytest.raises(DataError, match="refused to load global"):
        dd100.read_motion(root / dd100.MOTION_DIR / f"{name}_01.npy")
    with pytest.raises(DataError, match="refused to load global"):
        load_split(root, "all", progress=False)
    assert not marker.exists()


def test_malicious_file_to_prepare(poisoned):
    from duet_env.data.prepare import prepare

    root, name, marker = poisoned
    report = prepare(root, progress=False)
    assert [n for n, msg in report.failed if "refused to load global" in msg] == [name]
    assert not marker.exists()


def test_malicious_file_to_synth_checks(poisoned):
    from duet_env.data import UnsafePickleError
    from duet_env.data.synth_checks import clip_report, main

    root, name, marker = poisoned
    with pytest.raises(UnsafePickleError, match="refused to load global"):
        clip_report(root, name)
    with pytest.raises(UnsafePickleError, match="refused to load global"):
        main([str(root)])
    assert not marker.exists()


def test_malicious_file_to_the_rule_follower(poisoned):
    from duet_env.data import UnsafePickleError
    from duet_env.data.synth import rule_follower

    root, name, marker = poisoned
    with pytest.raises(UnsafePickleError, match="refused to load global"):
        rule_follower(root, name)
    assert not marker.exists()


def test_malicious_file_to_evaluate_motion(poisoned):
    from agents.evaluate import saved_followers
    from duet_env.data import DataError

    root, name, marker = poisoned
    with pytest.raises(DataError, match="refused to load global"):
        saved_followers(root, [SimpleNamespace(name=name)])
    assert not marker.exists()


def test_malicious_leader_file_to_the_env(poisoned, tiny_tokenizer):
    import gymnasium as gym

    from duet_env.data import UnsafePickleError

    root, name, marker = poisoned
    music = next((root / "music" / "mp3" / "all").glob(f"{name}.*"))
    with pytest.raises(UnsafePickleError, match="refused to load global"):
        gym.make("DuetAccompany-v0", music_file=str(music), leader_file=str(root / "motion" / "smplx" / "all" /
                 f"{name}_01.npy"), tokenizer=str(tiny_tokenizer))
    assert not marker.exists()
