"""Loader for the DD100 duet dataset layout (and SynthDuet, which writes the same layout).

Layout under ``ROOT``::

    motion/smplx/all/<GENRE>_<CHOREO>_<TAKE>_00.npy   follower (pickled dict)
    motion/smplx/all/<GENRE>_<CHOREO>_<TAKE>_01.npy   leader
    music/mp3/all/<GENRE>_<CHOREO>_<TAKE>.mp3         music (.wav/.ogg/.flac also accepted,
                                                      also under any music/<kind>/all/)

Each motion dict holds ``poses`` (T x 165 axis-angle, SMPL-X joint order), ``transl`` (T x 3),
``betas`` and ``gender``. Files are read with :mod:`duet_env.data.safe_pickle`, so a data file
can never run code.

**Length rule.** DD100 music is usually a few frames longer or shorter than the motion, and the
two dancers may differ by a frame; a loaded clip is cut to
``T = min(follower frames, leader frames, music frames)`` from the start (all at 30 fps).

**Split rule** (Duolando): choreography index % 5 == 0 -> test, the rest train; for Ballet the
test choreographies are 9 and 10 instead.

**Caching.** ``python -m duet_env.data.prepare`` (see :mod:`duet_env.data.prepare`) stores each
clip's validated motion, joint positions and music features in one ``.npz``; :func:`load_clip`
uses it when its fingerprint (size and mtime of the source files, model path, format version)
still matches. Local rotation matrices are *not* stored (they would be ~2 kB per frame per
dancer); :func:`local_rotations` computes them from the poses on demand.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np

from .. import motion, skeleton
from .clip import Clip, Dancer
from .default import resolve_root
from .safe_pickle import UnsafePickleError, load_npy_dict

log = logging.getLogger(__name__)

MOTION_DIR = Path("motion") / "smplx" / "all"
MUSIC_DIR = Path("music") / "mp3" / "all"
AUDIO_SUFFIXES = (".mp3", ".wav", ".ogg", ".flac")
FOLLOWER_SUFFIX = "_00"
LEADER_SUFFIX = "_01"
BALLET_TEST_CHOREOS = (9, 10)
CACHE_VERSION = 1
NUM_BETAS = 10
SMPLX_CHUNK = 256  # frames per SMPL-X forward pass: bounds memory (vertices are 10475 x 3 per frame)

# What np.load raises for a truncated or foreign .npz: such a cache entry is ignored and rebuilt.
_UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)

_NAME_RE = re.compile(r"^(?P<genre>[A-Za-z0-9]+)_(?P<choreo>\d+)_(?P<take>.+)$")


class DataError(ValueError):
    """A dataset file is missing, malformed or inconsistent; the message names the file."""


@dataclass(frozen=True)
class ClipFiles:
    """The files of one DD100 clip. ``choreo`` is the choreography index (leading zeros dropped)."""

    name: str
    genre: str
    choreo: int
    take: str
    follower: Path
    leader: Path
    music: Path
    root: Path


def parse_name(name: str) -> tuple[str, int, str]:
    """``"<GENRE>_<CHOREO>_<TAKE>"`` -> ``(genre, choreo index, take)``; DataError otherwise."""
    match = _NAME_RE.match(name)
    if match is None:
        raise DataError(f"clip name {name!r} is not <GENRE>_<CHOREO>_<TAKE> with a numeric CHOREO")
    return match["genre"], int(match["choreo"]), match["take"]


def split_of(name: str) -> Literal["train", "test"]:
    """Train/test split of a clip name (Duolando's rule, see the module docstring)."""
    genre, choreo, _ = parse_name(name)
    if genre.lower() == "ballet":
        return "test" if choreo in BALLET_TEST_CHOREOS else "train"
    return "test" if choreo % 5 == 0 else "train"


def _find_music(root: Path, name: str) -> Path | None:
    candidates = [root / MUSIC_DIR / f"{name}{s}" for s in AUDIO_SUFFIXES]
    music_root = root / "music"
    if music_root.is_dir():
        for kind in sorted(p for p in music_root.iterdir() if p.is_dir()):
            candidates += [kind / "all" / f"{name}{s}" for s in AUDIO_SUFFIXES]
    return next((c for c in candidates if c.is_file()), None)


def scan(root: str | os.PathLike) -> tuple[list[ClipFiles], list[tuple[str, str]]]:
    """Pair the files under ``root``: complete clips (sorted by name) and problems.

    A problem is ``(file or clip name, message)``: a follower without its leader or vice versa,
    a clip without music, or a file name that does not parse.
    """
    root = Path(root)
    motion_dir = root / MOTION_DIR
    if not motion_dir.is_dir():
        raise DataError(f"{root}: no DD100 motion folder {motion_dir} (expected ROOT/{MOTION_DIR}/)")
    roles: dict[str, dict[str, Path]] = {}
    problems: list[tuple[str, str]] = []
    for path in sorted(motion_dir.glob("*.npy")):
        stem = path.stem
        if stem.endswith(FOLLOWER_SUFFIX):
            role = "follower"
        elif stem.endswith(LEADER_SUFFIX):
            role = "leader"
        else:
            problems.append((str(path), "motion file name does not end in _00 (follower) or _01 (leader)"))
            continue
        roles.setdefault(stem[:-3], {})[role] = path
    clips: list[ClipFiles] = []
    for name, files in sorted(roles.items()):
        try:
            genre, choreo, take = parse_name(name)
        except DataError as exc:
            problems.append((str(next(iter(files.values()))), str(exc)))
            continue
        if "leader" not in files:
            problems.append((str(files["follower"]), f"follower without its leader {name}{LEADER_SUFFIX}.npy"))
            continue
        if "follower" not in files:
            problems.append((str(files["leader"]), f"leader without its follower {name}{FOLLOWER_SUFFIX}.npy"))
            continue
        music = _find_music(root, name)
        if music is None:
            problems.append((name, f"no music file {root / MUSIC_DIR / name}{{{','.join(AUDIO_SUFFIXES)}}}"))
            continue
        clips.append(ClipFiles(name, genre, choreo, take, files["follower"], files["leader"], music, root))
    return clips, problems


def _report(problems: Iterable[tuple[str, str]], on_error: str) -> None:
    for where, message in problems:
        if on_error == "raise":
            raise DataError(f"{where}: {message}")
        warnings.warn(f"skipping {where}: {message}", stacklevel=3)
        log.warning("skipping %s: %s", where, message)


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")


def list_clips(root: str | os.PathLike, on_error: Literal["raise", "skip"] = "raise") -> list[ClipFiles]:
    """All complete clips under ``root`` (follower, leader and music found), sorted by name.

    An unpaired motion file or a clip without music raises DataError (``on_error="raise"``)
    or is skipped with a warning naming it (``"skip"``).
    """
    _check_on_error(on_error)
    clips, problems = scan(root)
    _report(problems, on_error)
    return clips


# ----------------------------------------------------------------------------- motion files


def _as_str(value, path: Path) -> str:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        value = value.decode("latin1")
    if not isinstance(value, str):
        raise DataError(f"{path}: 'gender' must be a string, got {type(value).__name__}")
    return value.lower()


def _numeric(value, key: str, path: Path) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: '{key}' is not numeric ({exc})") from exc
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise DataError(f"{path}: '{key}' contains {bad} NaN/inf values")
    return array


def read_motion(path: str | os.PathLike) -> dict:
    """Read and validate one motion file: ``{"poses": (T,165) f32, "transl": (T,3) f32,
    "betas": (10,) f32, "gender": str}``. Raises DataError naming the file and the problem."""
    path = Path(path)
    try:
        raw = load_npy_dict(path)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: motion file not found") from exc
    except UnsafePickleError as exc:
        raise DataError(str(exc)) from exc
    except ValueError as exc:
        raise DataError(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from exc
    missing = [k for k in ("poses", "transl") if k not in raw]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing}; found keys {sorted(map(str, raw))}")
    poses = _numeric(raw["poses"], "poses", path)
    transl = _numeric(raw["transl"], "transl", path)
    if poses.ndim != 2 or poses.shape[1] != skeleton.POSE_DIM or poses.shape[0] == 0:
        raise DataError(f"{path}: 'poses' must have shape (T, {skeleton.POSE_DIM}) with T > 0; got {poses.shape}")
    if transl.shape != (poses.shape[0], 3):
        raise DataError(f"{path}: 'transl' must have shape ({poses.shape[0]}, 3) to match poses; got {transl.shape}")
    betas = np.zeros(NUM_BETAS)
    if "betas" in raw:
        # DD100 has (10,) or (1, 10) betas, other exports (16,) or per-frame (T, 10): the body
        # shape is constant, so the first row's first 10 coefficients are kept.
        b = _numeric(raw["betas"], "betas", path)
        b = b.reshape(-1, b.shape[-1])[0] if b.ndim >= 1 and b.size else b.reshape(-1)
        betas[: min(NUM_BETAS, b.size)] = b[:NUM_BETAS]
    gender = _as_str(raw["gender"], path) if "gender" in raw else "neutral"
    return {
        "poses": poses.astype(np.float32),
        "transl": transl.astype(np.float32),
        "betas": betas.astype(np.float32),
        "gender": gender,
    }


def local_rotations(poses: np.ndarray) -> np.ndarray:
    """Local joint rotation matrices ``(T, 55, 3, 3)`` float32 from ``(T, 165)`` axis-angle poses."""
    poses = np.asarray(poses)
    aa = poses.reshape(poses.shape[0], skeleton.NUM_JOINTS, 3).astype(np.float64)
    return motion.axis_angle_to_matrix(aa).astype(np.float32)


_SMPLX_BODIES: dict[tuple[str, str], "skeleton.SmplxBody"] = {}


def _smplx_body(model_path: str | os.PathLike, gender: str) -> "skeleton.SmplxBody":
    # Building an SMPL-X model reads ~100 MB: keep one per (folder, gender) for the process.
    key = (str(model_path), gender)
    if key not in _SMPLX_BODIES:
        try:
            _SMPLX_BODIES[key] = skeleton.SmplxBody(str(model_path), gender=gender)
        except (AssertionError, FileNotFoundError) as exc:
            if gender == "neutral":
                raise DataError(f"{model_path}: no usable SMPL-X model ({exc})") from exc
            warnings.warn(f"{model_path}: no SMPL-X model for gender {gender!r} ({exc}); using neutral")
            _SMPLX_BODIES[key] = _smplx_body(model_path, "neutral")
    return _SMPLX_BODIES[key]


def joint_positions(poses: np.ndarray, transl: np.ndarray, betas: np.ndarray | None = None,
                    gender: str = "neutral", model_path: str | os.PathLike | None = None) -> np.ndarray:
    """World joint positions ``(T, 55, 3)`` float32: the built-in skeleton, or SMPL-X when
    ``model_path`` is given (evaluated in chunks of :data:`SMPLX_CHUNK` frames)."""
    if model_path is None:
        return skeleton.forward_kinematics(poses, transl)
    import torch

    body = _smplx_body(model_path, gender)
    out = []
    with torch.no_grad():
        for start in range(0, len(poses), SMPLX_CHUNK):
            stop = start + SMPLX_CHUNK
            out.append(body.joints(torch.as_tensor(poses[start:stop], dtype=torch.float32),
                                   torch.as_tensor(transl[start:stop], dtype=torch.float32), betas).numpy())
    return np.concatenate(out).astype(np.float32)


# ----------------------------------------------------------------------------- the prepare cache


def _stat_fingerprint(path: Path) -> list:
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]


def fingerprint(files: ClipFiles, model_path: str | os.PathLike | None) -> str:
    """Identifies the inputs of a cached clip: source sizes+mtimes, model path, cache version."""
    from .. import music

    parts = {
        "version": CACHE_VERSION,
        "music_version": music.FEATURE_VERSION,
        "files": [_stat_fingerprint(p) for p in (files.follower, files.leader, files.music)],
        "model_path": None if model_path is None else str(Path(model_path).resolve()),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _root_is_writable(root: Path) -> bool:
    target = root / ".duet_cache"
    if target.is_dir():
        return os.access(target, os.W_OK)
    return os.access(root, os.W_OK)


def prepared_dir(root: str | os.PathLike, *, for_writing: bool = False) -> Path:
    """Folder of the prepare cache: ``ROOT/.duet_cache/`` when ROOT is writable (or that folder
    already exists), else ``cache_dir()/prepared/<sha1 of the resolved root path>/``."""
    from ..paths import cache_dir

    root = Path(root).resolve()
    local = root / ".duet_cache"
    if (not for_writing and local.is_dir()) or (for_writing and _root_is_writable(root)):
        return local
    return cache_dir() / "prepared" / hashlib.sha1(str(root).encode()).hexdigest()[:16]


def cache_file(files: ClipFiles, *, for_writing: bool = False) -> Path:
    return prepared_dir(files.root, for_writing=for_writing) / f"{files.name}.npz"


def _dancer_arrays(prefix: str, data: dict, joints: np.ndarray) -> dict:
    return {
        f"{prefix}_poses": data["poses"], f"{prefix}_transl": data["transl"],
        f"{prefix}_betas": data["betas"], f"{prefix}_gender": np.array(data["gender"]),
        f"{prefix}_joints": joints,
    }


def compute_clip_arrays(files: ClipFiles, model_path: str | os.PathLike | None = None,
                        music_cache: bool = True) -> dict[str, np.ndarray]:
    """Everything a clip needs, from the source files (uncut lengths): per dancer poses, transl,
    betas, gender, joints; ``music`` (T_music, 54); ``fingerprint``."""
    from .. import music

    arrays: dict[str, np.ndarray] = {"fingerprint": np.array(fingerprint(files, model_path))}
    for prefix, path in (("follower", files.follower), ("leader", files.leader)):
        data = read_motion(path)
        joints = joint_positions(data["poses"], data["transl"], data["betas"], data["gender"], model_path)
        arrays.update(_dancer_arrays(prefix, data, joints))
    try:
        arrays["music"] = music.extract_features(files.music, cache=music_cache)
    except (music.MusicError, FileNotFoundError) as exc:
        raise DataError(str(exc)) from exc
    return arrays


def is_cached(files: ClipFiles, model_path: str | os.PathLike | None = None) -> bool:
    """Whether the prepare cache holds a current entry for the clip (reads only its fingerprint)."""
    target = cache_file(files)
    if not target.is_file():
        return False
    try:
        with np.load(target, allow_pickle=False) as npz:
            return str(npz["fingerprint"]) == fingerprint(files, model_path)
    except _UNREADABLE:
        return False


def read_cached(files: ClipFiles, model_path: str | os.PathLike | None = None) -> dict[str, np.ndarray] | None:
    """The prepare-cache arrays of a clip, or None when absent, stale or unreadable."""
    target = cache_file(files)
    if not target.is_file():
        return None
    try:
        with np.load(target, allow_pickle=False) as npz:
            if str(npz["fingerprint"]) != fingerprint(files, model_path):
                return None
            return {k: npz[k] for k in npz.files}
    except _UNREADABLE as exc:
        log.warning("ignoring unreadable prepare cache %s: %s", target, exc)
        return None


def _clip_from_arrays(files: ClipFiles, arrays: dict[str, np.ndarray]) -> Clip:
    length = min(len(arrays["follower_poses"]), len(arrays["leader_poses"]), len(arrays["music"]))
    if length == 0:
        raise DataError(f"{files.music}: clip {files.name} has no frames once music and motion are aligned")

    def dancer(prefix: str) -> Dancer:
        return Dancer(
            poses=arrays[f"{prefix}_poses"][:length], transl=arrays[f"{prefix}_transl"][:length],
            betas=arrays[f"{prefix}_betas"], gender=str(arrays[f"{prefix}_gender"]),
            joints=arrays[f"{prefix}_joints"][:length],
        )

    return Clip(files.name, files.genre, arrays["music"][:length].astype(np.float32),
                dancer("leader"), dancer("follower"), audio_path=str(files.music))


def load_clip(files: ClipFiles, model_path: str | os.PathLike | None = None) -> Clip:
    """Load one clip (from the prepare cache when it is current), cut to the common length T."""
    arrays = read_cached(files, model_path)
    if arrays is None:
        arrays = compute_clip_arrays(files, model_path)
    return _clip_from_arrays(files, arrays)


def _load_one(model_path: str | None, files: ClipFiles) -> Clip | DataError:
    """One clip, or its DataError as a value (a worker task of :func:`load_split`: the caller
    raises or reports the errors in clip order, as the serial loop would)."""
    try:
        return load_clip(files, model_path)
    except DataError as exc:
        return exc


def _needs_music(files: ClipFiles, model_path: str | None) -> bool:
    """Whether loading the clip computes music features (no prepare-cache entry, no music cache)."""
    from .. import music

    return not is_cached(files, model_path) and not music.cache_path(files.music).is_file()


def load_split(data: str | os.PathLike, split: Literal["train", "test", "all"],
               model_path: str | os.PathLike | None = None, progress: bool = True,
               on_error: Literal["raise", "skip"] = "raise", workers: int | None = None) -> list[Clip]:
    """Every clip of ``split`` ("train", "test" or "all") of a dataset, sorted by name: the one
    dataset entry point (``duet_env.data.load_split``).

    ``data``: ``"synth"`` (the default SynthDuet, generated on first use) or a DD100-layout
    folder (:func:`duet_env.data.default.resolve_root`).

    ``on_error="skip"`` skips malformed clips, warning with each file name; ``"raise"`` raises
    the first DataError.

    ``workers``: processes that load (and, on a fresh cache, generate) the clips
    (:mod:`duet_env.workers`; None = ``$DUET_WORKERS`` or the cores, 1 = this process only);
    the clips are the same either way.
    """
    from .. import music
    from ..workers import map_ordered, resolve_workers

    _check_on_error(on_error)
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all'; got {split!r}")
    workers = resolve_workers(workers)
    clips, problems = scan(resolve_root(data, workers=workers))
    problems = [(w, m) for w, m in problems if _problem_split(w) in (split, None) or split == "all"]
    _report(problems, on_error)
    chosen = [c for c in clips if split == "all" or split_of(c.name) == split]
    model = None if model_path is None else str(model_path)
    if workers > 1 and not music.warmed_up() and any(_needs_music(f, model) for f in chosen):
        music.warm_up()  # compile librosa's numba kernels once, here, before the workers fork
    loaded = map_ordered(_load_one, chosen, workers, shared=model, desc=f"loading {split} clips",
                         progress=progress)
    out: list[Clip] = []
    for files, clip in zip(chosen, loaded):
        if isinstance(clip, DataError):
            if on_error == "raise":
                raise clip
            _report([(files.name, str(clip))], on_error)
        else:
            out.append(clip)
    return out


def _problem_split(where: str) -> str | None:
    # A problem names a file or clip; report it for its own split only (None if it has none).
    stem = Path(where).stem
    for suffix in (FOLLOWER_SUFFIX, LEADER_SUFFIX):
        if Path(where).suffix == ".npy" and stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    try:
        return split_of(stem)
    except DataError:
        return None
