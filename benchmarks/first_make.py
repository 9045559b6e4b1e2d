"""The first ``gym.make("DuetAccompany-v0")`` on a fresh cache, serial vs worker processes (not a test).

    python benchmarks/first_make.py [--workers 1,2] [--cold-numba] [--baseline DIR] [--keep]

Each variant runs in its own Python process with an empty temporary ``DUET_CACHE_DIR``, so it
generates SynthDuet, extracts the music features and tokenizes the train clips, as on a fresh
machine; ``DUET_WORKERS`` sets its worker count (:mod:`duet_env.workers`). The variants run one
after the other in one invocation and are printed side by side: wall time of ``gym.make``, the
CPU time of the process and its workers, and the phases (SynthDuet generation, loading the clips
with their music features, tokenizing). Afterwards the caches the variants wrote are compared
byte for byte (dataset files, music features, env token cache).

librosa's numba kernels are compiled once before the timed runs (a throw-away process), so the
variants share a warm numba cache, as on a machine where librosa has run before;
``--cold-numba`` gives every variant its own empty numba cache instead (the very first run on a
machine: add the compile). ``--baseline DIR`` adds a row for the code in DIR (e.g. a checkout of
an older commit: ``git worktree add /tmp/old <commit>``), run the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs in the child: time gym.make and its phases (by wrapping the functions that do them).
CHILD = r"""
import json, sys, time
t_start = time.perf_counter()
import gymnasium as gym
import duet_env
from duet_env import episodes
from duet_env.data import dd100, synth
phases = {"synth": 0.0, "load": 0.0, "tokenize": 0.0}

def timed(owner, name, phase):
    fn = getattr(owner, name)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            phases[phase] += time.perf_counter() - t
    setattr(owner, name, wrapper)

timed(synth, "generate", "synth")
timed(dd100, "load_split", "load")
timed(episodes, "episode_clips", "tokenize")
t0 = time.perf_counter()
env = gym.make("DuetAccompany-v0")
make = time.perf_counter() - t0
phases["load"] -= phases["synth"]  # load_split generates the dataset first
print("RESULT " + json.dumps({"make": make, "import": t0 - t_start, **phases}))
"""

WARM = "from duet_env.music import warm_up; warm_up()"


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_variant(label: str, code_dir: Path, workers: int | None, cache: Path, numba_dir: str | None) -> dict:
    env = dict(os.environ, DUET_CACHE_DIR=str(cache), PYTHONPATH=str(code_dir))
    env.pop("DUET_WORKERS", None)
    if workers is not None:
        env["DUET_WORKERS"] = str(workers)
    if numba_dir is not None:
        env["NUMBA_CACHE_DIR"] = numba_dir
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=str(code_dir), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    out.update(label=label, process=wall,
               cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return out


def cache_digest(cache: Path) -> dict[str, bytes]:
    """The cache's files by a name that does not depend on the cache's location (the token
    cache's file name hashes the dataset's path, so it is keyed by its folder only)."""
    files = {}
    for p in sorted(cache.rglob("*")):
        if p.is_file():
            rel = p.relative_to(cache)
            key = "env_tokens/*.npz" if rel.parts[0] == "env_tokens" else str(rel)
            files[key] = p.read_bytes()
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default=f"1,{len(os.sched_getaffinity(0))}",
                    help="comma-separated worker counts to compare (default: 1 and the cores)")
    ap.add_argument("--cold-numba", action="store_true", help="an empty numba cache for every variant")
    ap.add_argument("--baseline", type=Path, default=None, help="also time the code in this folder")
    ap.add_argument("--keep", action="store_true", help="keep the temporary caches (their paths are printed)")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="duet_first_make_"))
    variants = [(f"workers={n}", REPO, n) for n in counts]
    if args.baseline is not None:
        variants.insert(0, (f"baseline {args.baseline}", args.baseline.resolve(), None))
    print(f"{len(os.sched_getaffinity(0))} cores, load average at start: {_load()}", flush=True)
    if not args.cold_numba:  # compile librosa's kernels once, untimed
        subprocess.run([sys.executable, "-c", WARM], env=dict(os.environ, DUET_CACHE_DIR=str(tmp / "warm"),
                       PYTHONPATH=str(REPO)), check=True, capture_output=True)
    rows, caches = [], {}
    for i, (label, code, n) in enumerate(variants):
        cache = tmp / f"cache{i}"
        numba_dir = str(tmp / f"numba{i}") if args.cold_numba else None
        print(f"running {label} ... (load average {_load()})", flush=True)
        rows.append(run_variant(label, code, n, cache, numba_dir))
        caches[label] = cache
    print(f"load average at end: {_load()}\n")
    width = max(len(r["label"]) for r in rows)
    print(f"{'variant':<{width}}  {'gym.make':>9}  {'CPU (all processes)':>19}  {'SynthDuet':>9}  "
          f"{'load clips':>10}  {'tokenize':>8}")
    for r in rows:
        print(f"{r['label']:<{width}}  {r['make']:8.1f}s  {r['cpu']:18.1f}s  {r['synth']:8.1f}s  "
              f"{r['load']:9.1f}s  {r['tokenize']:7.1f}s")
    ref_label, ref = rows[0]["label"], cache_digest(caches[rows[0]["label"]])
    for r in rows[1:]:
        other = cache_digest(caches[r["label"]])
        differ = sorted(k for k in ref.keys() | other.keys() if ref.get(k) != other.get(k))
        verdict = "byte-identical" if not differ else f"{len(differ)} files differ, e.g. {differ[:3]}"
        print(f"caches of {r['label']} vs {ref_label}: {len(other)} files, {verdict}")
    if args.keep:
        print(f"caches kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
