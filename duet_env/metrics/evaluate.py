"""All duet metrics of a generated set against a reference set: :func:`evaluate_duets`.

Formulas live in the modules they come from (kinetic, geometric, frechet, beats,
partner_distance, contact, foot_slip). Aggregation over clips:

- FID_k / FID_g / FID_cd: one feature vector per clip; both sets z-normalised with the
  REFERENCE set's per-column mean/std, then :func:`.frechet.frechet_distance` between the
  Gaussians fitted to them (as Bailando/Duolando). Div_*: :func:`.frechet.diversity` of the
  generated set's normalised features.
- BAS (follower vs music beats), BED (follower vs leader beats): mean over clips; a clip
  without music beats (or without leader beats, for BED) is left out of that mean.
- contact_freq, penetration, slip_rate: shares of ALL frames of the set (frames pooled over
  clips, so long clips weigh more, as a per-frame rate should).

Departure from the papers: they fit the reference statistics on the ground truth of
train+test; pass the TRAIN split's clips as ``reference`` to keep the test set out of it
(``agents.evaluate`` does).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ._checks import check_beats, check_pair
from .beats import alignment_score, motion_beats
from .contact import contact_and_penetration_frames
from .foot_slip import slipping_frames
from .frechet import Gaussian, Normaliser, diversity, frechet_distance
from .geometric import geometric_features
from .kinetic import kinetic_features
from .partner_distance import partner_distance_features

METRIC_KEYS = ("FID_k", "FID_g", "Div_k", "Div_g", "BAS", "FID_cd", "Div_cd", "BED",
               "contact_freq", "penetration", "slip_rate")
MIN_FRAMES = 8  # shorter clips have no meaningful beats or kinetic windows

Duet = tuple  # (follower_joints (T,55,3), leader_joints (T,55,3), music_beats (frame indices))


def _unpack(duet, name: str):
    if not isinstance(duet, (tuple, list)) or len(duet) != 3:
        raise ValueError(f"{name} must be a (follower_joints, leader_joints, music_beats) triple")
    try:
        f, l = check_pair(duet[0], duet[1], MIN_FRAMES)
        beats = check_beats(duet[2], len(f), "music_beats")
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None
    return f, l, beats


def _feature_sets(duets: Sequence[Duet], name: str, progress: bool) -> dict[str, np.ndarray]:
    if len(duets) < 2:
        raise ValueError(f"{name} needs at least 2 clips to fit feature Gaussians; got {len(duets)}")
    rows: dict[str, list[np.ndarray]] = {"kinetic": [], "geometric": [], "partner": []}
    for i, duet in enumerate(tqdm(duets, desc=f"{name} features", disable=not progress, leave=False)):
        f, l, _ = _unpack(duet, f"{name}[{i}]")
        rows["kinetic"].append(kinetic_features(f))
        rows["geometric"].append(geometric_features(f))
        rows["partner"].append(partner_distance_features(f, l))
    return {k: np.stack(v) for k, v in rows.items()}


@dataclass(frozen=True)
class FeatureReference:
    """A reference feature set's normaliser and the Gaussian of its normalised features."""

    normaliser: Normaliser
    gaussian: Gaussian

    @classmethod
    def fit(cls, features: np.ndarray) -> "FeatureReference":
        norm = Normaliser.fit(features)
        return cls(norm, Gaussian.fit(norm(features)))

    def fid_and_div(self, features: np.ndarray) -> tuple[float, float]:
        normed = self.normaliser(features)
        return frechet_distance(Gaussian.fit(normed), self.gaussian), diversity(normed)


@dataclass(frozen=True)
class ReferenceStats:
    """Reference statistics computed once, reused by every :func:`evaluate_duets` call."""

    kinetic: FeatureReference
    geometric: FeatureReference
    partner: FeatureReference
    num_clips: int

    @classmethod
    def from_duets(cls, reference: Sequence[Duet], progress: bool = False) -> "ReferenceStats":
        feats = _feature_sets(reference, "reference", progress)
        return cls(FeatureReference.fit(feats["kinetic"]), FeatureReference.fit(feats["geometric"]),
                   FeatureReference.fit(feats["partner"]), len(reference))


def evaluate_duets(generated: Sequence[Duet], reference: Sequence[Duet] | ReferenceStats,
                   progress: bool = False) -> dict[str, float]:
    """Score generated duets against a reference set (module docstring for the aggregation).

    Args:
        generated: ``[(follower_joints (T,55,3), leader_joints (T,55,3), music_beats), ...]``,
            joints in metres at 30 fps, music beats as frame indices; at least 2 clips.
        reference: the same structure (ground-truth clips), or a precomputed :class:`ReferenceStats`.
        progress: show tqdm progress bars.

    Returns:
        ``{"FID_k", "FID_g", "Div_k", "Div_g", "BAS", "FID_cd", "Div_cd", "BED",
        "contact_freq", "penetration", "slip_rate"}`` as floats (BAS/BED NaN if no clip has beats).
    """
    stats = reference if isinstance(reference, ReferenceStats) else ReferenceStats.from_duets(reference, progress)
    if len(generated) < 2:
        raise ValueError(f"generated needs at least 2 clips to fit feature Gaussians; got {len(generated)}")
    rows: dict[str, list[np.ndarray]] = {"kinetic": [], "geometric": [], "partner": []}
    bas, bed = [], []
    frames = touching = penetrating = slipping = 0
    for i, duet in enumerate(tqdm(generated, desc="scoring", disable=not progress, leave=False)):
        f, l, beats = _unpack(duet, f"generated[{i}]")
        rows["kinetic"].append(kinetic_features(f))
        rows["geometric"].append(geometric_features(f))
        rows["partner"].append(partner_distance_features(f, l))
        follower_beats = motion_beats(f)
        bas.append(alignment_score(beats, follower_beats))
        bed.append(alignment_score(motion_beats(l), follower_beats))
        touch, pen = contact_and_penetration_frames(f, l)
        frames += len(f)
        touching += int(touch.sum())
        penetrating += int(pen.sum())
        slipping += int(slipping_frames(f).sum())
    fid_k, div_k = stats.kinetic.fid_and_div(np.stack(rows["kinetic"]))
    fid_g, div_g = stats.geometric.fid_and_div(np.stack(rows["geometric"]))
    fid_cd, div_cd = stats.partner.fid_and_div(np.stack(rows["partner"]))

    def mean_defined(values: list[float]) -> float:
        arr = np.asarray(values, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        return float(arr.mean()) if arr.size else float("nan")

    return {
        "FID_k": fid_k, "FID_g": fid_g, "Div_k": div_k, "Div_g": div_g, "BAS": mean_defined(bas),
        "FID_cd": fid_cd, "Div_cd": div_cd, "BED": mean_defined(bed),
        "contact_freq": touching / frames, "penetration": penetrating / frames,
        "slip_rate": slipping / frames,
    }
