"""Worker processes for the first gym.make (duet_env.workers): the parallel path gives the
serial path's bytes, the worker count is read and checked, errors come back in order."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from duet_env import workers


def _square(offset: int, x: int) -> int:
    return x * x + offset


def _fail_on_odd(_, x: int) -> int:
    if x % 2:
        raise ValueError(f"odd item {x}")
    return x


def test_default_workers_reads_the_environment_and_rejects_bad_values(monkeypatch):
    monkeypatch.setenv("DUET_WORKERS", "3")
    assert workers.default_workers() == 3
    assert workers.resolve_workers(None) == 3
    assert workers.resolve_workers(1) == 1
    monkeypatch.delenv("DUET_WORKERS")
    assert workers.default_workers() == workers.available_cores()
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv("DUET_WORKERS", bad)
        with pytest.raises(ValueError, match="DUET_WORKERS"):
            workers.default_workers()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            workers.resolve_workers(bad)


def test_map_ordered_keeps_input_order_and_raises_the_first_error():
    items = list(range(23))
    serial = workers.map_ordered(_square, items, 1, shared=5, progress=False)
    parallel = workers.map_ordered(_square, items, 2, shared=5, progress=False)
    assert serial == parallel == [x * x + 5 for x in items]
    ran = []
    assert workers.map_ordered(_square, [], 2, progress=False, meanwhile=lambda: ran.append(1)) == []
    assert ran == [1]
    for n in (1, 2):
        with pytest.raises(ValueError, match="odd item 1"):
            workers.map_ordered(_fail_on_odd, [0, 2, 1, 3, 4], n, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def two_datasets(tmp_path_factory):
    """The same tiny SynthDuet written by the serial loop and by two worker processes."""
    from duet_env.data import synth

    roots = {}
    for n in (1, 2):
        roots[n] = tmp_path_factory.mktemp(f"synth_w{n}")
        synth.generate(roots[n], seed=3, minutes=0.9, progress=False, workers=n)
    return roots


def test_parallel_synthduet_is_byte_identical_to_serial(two_datasets):
    serial, parallel = (_files(two_datasets[n]) for n in (1, 2))
    assert len(serial) == 4 * 10 + 1  # two motions, a song and its metadata per clip; dataset.json
    assert serial.keys() == parallel.keys()
    assert [k for k in serial if serial[k] != parallel[k]] == []


def test_parallel_clips_and_tokens_are_byte_identical_to_serial(two_datasets, tiny_tokenizer, tmp_path,
                                                                 monkeypatch):
    from duet_env.data import load_split
    from duet_env.episodes import episode_clips
    from duet_env.tokenizer import Tokenizer

    tok = Tokenizer.load(str(tiny_tokenizer))
    result = {}
    for n in (1, 2):
        cache = tmp_path / f"cache{n}"  # a fresh cache each: music features computed, not read
        monkeypatch.setenv("DUET_CACHE_DIR", str(cache))
        clips = load_split(two_datasets[1], "all", progress=False, workers=n)
        bank = episode_clips(clips, tok, cache_key="tiny::all", workers=n)
        result[n] = (clips, bank, _files(cache))
    (c1, b1, f1), (c2, b2, f2) = result[1], result[2]
    assert [c.name for c in c1] == [c.name for c in c2] and len(c1) == 10
    for a, b in zip(c1, c2):
        for get in (lambda c: c.music, lambda c: c.leader.joints, lambda c: c.follower.joints,
                    lambda c: c.leader.poses, lambda c: c.follower.transl):
            x, y = get(a), get(b)
            assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    for a, b in zip(b1, b2):
        assert np.array_equal(a.leader_tokens, b.leader_tokens)
        assert np.array_equal(a.follower_tokens, b.follower_tokens)
    # the music-feature and token caches hold the same bytes under the same keys
    assert f1.keys() == f2.keys() and len(f1) == 11
    assert all(f1[k] == f2[k] for k in f1)


def test_load_split_reports_a_bad_clip_in_order_with_workers(two_datasets, tmp_path):
    import shutil

    from duet_env.data import DataError, load_split

    root = tmp_path / "broken"
    shutil.copytree(two_datasets[1], root)
    names = sorted(p.stem[:-3] for p in (root / "motion/smplx/all").glob("*_01.npy"))
    (root / "motion/smplx/all" / f"{names[3]}_01.npy").write_bytes(b"not a numpy file")
    with pytest.raises(DataError, match=names[3]):
        load_split(root, "all", progress=False, workers=2)
    with pytest.warns(UserWarning, match=names[3]):
        clips = load_split(root, "all", progress=False, workers=2, on_error="skip")
    assert [c.name for c in clips] == [n for n in names if n != names[3]]


def _map_in_daemon(queue) -> None:
    queue.put(workers.map_ordered(_square, [1, 2, 3], 2, shared=0, progress=False))


@pytest.mark.skipif(not workers._can_fork(), reason="needs the fork start method")
def test_a_daemonic_process_runs_the_serial_loop():
    """SubprocVecEnv / AsyncVectorEnv workers are daemonic and may not start children."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_map_in_daemon, args=(queue,), daemon=True)
    proc.start()
    assert queue.get(timeout=120) == [1, 4, 9]
    proc.join()
    assert proc.exitcode == 0
