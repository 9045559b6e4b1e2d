"""How much of its dance does the follower GPT take from the music? An input-ablation probe.

    python benchmarks/music_reliance.py [--policy default] [--data synth] [--split test] [--json OUT]

A probe for issue 15 (real music), measured rather than assumed. The follower is rolled out
greedily (:func:`agents.rollout.generate_followers`, the env's own core) on every clip of the
split, once per condition. The first five conditions change only the music the GPT *hears* (the
``music`` of its observation); the leader, the decoder and the scoring stay as published, and the
metrics score against each clip's real music beats and leader, as ``agents.evaluate`` does:

* ``full``: the music as it is (the published rollout);
* ``no-beat``: the beat column (53) zero at every frame, i.e. no tracked beat anywhere;
* ``no-rhythm``: the beat and the onset-strength (52) columns zero;
* ``mean-music``: every frame of the clip at the GPT's training mean of all 54 features
  (``music_mean``, the buffer it normalises with): a song with no information at all;
* ``other-song``: each clip hears another clip's music at the same time (the next clip of the
  split, cyclically; zeros, the env's padding, where that clip has ended).

The sixth changes the duet instead, and is SynthDuet's own version of ``benchmarks/real_music.py``'s
"synth leader" condition (a leader who does not dance to the song), with music the GPT was trained
on:

* ``other-leader``: each clip's music (heard and scored as it is) with the next clip's leader
  (cyclically: on the sorted test split mostly a leader of the same genre, who danced to another
  song), both cut to the shorter, and that leader moved on the floor to start where the clip's
  own leader starts (:func:`with_other_leaders`). BED and FID_cd score the follower with that
  leader; rule error is not defined (the recorded follower danced with another leader) and
  ``tokens_changed`` compares the common length with ``full``.

If BAS against the *real* beats hardly moves when the GPT hears no beat, or another song, the
follower's timing comes from her leader (who dances to the real music), not from the music.
If with ``other-leader`` it falls to about that leader's own BAS against the same music
(``leader_BAS``) while BED stays, she follows her leader off the music: she cannot keep the
music's beat against his. Printed as one column per condition: FID_k, FID_g, FID_cd, BAS, BED, rule error (cm),
leader_BAS, and the share of the follower's tokens that differ from the ``full`` rollout. About
30 s a condition for the 14 test clips on one core.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from duet_env.conventions import BEAT_COLUMN, MUSIC_DIM, ONSET_COLUMN

OTHER_LEADER = "other-leader"
CONDITIONS = ("full", "no-beat", "no-rhythm", "mean-music", "other-song", OTHER_LEADER)
METRICS = ("FID_k", "FID_g", "FID_cd", "BAS", "BED", "rule_error_cm")


def check_condition(condition: str, music_mean: np.ndarray | None = None) -> None:
    """Refuse an unknown condition, or ``mean-music`` without the policy's ``music_mean``."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    if condition == "mean-music" and music_mean is None:
        raise ValueError("condition 'mean-music' needs the policy's music_mean")


def heard_music(music: np.ndarray, condition: str, music_mean: np.ndarray | None = None) -> np.ndarray:
    """The music a policy hears under ``condition``: observation music (B, W·216) or (B, W, 216)
    -> the same shape. Padding frames (all zero: outside the clip) stay zero."""
    check_condition(condition, music_mean)
    music = np.asarray(music, np.float32)
    if condition in ("full", OTHER_LEADER):  # other-leader changes the duet, not what is heard
        return music
    frames = music.reshape(music.shape[0], -1, MUSIC_DIM).copy()
    if condition == "other-song":
        if len(frames) < 2:
            raise ValueError("condition 'other-song' needs at least 2 clips rolled out together")
        return np.roll(frames, -1, axis=0).reshape(music.shape)
    inside = np.any(frames != 0.0, axis=-1)
    if condition == "mean-music":
        frames[inside] = np.asarray(music_mean, np.float32)
    else:
        frames[..., BEAT_COLUMN] = 0.0
        if condition == "no-rhythm":
            frames[..., ONSET_COLUMN] = 0.0
    return frames.reshape(music.shape)


def placed_like(dancer, reference):
    """``dancer`` moved rigidly on the floor (a turn about the vertical and a shift, heights kept)
    so that at the first frame its pelvis stands where ``reference``'s does, facing the same way
    (:func:`duet_env.motion.heading_from_joints`). Joints are the forward kinematics of the moved
    rotations and translation."""
    from duet_env import skeleton
    from duet_env.data.amass import rotate_world
    from duet_env.data.clip import Dancer
    from duet_env.motion import heading_angle, heading_from_joints, rotation_about_y

    turn = float(heading_angle(heading_from_joints(reference.joints[0]))
                 - heading_angle(heading_from_joints(dancer.joints[0])))
    poses, transl = rotate_world(dancer.poses, dancer.transl, rotation_about_y(turn))
    shift = reference.joints[0, 0] - (skeleton.REST_OFFSETS[0] + transl[0])  # the pelvis is rest offset + transl
    shift[1] = 0.0
    return Dancer(poses.astype(np.float32), (transl + shift).astype(np.float32), dancer.betas, dancer.gender)


def with_other_leaders(clips) -> list:
    """Each clip with the next clip's leader (cyclically, as ``other-song`` pairs songs), both cut
    to the shorter: the music (and the recorded follower) of the clip, the other leader
    :func:`placed_like` the clip's own leader at the first frame (so the follower starts at her
    usual place beside him)."""
    from duet_env.data.clip import Clip

    if len(clips) < 2:
        raise ValueError(f"condition '{OTHER_LEADER}' needs at least 2 clips")
    out = []
    for i, clip in enumerate(clips):
        j = (i + 1) % len(clips)
        n = min(len(clip), len(clips[j]))
        leader = placed_like(clips[j].leader.slice(0, n), clip.leader)
        out.append(Clip(f"{clip.name}+leader-of-{clips[j].name}", clip.genre, clip.music[:n], leader,
                        clip.follower.slice(0, n), clip.audio_path))
    return out


def leader_bas(duets: list[tuple]) -> float:
    """Mean over the scored duets ``(follower, leader, beats)`` (``agents.evaluate.duets_of``) of
    the leader's own BAS against the music's beats, as BAS averages the follower's (clips without a
    beat left out)."""
    from duet_env.metrics import beat_align_score

    scores = [beat_align_score(leader, beats) for _, leader, beats in duets]
    scores = [s for s in scores if np.isfinite(s)]
    return float(np.mean(scores)) if scores else float("nan")


def share_changed(tokens: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Share of decisions whose token tuple differs, over each clip's common length."""
    changed = total = 0
    for a, b in zip(tokens, reference):
        n = min(len(a), len(b))
        changed += int(np.any(a[:n] != b[:n], axis=-1).sum())
        total += n
    return changed / max(total, 1)


class HearingPolicy:
    """A follower policy (``sample(obs, ...)``, ``config``, optional ``stream()``) that is given
    :func:`heard_music` of each observation's music instead of the music itself."""

    def __init__(self, policy, condition: str, music_mean: np.ndarray | None = None):
        check_condition(condition, music_mean)
        self.policy, self.condition, self.music_mean = policy, condition, music_mean
        self.config = policy.config

    def stream(self) -> "HearingPolicy":
        inner = self.policy.stream() if hasattr(self.policy, "stream") else self.policy
        return HearingPolicy(inner, self.condition, self.music_mean)

    def sample(self, observation: dict, **kwargs) -> np.ndarray:
        music = heard_music(observation["music"], self.condition, self.music_mean)
        return self.policy.sample({**observation, "music": music}, **kwargs)


def run(policy: str, data: str, split: str, conditions: list[str], seed: int = 0) -> dict:
    """{condition: {metric: value, "tokens_changed": share}} plus "ground truth"."""
    from agents.evaluate import duets_of, resolve_data_root, rule_error_cm
    from agents.rollout import generate_followers, load_policy
    from duet_env.data import load_split
    from duet_env.metrics import ReferenceStats, evaluate_duets

    root = resolve_data_root(data)
    train, clips = load_split(root, "train", progress=False), load_split(root, split, progress=False)
    stats = ReferenceStats.from_duets(duets_of(train), progress=False)
    gt_duets = duets_of(clips)
    gt = evaluate_duets(gt_duets, stats, progress=False)
    rows = {"ground truth": {**{k: gt[k] for k in METRICS if k in gt}, "rule_error_cm": 0.0,
                             "leader_BAS": leader_bas(gt_duets)}}
    pol = load_policy(policy)
    if pol is None:
        raise SystemExit("--policy random hears nothing: give the GPT ('default' or a checkpoint folder)")
    mean = pol.model.music_mean.cpu().numpy()
    tokens = {}
    for cond in conditions:
        t0 = time.perf_counter()
        duets = with_other_leaders(clips) if cond == OTHER_LEADER else clips
        out = generate_followers(HearingPolicy(pol, cond, mean), duets, seed=seed, reward=None, progress=False)
        joints = [o.joints for o in out]
        scored = duets_of(duets, joints)
        row = evaluate_duets(scored, stats, progress=False)
        rule = float("nan") if cond == OTHER_LEADER else rule_error_cm(clips, joints)
        rows[cond] = {**{k: row[k] for k in METRICS if k in row}, "rule_error_cm": rule,
                      "leader_BAS": leader_bas(scored)}
        tokens[cond] = [o.tokens for o in out]
        if "full" in tokens:
            rows[cond]["tokens_changed"] = share_changed(tokens[cond], tokens["full"])
        print(f"  {cond}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", default="default", help="default | a GPT checkpoint folder")
    ap.add_argument("--data", default="synth")
    ap.add_argument("--split", default="test")
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--json", default=None, help="write all numbers here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    conditions = ["full"] + [c for c in args.conditions if c != "full"]  # the reference for tokens_changed
    rows = run(args.policy, args.data, args.split, conditions, args.seed)
    from agents.evaluate import format_table, json_safe

    print(f"{args.policy} on {args.data} {args.split}: one column per condition (what the GPT hears, or whom she dances with)")
    print(format_table(rows))
    if args.json:
        from duet_env.atomic import atomic_write_json

        atomic_write_json(args.json, {"policy": args.policy, "data": args.data, "split": args.split,
                                      "rows": {name: json_safe(row) for name, row in rows.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
