"""Music features: 54 numbers per 30 fps frame, from any audio file librosa reads.

Composition (the Duolando / Bailando music features, computed with librosa here; the column
indices are :mod:`duet_env.conventions`' ``MFCC_COLUMNS`` … ``BEAT_COLUMN``):

==========  ========  =====================================================================
columns     size      feature
==========  ========  =====================================================================
0-19        20        MFCC of the mixture
20-39       20        delta MFCC (librosa.feature.delta, width 9)
40-51       12        chroma_cqt of the *harmonic* part (librosa.effects.hpss), 7 octaves
52          1         onset strength of the *percussive* part
53          1         beat one-hot: 1 at frames picked by librosa.beat.beat_track run on the
                      onset envelope of column 52, else 0
==========  ========  =====================================================================

Audio is resampled to 15360 Hz, mono, and analysed with a hop of 512 samples, so one feature
frame is exactly 1/30 s (DD100's motion rate). The harmonic / percussive split is
:func:`duet_env.hpss.hpss`: ``librosa.effects.hpss`` bit for bit, without its slow 2-D median filter.

**Frame alignment rule.** Every feature uses centred frames: frame ``t`` describes the audio
around sample ``t * 512`` (time ``t / 30`` s). With ``N`` samples each feature has
``1 + N // 512`` frames; all of them are cut to the shortest, ``T = min(frames)`` (equal in
practice), so row ``t`` of every column describes the same instant.

Features are cached under ``cache_dir()/music/`` as ``.npy`` files keyed by a SHA-256 of the
file's bytes plus the parameters (sample rate, hop, feature version): a renamed copy of a song
hits the cache, an edited song does not.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np

from .atomic import atomic_save_npy
from .conventions import BEAT_COLUMN, FPS, MUSIC_DIM, ONSET_COLUMN  # noqa: F401  (re-exported)
from .hpss import hpss
from .paths import cache_dir

SAMPLE_RATE = 15360
HOP_LENGTH = 512
N_MFCC = 20
N_CHROMA = 12
CHROMA_OCTAVES = 7
assert SAMPLE_RATE // HOP_LENGTH == FPS  # one feature frame per motion frame
FEATURE_VERSION = 1  # bump when the feature recipe changes: old cache entries stop matching

MIN_DURATION_S = 1.0
SILENCE_PEAK = 1e-4  # peak amplitude below which audio counts as silent (-80 dBFS)


class MusicError(ValueError):
    """The audio file cannot give features: unreadable, empty, silent or too short."""


def load_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode ``path`` to mono float32 at :data:`SAMPLE_RATE`; returns ``(y, sr)``.

    Raises FileNotFoundError for a missing file and :class:`MusicError` (naming the file) when
    it is empty, cannot be decoded, is silent or shorter than :data:`MIN_DURATION_S`.
    """
    import librosa  # imported lazily: librosa is slow to import and most users never need it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise MusicError(f"{path}: audio file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; the failure is reported below.
            warnings.simplefilter("ignore")
            y, sr = librosa.load(str(path), sr=SAMPLE_RATE, mono=True)
    except Exception as exc:  # soundfile/audioread raise many unrelated types for bad input
        raise MusicError(f"{path}: cannot decode audio ({type(exc).__name__}: {exc})") from exc
    y = np.asarray(y, dtype=np.float32)
    if y.size == 0:
        raise MusicError(f"{path}: audio file holds no samples")
    if not np.all(np.isfinite(y)):
        raise MusicError(f"{path}: audio contains NaN or infinite samples")
    if y.size < MIN_DURATION_S * sr:
        raise MusicError(f"{path}: audio is too short ({y.size / sr:.2f} s < {MIN_DURATION_S:.0f} s)")
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise MusicError(f"{path}: audio is silent (peak amplitude {float(np.max(np.abs(y))):.2e})")
    return y, sr


def features_from_audio(y: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The (T, 54) float32 features of a mono signal already at :data:`SAMPLE_RATE`."""
    import librosa

    if sr != SAMPLE_RATE:
        raise ValueError(f"features_from_audio needs sr={SAMPLE_RATE}, got sr={sr}; use load_audio")
    y = np.asarray(y, dtype=np.float32)
    harmonic, percussive = hpss(y)  # librosa.effects.hpss(y) exactly, 7x faster (duet_env.hpss)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC, hop_length=HOP_LENGTH)
    delta = librosa.feature.delta(mfcc)
    chroma = librosa.feature.chroma_cqt(
        y=harmonic, sr=sr, hop_length=HOP_LENGTH, n_chroma=N_CHROMA, n_octaves=CHROMA_OCTAVES
    )
    onset = librosa.onset.onset_strength(y=percussive, sr=sr, hop_length=HOP_LENGTH)
    _, beats = librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=HOP_LENGTH, units="frames")

    frames = min(mfcc.shape[1], delta.shape[1], chroma.shape[1], onset.shape[0])
    beat_onehot = np.zeros(frames, dtype=np.float32)
    beats = np.asarray(beats, dtype=np.int64)
    beat_onehot[beats[beats < frames]] = 1.0
    feats = np.concatenate(
        [
            mfcc[:, :frames].T,
            delta[:, :frames].T,
            chroma[:, :frames].T,
            onset[:frames, None],
            beat_onehot[:, None],
        ],
        axis=1,
    ).astype(np.float32)
    assert feats.shape[1] == MUSIC_DIM
    return feats


_WARMED_UP = False


def warm_up() -> None:
    """Import librosa and compute the features of 2 s of noise, once per process.

    librosa's numba kernels are compiled on first use (about 25 s on a fresh machine) into
    numba's on-disk cache; processes compiling them at the same time corrupt that cache. Warming
    up in the parent before worker processes are forked (:mod:`duet_env.workers`) compiles them
    once, and the forked workers inherit the compiled kernels.
    """
    global _WARMED_UP
    if _WARMED_UP:
        return
    noise = np.random.default_rng(0).normal(0, 0.1, 2 * SAMPLE_RATE).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's notes on the short noise are not the user's business
        features_from_audio(noise, SAMPLE_RATE)
    _WARMED_UP = True


def warmed_up() -> bool:
    """Whether :func:`warm_up` has run in this process."""
    return _WARMED_UP


def _cache_key(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    params = json.dumps({"sr": SAMPLE_RATE, "hop": HOP_LENGTH, "version": FEATURE_VERSION}, sort_keys=True)
    digest.update(params.encode())
    return digest.hexdigest()


def cache_path(path: str | os.PathLike) -> Path:
    """Where the features of ``path`` are (or would be) cached."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    return cache_dir() / "music" / f"{_cache_key(path)}.npy"


def _load_cached(target: Path) -> np.ndarray | None:
    try:
        feats = np.load(target, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # a damaged cache entry is recomputed, not trusted
    if feats.ndim != 2 or feats.shape[1] != MUSIC_DIM or feats.dtype != np.float32:
        return None
    return feats


def extract_features(path: str | os.PathLike, *, cache: bool = True) -> np.ndarray:
    """Music features ``(T, 54)`` float32 at 30 fps of an audio file (see the module docstring).

    With ``cache=True`` the result is read from / written to ``cache_dir()/music/`` (atomic
    write), keyed by the file content and the feature parameters.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    target = cache_path(path) if cache else None
    if target is not None and target.is_file():
        feats = _load_cached(target)
        if feats is not None:
            return feats
    y, sr = load_audio(path)
    feats = features_from_audio(y, sr)
    if target is not None:
        atomic_save_npy(target, feats)
    return feats


def beat_frames(features: np.ndarray) -> np.ndarray:
    """Frame indices (int64) of the music beats: rows whose column 53 is set."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != MUSIC_DIM:
        raise ValueError(f"features must have shape (T, {MUSIC_DIM}); got {features.shape}")
    return np.flatnonzero(features[:, BEAT_COLUMN] > 0.5).astype(np.int64)
