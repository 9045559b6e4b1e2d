"""Episode sources: the clips an env serves, prepared once in the arrays a step needs.

A :class:`ClipBank` holds, per clip, the leader's tokens (encoded once with the frozen
tokenizer and cached on disk), the leader's joints, the music features and the genre's
partner expectations. The env never touches files or the encoder during an episode.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_save_npz
from .conventions import BEAT_COLUMN, FPS, MUSIC_TOKEN_DIM, TOKEN_FRAMES
from .data.clip import Clip
from .genres import GenreStyle, style_of
from .paths import cache_dir


@dataclass
class EpisodeClip:
    """One clip trimmed to a whole number of tokens N (T = 4N frames)."""

    name: str
    genre: str
    style: GenreStyle
    music: np.ndarray            # (T, 54) float32
    leader_joints: np.ndarray    # (T, 55, 3) float32
    leader_tokens: np.ndarray    # (N, 4) int64
    follower_joints: np.ndarray | None = None   # (T, 55, 3) ground truth, when known
    follower_tokens: np.ndarray | None = None   # (N, 5) ground truth, when known
    audio_path: str | None = None

    @property
    def num_tokens(self) -> int:
        return self.leader_tokens.shape[0]

    @property
    def music_tokens(self) -> np.ndarray:
        """(N, 4*54): the music features of each token's 4 frames, flattened."""
        return self.music.reshape(self.num_tokens, MUSIC_TOKEN_DIM)

    @property
    def beats(self) -> np.ndarray:
        return self.music[:, BEAT_COLUMN] > 0.5


def _tokenizer_id(tokenizer) -> str:
    """Identity of the tokenizer's weights (falls back to codebook sizes for duck-typed stand-ins)."""
    return getattr(tokenizer, "fingerprint", None) or repr(sorted(tokenizer.codebook_sizes.items()))


def _encode_one(shared: tuple, i: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Tokens of job ``i`` of ``shared = (tokenizer, [(leader joints, follower joints or None)])``
    (a task of :func:`episode_clips`, in this process or a worker)."""
    tokenizer, jobs = shared
    enc = tokenizer.encode(*jobs[i])
    return enc["leader"], enc.get("follower")


def _encode_all(tokenizer, jobs: list, workers: int | None) -> list:
    """Tokens of every job, on one torch thread per process; spread over ``workers`` processes
    when the tokenizer is on the CPU (a CUDA context does not survive a fork)."""
    from .threads import torch_threads
    from .workers import map_ordered, resolve_workers

    workers = resolve_workers(workers)
    if str(getattr(tokenizer, "device", "cpu")) != "cpu":
        workers = 1
    with torch_threads(1):
        return map_ordered(_encode_one, range(len(jobs)), workers, shared=(tokenizer, jobs),
                           desc="tokenizing clips", progress=len(jobs) > 1)


def episode_clips(clips: list[Clip], tokenizer, cache_key: str | None = None,
                  with_follower: bool = True, workers: int | None = None) -> list[EpisodeClip]:
    """Trim clips to whole tokens and encode them, reusing an on-disk token cache when
    ``cache_key`` names the source (dataset root + split).

    The encoder runs on one torch thread, whatever the caller's setting: its tokens are then the
    same on every machine (on two threads a few in 10⁴ differed, float sums in another order),
    and it is faster. Clips are encoded on ``workers`` processes (:mod:`duet_env.workers`;
    None = ``$DUET_WORKERS`` or the cores), with the same tokens.
    """
    cache_file = None
    if cache_key is not None:
        digest = hashlib.sha1(json.dumps([cache_key, _tokenizer_id(tokenizer), [c.name for c in clips],
                                          [len(c) for c in clips]]).encode()).hexdigest()[:16]
        cache_file = cache_dir() / "env_tokens" / f"{digest}.npz"
    cached = None
    if cache_file is not None and cache_file.exists():
        try:
            cached = dict(np.load(cache_file))
        except (OSError, ValueError):  # a torn cache file is rebuilt, not trusted
            cached = None
    trimmed, jobs = [], []
    for i, c in enumerate(clips):
        n = len(c) // TOKEN_FRAMES
        if n < 1:
            raise ValueError(f"clip {c.name} has {len(c)} frames: shorter than one token ({TOKEN_FRAMES} frames)")
        t = n * TOKEN_FRAMES
        lj = c.leader.joints[:t]
        fj = c.follower.joints[:t] if with_follower else None
        trimmed.append((t, lj, fj))
        if not (cached is not None and f"l{i}" in cached):
            jobs.append((lj, fj))
    encoded = iter(_encode_all(tokenizer, jobs, workers) if jobs else [])
    out, to_save = [], {}
    for i, (c, (t, lj, fj)) in enumerate(zip(clips, trimmed)):
        if cached is not None and f"l{i}" in cached:
            lt = cached[f"l{i}"]
            ft = cached.get(f"f{i}")
        else:
            lt, ft = next(encoded)
        to_save[f"l{i}"] = lt
        if ft is not None:
            to_save[f"f{i}"] = ft
        out.append(EpisodeClip(c.name, c.genre, style_of(c.genre), np.asarray(c.music[:t], np.float32),
                               np.asarray(lj, np.float32), np.asarray(lt, np.int64),
                               None if fj is None else np.asarray(fj, np.float32),
                               None if ft is None else np.asarray(ft, np.int64), c.audio_path))
    if cache_file is not None and cached is None:
        atomic_save_npz(cache_file, to_save)
    return out


def load_dataset_clips(data: str, split: str, progress: bool = True) -> tuple[list[Clip], str]:
    """Clips of a dataset split and a cache key naming them. ``data`` is "synth" or a folder."""
    from .data import load_split, resolve_root

    clips = load_split(data, split, progress=progress)
    root = resolve_root(data)
    if not clips:
        raise ValueError(f"dataset {root} has no clips in split {split!r}")
    return clips, f"{Path(root).resolve()}::{split}"


def user_clip(music_file: str, leader_file: str, genre: str = "Unknown",
              max_length_mismatch_s: float = 1.0) -> Clip:
    """A single clip from the user's music file (any format librosa reads) and leader motion
    (a DD100-format SMPL-X ``.npy`` dict with ``poses`` and ``transl``).

    Music and motion lengths may differ by up to ``max_length_mismatch_s`` seconds (encoders and
    exports round differently); both are trimmed to the shorter. A larger difference is almost
    always the wrong pair of files and raises an error naming both lengths.
    """
    from .data.clip import Dancer
    from .data.safe_pickle import load_npy_dict
    from .music import extract_features

    d = load_npy_dict(leader_file)  # first: the cheap check of the two, and it never runs code
    music = extract_features(music_file)
    if "poses" not in d or "transl" not in d:
        raise ValueError(f"leader motion {leader_file} must hold 'poses' (T, 165) and 'transl' (T, 3); "
                         f"found keys {sorted(d)}")
    poses = np.asarray(d["poses"], np.float32)
    transl = np.asarray(d["transl"], np.float32)
    if not (np.isfinite(poses).all() and np.isfinite(transl).all()):
        raise ValueError(f"leader motion {leader_file} contains NaN or inf")
    tm, tl = len(music), len(poses)
    if abs(tm - tl) > max_length_mismatch_s * FPS:
        raise ValueError(
            f"music {music_file} has {tm} frames ({tm / FPS:.1f} s) but leader motion {leader_file} has "
            f"{tl} frames ({tl / FPS:.1f} s): they differ by more than {max_length_mismatch_s} s"
        )
    t = min(tm, tl)
    leader = Dancer(poses[:t], transl[:t])
    # No follower exists yet: the leader stands in so the clip is well-formed; it is never scored.
    return Clip(Path(music_file).stem, genre, music[:t], leader, leader, audio_path=str(music_file))
