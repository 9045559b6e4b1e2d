"""Can a better choice of tokens put the follower on a fast song's beat? A search, per token.

    python benchmarks/beat_search.py [--candidates 16] [--top-k 64] [--seconds 60] [--ids ID ...]

An upper-bound probe for issue 15 (real music), not a policy we ship. For each recording of the
real-music set (``benchmarks/real_music_set.py fetch`` first) and the song-driven leader (as
``benchmarks/real_music.py``'s first condition), the follower is generated twice through the
env's own core (:class:`duet_env.core.DuetCore`, the shipped tokenizer and GPT):

* ``greedy``: the GPT's argmax at every token — the published rollout (the printed BAS equals
  ``real_music.py``'s);
* ``search``: at every token, ``--candidates`` K tuples — the greedy one and K − 1 drawn from the
  GPT's ``--top-k`` most likely ids per stream — are decoded side by side in K slots of the core;
  the one with the best beat score is kept (greedy on ties) and its slot's state (decoder
  stream, decoded history, token history) is copied into every slot.

Beat score of a candidate: BAS's own definition (``duet_env.metrics.beats``: minima of the
σ = 5 smoothed mean speed of the 24 body points) on the decoded context window, each music beat
in frames F − 16 … F − 7 of the window (the ones the new token can still move and whose minima it
has mostly settled) scored exp(−d² / 18), d = frames to the nearest minimum, summed. Myopic: it
sees one token ahead, as the env's beat reward does.

Printed per song: tempo, dance genre, follower BAS and BED for both, and the share of tokens the
search changed; then the medians. About 35 s a song with K = 16 on one core.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NUMBA_CACHE_DIR", f"/tmp/numba_beat_search_{os.getpid()}")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from duet_env.conventions import BEAT_COLUMN, FPS, TOKEN_FRAMES  # noqa: E402

SCORED = (16, 7)  # music beats in context frames F − 16 … F − 7 are scored
BEAT_SIGMA = 3.0  # frames, as BAS


def beat_scores(follower_joints: np.ndarray, music_beat: np.ndarray) -> np.ndarray:
    """(K,) beat score of each slot's context (module docstring): follower joints (K, F, 55, 3),
    music beat flags (K, F)."""
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import argrelextrema

    from duet_env.metrics.beats import SPEED_SIGMA, mean_joint_speed

    k, f = music_beat.shape
    out = np.zeros(k)
    for r in range(k):
        minima = argrelextrema(gaussian_filter1d(mean_joint_speed(follower_joints[r]), SPEED_SIGMA), np.less)[0]
        beats = np.nonzero(music_beat[r, f - SCORED[0]:f - SCORED[1] + 1])[0] + f - SCORED[0]
        if len(minima) and len(beats):
            d = np.abs(beats[:, None] - minima[None, :]).min(axis=1)
            out[r] = np.exp(-(d ** 2) / (2 * BEAT_SIGMA ** 2)).sum()
    return out


def generate(policy, tokenizer, clip, candidates: int, top_k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """The follower's joints (T, 55, 3), its tokens (N, 5) and the share of tokens where a
    non-greedy candidate won (``candidates`` = 1: the greedy rollout)."""
    import torch

    from agents.rollout import whole_clip_core
    from duet_env.episodes import episode_clips
    from duet_env.observations import observation_factory
    from pretrain.gpt.policy import choose_tokens

    bank = episode_clips([clip] * candidates, tokenizer, with_follower=False)
    core = whole_clip_core(bank, tokenizer, policy.config["history"], policy.config["lookahead"])
    observe = observation_factory("tokens").observe
    gen = torch.Generator().manual_seed(seed)
    n = int(core.length[0])
    joints = np.zeros((n * TOKEN_FRAMES, 55, 3), np.float32)
    tokens = np.zeros((n, 5), np.int64)
    switched = 0
    for t in range(n):
        obs = {name: v[:1] for name, v in observe(core).items()}  # every slot holds the same history
        with torch.no_grad():
            logits = policy.act(obs)
        acts = [np.asarray(choose_tokens(logits, "greedy", 1.0, None, gen))]
        if candidates > 1:
            acts.append(np.asarray(choose_tokens([lg.expand(candidates - 1, -1) for lg in logits], "sample", 1.0,
                                                 top_k, gen)))
        act = np.concatenate(acts, axis=0)
        core.step(act)
        best = 0
        if candidates > 1:
            idx = (core.t * TOKEN_FRAMES)[:, None] + np.arange(core.F)  # the context just scored
            beat = core.music_frames[np.arange(candidates)[:, None], idx, BEAT_COLUMN] > 0.5
            score = beat_scores(core.follower_joints_hist, beat)
            best = int(np.argmax(score))  # argmax takes the first of equals: the greedy slot 0
            switched += best != 0
        joints[t * TOKEN_FRAMES:(t + 1) * TOKEN_FRAMES] = core.last_decoded["joints"][best].numpy()
        tokens[t] = act[best]
        if candidates > 1:  # every slot continues from the kept candidate
            for s in core.decoder.state:  # (G, B, context, C)
                s[:] = s[:, best:best + 1].clone()
            core.follower_joints_hist[:] = core.follower_joints_hist[best].copy()
            core.follower_history[:] = core.follower_history[best].copy()
    return joints, tokens, switched / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", type=int, default=16, help="tuples decoded per token (1 = greedy only)")
    ap.add_argument("--top-k", type=int, default=64, help="the sampled candidates' top-k per stream")
    ap.add_argument("--seconds", type=float, default=60.0, help="first seconds of each song")
    ap.add_argument("--ids", nargs="*", default=None, help="song ids (default: the whole set)")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args(argv)
    if args.candidates < 2 or args.top_k < 1:
        raise SystemExit("--candidates must be >= 2 and --top-k >= 1")
    import torch

    torch.set_num_threads(1)
    import real_music

    from agents.accompany.leaders import load_leader
    from agents.accompany.outputs import duet_metrics
    from agents.accompany.song import analyse_song
    from agents.rollout import load_policy
    from duet_env.data.clip import Clip
    from duet_env.env import load_tokenizer

    tok, pol = load_tokenizer("default", "cpu"), load_policy("default")
    rows = []
    for entry, path in real_music._songs(args.ids):
        started = time.perf_counter()
        song = analyse_song(path)
        n = int(min(song.frames, args.seconds * FPS)) if args.seconds > 0 else song.frames
        leader = load_leader("synth", song, None, 0)
        lead = leader.dancer.slice(0, n)
        clip = Clip(entry["id"], leader.genre, song.features[:n], lead, lead, audio_path=str(path))
        row = {"id": entry["id"], "tempo_bpm": song.tempo_bpm, "dance_genre": leader.genre}
        for name, k in (("greedy", 1), ("search", args.candidates)):
            joints, _, switched = generate(pol, tok, clip, k, args.top_k)
            t = len(joints)
            met = duet_metrics(joints, clip.leader.joints[:t], clip.beat_frames[clip.beat_frames < t])
            row[name] = {"BAS": met["BAS"], "BED": met["BED"], "switched": switched}
        rows.append(row)
        print(f"{row['id']:22s} {row['tempo_bpm']:6.1f} bpm {row['dance_genre']:7s} "
              f"greedy BAS {row['greedy']['BAS']:.3f} BED {row['greedy']['BED']:.3f} | search BAS "
              f"{row['search']['BAS']:.3f} BED {row['search']['BED']:.3f}, {row['search']['switched']:.0%} "
              f"of tokens changed | {time.perf_counter() - started:.0f} s", flush=True)
    for name in ("greedy", "search"):
        print(f"median over {len(rows)} songs, {name}: BAS {np.median([r[name]['BAS'] for r in rows]):.3f}  "
              f"BED {np.median([r[name]['BED'] for r in rows]):.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
