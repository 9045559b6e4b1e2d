"""How beat alignment depends on tempo, and a tempo-matched yardstick for the real-music set.

    python benchmarks/bas_by_tempo.py [--pool synth:seed=7,minutes=240] [--rollout default] [--real-music OUT.json]

BAS (Bailando's beat alignment score, :func:`duet_env.metrics.alignment_score`) counts music
beats that fall near a *kinematic* beat: a local minimum of the mean joint speed after Gaussian
smoothing over σ = 5 frames (the reference code's settings). That smoothing passes a speed
oscillation of period P frames with gain exp(−2π²σ²/P²): 0.29 at 90 bpm (P = 20), 0.05 at
138 bpm (P = 13), 0.007 at 180 bpm (P = 10). At fast tempi the beat-rate dips in speed are
smoothed away and the minima that remain are those of slower movement (steps on every other
beat, the phrase), so even a dance that marks every beat scores lower. The score of a follower
on a fast song therefore says little until it is set beside what recorded dances of that tempo
score.

This script measures that on a pool of SynthDuet clips: each clip's tempo (60·FPS over the
median interval of its tracked music beats, ``agents.accompany.song.tempo_of`` as for the songs) and the BAS of its ground-truth follower and leader,
averaged per tempo band; with ``--rollout P`` also the greedy followers of policy P on the same
clips (:func:`metric_noise.followers_of`) and their BAS over the ground truth's, per band — on
SynthDuet, where the music is the training distribution. With ``--real-music`` (the
``--json`` output of ``benchmarks/real_music.py``) it prints, per song, the follower's BAS
beside the ground truth's mean BAS over the pool clips within ``--window`` bpm of the song's
tempo — the tempo-matched yardstick — and their ratio, then the medians over the songs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # metric_noise, for --rollout

TEMPO_BANDS = (0.0, 100.0, 120.0, 138.0, 1000.0)  # bpm; SynthDuet's Tango tops out at 138


def tempo_matched(pool_tempo: np.ndarray, pool_bas: np.ndarray, tempo: float, window: float) -> tuple[float, int]:
    """Mean BAS of the pool clips whose tempo is within ``window`` bpm of ``tempo``, and their count
    (NaN, 0 when none is)."""
    near = np.abs(np.asarray(pool_tempo) - tempo) <= window
    near &= np.isfinite(pool_bas)
    if not near.any():
        return float("nan"), 0
    return float(np.mean(np.asarray(pool_bas)[near])), int(near.sum())


def pool_table(pool: str, rollout: str | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Per clip of ``pool``: genre, tempo, ground-truth follower BAS and leader BAS, and with
    ``rollout`` the BAS of that policy's greedy follower (``policy_BAS``)."""
    from agents.accompany.song import tempo_of  # the tempo real_music.py reports for a song
    from duet_env.data import load_split, resolve_root
    from duet_env.metrics import alignment_score, motion_beats

    clips = load_split(resolve_root(pool), "all", progress=False)
    rows = {"genre": [], "tempo": [], "follower_BAS": [], "leader_BAS": []}
    for c in clips:
        rows["genre"].append(c.genre)
        rows["tempo"].append(tempo_of(c.beat_frames)[0])
        rows["follower_BAS"].append(alignment_score(c.beat_frames, motion_beats(c.follower.joints)))
        rows["leader_BAS"].append(alignment_score(c.beat_frames, motion_beats(c.leader.joints)))
    if rollout is not None:
        from metric_noise import followers_of

        rows["policy_BAS"] = [alignment_score(c.beat_frames[c.beat_frames < len(f)], motion_beats(f))
                              for c, f in zip(clips, followers_of(rollout, clips, seed))]
    return {k: np.asarray(v) for k, v in rows.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", default="synth:seed=7,minutes=240",
                    help="SynthDuet (or DD100-layout) data whose ground truth gives BAS per tempo")
    ap.add_argument("--real-music", default=None, help="benchmarks/real_music.py --json output to set beside it")
    ap.add_argument("--rollout", default=None, help="also roll out this policy (default | PATH) on the pool")
    ap.add_argument("--policy", default="default", help="the policy of --real-music's JSON to read")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads of the rollout")
    ap.add_argument("--window", type=float, default=12.0, help="bpm either side of a song's tempo")
    ap.add_argument("--json", default=None, help="write every number here")
    args = ap.parse_args(argv)

    if args.rollout is not None:
        import torch

        torch.set_num_threads(args.threads)
    t = pool_table(args.pool, args.rollout)
    out: dict = {"pool": args.pool, "window_bpm": args.window, "rollout": args.rollout, "bands": []}
    print(f"ground truth of {args.pool} ({len(t['tempo'])} clips): BAS against the music's tracked beats"
          + (f"; {args.rollout!r}'s greedy followers beside it" if args.rollout else ""))
    print(f"{'tempo band':>14s} {'clips':>6s} {'follower BAS':>13s} {'leader BAS':>11s}"
          + (f" {'policy BAS':>11s} {'policy/GT':>10s}" if args.rollout else ""))
    for lo, hi in zip(TEMPO_BANDS[:-1], TEMPO_BANDS[1:]):
        m = (t["tempo"] >= lo) & (t["tempo"] < hi)
        if not m.any():
            continue
        band = {"from_bpm": lo, "to_bpm": hi, "clips": int(m.sum()),
                "follower_BAS": float(np.nanmean(t["follower_BAS"][m])), "leader_BAS": float(np.nanmean(t["leader_BAS"][m]))}
        extra = ""
        if "policy_BAS" in t:
            band["policy_BAS"] = float(np.nanmean(t["policy_BAS"][m]))
            band["policy_over_ground_truth"] = band["policy_BAS"] / band["follower_BAS"]
            extra = f" {band['policy_BAS']:11.3f} {band['policy_over_ground_truth']:10.3f}"
        out["bands"].append(band)
        label = f"{lo:.0f}-{hi:.0f} bpm" if hi < 1000 else f">= {lo:.0f} bpm"
        print(f"{label:>14s} {band['clips']:6d} {band['follower_BAS']:13.3f} {band['leader_BAS']:11.3f}" + extra)
    if args.real_music:
        songs = json.loads(Path(args.real_music).read_text())["songs"]
        print(f"\nreal-music set ({args.real_music}), song-driven leader, policy {args.policy!r}; "
              f"yardstick = pool ground truth within ±{args.window:g} bpm")
        print(f"{'song':22s} {'bpm':>6s} {'follower':>9s} {'leader':>7s} {'yardstick':>10s} {'(clips)':>8s} {'ratio':>6s}")
        rows = []
        for s in songs:
            r = s["results"][args.policy]["song leader"]
            ref, n = tempo_matched(t["tempo"], t["follower_BAS"], s["tempo_bpm"], args.window)
            rows.append({"id": s["id"], "tempo_bpm": s["tempo_bpm"], "follower_BAS": r["follower_BAS"],
                         "leader_BAS": r["leader_BAS"], "yardstick_BAS": ref, "yardstick_clips": n,
                         "ratio": r["follower_BAS"] / ref if n else float("nan")})
            x = rows[-1]
            print(f"{x['id']:22s} {x['tempo_bpm']:6.1f} {x['follower_BAS']:9.3f} {x['leader_BAS']:7.3f} "
                  f"{ref:10.3f} {n:8d} {x['ratio']:6.2f}")
        med = {k: float(np.nanmedian([x[k] for x in rows])) for k in ("follower_BAS", "yardstick_BAS", "ratio")}
        print(f"median over {len(rows)} songs: follower BAS {med['follower_BAS']:.3f}, tempo-matched ground "
              f"truth {med['yardstick_BAS']:.3f}, ratio {med['ratio']:.2f}")
        out["real_music"] = {"songs": rows, "median": med}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
