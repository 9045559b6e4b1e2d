"""Harmonic-percussive separation, equal to ``librosa.effects.hpss(y)`` bit for bit, 7x faster.

Why this exists: ``librosa.effects.hpss`` median-filters the magnitude spectrogram twice (31
frames along time, 31 bins along frequency) with ``scipy.ndimage.median_filter`` on the 2-D
array, which takes scipy's generic N-d rank filter: about 1.7 s of the 2 s that the music
features of a 45 s song cost. scipy has a much faster running-median code path, but only for
1-D input; :func:`median_filter_rows` filters all rows (or columns) as one 1-D signal.

A median selects one of the window's values and does no arithmetic, so any correct median
filter with the same window and boundary rule (``mode="reflect"``) returns the very same
numbers; the STFT and its inverse are librosa's own, called with librosa's defaults, and the soft masks
do librosa's arithmetic element by element. ``tests/test_music.py`` checks the result against
``librosa.effects.hpss`` with ``np.array_equal``.
"""
from __future__ import annotations

import numpy as np

KERNEL = 31  # librosa's default median window (frames and bins)


def median_filter_rows(x: np.ndarray, size: int = KERNEL) -> np.ndarray:
    """Running median of odd width ``size`` along the last axis of a 2-D array, each row on its
    own, with scipy's ``mode="reflect"`` boundary (as librosa's HPSS).

    Every row is padded by its own mirror image (``np.pad(..., "symmetric")`` is scipy's
    ``"reflect"``) and all rows are filtered as one long 1-D signal in a single call of scipy's
    fast 1-D path: a window centred on a row's own samples never reaches past its padding, so
    each output is the median of exactly the window scipy would take. Rows shorter than the pad
    (where repeated mirroring could differ) are filtered one by one.
    """
    from scipy.ndimage import median_filter

    if x.ndim != 2:
        raise ValueError(f"median_filter_rows needs a 2-D array; got shape {x.shape}")
    if size % 2 != 1:
        raise ValueError(f"median_filter_rows needs an odd window; got {size}")
    rows, n = x.shape
    pad = size // 2
    if n <= pad or rows == 0:
        out = np.empty_like(x)
        for i in range(rows):
            out[i] = median_filter(x[i], size=size, mode="reflect")
        return out
    padded = np.pad(x, ((0, 0), (pad, pad)), mode="symmetric")
    filtered = median_filter(padded.reshape(-1), size=size, mode="reflect").reshape(padded.shape)
    return np.ascontiguousarray(filtered[:, pad:pad + n])


def softmask(x: np.ndarray, x_ref: np.ndarray, power: float = 2.0) -> np.ndarray:
    """``librosa.util.softmask(x, x_ref, power, split_zeros=True)`` for non-negative float
    arrays of one shape: the same operations on every element, without librosa's boolean
    fancy indexing (half of its time)."""
    z = np.maximum(x, x_ref)
    bad = z < np.finfo(z.dtype).tiny
    z[bad] = 1
    mask = (x / z) ** power
    ref = (x_ref / z) ** power
    np.divide(mask, mask + ref, out=mask, where=~bad)
    mask[bad] = 0.5
    return mask


def hpss(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(harmonic, percussive)`` time signals of the mono signal ``y``; equal to
    ``librosa.effects.hpss(y)`` with its defaults (see the module docstring)."""
    import librosa

    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"hpss needs a mono (1-D) signal; got shape {y.shape}")
    stft = librosa.stft(y)
    mag, phase = librosa.magphase(stft)
    harm = median_filter_rows(mag)                                   # along time
    perc = median_filter_rows(np.ascontiguousarray(mag.T)).T         # along frequency
    mask_harm = softmask(harm, perc * 1.0)
    mask_perc = softmask(perc, harm * 1.0)
    return tuple(librosa.istft((mag * mask) * phase, dtype=y.dtype, length=y.shape[-1])
                 for mask in (mask_harm, mask_perc))
