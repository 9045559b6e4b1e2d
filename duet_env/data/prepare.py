"""Precompute and cache every clip of a DD100-layout folder.

    python -m duet_env.data.prepare --root DIR [--model-path P] [--workers N] [--force]

For each clip it validates both motion files, computes joint positions (float32 (T, 55, 3);
built-in skeleton, or SMPL-X with ``--model-path``) and the 54-d music features, and writes one
``<clip>.npz`` atomically into ``ROOT/.duet_cache/`` — or, when ROOT is read-only,
``cache_dir()/prepared/<hash of the root path>/`` (see :func:`duet_env.data.dd100.prepared_dir`).
Local rotation matrices are not stored: :func:`duet_env.data.dd100.local_rotations` derives them
from the cached poses on demand.

A rerun skips clips whose cache fingerprint (source sizes + mtimes, model path, versions) still
matches. Malformed clips are skipped and listed in a summary at the end; they never remove other
clips' cache files. The exit status is 1 if any clip failed, else 0.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_save_npz
from . import dd100


@dataclass
class PrepareReport:
    """What a prepare run did: clip names computed now, found cached, and failures (where, why)."""

    cache_dir: Path
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [
            f"prepared {len(self.computed)} clip(s), {len(self.cached)} already cached, "
            f"{len(self.failed)} failed in {self.seconds:.1f} s -> {self.cache_dir}"
        ]
        if self.failed:
            width = max(len(w) for w, _ in self.failed)
            lines.append(f"{'failed clip / file'.ljust(width)} | problem")
            lines.append(f"{'-' * width}-+-{'-' * 40}")
            lines += [f"{w.ljust(width)} | {m}" for w, m in sorted(self.failed)]
        return "\n".join(lines)


def _prepare_one(files: dd100.ClipFiles, model_path: str | None, target: Path) -> tuple[str, str | None]:
    """Compute and write one clip; returns (name, None) or (name, problem). Never raises, so
    one bad clip cannot stop the others."""
    try:
        # The music cache is shared too (a few hundred bytes per frame): a song already analysed,
        # e.g. before a --model-path rerun, is not decoded again.
        arrays = dd100.compute_clip_arrays(files, model_path, music_cache=True)
        atomic_save_npz(target, arrays)
        return files.name, None
    except dd100.DataError as exc:
        return files.name, str(exc)
    except Exception as exc:  # an unexpected failure is reported like a malformed clip
        return files.name, f"{type(exc).__name__}: {exc}"


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # N workers x 1 thread each: do not oversubscribe the cores


def prepare(root: str | os.PathLike, model_path: str | os.PathLike | None = None, workers: int = 1,
            progress: bool = True, force: bool = False) -> PrepareReport:
    """Cache every clip under ``root`` (see the module docstring); returns a :class:`PrepareReport`."""
    from tqdm.auto import tqdm

    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    start = time.perf_counter()
    root = Path(root)
    model = None if model_path is None else str(model_path)
    if model is not None and not Path(model).exists():
        raise FileNotFoundError(f"{model}: SMPL-X model path not found (--model-path)")
    clips, problems = dd100.scan(root)
    out_dir = dd100.prepared_dir(root, for_writing=True)
    report = PrepareReport(cache_dir=out_dir, failed=list(problems))

    todo: list[dd100.ClipFiles] = []
    for files in clips:
        if not force and dd100.cache_file(files) == out_dir / f"{files.name}.npz" and dd100.is_cached(files, model):
            report.cached.append(files.name)
        else:
            todo.append(files)

    bar = tqdm(total=len(todo), desc="preparing clips", unit="clip", disable=not progress)

    def record(name: str, problem: str | None) -> None:
        if problem is None:
            report.computed.append(name)
        else:
            report.failed.append((name, problem))
        bar.update(1)

    if workers == 1 or len(todo) <= 1:
        for files in todo:
            record(*_prepare_one(files, model, out_dir / f"{files.name}.npz"))
    else:
        import multiprocessing

        # librosa's numba functions are compiled into an on-disk cache on first use; workers
        # compiling them at the same time on a fresh install corrupt it (seen as segfaults),
        # so compile once here before any worker starts.
        from ..music import warm_up

        warm_up()
        # spawn: forking a process that already holds torch/OpenMP threads can deadlock.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            futures = [pool.submit(_prepare_one, f, model, out_dir / f"{f.name}.npz") for f in todo]
            for fut in as_completed(futures):
                record(*fut.result())
    bar.close()
    report.computed.sort()
    report.seconds = time.perf_counter() - start
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m duet_env.data.prepare",
        description="Validate and cache joints and music features of every clip in a DD100-layout folder.",
    )
    parser.add_argument("--root", required=True, help="dataset root (holds motion/smplx/all and music/)")
    parser.add_argument("--model-path", default=None, help="SMPL-X model folder for exact joints (optional)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--force", action="store_true", help="recompute clips that are already cached")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        report = prepare(args.root, args.model_path, args.workers, progress=not args.quiet, force=args.force)
    except (dd100.DataError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
