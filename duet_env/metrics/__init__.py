"""Dance-quality metrics: solo (follower) and duet (follower with leader).

Solo: FID_k / Div_k on 72-d kinetic features, FID_g / Div_g on 32-d geometric features,
BAS (beat alignment with the music). Duet: FID_cd / Div_cd on the 10×10 cross-dancer
key-joint distances, BED (beat echo degree), contact frequency, penetration rate,
foot-slipping rate. :func:`evaluate_duets` computes them all; every module's docstring gives
its formula, source and where it departs from the papers' reference code (chiefly: the true
1/30 s frame time, and reference statistics from the train split only).
"""
from .beats import alignment_score, beat_align_score, beat_echo_degree, mean_joint_speed, motion_beats
from .capsules import CAPSULE_NAMES, capsule_gaps, capsule_segments, segment_distance
from .contact import contact_and_penetration_frames, contact_frequency, penetration_rate
from .evaluate import METRIC_KEYS, ReferenceStats, evaluate_duets
from .foot_slip import foot_slip_rate, slipping_frames
from .frechet import Gaussian, Normaliser, diversity, fid, frechet_distance
from .geometric import FEATURE_NAMES as GEOMETRIC_FEATURE_NAMES
from .geometric import geometric_features, geometric_relations
from .joints24 import body24
from .kinetic import kinetic_features
from .partner_distance import KEY_JOINTS, partner_distance_features

__all__ = [
    "alignment_score", "beat_align_score", "beat_echo_degree", "mean_joint_speed", "motion_beats",
    "CAPSULE_NAMES", "capsule_gaps", "capsule_segments", "segment_distance",
    "contact_and_penetration_frames", "contact_frequency", "penetration_rate",
    "METRIC_KEYS", "ReferenceStats", "evaluate_duets", "foot_slip_rate", "slipping_frames",
    "Gaussian", "Normaliser", "diversity", "fid", "frechet_distance",
    "GEOMETRIC_FEATURE_NAMES", "geometric_features", "geometric_relations", "body24",
    "kinetic_features", "KEY_JOINTS", "partner_distance_features",
]
