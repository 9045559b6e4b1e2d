"""Speed of ``python -m agents.accompany`` on a generated song (not a test).

    python benchmarks/accompany_speed.py [--seconds 180] [--genre Waltz] [--threads N] [--no-video]
                                         [--policy default] [--profile]

Synthesizes a song of ``--seconds`` (SynthDuet music, :func:`duet_env.data.synth.synthesize_clip`),
then runs the whole accompaniment in this process with the default synth leader, in a fresh
feature cache (so the music features are computed, as on a user's first run of a song), and prints
every stage's wall-clock and CPU time and speed (song length / time; the CPU time, of this process
and its ffmpeg children, is what a stage costs: on a machine shared with other jobs the wall clock
grows, the CPU time much less). Targets (issue 13): the run without the video
at least 5x real time, the video at least real time. ``--profile`` adds the functions where the
time goes (cProfile, cumulative).
"""
from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_song(folder: Path, seconds: float, genre: str, seed: int = 0) -> Path:
    import soundfile as sf

    from duet_env.data import synth
    from duet_env.data.synth_music import SAMPLE_RATE

    clip = synth.synthesize_clip(genre, 1, seconds, seed)
    path = folder / f"{genre}_{int(seconds)}s.wav"
    sf.write(path, clip.audio, SAMPLE_RATE, subtype="PCM_16")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--genre", default="Waltz", help="genre of the synthesized song")
    ap.add_argument("--policy", default="default")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the command line)")
    ap.add_argument("--no-video", action="store_true")
    ap.add_argument("--profile", action="store_true", help="print the top functions by cumulative time")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="accompany_speed_") as tmp:
        tmp = Path(tmp)
        os.environ["DUET_CACHE_DIR"] = str(tmp / "cache")  # cold music features
        t0 = time.perf_counter()
        song = make_song(tmp, args.seconds, args.genre)
        print(f"song: {song.name} ({args.seconds:.0f} s), synthesized in {time.perf_counter() - t0:.1f} s; "
              f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs", flush=True)
        from agents.accompany import AccompanyConfig, accompany

        cfg = AccompanyConfig(music=song, out=tmp / "out", policy=args.policy, video=not args.no_video,
                              progress=False)
        prof = cProfile.Profile() if args.profile else None
        if prof:
            prof.enable()
        result = accompany(cfg)
        if prof:
            prof.disable()
    secs = result.seconds
    wall, cpu = result.timings, result.cpu_timings
    print(f"\n{'stage':<14}{'wall s':>9}{'x real time':>13}{'CPU s':>9}{'x real time (CPU)':>19}")
    for stage in wall:
        print(f"{stage:<14}{wall[stage]:>9.2f}{secs / wall[stage]:>13.1f}{cpu[stage]:>9.2f}"
              f"{secs / max(cpu[stage], 1e-9):>19.1f}")
    rows = [("no video", [s for s in wall if s != "video"], 5)] + ([("video", ["video"], 1)] if "video" in wall else [])
    for name, stages, target in rows:
        w, c = sum(wall[s] for s in stages), sum(cpu[s] for s in stages)
        print(f"{name:<14}{w:>9.2f}{secs / w:>13.1f}{c:>9.2f}{secs / c:>19.1f}   (target >= {target})")
    print(f"load average after the run: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"(other processes on the {os.cpu_count()} CPUs slow the wall clock, not the CPU time)")
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
