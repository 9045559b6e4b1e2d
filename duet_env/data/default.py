"""The embedded default dataset: SynthDuet generated into the cache on first use."""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

from ..paths import cache_dir

DEFAULT_SEED = 0
DEFAULT_MINUTES = 60.0


def default_root(minutes: float = DEFAULT_MINUTES, seed: int = DEFAULT_SEED, progress: bool = True,
                 workers: int | None = None, tempo_band: tuple[float, float] | None = None) -> Path:
    """Folder of the default SynthDuet dataset (DD100 layout), generating it if absent; with
    ``tempo_band`` (low, high) bpm, of the SynthDuet whose songs all lie in that band
    (:func:`duet_env.data.synth.generate`), in its own folder.

    Generation goes to a temporary folder beside the target and is renamed into place, so an
    interrupted first run never leaves a half-written dataset that looks complete. It runs on
    ``workers`` processes (:mod:`duet_env.workers`); meanwhile this process warms up librosa
    (:func:`duet_env.music.warm_up`), which the music features of the new clips need next.
    """
    from .. import music
    from . import synth

    def tag(x: float) -> str:
        return f"{x:g}".replace(".", "p")

    band = "" if tempo_band is None else "-tempo{}-{}".format(*map(tag, synth.check_tempo_band(tempo_band)))
    root = cache_dir() / f"{synth.VERSION}-seed{seed}-{tag(minutes)}min{band}"
    if (root / "synth_meta" / "dataset.json").exists():
        return root
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        synth.generate(tmp, seed=seed, minutes=minutes, progress=progress, workers=workers, meanwhile=music.warm_up,
                       tempo_band=tempo_band)
        if root.exists():  # a concurrent run finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


SYNTH = "synth"


class SynthSource(NamedTuple):
    """A SynthDuet named by a data string: its seed, length and optional tempo band (bpm)."""

    seed: int
    minutes: float
    tempo_band: tuple[float, float] | None = None


def synth_source(data: str | os.PathLike) -> SynthSource | None:
    """The :class:`SynthSource` of a SynthDuet data name, None for anything else (a folder).

    ``"synth"`` is the default SynthDuet (seed 0, 60 minutes); ``"synth:seed=S"``,
    ``"synth:minutes=M"``, ``"synth:seed=S,minutes=M"`` and any of these with ``tempo=LOW-HIGH``
    (every song's tempo in that bpm band, e.g. ``synth:seed=2,minutes=60,tempo=130-180``) name
    another one, generated into the cache on first use like the default (e.g. extra training
    clips: ``pretrain.gpt``'s ``train.extra_train``). A malformed name is a ValueError that quotes it.
    """
    text = str(data)
    if text == SYNTH:
        return SynthSource(DEFAULT_SEED, DEFAULT_MINUTES)
    if not text.startswith(SYNTH + ":"):
        return None
    usage = (f"SynthDuet data {text!r}: write synth:seed=S,minutes=M (either key may be left out; "
             f"optionally tempo=LOW-HIGH in bpm)")
    opts: dict[str, str] = {}
    for item in text[len(SYNTH) + 1:].split(","):
        key, eq, value = (x.strip() for x in item.partition("="))
        if key not in ("seed", "minutes", "tempo") or not eq or key in opts:
            raise ValueError(usage)
        opts[key] = value
    try:
        seed = int(opts.get("seed", DEFAULT_SEED))
        minutes = float(opts.get("minutes", DEFAULT_MINUTES))
        band = None
        if "tempo" in opts:
            low, dash, high = opts["tempo"].partition("-")
            if not dash:
                raise ValueError(usage)
            band = (float(low), float(high))
    except ValueError:
        raise ValueError(usage) from None
    if seed < 0 or not (math.isfinite(minutes) and minutes > 0):
        raise ValueError(f"{usage}; the seed must be >= 0 and the minutes a positive number")
    if band is not None:
        from .synth import check_tempo_band  # the generator's own check of a band

        try:
            band = check_tempo_band(band)
        except ValueError:
            raise ValueError(f"{usage}; the tempo band needs 0 < LOW < HIGH") from None
    return SynthSource(seed, minutes, band)


def resolve_root(data: str | os.PathLike, workers: int | None = None) -> Path:
    """``"synth"`` -> the default SynthDuet folder, ``"synth:seed=S,minutes=M[,tempo=LOW-HIGH]"`` -> that SynthDuet's
    (:func:`synth_source`; generated on ``workers`` processes if absent); anything else -> that
    folder (must exist)."""
    source = synth_source(data)
    if source is not None:
        return default_root(minutes=source.minutes, seed=source.seed, workers=workers, tempo_band=source.tempo_band)
    p = Path(data).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"dataset folder {p} does not exist (pass 'synth' for the default SynthDuet)")
    return p
