"""Reconstruction quality of a tokenizer on a dataset split (``python -m pretrain.vqvae evaluate``).

Both dancers of every clip go through encode -> decode (a dancer is encoded as the "follower" of
the clip's leader, so the leader's own reconstruction uses the same path; the leader's relative
translation is zero). Reported:

* ``mpjpe_cm``: mean per-joint position error (Ionescu et al. 2014) of each part in the frame
  its VQ-VAE encodes it (as Duolando measures its part VQ-VAEs): body parts root-relative
  ``mean_t,j ||(p̂_tj − p̂_t0) − (p_tj − p_t0)||``, hands relative to their wrist; in cm, per
  part and "overall" (mean over all 55 joints of those per-part errors);
* ``composed_mpjpe_cm``: the same for the 55 joints exactly as ``Tokenizer.decode`` places them
  (root-relative; fingers hang on the *decoded* wrists, so the hands inherit the upper part's
  wrist error) — what the environment shows;
* ``rot_err_deg``: mean geodesic angle ``arccos((tr(R̂ᵀR) − 1) / 2)`` of the decoded local
  rotations (root rotation in the world) against the data, in degrees (``rot_err_deg_per_part``);
* ``codebook_usage``: per stream, the share of codes used at least once on the split;
* ``transl_err_cm``: mean distance of the decoded follower pelvis to the true one, in cm
  (= the error of the relative translation, both in the leader's frame);
* ``root_velocity_err_mps``: mean error of the lower part's predicted pelvis velocity.

The reconstruction as motion (issue 9), on the FOLLOWERS only: the world joints ``out["joints"]``
of ``Tokenizer.decode`` against the split's ground-truth followers, both cut to the same whole
tokens (``T = len // 4 * 4`` frames):

* ``recon_FID_k`` / ``recon_FID_g``: Fréchet distances of the reconstructions' kinetic / geometric
  features to the reference statistics (:class:`duet_env.metrics.ReferenceStats`) of the TRAIN
  split's ground-truth followers, computed as ``agents.evaluate`` computes FID_k / FID_g (the
  same features, normaliser and Gaussians; the reference duets are whole train clips);
* ``recon_BAS``: beat alignment of the reconstruction with the clip's music beats, mean over the
  clips that have beats (as :func:`duet_env.metrics.evaluate_duets`);
* ``recon_slip_rate``: :mod:`duet_env.metrics.foot_slip` rate, frames pooled over clips;
* ``energy_ratio`` = mean kinetic energy (reconstruction) / mean kinetic energy (ground truth) and
  ``jerk_ratio`` likewise for the jerk, each a mean over clips of the per-clip values of
  :func:`duet_env.metrics.smoothness.kinetic_energy` / :func:`~duet_env.metrics.smoothness.jerk`
  (22 body joints; absolute values in ``recon`` and ``ground_truth``);
* ``foot_lift_err_cm``: mean over clips of :func:`duet_env.metrics.smoothness.foot_lift_err_cm`
  (each ankle's height above its own lowest point, reconstruction vs ground truth);
* ``ground_truth``: the reference row — FID_k, FID_g, BAS, slip_rate, energy, jerk of the
  ground-truth followers themselves (same frames, same reference statistics).

The FIDs need ``reference_clips`` (at least 2) and at least 2 evaluated clips; without them the
FID values are ``None``. A BAS without any music beat on the split is ``None`` too.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from duet_env import motion
from duet_env.data.clip import Clip
from duet_env.metrics import ReferenceStats, alignment_score, geometric_features, kinetic_features, motion_beats
from duet_env.metrics.foot_slip import slipping_frames
from duet_env.metrics.smoothness import foot_lift_err_cm, jerk, kinetic_energy
from duet_env.conventions import FOLLOWER_STREAMS, NUM_JOINTS, PART_JOINTS, PART_NAMES, TOKEN_FRAMES, WRIST_OF_HAND
from duet_env.tokenizer import features


def geodesic_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees of ``aᵀ b`` for rotation matrices ``(..., 3, 3)``."""
    tr = np.einsum("...ij,...ij->...", a, b)
    return np.degrees(np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0)))


def reference_stats(clips) -> ReferenceStats:
    """Reference statistics of the ground-truth followers of ``clips`` (whole clips), as
    ``agents.evaluate`` fits them on the train split."""
    duets = []
    for clip in clips:
        n = min(len(clip.follower.joints), len(clip))
        beats = clip.beat_frames
        duets.append((clip.follower.joints[:n], clip.leader.joints[:n], beats[beats < n]))
    return ReferenceStats.from_duets(duets)


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _set_scores(followers: list[np.ndarray], beats: list[np.ndarray], stats: ReferenceStats | None) -> dict:
    """FID_k, FID_g, BAS, slip_rate, energy, jerk of a set of followers (module docstring)."""
    fid_k = fid_g = None
    if stats is not None and len(followers) >= 2:
        fid_k = _finite_or_none(stats.kinetic.fid_and_div(np.stack([kinetic_features(f) for f in followers]))[0])
        fid_g = _finite_or_none(stats.geometric.fid_and_div(np.stack([geometric_features(f) for f in followers]))[0])
    bas = np.array([alignment_score(b, motion_beats(f)) for f, b in zip(followers, beats)], np.float64)
    bas = bas[np.isfinite(bas)]
    slipping = sum(int(slipping_frames(f).sum()) for f in followers)
    return {"FID_k": fid_k, "FID_g": fid_g, "BAS": float(bas.mean()) if bas.size else None,
            "slip_rate": slipping / sum(len(f) for f in followers),
            "energy": float(np.mean([kinetic_energy(f) for f in followers])),
            "jerk": float(np.mean([jerk(f) for f in followers]))}


def motion_metrics(recon: list[np.ndarray], gt: list[np.ndarray], beats: list[np.ndarray],
                   stats: ReferenceStats | None) -> dict:
    """The reconstruction-as-motion keys (module docstring) of follower reconstructions ``recon``
    against the ground-truth followers ``gt`` (world joints ``(T, 55, 3)``, pairwise the same
    frames) with the clips' music beats (frame indices)."""
    rec_row, gt_row = _set_scores(recon, beats, stats), _set_scores(gt, beats, stats)
    ratio = lambda a, b: float(a / b) if b > 0 else None
    return {
        "recon_FID_k": rec_row["FID_k"], "recon_FID_g": rec_row["FID_g"], "recon_BAS": rec_row["BAS"],
        "recon_slip_rate": rec_row["slip_rate"],
        "energy_ratio": ratio(rec_row["energy"], gt_row["energy"]),
        "jerk_ratio": ratio(rec_row["jerk"], gt_row["jerk"]),
        "foot_lift_err_cm": float(np.mean([foot_lift_err_cm(r, g) for r, g in zip(recon, gt)])),
        "recon": {"energy": rec_row["energy"], "jerk": rec_row["jerk"]},
        "ground_truth": gt_row,
    }


def evaluate(tokenizer, clips: list[Clip], progress: bool = True,
             reference_clips: list[Clip] | ReferenceStats | None = None) -> dict:
    """Reconstruction metrics of ``tokenizer`` on ``clips`` (module docstring).

    ``reference_clips``: the TRAIN split's clips (or their precomputed :class:`ReferenceStats`)
    for the recon_FID_k / recon_FID_g reference statistics; ``None`` leaves the FIDs ``None``.
    """
    if reference_clips is None or isinstance(reference_clips, ReferenceStats):
        stats = reference_clips
    else:
        stats = reference_stats(reference_clips) if len(reference_clips) >= 2 else None
    parts = PART_NAMES
    pos_err = {p: [] for p in parts}
    own_err = {p: [] for p in parts}
    rot_err = {p: [] for p in parts}
    all_pos, all_rot, transl_err, vel_err = [], [], [], []
    used = {s: set() for s in FOLLOWER_STREAMS}
    recon_followers, gt_followers, music_beats = [], [], []
    for clip in tqdm(clips, desc="evaluate", unit="clip", disable=not progress):
        t = len(clip) // TOKEN_FRAMES * TOKEN_FRAMES
        lead = np.asarray(clip.leader.joints[:t], np.float32)
        for who, dancer in (("leader", clip.leader), ("follower", clip.follower)):
            gt = np.asarray(dancer.joints[:t], np.float32)
            tokens = tokenizer.encode(lead, gt)["follower"]
            streams = FOLLOWER_STREAMS if who == "follower" else FOLLOWER_STREAMS[:4]
            for i, s in enumerate(streams):
                used[s].update(np.unique(tokens[:, i]).tolist())
            out = tokenizer.decode(tokens, lead)
            err = np.linalg.norm((out["joints"] - out["root"][:, None]) - (gt - gt[:, :1]), axis=-1)  # (T, 55)
            gt_rot = motion.axis_angle_to_matrix(np.asarray(dancer.poses[:t], np.float64).reshape(t, -1, 3))
            ang = geodesic_deg(out["rotmats"].astype(np.float64), gt_rot)  # (T, 55)
            all_pos.append(err.mean())
            all_rot.append(ang.mean())
            for p in parts:
                idx = list(PART_JOINTS[p])
                pos_err[p].append(err[:, idx].mean())
                rot_err[p].append(ang[:, idx].mean())
            for p in parts:
                idx = list(PART_JOINTS[p])
                if p in WRIST_OF_HAND:  # the hand VQ-VAE's own error: fingers relative to the wrist
                    w = WRIST_OF_HAND[p]
                    loc = (out["joints"][:, idx] - out["joints"][:, w:w + 1]) - (gt[:, idx] - gt[:, w:w + 1])
                    own_err[p].append(np.linalg.norm(loc, axis=-1).mean())
                else:
                    own_err[p].append(err[:, idx].mean())
            true_vel = features.pelvis_velocity(torch.from_numpy(gt[:, 0])).numpy()
            vel_err.append(np.linalg.norm(out["root_velocity"] - true_vel, axis=-1).mean())
            if who == "follower":
                transl_err.append(np.linalg.norm(out["root"] - gt[:, 0], axis=-1).mean())
                recon_followers.append(np.asarray(out["joints"], np.float64))
                gt_followers.append(np.asarray(dancer.joints[:t], np.float64))
                beats = clip.beat_frames
                music_beats.append(beats[beats < t])
    mean = lambda xs: float(np.mean(xs))
    return {
        "mpjpe_cm": {**{p: 100.0 * mean(own_err[p]) for p in parts},
                     "overall": 100.0 * sum(mean(own_err[p]) * len(PART_JOINTS[p]) for p in parts)
                     / NUM_JOINTS},
        "composed_mpjpe_cm": {**{p: 100.0 * mean(pos_err[p]) for p in parts}, "overall": 100.0 * mean(all_pos)},
        "rot_err_deg": mean(all_rot),
        "rot_err_deg_per_part": {p: mean(rot_err[p]) for p in parts},
        "codebook_usage": {s: len(used[s]) / tokenizer.codebook_sizes[s] for s in FOLLOWER_STREAMS},
        "transl_err_cm": 100.0 * mean(transl_err),
        "root_velocity_err_mps": mean(vel_err),
        "clips": len(clips),
        **motion_metrics(recon_followers, gt_followers, music_beats, stats),
        "reference_clips": None if stats is None else stats.num_clips,
    }
