"""Atomic file writes: a reader sees the old complete file or the new complete one, never half.

Every writer of the package (dataset generator, caches, checkpoints, renders) goes through
:func:`atomic_write`: the content is written to a temporary file in the target's folder (same
file system, so the rename cannot turn into a copy) and renamed over the target with
``os.replace``, which is atomic on POSIX and on Windows. A failure or a kill while writing leaves
the target untouched; the temporary file is removed on failure (a hard kill can leave a hidden
``.<name>.*`` file behind, never a torn target).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_save_npy", "atomic_save_npz"]


def _default_file_mode() -> int:
    # mkstemp creates 0600 files; a written file should get the mode open() would give it.
    # os.umask can only be read by setting it, so set and restore it once, at import.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None], *, suffix: str = ".tmp") -> Path:
    """Write ``path`` atomically: ``writer(tmp)`` fills a temporary file, which then replaces ``path``.

    ``tmp`` is a path (str) of an existing empty file in ``path``'s folder (created if missing)
    ending in ``suffix`` — pass the target's suffix when the writing library picks the format by
    the file name (e.g. ffmpeg). The writer may open, overwrite or truncate it. Returns ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically, encoded as is (no newline translation)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (sorted keys, ``indent`` spaces, a final newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def atomic_save_npy(path: str | os.PathLike, array: Any, *, allow_pickle: bool = False) -> Path:
    """``np.save`` to ``path`` atomically (the name is kept as given: no ``.npy`` is appended)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a handle, because np.save(name) would append ".npy"
            np.save(fh, array, allow_pickle=allow_pickle)
    return atomic_write(path, write)


def atomic_save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], *, compressed: bool = False) -> Path:
    """``np.savez`` (or ``np.savez_compressed``) of ``arrays`` to ``path`` atomically."""
    save = np.savez_compressed if compressed else np.savez

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:  # a handle, because np.savez(name) would append ".npz"
            save(fh, **arrays)
    return atomic_write(path, write)
