"""Fréchet distance and diversity of feature sets, with reference-set z-normalisation.

Sources: FID (Heusel et al. 2017) as applied to dance features by Bailando (FID_k, FID_g),
Duolando (FID_cd); diversity ("Div") as the mean pairwise feature distance (Bailando, Duolando).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg
from scipy.spatial.distance import pdist

from ._checks import check_features

CONSTANT_STD = 1e-8


@dataclass(frozen=True)
class Normaliser:
    """z-normalisation ``(x − mean) / std`` with a reference set's per-column statistics.

    Departure from the reference code (which divides by ``std + 1e-10``): a column that is
    constant over the reference set (std < 1e-8, e.g. a geometric template that never fires)
    is divided by 1 instead, so one such column cannot blow FID up by ~1e20.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, reference: np.ndarray) -> "Normaliser":
        ref = check_features(reference, "reference features")
        std = ref.std(axis=0)
        return cls(ref.mean(axis=0), np.where(std < CONSTANT_STD, 1.0, std))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        feats = check_features(features, "features", dim=self.mean.shape[0])
        return (feats - self.mean) / self.std


@dataclass(frozen=True)
class Gaussian:
    """Mean ``(D,)`` and covariance ``(D, D)`` fitted to a feature set (``np.cov``, N−1 denominator)."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> "Gaussian":
        feats = check_features(features, "features")
        if feats.shape[0] < 2:
            raise ValueError(f"features: a covariance needs at least 2 samples; got {feats.shape[0]}")
        return cls(feats.mean(axis=0), np.atleast_2d(np.cov(feats, rowvar=False)))


def frechet_distance(a: Gaussian, b: Gaussian, eps: float = 1e-6) -> float:
    """Fréchet distance between two Gaussians (Dowson & Landau 1982; FID, Heusel et al. 2017)::

        d² = |μ_a − μ_b|² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½)

    ``(Σ_a Σ_b)^½`` by :func:`scipy.linalg.sqrtm`; its tiny imaginary part (numerical noise, the
    product of two PSD matrices has a real non-negative spectrum) is dropped. If the square root
    is not finite (near-singular covariances, common when N < D as with ~30 clips and 72-d
    features), ``eps·I`` is added to both covariances first, as pytorch-fid does.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"Gaussians differ in dimension: {a.mean.shape} vs {b.mean.shape}")
    diff = a.mean - b.mean
    with warnings.catch_warnings():
        # singular products are expected (N < D); the result is still the PSD square root
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(a.cov @ b.cov)
        if not np.all(np.isfinite(covmean)):
            offset = eps * np.eye(a.cov.shape[0])
            covmean = linalg.sqrtm((a.cov + offset) @ (b.cov + offset))
    covmean = np.real(covmean)
    value = float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * np.trace(covmean))
    return max(value, 0.0)  # rounding can leave −1e-12 for identical sets


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets ``(N_a, D)``, ``(N_b, D)`` (no normalisation applied here)."""
    return frechet_distance(Gaussian.fit(features_a), Gaussian.fit(features_b))


def diversity(features: np.ndarray) -> float:
    """Div: mean Euclidean distance over all unordered pairs of feature vectors in a set::

        Div = 2 / (N (N − 1)) Σ_{i<j} |f_i − f_j|

    All pairs, no subsampling (N is the number of clips, tens to hundreds). Bailando/Duolando
    compute the same on features z-normalised with the reference statistics.
    """
    feats = check_features(features, "features")
    if feats.shape[0] < 2:
        raise ValueError(f"features: diversity needs at least 2 samples; got {feats.shape[0]}")
    return float(pdist(feats).mean())
