"""Read pickled ``.npy`` files (DD100 motion dicts) without ever running code from the file.

DD100 stores each dancer as ``np.save(path, dict, allow_pickle=True)``: a ``.npy`` file whose
header says ``dtype('O')`` followed by a pickle of a 0-d object array holding the dict.
``np.load(allow_pickle=True)`` would call ``pickle.load`` on that, which executes whatever
``__reduce__`` the file names. Here the header is parsed with :mod:`numpy.lib.format` and the
pickle is read by :class:`RestrictedUnpickler`, which only resolves the globals needed to
rebuild numpy arrays, numpy scalars and plain containers; any other global raises
:class:`UnsafePickleError` before it can be called.
"""
from __future__ import annotations

import codecs
import io
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle named a global outside the allow-list (the file may be malicious)."""


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1").
    # Only plain text codecs are admitted (no arbitrary codec lookups).
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1", "utf-8", "utf8", "ascii"):
        raise UnsafePickleError(f"_codecs.encode with codec {encoding!r} is not allowed")
    return codecs.encode(obj, encoding, errors)


def _numpy_core():
    # numpy >= 2 moved numpy.core to numpy._core; old files name the former, new the latter.
    try:
        from numpy._core import multiarray  # type: ignore[attr-defined]
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


_MULTIARRAY = _numpy_core()

ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy.core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy._core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "str"): str,
    ("builtins", "bytes"): bytes,
    ("builtins", "int"): int,
    ("builtins", "float"): float,
    ("builtins", "bool"): bool,
    ("builtins", "complex"): complex,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): _latin1_encode,
    # Python 2 pickles name builtins "__builtin__"; protocol <= 2 maps them on load via fix_imports.
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file, *, source: str = "<bytes>"):
        # latin1 lets numpy arrays pickled by Python 2 decode their raw buffers, as np.load does.
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refused to load global '{module}.{name}' from the pickle "
                "(only numpy arrays and plain containers are allowed; the file may be malicious)"
            ) from None


def safe_loads(data: bytes, *, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data), source=source).load()


def load_npy(path: str | Path) -> np.ndarray:
    """Load one ``.npy`` file; object arrays are unpickled with the restricted unpickler.

    Raises FileNotFoundError for a missing file, :class:`UnsafePickleError` for a refused
    global, ValueError (naming the file) for anything that is not a readable ``.npy``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as fh:
        try:
            version = npy_format.read_magic(fh)
            if version == (1, 0):
                shape, fortran_order, dtype = npy_format.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, fortran_order, dtype = npy_format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as exc:
            raise ValueError(f"{path}: not a valid .npy file ({exc})") from exc
        if not dtype.hasobject:
            fh.seek(0)
            try:
                return np.load(fh, allow_pickle=False)
            except ValueError as exc:
                raise ValueError(f"{path}: corrupt .npy array data ({exc})") from exc
        payload = fh.read()
    try:
        array = safe_loads(payload, source=str(path))
    except UnsafePickleError:
        raise
    except Exception as exc:  # truncated / garbage pickle streams raise many types
        raise ValueError(f"{path}: corrupt pickled .npy payload ({type(exc).__name__}: {exc})") from exc
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path}: pickled payload is a {type(array).__name__}, not a numpy array")
    if array.shape != tuple(shape):
        raise ValueError(f"{path}: header says shape {shape} but the payload has shape {array.shape}")
    return array


def load_npy_dict(path: str | Path) -> dict:
    """Load a ``.npy`` file written by ``np.save(path, some_dict)`` and return the dict.

    Never executes code from the file (see the module docstring). Raises ValueError naming the
    file when it holds something other than a dict.
    """
    array = load_npy(path)
    if array.dtype != object or array.shape != ():
        raise ValueError(
            f"{path}: expected a pickled dict (0-d object array), got an array of dtype {array.dtype} "
            f"and shape {array.shape}"
        )
    value = array.item()
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(value).__name__}")
    return value
