"""Evaluate a follower policy (or saved follower motion) on a dataset split.

    python -m agents.evaluate --policy gt|random|default|PATH --data synth|DIR --split test \\
        [--json OUT.json] [--out DIR] [--motion DIR] [--seed 0] [--tokenizer default|DIR] [--device auto|cpu|cuda]

Prints the metrics of :func:`duet_env.metrics.evaluate_duets` as a table, the ground-truth
row (the split's real followers) beside the policy row, and writes them to ``--json``.

- Reference statistics (the Gaussians behind FID_k / FID_g / FID_cd) come from the TRAIN
  split's ground-truth followers, so the test set never scores against itself (the papers fit
  them on train+test ground truth; with ours the GT row's FID is not ~0 by construction).
- ``--policy gt`` scores the split's ground-truth followers; ``random``, ``default`` or a
  checkpoint PATH generate followers with :func:`agents.rollout.generate_followers`.
- ``--motion DIR`` scores saved follower motion instead: ``DIR/motion/smplx/all/<name>_00.npy``
  (DD100 format) for every clip of the split.
- ``--out DIR`` saves the evaluated followers in DD100 layout (follower ``_00``, the clip's leader
  ``_01`` and its music), so the folder can be rendered or re-scored with ``--motion``.
- On SynthDuet (whose followers are the genre partner rules' answer) the extra
  ``rule_error_cm`` is the mean joint distance, in cm, of the evaluated follower to it.
- ``--split validation`` scores the train clips that the GPT checkpoint ``--policy`` held out
  while training (``validation_clips`` in its ``gpt.json``), against reference statistics of the
  other train clips: choosing between checkpoints (seeds, steps) there leaves the test split
  unseen.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from agents.rollout import generate_followers
from duet_env.atomic import atomic_save_npy, atomic_write_json
from duet_env.conventions import FPS
from duet_env.data.clip import Clip
from duet_env.metrics import METRIC_KEYS, ReferenceStats, evaluate_duets

GT_POLICY = "gt"


def resolve_data_root(data: str) -> Path:
    """``synth`` or ``synth:seed=S,minutes=M`` -> that SynthDuet's folder (generated on first use);
    else an existing folder. A missing folder or a malformed name exits with the message."""
    from duet_env.data import resolve_root

    try:
        return resolve_root(data)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"--data {data}: {e}") from e


def is_synth(root: Path) -> bool:
    """SynthDuet folders carry ``synth_meta/`` beside the DD100 layout."""
    return (root / "synth_meta").is_dir()


def duets_of(clips: list[Clip], followers: list[np.ndarray] | None = None) -> list[tuple]:
    """``(follower_joints, leader_joints, music_beats)`` triples, cut to each follower's length."""
    out = []
    for i, clip in enumerate(clips):
        follower = clip.follower.joints if followers is None else followers[i]
        n = min(len(follower), len(clip))
        beats = clip.beat_frames
        out.append((follower[:n], clip.leader.joints[:n], beats[beats < n]))
    return out


def validation_clip_names(policy: str) -> list[str]:
    """The train clips GPT checkpoint ``policy`` held out (``state.validation_clips`` of its gpt.json)."""
    from duet_env.checkpoint import CheckpointError, resolve

    try:
        meta_path = resolve(policy) / "gpt.json"
    except CheckpointError as exc:
        raise SystemExit(f"--split validation: {exc}") from exc
    if not meta_path.is_file():
        raise SystemExit(f"--split validation needs a GPT checkpoint as --policy (a folder with gpt.json); got {policy!r}")
    names = (json.loads(meta_path.read_text()).get("state") or {}).get("validation_clips") or []
    if not names:
        raise SystemExit(f"--split validation: {meta_path} names no validation clips (trained without a held-out set)")
    return list(names)


def validation_split(root: Path, policy: str) -> tuple[list[Clip], list[Clip]]:
    """``(reference, validation)``: the train clips of ``root`` without / with the ones ``policy`` held out."""
    from duet_env.data import load_split

    names = set(validation_clip_names(policy))
    train = load_split(root, "train")
    held = [c for c in train if c.name in names]
    missing = sorted(names - {c.name for c in held})
    if missing:
        raise SystemExit(f"--split validation: {len(missing)} of {policy}'s validation clips are not train clips of "
                         f"{root}, e.g. {missing[:3]} (was it trained on other data?)")
    return [c for c in train if c.name not in names], held


def rule_error_cm(clips: list[Clip], followers: list[np.ndarray]) -> float:
    """Mean over clips, frames and the 55 joints of |generated − ground-truth follower| in cm
    (frames pooled: a frame-weighted mean over the common length of each pair)."""
    total, count = 0.0, 0
    for clip, follower in zip(clips, followers):
        n = min(len(follower), len(clip))
        dist = np.linalg.norm(np.asarray(follower[:n], np.float64) - clip.follower.joints[:n], axis=-1)
        total += float(dist.sum())
        count += dist.size
    return 100.0 * total / max(count, 1)


class FollowerSet:
    """Evaluated followers: joints for the metrics, poses/transl for saving (None if unknown)."""

    def __init__(self, joints: list[np.ndarray], poses: list[np.ndarray | None], transl: list[np.ndarray | None]):
        self.joints, self.poses, self.transl = joints, poses, transl


def ground_truth_followers(clips: list[Clip]) -> FollowerSet:
    return FollowerSet([c.follower.joints for c in clips], [c.follower.poses for c in clips],
                       [c.follower.transl for c in clips])


def saved_followers(motion_root: Path, clips: list[Clip]) -> FollowerSet:
    """Follower motion saved in DD100 format under ``motion_root`` for every clip."""
    from duet_env.data import dd100

    folder = motion_root / dd100.MOTION_DIR
    missing = [c.name for c in clips if not (folder / f"{c.name}{dd100.FOLLOWER_SUFFIX}.npy").is_file()]
    if missing:
        raise SystemExit(f"--motion {motion_root}: no follower file for {len(missing)} clip(s) of the split "
                         f"(expected {folder}/<name>_00.npy), e.g. {missing[:3]}")
    joints, poses, transl = [], [], []
    for clip in clips:
        data = dd100.read_motion(folder / f"{clip.name}{dd100.FOLLOWER_SUFFIX}.npy")
        joints.append(dd100.joint_positions(data["poses"], data["transl"], data["betas"], data["gender"]))
        poses.append(data["poses"])
        transl.append(data["transl"])
    return FollowerSet(joints, poses, transl)


def policy_followers(policy: str, clips: list[Clip], seed: int, device: str = "cpu",
                     tokenizer: str = "default") -> FollowerSet:
    """Followers generated by :func:`agents.rollout.generate_followers` (tokenizer and policy on ``device``)."""
    try:
        generated = generate_followers(policy, clips, seed=seed, tokenizer=tokenizer, device=device)
    except (FileNotFoundError, ValueError) as exc:  # e.g. duet_env.checkpoint.CheckpointError
        raise SystemExit(f"--policy {policy}: cannot generate followers: {exc}") from exc
    return FollowerSet([np.asarray(g.joints) for g in generated], [g.poses for g in generated],
                       [g.transl for g in generated])


def save_dd100(out: Path, clips: list[Clip], followers: FollowerSet) -> None:
    """Write followers (``_00``), the clips' leaders (``_01``) and music in DD100 layout under ``out``."""
    from duet_env.data import dd100

    motion = out / dd100.MOTION_DIR
    music = out / dd100.MUSIC_DIR
    motion.mkdir(parents=True, exist_ok=True)
    music.mkdir(parents=True, exist_ok=True)
    for clip, poses, transl in zip(clips, followers.poses, followers.transl):
        if poses is None or transl is None:
            raise SystemExit(f"--out: the policy gave joints only for {clip.name}; DD100 format needs poses/transl")
        n = min(len(poses), len(clip))
        follower = {"poses": np.asarray(poses[:n], np.float32), "transl": np.asarray(transl[:n], np.float32),
                    "betas": clip.follower.betas, "gender": clip.follower.gender}
        leader = {"poses": clip.leader.poses[:n], "transl": clip.leader.transl[:n],
                  "betas": clip.leader.betas, "gender": clip.leader.gender}
        atomic_save_npy(motion / f"{clip.name}{dd100.FOLLOWER_SUFFIX}.npy", follower, allow_pickle=True)
        atomic_save_npy(motion / f"{clip.name}{dd100.LEADER_SUFFIX}.npy", leader, allow_pickle=True)
        if clip.audio_path and Path(clip.audio_path).is_file():
            target = music / Path(clip.audio_path).name
            if not target.exists():
                shutil.copy2(clip.audio_path, target)


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Metric rows side by side: one line per metric, one column per row name."""
    names = list(rows)
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    lines = [f"{'metric':<14}" + "".join(f"{n:>16}" for n in names)]
    for k in keys:
        cells = []
        for n in names:
            v = rows[n].get(k)
            cells.append(f"{'-':>16}" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:>16.4f}")
        lines.append(f"{k:<14}" + "".join(cells))
    return "\n".join(lines)


def json_safe(d: dict) -> dict:
    """Non-finite floats (NaN: e.g. BED with no kinematic beat) as None: valid JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default=GT_POLICY, help="gt | random | default | checkpoint PATH")
    parser.add_argument("--data", default="synth", help="'synth' (default SynthDuet), 'synth:seed=S,minutes=M' "
                                                         "(another SynthDuet) or a DD100-layout folder")
    parser.add_argument("--split", default="test", choices=["train", "test", "all", "validation"],
                        help="validation: the train clips the GPT --policy held out while training")
    parser.add_argument("--json", type=Path, default=None, help="write the metrics here")
    parser.add_argument("--out", type=Path, default=None, help="save the evaluated followers here (DD100 layout)")
    parser.add_argument("--motion", type=Path, default=None, help="score saved followers: DIR/motion/smplx/all/<name>_00.npy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads of this process (0: torch's default). One by default: the "
                             "rollout's many small ops collapse when torch's threads outnumber free cores "
                             "(6-7 s instead of 1.6 s a step with 2 threads beside two training jobs)")
    parser.add_argument("--tokenizer", default="default",
                        help="tokenizer checkpoint name or folder the policy was trained with")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when available) | cpu | cuda[:i]: where the tokenizer and the policy run")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from duet_env.data import load_split

    root = resolve_data_root(args.data)
    started = time.perf_counter()
    if args.split == "validation":
        train, clips = validation_split(root, args.policy)
    else:
        train = load_split(root, "train")
        clips = load_split(root, args.split)
    if len(train) < 2 or len(clips) < 2:
        raise SystemExit(f"{root}: need at least 2 train clips (reference) and 2 {args.split} clips; "
                         f"found {len(train)} and {len(clips)}")
    loaded = time.perf_counter()
    stats = ReferenceStats.from_duets(duets_of(train), progress=True)
    gt_row = evaluate_duets(duets_of(clips), stats, progress=True)
    scored = time.perf_counter()

    if args.motion is not None:
        followers, label = saved_followers(args.motion, clips), f"motion:{args.motion.name}"
    elif args.policy == GT_POLICY:
        followers, label = ground_truth_followers(clips), GT_POLICY
    else:
        from duet_env.checkpoint import resolve_device

        device = str(resolve_device(args.device))
        followers, label = policy_followers(args.policy, clips, args.seed, device, args.tokenizer), args.policy
    if label == GT_POLICY:
        policy_row = gt_row  # the same followers: no need to score them twice
    else:
        policy_row = evaluate_duets(duets_of(clips, followers.joints), stats, progress=True)
    if is_synth(root):
        policy_row = {**policy_row, "rule_error_cm": rule_error_cm(clips, followers.joints)}
        gt_row = {**gt_row, "rule_error_cm": 0.0}
    finished = time.perf_counter()

    print(format_table({"ground truth": gt_row, label: policy_row}))
    print(f"{len(clips)} {args.split} clips ({sum(len(c) for c in clips) / FPS / 60:.1f} min), reference: "
          f"{len(train)} train clips; loading {loaded - started:.1f} s, reference + GT metrics "
          f"{scored - loaded:.1f} s, total {finished - started:.1f} s", file=sys.stderr)
    if args.out is not None:
        save_dd100(args.out, clips, followers)
    if args.json is not None:
        payload = {**json_safe(policy_row), "ground_truth": json_safe(gt_row),
                   "meta": {"policy": label, "data": str(root), "split": args.split, "seed": args.seed,
                            "num_clips": len(clips), "reference": "train split ground-truth followers",
                            "metric_keys": list(METRIC_KEYS)}}
        atomic_write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
