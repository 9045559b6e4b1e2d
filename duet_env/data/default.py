"""The embedded default dataset: SynthDuet generated into the cache on first use."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..paths import cache_dir

DEFAULT_SEED = 0
DEFAULT_MINUTES = 60.0


def default_root(minutes: float = DEFAULT_MINUTES, seed: int = DEFAULT_SEED, progress: bool = True,
                 workers: int | None = None) -> Path:
    """Folder of the default SynthDuet dataset (DD100 layout), generating it if absent.

    Generation goes to a temporary folder beside the target and is renamed into place, so an
    interrupted first run never leaves a half-written dataset that looks complete. It runs on
    ``workers`` processes (:mod:`duet_env.workers`); meanwhile this process warms up librosa
    (:func:`duet_env.music.warm_up`), which the music features of the new clips need next.
    """
    from .. import music
    from . import synth

    minutes_tag = f"{minutes:g}".replace(".", "p")
    root = cache_dir() / f"{synth.VERSION}-seed{seed}-{minutes_tag}min"
    if (root / "synth_meta" / "dataset.json").exists():
        return root
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        synth.generate(tmp, seed=seed, minutes=minutes, progress=progress, workers=workers, meanwhile=music.warm_up)
        if root.exists():  # a concurrent run finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def resolve_root(data: str | os.PathLike, workers: int | None = None) -> Path:
    """``"synth"`` -> the default SynthDuet folder (generated on ``workers`` processes if absent);
    anything else -> that folder (must exist)."""
    if str(data) == "synth":
        return default_root(workers=workers)
    p = Path(data).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"dataset folder {p} does not exist (pass 'synth' for the default SynthDuet)")
    return p
