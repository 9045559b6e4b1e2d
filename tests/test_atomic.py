"""duet_env.atomic: the one atomic-write helper."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from duet_env.atomic import (atomic_save_npy, atomic_save_npz, atomic_write, atomic_write_bytes, atomic_write_json,
                             atomic_write_text)


def test_json_is_sorted_indented_with_a_final_newline(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "a.json", {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    atomic_write_json(path, {"x": 1}, indent=1)
    assert path.read_bytes() == b'{\n "x": 1\n}\n'


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "t.txt", "old\n")

    def half_then_fail(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_written_file_gets_the_umask_mode_not_mkstemps_private_one(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    path = atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_numpy_writers_keep_the_name_and_the_bytes_of_np_save(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    npy = atomic_save_npy(tmp_path / "cache.bin", arr)  # no ".npy" appended
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    assert npy.read_bytes() == buf.getvalue()
    npz = atomic_save_npz(tmp_path / "clip.tmpname", {"x": arr, "y": arr[0]})
    with np.load(npz) as data:
        np.testing.assert_array_equal(data["x"], arr)
        np.testing.assert_array_equal(data["y"], arr[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.bin", "clip.tmpname"]
    with pytest.raises(ValueError, match="allow_pickle"):
        atomic_save_npy(tmp_path / "d.npy", np.array([{"a": 1}], dtype=object))
    assert not (tmp_path / "d.npy").exists()


def test_writer_sees_a_temp_path_with_the_asked_suffix_in_the_target_folder(tmp_path):
    seen = []

    def writer(tmp: str) -> None:
        seen.append(tmp)
        with open(tmp, "w") as fh:
            json.dump([1], fh)

    atomic_write(tmp_path / "v.mp4", writer, suffix=".mp4")
    assert seen[0].endswith(".mp4") and os.path.dirname(seen[0]) == str(tmp_path)
    assert (tmp_path / "v.mp4").read_text() == "[1]"
