"""DD100 layout loader, the restricted unpickler and the prepare cache, on a tiny generated dataset."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duet_env import music, skeleton
from duet_env.data import dd100, prepare as prepare_mod
from duet_env.data.safe_pickle import UnsafePickleError, load_npy, load_npy_dict

from smplx_fixture import write_tiny_smplx_model

SR = 22050
# name -> (follower frames, leader frames, music seconds); music of 2.5 s has 76 frames.
CLIPS = {
    "Waltz_01_01": (70, 72, 2.5),    # train; motion shorter than music
    "Tango_005_02": (90, 90, 2.5),   # test via leading zeros (5 % 5 == 0); music shorter
    "Ballet_09_01": (66, 66, 2.5),   # test (Ballet 9)
    "Ballet_05_01": (80, 79, 2.5),   # train (Ballet: 5 is not a test choreography)
}


def click_track(seconds: float, bpm: float) -> np.ndarray:
    y = np.zeros(int(seconds * SR), np.float32)
    rng = np.random.default_rng(int(bpm))
    burst = int(0.03 * SR)
    for start in np.arange(0, seconds, 60.0 / bpm):
        s = int(start * SR)
        n = min(burst, len(y) - s)
        y[s:s + n] += rng.standard_normal(n).astype(np.float32) * np.exp(-np.arange(n) / (0.005 * SR)) * 0.8
    return y + 0.05 * np.sin(2 * np.pi * 330 * np.arange(len(y)) / SR).astype(np.float32)


def motion_dict(frames: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "poses": rng.normal(scale=0.1, size=(frames, 165)).astype(np.float32),
        "transl": np.cumsum(rng.normal(scale=0.01, size=(frames, 3)), axis=0) + [0.0, 0.9, 0.0],
        "betas": rng.normal(size=(1, 10)),
        "gender": "female" if seed % 2 else "male",
    }


def write_clip(root: Path, name: str, follower: int, leader: int, seconds: float, seed: int) -> None:
    motion_dir = root / "motion" / "smplx" / "all"
    music_dir = root / "music" / "mp3" / "all"
    motion_dir.mkdir(parents=True, exist_ok=True)
    music_dir.mkdir(parents=True, exist_ok=True)
    np.save(motion_dir / f"{name}_00.npy", motion_dict(follower, seed), allow_pickle=True)
    np.save(motion_dir / f"{name}_01.npy", motion_dict(leader, seed + 100), allow_pickle=True)
    sf.write(music_dir / f"{name}.wav", click_track(seconds, 100 + 5 * seed), SR, subtype="PCM_16")


@pytest.fixture(scope="module", autouse=True)
def _music_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DUET_CACHE_DIR", str(tmp_path_factory.mktemp("duet_cache")))
        yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dd100")
    for seed, (name, (f, l, s)) in enumerate(CLIPS.items()):
        write_clip(root, name, f, l, s, seed)
    return root


@pytest.fixture
def fresh(dataset, tmp_path) -> Path:
    """A private copy of the dataset that a test may modify."""
    root = tmp_path / "data"
    shutil.copytree(dataset, root)
    return root


def motion_path(root: Path, name: str, role: str = "00") -> Path:
    return root / "motion" / "smplx" / "all" / f"{name}_{role}.npy"


# ----------------------------------------------------------------------------- safe pickle


def test_safe_pickle_loads_a_saved_dict(tmp_path):
    d = motion_dict(5, 0)
    path = tmp_path / "m.npy"
    np.save(path, d, allow_pickle=True)
    loaded = load_npy_dict(path)
    assert sorted(loaded) == sorted(d)
    np.testing.assert_array_equal(loaded["poses"], d["poses"])
    assert loaded["gender"] == d["gender"]
    plain = tmp_path / "plain.npy"
    np.save(plain, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(load_npy(plain), np.arange(6.0).reshape(2, 3))


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pwned_xyz_duet",))


def test_safe_pickle_refuses_code_and_runs_none(tmp_path):
    marker = Path("/tmp/pwned_xyz_duet")
    marker.unlink(missing_ok=True)
    payload = np.empty((), dtype=object)
    payload[()] = {"poses": _Exploit()}
    path = tmp_path / "evil_00.npy"
    np.save(path, payload, allow_pickle=True)
    with pytest.raises(UnsafePickleError) as info:
        load_npy_dict(path)
    assert str(path) in str(info.value) and "system" in str(info.value)
    assert not marker.exists()


def test_safe_pickle_rejects_garbage(tmp_path):
    path = tmp_path / "junk.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="junk.npy"):
        load_npy_dict(path)


# ----------------------------------------------------------------------------- listing and split


def test_list_clips_pairs_follower_leader_and_music(dataset):
    clips = dd100.list_clips(dataset)
    assert [c.name for c in clips] == sorted(CLIPS)
    by_name = {c.name: c for c in clips}
    tango = by_name["Tango_005_02"]
    assert (tango.genre, tango.choreo, tango.take) == ("Tango", 5, "02")
    assert tango.follower.name == "Tango_005_02_00.npy" and tango.leader.name == "Tango_005_02_01.npy"
    assert tango.music.name == "Tango_005_02.wav" and tango.music.is_file()


@pytest.mark.parametrize(
    "name, split",
    [
        ("Waltz_01_01", "train"), ("Waltz_05_01", "test"), ("Waltz_10_03", "test"),
        ("Tango_005_02", "test"), ("ChaCha_0012_01", "train"), ("HipHop_20_01", "test"),
        ("Ballet_09_01", "test"), ("Ballet_010_02", "test"), ("Ballet_05_01", "train"),
        ("Ballet_15_01", "train"), ("Ballet_11_01", "train"),
    ],
)
def test_split_rule(name, split):
    assert dd100.split_of(name) == split


def test_split_rejects_bad_names():
    with pytest.raises(dd100.DataError, match="Waltz_x_01"):
        dd100.split_of("Waltz_x_01")


# ----------------------------------------------------------------------------- loading


def test_load_clip_aligns_lengths_and_computes_joints(dataset):
    for files in dd100.list_clips(dataset):
        clip = dd100.load_clip(files)
        n_follower, n_leader, _ = CLIPS[files.name]
        feats = music.extract_features(files.music)
        expected_t = min(n_follower, n_leader, len(feats))
        assert len(clip) == len(clip.leader) == len(clip.follower) == expected_t
        assert clip.music.shape == (expected_t, 54)
        np.testing.assert_array_equal(clip.music, feats[:expected_t])
        src = load_npy_dict(files.follower)
        np.testing.assert_allclose(clip.follower.poses, src["poses"][:expected_t])
        assert clip.follower.joints.shape == (expected_t, 55, 3)
        fk = skeleton.forward_kinematics(src["poses"][:expected_t].astype(np.float64), src["transl"][:expected_t])
        np.testing.assert_allclose(clip.follower.joints, fk, atol=1e-5)
        np.testing.assert_allclose(clip.follower.betas, src["betas"][0], atol=1e-6)
        assert clip.follower.gender == src["gender"]
        assert clip.genre == files.genre and clip.audio_path == str(files.music)
    # at least one clip is cut by its music and one by its motion
    lengths = {f.name: len(dd100.load_clip(f)) for f in dd100.list_clips(dataset)}
    assert lengths["Waltz_01_01"] == 70 and lengths["Tango_005_02"] == 76


def test_load_split(dataset):
    train = dd100.load_split(dataset, "train", progress=False)
    test = dd100.load_split(dataset, "test", progress=False)
    assert [c.name for c in train] == ["Ballet_05_01", "Waltz_01_01"]
    assert [c.name for c in test] == ["Ballet_09_01", "Tango_005_02"]


def test_local_rotations_are_rotations(dataset):
    clip = dd100.load_clip(dd100.list_clips(dataset)[0])
    rot = dd100.local_rotations(clip.follower.poses)
    assert rot.shape == (len(clip), 55, 3, 3) and rot.dtype == np.float32
    eye = np.einsum("tjab,tjcb->tjac", rot, rot)
    np.testing.assert_allclose(eye, np.broadcast_to(np.eye(3), eye.shape), atol=1e-5)


# ----------------------------------------------------------------------------- malformed data


def _break(root: Path, case: str) -> Path:
    """Damage clip Waltz_01_01 in one way; returns the file the error must name."""
    path = motion_path(root, "Waltz_01_01")
    d = motion_dict(70, 0)
    if case == "wrong_keys":
        d.pop("poses")
    elif case == "wrong_pose_shape":
        d["poses"] = d["poses"][:, :163]
    elif case == "wrong_transl_shape":
        d["transl"] = d["transl"][:-1]
    elif case == "nan":
        d["poses"][3, 7] = np.nan
    elif case == "inf_transl":
        d["transl"][0, 0] = np.inf
    elif case == "not_a_dict":
        np.save(path, np.array([1, 2, 3], dtype=object), allow_pickle=True)
        return path
    elif case == "malicious":
        payload = np.empty((), dtype=object)
        payload[()] = {"poses": _Exploit()}
        np.save(path, payload, allow_pickle=True)
        return path
    elif case == "no_leader":
        path = motion_path(root, "Waltz_01_01", "01")
        leader_less = motion_path(root, "Waltz_01_01", "00")
        path.unlink()
        return leader_less
    elif case == "no_follower":
        motion_path(root, "Waltz_01_01", "00").unlink()
        return motion_path(root, "Waltz_01_01", "01")
    elif case == "no_music":
        (root / "music" / "mp3" / "all" / "Waltz_01_01.wav").unlink()
        return Path("Waltz_01_01")
    np.save(path, d, allow_pickle=True)
    return path


MALFORMED = ["wrong_keys", "wrong_pose_shape", "wrong_transl_shape", "nan", "inf_transl", "not_a_dict",
             "malicious", "no_leader", "no_follower", "no_music"]


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_clip_raises_data_error_naming_the_file(fresh, case):
    named = _break(fresh, case)
    with pytest.raises(dd100.DataError) as info:
        dd100.load_split(fresh, "train", progress=False)
    assert str(named) in str(info.value)


@pytest.mark.parametrize("case", ["wrong_keys", "nan", "no_leader"])
def test_skip_mode_warns_and_keeps_the_rest(fresh, case):
    named = _break(fresh, case)
    with pytest.warns(UserWarning) as record:
        train = dd100.load_split(fresh, "train", progress=False, on_error="skip")
    assert [c.name for c in train] == ["Ballet_05_01"]
    assert any(str(named) in str(w.message) for w in record)


def test_specific_messages(fresh):
    _break(fresh, "nan")
    with pytest.raises(dd100.DataError, match="NaN"):
        dd100.read_motion(motion_path(fresh, "Waltz_01_01"))
    _break(fresh, "wrong_pose_shape")
    with pytest.raises(dd100.DataError, match=r"\(T, 165\).*\(70, 163\)"):
        dd100.read_motion(motion_path(fresh, "Waltz_01_01"))
    _break(fresh, "wrong_keys")
    with pytest.raises(dd100.DataError, match="missing key"):
        dd100.read_motion(motion_path(fresh, "Waltz_01_01"))


# ----------------------------------------------------------------------------- prepare cache


def test_prepare_caches_and_rerun_does_no_work(fresh, monkeypatch):
    report = prepare_mod.prepare(fresh, progress=False)
    assert report.ok and report.computed == sorted(CLIPS) and report.cached == []
    assert report.cache_dir == fresh.resolve() / ".duet_cache"
    cached = sorted(p.name for p in report.cache_dir.glob("*.npz"))
    assert cached == [f"{n}.npz" for n in sorted(CLIPS)]
    assert not list(report.cache_dir.glob("*.tmp"))

    def no_work(*args, **kwargs):
        raise AssertionError("a cached clip was recomputed")

    monkeypatch.setattr(dd100, "compute_clip_arrays", no_work)
    again = prepare_mod.prepare(fresh, progress=False)
    assert again.computed == [] and sorted(again.cached) == sorted(CLIPS) and again.ok

    # load_clip reads the cache (compute_clip_arrays would fail) and gives the same clip
    monkeypatch.undo()
    direct = {c.name: c for c in dd100.load_split(fresh, "all", progress=False)}
    monkeypatch.setattr(dd100, "compute_clip_arrays", no_work)
    for clip in dd100.load_split(fresh, "all", progress=False):
        ref = direct[clip.name]
        np.testing.assert_array_equal(clip.follower.joints, ref.follower.joints)
        np.testing.assert_array_equal(clip.music, ref.music)
        assert len(clip) == len(ref)


def test_prepare_recomputes_a_changed_source(fresh):
    prepare_mod.prepare(fresh, progress=False)
    path = motion_path(fresh, "Ballet_05_01")
    np.save(path, motion_dict(60, 7), allow_pickle=True)
    report = prepare_mod.prepare(fresh, progress=False)
    assert report.computed == ["Ballet_05_01"]
    assert len(dd100.load_clip(next(c for c in dd100.list_clips(fresh) if c.name == "Ballet_05_01"))) == 60


def test_malformed_clip_does_not_remove_other_caches(fresh, capsys):
    first = prepare_mod.prepare(fresh, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in first.cache_dir.glob("*.npz")}
    write_clip(fresh, "HipHop_03_01", 60, 60, 2.5, 9)
    broken = motion_path(fresh, "HipHop_03_01")
    d = motion_dict(60, 9)
    d["transl"][5] = np.nan
    np.save(broken, d, allow_pickle=True)
    (fresh / "motion" / "smplx" / "all" / "Samba_02_01_00.npy").write_bytes(
        motion_path(fresh, "Waltz_01_01").read_bytes())  # a follower with no leader

    status = prepare_mod.main(["--root", str(fresh), "--quiet"])
    assert status == 1
    err = capsys.readouterr().err
    assert "HipHop_03_01" in err and "NaN" in err and "Samba_02_01_00.npy" in err
    after = {p.name: p.stat().st_mtime_ns for p in first.cache_dir.glob("*.npz")}
    assert after == stamps  # nothing lost, nothing rewritten


def test_prepare_cli_success(fresh, capsys):
    assert prepare_mod.main(["--root", str(fresh), "--quiet"]) == 0
    assert "prepared 4 clip(s)" in capsys.readouterr().out
    assert prepare_mod.main(["--root", str(fresh / "nope"), "--quiet"]) == 2


def test_read_only_root_caches_under_cache_dir(fresh, tmp_path, monkeypatch):
    monkeypatch.setenv("DUET_CACHE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(dd100, "_root_is_writable", lambda root: False)
    report = prepare_mod.prepare(fresh, progress=False)
    assert report.ok and not (fresh / ".duet_cache").exists()
    assert report.cache_dir.parent == tmp_path / "elsewhere" / "prepared"
    assert len(list(report.cache_dir.glob("*.npz"))) == len(CLIPS)
    files = dd100.list_clips(fresh)[0]
    assert dd100.read_cached(files) is not None


# ----------------------------------------------------------------------------- SMPL-X joints


def test_smplx_joints_through_the_loader(dataset, tmp_path):
    model_path = write_tiny_smplx_model(tmp_path / "models", gender="neutral")
    files = dd100.list_clips(dataset)[0]
    with pytest.warns(UserWarning, match="neutral"):  # only the neutral model exists
        clip = dd100.load_clip(files, model_path=model_path)
    src = load_npy_dict(files.follower)
    t = len(clip)
    expected = skeleton.forward_kinematics(src["poses"][:t], src["transl"][:t], model_path=str(model_path),
                                           betas=src["betas"][0])
    np.testing.assert_allclose(clip.follower.joints, expected, atol=1e-5)
    builtin = dd100.load_clip(files).follower.joints
    assert np.abs(clip.follower.joints - builtin).max() > 1e-3  # a different body, really used


def test_damaged_cache_entry_is_recomputed(fresh):
    report = prepare_mod.prepare(fresh, progress=False)
    damaged = report.cache_dir / "Waltz_01_01.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])  # a truncated file, e.g. from a full disk
    files = next(c for c in dd100.list_clips(fresh) if c.name == "Waltz_01_01")
    assert not dd100.is_cached(files) and dd100.read_cached(files) is None
    assert len(dd100.load_clip(files)) == 70  # falls back to the source files
    again = prepare_mod.prepare(fresh, progress=False)
    assert again.computed == ["Waltz_01_01"] and len(again.cached) == len(CLIPS) - 1
    assert dd100.is_cached(files)


def test_package_exports_the_loader_lazily():
    import duet_env.data as data

    assert data.load_split is dd100.load_split and data.DataError is dd100.DataError
    assert issubclass(data.DataError, ValueError) and issubclass(music.MusicError, ValueError)
