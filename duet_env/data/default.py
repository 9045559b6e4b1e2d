"""The embedded default dataset: SynthDuet generated into the cache on first use."""
from __future__ import annotations

import math
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


SYNTH = "synth"


def synth_source(data: str | os.PathLike) -> tuple[int, float] | None:
    """``(seed, minutes)`` of a SynthDuet data name, None for anything else (a folder).

    ``"synth"`` is the default SynthDuet (seed 0, 60 minutes); ``"synth:seed=S"``,
    ``"synth:minutes=M"`` or ``"synth:seed=S,minutes=M"`` is another one, generated into the
    cache on first use like the default (e.g. extra training clips: ``pretrain.gpt``'s
    ``train.extra_train``). A malformed name is a ValueError that quotes it.
    """
    text = str(data)
    if text == SYNTH:
        return DEFAULT_SEED, DEFAULT_MINUTES
    if not text.startswith(SYNTH + ":"):
        return None
    usage = f"SynthDuet data {text!r}: write synth:seed=S,minutes=M (either key may be left out)"
    opts: dict[str, str] = {}
    for item in text[len(SYNTH) + 1:].split(","):
        key, eq, value = (x.strip() for x in item.partition("="))
        if key not in ("seed", "minutes") or not eq or key in opts:
            raise ValueError(usage)
        opts[key] = value
    try:
        seed = int(opts.get("seed", DEFAULT_SEED))
        minutes = float(opts.get("minutes", DEFAULT_MINUTES))
    except ValueError:
        raise ValueError(usage) from None
    if seed < 0 or not (math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"{usage}; the seed must be >= 0 and the minutes a positive number")
    return seed, minutes


def resolve_root(data: str | os.PathLike, workers: int | None = None) -> Path:
    """``"synth"`` -> the default SynthDuet folder, ``"synth:seed=S,minutes=M"`` -> that SynthDuet's
    (:func:`synth_source`; generated on ``workers`` processes if absent); anything else -> that
    folder (must exist)."""
    source = synth_source(data)
    if source is not None:
        seed, minutes = source
        return default_root(minutes=minutes, seed=seed, workers=workers)
    p = Path(data).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"dataset folder {p} does not exist (pass 'synth' for the default SynthDuet)")
    return p
