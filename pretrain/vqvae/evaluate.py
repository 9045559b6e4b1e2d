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
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from duet_env import motion, skeleton
from duet_env.data.clip import Clip
from duet_env.tokens import FOLLOWER_STREAMS, TOKEN_FRAMES
from duet_env.tokenizer import features


def geodesic_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees of ``aᵀ b`` for rotation matrices ``(..., 3, 3)``."""
    tr = np.einsum("...ij,...ij->...", a, b)
    return np.degrees(np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0)))


def evaluate(tokenizer, clips: list[Clip], progress: bool = True) -> dict:
    parts = features.PARTS
    pos_err = {p: [] for p in parts}
    own_err = {p: [] for p in parts}
    rot_err = {p: [] for p in parts}
    all_pos, all_rot, transl_err, vel_err = [], [], [], []
    used = {s: set() for s in FOLLOWER_STREAMS}
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
                idx = list(skeleton.BODY_PARTS[p])
                pos_err[p].append(err[:, idx].mean())
                rot_err[p].append(ang[:, idx].mean())
            for p in parts:
                idx = list(skeleton.BODY_PARTS[p])
                if p in features.WRIST:  # the hand VQ-VAE's own error: fingers relative to the wrist
                    w = features.WRIST[p]
                    loc = (out["joints"][:, idx] - out["joints"][:, w:w + 1]) - (gt[:, idx] - gt[:, w:w + 1])
                    own_err[p].append(np.linalg.norm(loc, axis=-1).mean())
                else:
                    own_err[p].append(err[:, idx].mean())
            true_vel = features.pelvis_velocity(torch.from_numpy(gt[:, 0])).numpy()
            vel_err.append(np.linalg.norm(out["root_velocity"] - true_vel, axis=-1).mean())
            if who == "follower":
                transl_err.append(np.linalg.norm(out["root"] - gt[:, 0], axis=-1).mean())
    mean = lambda xs: float(np.mean(xs))
    return {
        "mpjpe_cm": {**{p: 100.0 * mean(own_err[p]) for p in parts},
                     "overall": 100.0 * sum(mean(own_err[p]) * len(skeleton.BODY_PARTS[p]) for p in parts)
                     / skeleton.NUM_JOINTS},
        "composed_mpjpe_cm": {**{p: 100.0 * mean(pos_err[p]) for p in parts}, "overall": 100.0 * mean(all_pos)},
        "rot_err_deg": mean(all_rot),
        "rot_err_deg_per_part": {p: mean(rot_err[p]) for p in parts},
        "codebook_usage": {s: len(used[s]) / tokenizer.codebook_sizes[s] for s in FOLLOWER_STREAMS},
        "transl_err_cm": 100.0 * mean(transl_err),
        "root_velocity_err_mps": mean(vel_err),
        "clips": len(clips),
    }
