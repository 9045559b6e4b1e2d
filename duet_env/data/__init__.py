"""Datasets: the shared :class:`Clip`, the DD100-layout loader and its cache.

``load_split(data, split)`` is the one dataset entry point: ``data`` is ``"synth"`` (the default
SynthDuet) or a DD100-layout folder; ``resolve_root(data)`` names the folder it reads.

The loader is exported lazily so that ``import duet_env.data.clip`` stays cheap (the loader
pulls in librosa through :mod:`duet_env.music`). The cache builder is
``duet_env.data.prepare.prepare`` (not re-exported: the name is its module's).
"""
from __future__ import annotations

import importlib

from .clip import Clip, Dancer

_LAZY = {
    "ClipFiles": "dd100", "DataError": "dd100", "list_clips": "dd100", "load_clip": "dd100",
    "load_split": "dd100", "split_of": "dd100", "local_rotations": "dd100",
    "load_npy_dict": "safe_pickle", "UnsafePickleError": "safe_pickle", "resolve_root": "default",
}

__all__ = ["Clip", "Dancer", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
