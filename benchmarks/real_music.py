"""Does the follower dance to real recordings? Accompaniment on the real-music set, per song.

    python benchmarks/real_music_set.py fetch          # once: the recordings, from Debian packages
    python benchmarks/real_music.py [--policy default [PATH ...]] [--seconds 60] [--json OUT]

For every recording of ``benchmarks/real_music_set.json`` (fetched into the cache; nothing of it is
committed) and every policy, two conditions over the first ``--seconds`` of the song:

* ``song leader``: a SynthDuet leader choreographed on the song's own tracked beats
  (``agents.accompany``'s default leader, :func:`duet_env.data.synth.dance_to_beats`), genre
  chosen by the song's tempo;
* ``synth leader``: the leader of a SynthDuet test clip of that genre, which does not dance to the
  song (the song is cut to the leader's length).

The policy generates the follower greedily through the env's rollout (:func:`agents.rollout.
generate_followers`, the default reward computed alongside). Printed per song: tempo, the genre,
and for each condition the follower's BAS against the song's tracked beats, BED (beat echo of the
leader), the leader's BAS and the mean reward per token; then the medians over songs. Every
number comes from this run; the recordings' licences are in the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NUMBA_CACHE_DIR", f"/tmp/numba_real_music_{os.getpid()}")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from duet_env.conventions import FPS  # noqa: E402
from duet_env.data.clip import Clip  # noqa: E402

CONDITIONS = ("song leader", "synth leader")


def _songs(ids: list[str] | None) -> list[tuple[dict, Path]]:
    import real_music_set as rms

    entries = json.loads((Path(__file__).with_name("real_music_set.json")).read_text())
    if ids:
        entries = [e for e in entries if e["id"] in ids]
    paths = rms.fetch(ids=[e["id"] for e in entries])  # already fetched: no download
    by_id = {Path(p).stem: Path(p) for p in paths}
    missing = [e["id"] for e in entries if e["id"] not in by_id]
    if missing:
        raise SystemExit(f"real_music: recordings not fetched: {missing} (run benchmarks/real_music_set.py fetch)")
    return [(e, by_id[e["id"]]) for e in entries]


def _synth_test_leaders() -> dict[str, Clip]:
    """The longest SynthDuet test clip of every genre."""
    from duet_env.data import load_split

    best: dict[str, Clip] = {}
    for c in load_split("synth", "test", progress=False):
        if c.genre not in best or len(c) > len(best[c.genre]):
            best[c.genre] = c
    return best


def run(policies: list[str], seconds: float, ids: list[str] | None, seed: int = 0,
        tokenizer: str = "default") -> dict:
    from agents.accompany.leaders import load_leader
    from agents.accompany.outputs import duet_metrics
    from agents.accompany.song import analyse_song
    from agents.rollout import generate_followers, load_policy
    from duet_env.env import load_tokenizer

    tok = load_tokenizer(tokenizer, "cpu")
    loaded = {name: load_policy(name) for name in policies}
    synth_leaders = _synth_test_leaders()
    rows = []
    for entry, path in _songs(ids):
        song = analyse_song(path)
        n = int(min(song.frames, seconds * FPS)) if seconds > 0 else song.frames
        leader = load_leader("synth", song, None, seed)
        genre = leader.genre
        lead_song = leader.dancer.slice(0, n)
        ref = synth_leaders[genre]
        m = min(len(ref), song.frames)
        clips = {
            "song leader": Clip(f"{entry['id']}", genre, song.features[:n], lead_song, lead_song, audio_path=str(path)),
            "synth leader": Clip(f"{entry['id']}-synth", genre, song.features[:m], ref.leader.slice(0, m),
                                 ref.leader.slice(0, m), audio_path=str(path)),
        }
        row = {"id": entry["id"], "genre_guess": entry.get("genre", ""), "tempo_bpm": song.tempo_bpm,
               "dance_genre": genre, "results": {}}
        for pol_name, pol in loaded.items():
            res = {}
            for cond, clip in clips.items():
                t0 = time.perf_counter()
                motion = generate_followers(pol, [clip], seed=seed, tokenizer=tok, reward="default", progress=False)[0]
                t = len(motion.joints)
                beats = clip.beat_frames[clip.beat_frames < t]
                met = duet_metrics(motion.joints, clip.leader.joints[:t], beats)
                res[cond] = {"follower_BAS": met["BAS"], "BED": met["BED"], "leader_BAS": met["leader"]["BAS"],
                             "reward_per_token": motion.reward, "seconds": t / FPS,
                             "wall_s": time.perf_counter() - t0}
            row["results"][pol_name] = res
        rows.append(row)
        _print_row(row, policies)
    summary = {p: {c: {k: float(np.nanmedian([r["results"][p][c][k] for r in rows]))
                       for k in ("follower_BAS", "BED", "leader_BAS", "reward_per_token")}
                   for c in CONDITIONS} for p in policies}
    print("\nmedian over", len(rows), "songs")
    for p in policies:
        for c in CONDITIONS:
            s = summary[p][c]
            print(f"  {p:28s} {c:13s} follower BAS {s['follower_BAS']:.3f}  BED {s['BED']:.3f}  "
                  f"leader BAS {s['leader_BAS']:.3f}  reward/token {s['reward_per_token']:.3f}")
    return {"songs": rows, "median": summary, "seconds": seconds, "seed": seed}


def _print_row(row: dict, policies: list[str]) -> None:
    print(f"{row['id']:22s} {row['tempo_bpm']:6.1f} bpm  {row['dance_genre']:7s}", flush=True)
    for p in policies:
        for c in CONDITIONS:
            r = row["results"][p][c]
            print(f"    {p:28s} {c:13s} follower BAS {r['follower_BAS']:.3f}  BED {r['BED']:.3f}  "
                  f"leader BAS {r['leader_BAS']:.3f}  reward/token {r['reward_per_token']:.3f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", nargs="+", default=["default"], help="policies: default | random | checkpoint folders")
    ap.add_argument("--seconds", type=float, default=60.0, help="excerpt length per song (0: whole songs)")
    ap.add_argument("--songs", nargs="*", default=None, help="ids of the set to run (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--tokenizer", default="default", help="tokenizer checkpoint the policies were trained with")
    ap.add_argument("--json", default=None, help="write all numbers here")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    result = run(args.policy, args.seconds, args.songs, args.seed, args.tokenizer)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
