"""Token data for the follower GPT: tokenised clips and observation windows.

A *token clip* is a dict ``{"name", "music" (N, 216) float32, "leader" (N, 4) int64,
"leader_turn" (N, 4) float32, "follower" (N, 5) int64}``: per token, the 4 frames × 54 music
features of the token's frames (frame-major, i.e. ``music[4i:4i+4].reshape(216)``), both dancers'
tokens and the leader's turn at the token's 4 frames (rad/s, the env's ``"leader_turn"``:
:func:`duet_env.motion.turn_per_token` of ``Tokenizer.clip_leader_heading``).

Windows are cut exactly as the env builds its ``"tokens"`` observation (duet_env/tokens.py):
for decision step t the music/leader window covers t−H … t+A with zero music and pad ids
outside the clip, and the follower history covers t−H … t−1 with pad ids before the start.
Training crops end at every t of the clip with equal probability, so the first steps (padded
history) are learned too; a share of them is cut inside a random env-sized episode (default 64
tokens) and padded outside it, because the env pads at *episode* starts/ends, mid-clip.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from duet_env.conventions import FOLLOWER_STREAMS, LEADER_STREAMS, MUSIC_DIM, TOKEN_FRAMES
from duet_env.motion import turn_per_token
from duet_env.tokens import window_length


TOKEN_CLIP_ARRAYS = ("music", "leader", "leader_turn", "follower")
IGNORE = -100  # target id of positions outside the clip (F.cross_entropy's ignore_index)
TOKEN_CACHE_VERSION = 2  # 2: token clips carry the leader's turn


def music_per_token(music: np.ndarray, n_tokens: int) -> np.ndarray:
    """(T, 54) frame features -> (N, 216): the 4 frames of each token, zero-padded past T."""
    music = np.asarray(music, np.float32)
    if music.ndim != 2 or music.shape[1] != MUSIC_DIM:
        raise ValueError(f"music must have shape (T, {MUSIC_DIM}); got {music.shape}")
    need = n_tokens * TOKEN_FRAMES
    out = np.zeros((need, MUSIC_DIM), np.float32)
    out[:min(need, len(music))] = music[:need]
    return out.reshape(n_tokens, TOKEN_FRAMES * MUSIC_DIM)


def check_token_clip(clip: dict, codebook_sizes: dict[str, int], where: str = "token clip") -> None:
    """Raise a clear error when a token clip has wrong shapes, NaN music or ids out of range."""
    n = len(clip["follower"])
    shapes = {"music": (n, TOKEN_FRAMES * MUSIC_DIM), "leader": (n, len(LEADER_STREAMS)),
              "leader_turn": (n, TOKEN_FRAMES), "follower": (n, len(FOLLOWER_STREAMS))}
    for key, shape in shapes.items():
        if key not in clip:
            raise ValueError(f"{where} {clip.get('name')!r}: no {key!r} (keys {sorted(clip)})")
        if np.shape(clip[key]) != shape:
            raise ValueError(f"{where} {clip.get('name')!r}: {key} has shape {np.shape(clip[key])}, expected {shape}")
    for key in ("music", "leader_turn"):
        if not np.isfinite(clip[key]).all():
            raise ValueError(f"{where} {clip.get('name')!r}: {key} contains NaN or inf")
    for key, streams in (("leader", LEADER_STREAMS), ("follower", FOLLOWER_STREAMS)):
        k = np.array([codebook_sizes[s] for s in streams])
        ids = np.asarray(clip[key])
        if ids.size and ((ids < 0) | (ids >= k)).any():
            raise ValueError(f"{where} {clip.get('name')!r}: {key} ids outside [0, K) for K = {k.tolist()}")


def tokenize_clips(clips: Sequence, tokenizer, progress: bool = True) -> list[dict]:
    """Clips (duet_env.data.clip.Clip) -> token clips, with ``tokenizer.encode(leader, follower)``."""
    out = []
    for clip in tqdm(clips, desc="tokenising clips", disable=not progress, leave=False):
        # Trim to whole tokens first, as the env does (duet_env/episodes.py), so tokens match.
        t = (len(clip.music) // TOKEN_FRAMES) * TOKEN_FRAMES
        if t == 0:
            raise ValueError(f"clip {clip.name} has {len(clip.music)} frames: shorter than one token")
        tok = tokenizer.encode(clip.leader.joints[:t], clip.follower.joints[:t])
        leader = np.asarray(tok["leader"], np.int64)
        follower = np.asarray(tok["follower"], np.int64)
        if len(leader) != len(follower):
            raise ValueError(f"tokenizer gave {len(leader)} leader but {len(follower)} follower tokens for {clip.name}")
        turn = turn_per_token(tokenizer.clip_leader_heading(clip.leader.joints[:t]))  # as DuetCore.clip_leader_turn
        token_clip = {"name": clip.name, "music": music_per_token(clip.music, len(follower)),
                      "leader": leader, "leader_turn": turn, "follower": follower}
        check_token_clip(token_clip, tokenizer.codebook_sizes, where="tokenised clip")
        out.append(token_clip)
    return out


# -- caching ----------------------------------------------------------------------------
def _fingerprint(parts: Iterable) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer_name: str) -> str:
    """Identify a tokenizer checkpoint by its name and its files' sizes and mtimes.

    Cheap and good enough to invalidate the token cache when a tokenizer is retrained in
    place (its files are rewritten).
    """
    from duet_env.checkpoint import CheckpointError, resolve

    try:
        folder = resolve(tokenizer_name)
    except CheckpointError:
        return _fingerprint([tokenizer_name])
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(("gpt", ".")))
    return _fingerprint([str(folder.resolve())] + [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])


def save_token_clips(path: Path, clips: list[dict]) -> None:
    arrays = {}
    for i, c in enumerate(clips):
        for key in TOKEN_CLIP_ARRAYS:
            arrays[f"{i}/{key}"] = c[key]
    arrays["names"] = np.array([c["name"] for c in clips])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_token_clips(path: Path) -> list[dict]:
    with np.load(path) as z:
        names = z["names"].tolist()
        return [{"name": n, **{key: z[f"{i}/{key}"] for key in TOKEN_CLIP_ARRAYS}} for i, n in enumerate(names)]


def dataset_fingerprint(root: str | os.PathLike) -> str:
    """Hash of (path, size, mtime) of every motion and music file under ``root``."""
    root = Path(root)
    entries = []
    for sub in ("motion", "music"):
        for p in sorted((root / sub).rglob("*")):
            if p.is_file():
                st = p.stat()
                entries.append([str(p.relative_to(root)), st.st_size, st.st_mtime_ns])
    return _fingerprint(entries)


def load_split_tokens(data: str, split: str, tokenizer_name: str, cache_folder: str | os.PathLike,
                      progress: bool = True) -> tuple[list[dict], dict[str, int]]:
    """Token clips of a dataset split, tokenised once and cached in ``cache_folder``.

    Returns ``(token_clips, codebook_sizes)``. The cache file is keyed by the dataset folder,
    its files' sizes and modification times (a regenerated dataset is re-tokenised), the split
    and the tokenizer fingerprint.
    """
    from duet_env.data import load_split, resolve_root
    from duet_env.tokenizer import Tokenizer

    root = resolve_root(data)
    tokenizer = Tokenizer.load(tokenizer_name)
    tok_id = getattr(tokenizer, "fingerprint", None) or tokenizer_fingerprint(tokenizer_name)
    key = _fingerprint([TOKEN_CACHE_VERSION, str(Path(root).resolve()), dataset_fingerprint(root), split, tok_id])
    cache = Path(cache_folder) / f"tokens-{split}-{key}.npz"
    sizes = {s: int(tokenizer.codebook_sizes[s]) for s in FOLLOWER_STREAMS}
    if cache.exists():
        try:
            clips = load_token_clips(cache)
            for c in clips:
                check_token_clip(c, sizes, where=f"cached tokens {cache}")
            return clips, sizes
        except Exception:  # a torn or stale cache is rebuilt, never trusted
            cache.unlink(missing_ok=True)
    clips = load_split(root, split, progress=progress)
    if not clips:
        raise ValueError(f"dataset {root} has no clips in split {split!r}")
    token_clips = tokenize_clips(clips, tokenizer, progress=progress)
    save_token_clips(cache, token_clips)
    return token_clips, sizes


# -- windows ----------------------------------------------------------------------------
class WindowSampler:
    """Observation windows (and teacher-forcing targets) cut from token clips.

    For decision step t of a clip, :meth:`windows` returns ``music`` (W, 216), ``leader``
    (W, 4) and ``leader_turn`` (W, 4) for t−H … t+A, ``follower`` (H, 5) for t−H … t−1, and ``targets`` (H + 1, 5)
    = the follower tokens t−H … t with :data:`IGNORE` before the clip start.
    """

    def __init__(self, clips: Sequence[dict], codebook_sizes: dict[str, int], history: int, lookahead: int):
        if not clips:
            raise ValueError("WindowSampler needs at least one token clip")
        self.h, self.a = history, lookahead
        self.w = window_length(history, lookahead)
        lead_pad = np.array([codebook_sizes[s] for s in LEADER_STREAMS], np.int64)
        fol_pad = np.array([codebook_sizes[s] for s in FOLLOWER_STREAMS], np.int64)
        self.leader_pad, self.follower_pad = lead_pad, fol_pad
        self.music, self.leader, self.turn, self.follower, self.targets = [], [], [], [], []
        for c in clips:
            check_token_clip(c, codebook_sizes)
            # Pad so that the window of step t starts at index t of the padded arrays.
            self.music.append(np.concatenate([np.zeros((history, c["music"].shape[1]), np.float32),
                                              np.asarray(c["music"], np.float32),
                                              np.zeros((lookahead, c["music"].shape[1]), np.float32)]))
            self.turn.append(np.concatenate([np.zeros((history, TOKEN_FRAMES), np.float32),
                                             np.asarray(c["leader_turn"], np.float32),
                                             np.zeros((lookahead, TOKEN_FRAMES), np.float32)]))
            self.leader.append(np.concatenate([np.tile(lead_pad, (history, 1)), c["leader"],
                                               np.tile(lead_pad, (lookahead, 1))]).astype(np.int64))
            self.follower.append(np.concatenate([np.tile(fol_pad, (history, 1)), c["follower"]]).astype(np.int64))
            self.targets.append(np.concatenate([np.full((history, len(fol_pad)), IGNORE, np.int64),
                                                c["follower"]]).astype(np.int64))
        self.lengths = np.array([len(c["follower"]) for c in clips])
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])

    @property
    def n_steps(self) -> int:
        return int(self.offsets[-1])

    def windows(self, clip_index: Sequence[int], t: Sequence[int], lo: Sequence[int] | None = None,
                hi: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        """Stacked windows for decision steps ``t[i]`` of clips ``clip_index[i]``.

        ``lo``/``hi`` (optional) are episode bounds [lo, hi) inside the clip: everything outside
        them is padded as the env pads outside its episode (zero music, pad ids), and targets
        before ``lo`` are ignored — their inputs would be padding.
        """
        h, w = self.h, self.w
        music = np.stack([self.music[c][s:s + w] for c, s in zip(clip_index, t)])
        leader = np.stack([self.leader[c][s:s + w] for c, s in zip(clip_index, t)])
        turn = np.stack([self.turn[c][s:s + w] for c, s in zip(clip_index, t)])
        follower = np.stack([self.follower[c][s:s + h] for c, s in zip(clip_index, t)])
        targets = np.stack([self.targets[c][s:s + h + 1] for c, s in zip(clip_index, t)])
        if lo is not None or hi is not None:
            t = np.asarray(t)
            lo = np.zeros_like(t) if lo is None else np.asarray(lo)
            hi = self.lengths[np.asarray(clip_index)] if hi is None else np.asarray(hi)
            times = t[:, None] - h + np.arange(w)
            before, after = times < lo[:, None], times >= hi[:, None]
            music[before | after] = 0.0
            turn[before | after] = 0.0
            leader[before | after] = self.leader_pad
            follower[before[:, :h]] = self.follower_pad
            targets[before[:, :h + 1]] = IGNORE
        return {"music": music, "leader": leader, "leader_turn": turn, "follower": follower, "targets": targets}

    def locate(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat step indices over all clips -> (clip index, t)."""
        clip_index = np.searchsorted(self.offsets, flat, side="right") - 1
        return clip_index, flat - self.offsets[clip_index]

    def turn_steps(self, rate: float) -> np.ndarray:
        """Flat indices of the steps whose window (t−H … t+A) holds a leader turn faster than
        ``rate`` rad/s (``|leader_turn|`` at any frame)."""
        out = []
        for c, turn in enumerate(self.turn):
            fast = np.abs(turn).max(-1) > rate  # per padded token index
            n = self.lengths[c]
            # window of step t = padded indices t … t + W − 1
            hit = np.lib.stride_tricks.sliding_window_view(fast, self.w)[:n].any(-1)
            out.append(self.offsets[c] + np.flatnonzero(hit))
        return np.concatenate(out).astype(np.int64)

    def sample(self, rng: np.random.Generator, batch_size: int, episode_tokens: int | None = None,
               episode_fraction: float = 0.0, focus: np.ndarray | None = None,
               focus_fraction: float = 0.0) -> dict[str, np.ndarray]:
        """A batch of windows whose decision step is uniform over all steps of all clips.

        With probability ``episode_fraction`` a window is cut as the env serves it inside an
        episode of ``episode_tokens`` tokens (a uniformly chosen one among those containing
        the step), padded outside the episode; otherwise the episode is the whole clip.
        ``focus`` (flat step indices, e.g. :meth:`turn_steps`): a share ``focus_fraction`` of the
        windows draws its step uniformly from them instead (rare situations seen more often).
        """
        flat = rng.integers(0, self.n_steps, size=batch_size)
        if focus_fraction > 0 and focus is not None and len(focus):
            use = rng.random(batch_size) < focus_fraction
            flat = np.where(use, focus[rng.integers(0, len(focus), size=batch_size)], flat)
        clip_index, t = self.locate(flat)
        n = self.lengths[clip_index]
        lo, hi = np.zeros_like(t), n.copy()
        if episode_tokens and episode_fraction > 0:
            e = np.minimum(int(episode_tokens), n)
            first, last = np.maximum(0, t - e + 1), np.minimum(t, n - e)
            start = first + np.floor(rng.random(batch_size) * (last - first + 1)).astype(np.int64)
            use = rng.random(batch_size) < episode_fraction
            lo, hi = np.where(use, start, lo), np.where(use, start + e, hi)
        return self.windows(clip_index, t, lo, hi)


def observation(clip: dict, t: int, codebook_sizes: dict[str, int], history: int, lookahead: int
                ) -> dict[str, np.ndarray]:
    """The env's ``"tokens"`` observation for step t of a token clip (flat duet_env/tokens.py layout)."""
    win = WindowSampler([clip], codebook_sizes, history, lookahead).windows([0], [t])
    return {"music": win["music"][0], "leader": win["leader"][0].reshape(-1),
            "leader_turn": win["leader_turn"][0].reshape(-1), "follower": win["follower"][0].reshape(-1)}


# -- extra training data ----------------------------------------------------------------------
def extra_train_clips(sources: Sequence[str], data: str, tokenizer_name: str, cache_folder: str | os.PathLike,
                      excluded: Iterable[str] = (), progress: bool = True) -> list[dict]:
    """Token clips of the train split of every source in ``sources`` (config ``train.extra_train``),
    to be added to the training clips of ``data`` — after its validation hold-out, so validation
    stays on ``data``'s own clips, and no source's test split is ever read.

    Each clip is renamed ``"<source>/<name>"`` (sources reuse clip names); clips of the
    ``excluded`` genres are dropped, as from ``data``. A source that resolves to the same folder
    as ``data`` or as an earlier source is a ValueError (its clips would count twice).
    """
    from duet_env.data import resolve_root

    from .genres import genres_of, parse_genres

    excluded = set(parse_genres(excluded))
    seen = {Path(resolve_root(data)).resolve(): f"the training data {data!r}"}
    out: list[dict] = []
    for source in sources:
        root = Path(resolve_root(source)).resolve()
        if root in seen:
            raise ValueError(f"train.extra_train: {source!r} is the same dataset as {seen[root]} ({root})")
        seen[root] = repr(source)
        clips, _ = load_split_tokens(source, "train", tokenizer_name, cache_folder, progress=progress)
        genre_of = genres_of(source) if excluded else {}
        out += [{**c, "name": f"{source}/{c['name']}"} for c in clips if genre_of.get(c["name"]) not in excluded]
    return out
