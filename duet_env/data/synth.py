"""SynthDuet: the embedded default dataset, generated procedurally in DD100 layout.

``python -m duet_env.data.synth --out DIR --seed S --minutes M [--tempo LOW HIGH]`` writes::

    DIR/motion/smplx/all/<GENRE>_<CHOREO>_<TAKE>_00.npy   follower (the partner-rule follower)
    DIR/motion/smplx/all/<GENRE>_<CHOREO>_<TAKE>_01.npy   leader
    DIR/music/mp3/all/<GENRE>_<CHOREO>_<TAKE>.wav         mono 16-bit PCM, 15360 Hz
    DIR/synth_meta/<GENRE>_<CHOREO>_<TAKE>.json           beats, moves, partner rules, plants
    DIR/synth_meta/dataset.json                           generation parameters

Each motion file is ``np.save`` of a dict: ``poses`` (T, 165) float32 SMPL-X axis-angle,
``transl`` (T, 3) float32, ``betas`` (10,) float32, ``gender`` "neutral". The same seed gives
byte-identical files. How a clip is made: music on an exact beat grid (:mod:`synth_music`);
leader moves from a per-genre vocabulary, one key per beat (:mod:`synth_moves`,
:mod:`synth_steps`); the follower by partner rules (:mod:`synth_partner`); poses by eased
keys and two-bone IK (:mod:`synth_body`).
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from .. import skeleton
from ..atomic import atomic_save_npy, atomic_write, atomic_write_json
from ..genres import GENRES
from ..conventions import FPS
from .clip import Dancer
from .safe_pickle import load_npy_dict
from . import synth_body as body
from .synth_moves import GENRE_MOTION, PHRASE_BARS, draw_variation, plan_leader
from .synth_music import SAMPLE_RATE, TEMPO_CHOICES, plan_music, synthesize, tempo_ranges
from .synth_partner import follower_keys, hold_targets, partner_offset
from .synth_steps import StepBuilder

VERSION = "synthduet-3"  # 2: songs with real-world variety (tempo map, grooves, kits, voices, mix);
#                          3: closed hold, her left hand on his shoulder clear of his head
TAKE = 1
CLIP_SECONDS = 45.0  # mean clip length; clips vary by +-15 %
BASE_HEIGHT = {"Waltz": 0.95, "Tango": 0.94, "ChaCha": 0.945, "HipHop": 0.92, "Ballet": 0.955}
BASE_CURL = {"Waltz": 0.3, "Tango": 0.35, "ChaCha": 0.25, "HipHop": 0.55, "Ballet": 0.15}
FOLLOWER_LEAN = {"Waltz": -0.12, "Tango": -0.05, "ChaCha": 0.0, "HipHop": 0.05, "Ballet": 0.0}
FOLLOWER_HEAD = {"Waltz": 0.5, "Tango": 0.4, "ChaCha": 0.0, "HipHop": 0.0, "Ballet": 0.0}
PULSE = {"Waltz": 0.12, "Tango": 0.10, "ChaCha": 0.15, "HipHop": 0.15, "Ballet": 0.10}
REST_PELVIS = skeleton.REST_OFFSETS[0]
HALF_TIME_ABOVE_BPM = 140.0  # dance_to_beats steps on every other beat above this tempo


@dataclass
class SynthClip:
    """One generated duet in memory: SMPL-X arrays of both dancers, audio and metadata."""

    name: str
    leader: dict[str, np.ndarray]
    follower: dict[str, np.ndarray]
    audio: np.ndarray
    meta: dict


def is_test_choreo(genre: str, index: int) -> bool:
    """DD100 split rule: choreography index % 5 == 0 is test; Ballet: 9 and 10."""
    return index in (9, 10) if genre == "Ballet" else index % 5 == 0


def _choreo_indices(genre: str, n: int) -> list[int]:
    idx = list(range(1, n + 1))
    if not any(is_test_choreo(genre, i) for i in idx):
        idx[-1] = 9 if genre == "Ballet" else 5
    return idx


def _runs(mask: np.ndarray) -> list[list[int]]:
    """[start, stop) frame runs where ``mask`` is true."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return [[a, b] for a, b in zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist())]


def _smplx_dict(local: np.ndarray, pelvis: np.ndarray) -> dict:
    from .synth_kinematics import local_to_axis_angle

    return {
        "poses": local_to_axis_angle(local),
        "transl": (pelvis - REST_PELVIS).astype(np.float32),
        "betas": np.zeros(10, np.float32),
        "gender": "neutral",
    }


def _rngs(genre: str, choreo: int, seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    ss = np.random.SeedSequence([int(seed), sorted(GENRES).index(genre), int(choreo)])
    rng_music, rng_motion = (np.random.default_rng(s) for s in ss.spawn(2))
    return rng_music, rng_motion


def _check_genre(genre: str) -> None:
    if genre not in GENRES:
        raise ValueError(f"genre must be one of {sorted(GENRES)}; got {genre!r}")


def _check_seconds(seconds: float) -> None:
    if not np.isfinite(seconds) or seconds < 4.0:
        raise ValueError(f"seconds must be a finite clip length >= 4 s; got {seconds}")


def synthesize_clip(genre: str, choreo: int, seconds: float, seed: int = 0,
                    tempo_band: tuple[float, float] | None = None) -> SynthClip:
    """Generate one duet clip (deterministic in genre, choreo, seconds, seed and tempo band): a
    song (:mod:`synth_music`; its nominal tempo inside ``tempo_band`` bpm when given), then both
    dancers stepping on its beats (:func:`dance_to_beats`)."""
    _check_genre(genre)
    _check_seconds(seconds)
    style = GENRES[genre]
    rng_music, rng_motion = _rngs(genre, choreo, seed)
    n_frames = int(round(seconds * FPS))
    duration = n_frames / FPS
    plan = plan_music(genre, style.meter, duration, rng_music, tempo_band)
    audio = synthesize(plan, duration, genre, rng_music)
    clip = _choreograph(genre, choreo, plan.beat_times, n_frames, rng_motion, seed)
    clip.audio = audio
    clip.meta.update({"bpm": plan.bpm, "beat_offset": plan.offset, "key_midi": plan.root_midi,
                      "minor": plan.minor, "music": plan.describe()})
    return clip


def dance_to_beats(genre: str, beat_times: np.ndarray, seconds: float, seed: int = 0) -> SynthClip:
    """A SynthDuet leader and rule follower stepping on the given beat times (s), e.g. the beats
    librosa tracks in a user's song: the song-driven leader of ``agents.accompany``.

    Beats closer than 0.2 s to the previous one are dropped (a tracker's double hits); the
    last interval is repeated past ``seconds`` so the keys cover the whole clip. Before the first
    beat the dancers stand in their first pose. ``audio`` of the result is empty (the caller has
    the song). Beat 0 is taken as a downbeat (a tracker knows no bars).

    Fast songs are danced in half time: above ``HALF_TIME_ABOVE_BPM`` (median tracked tempo) the
    dancers step on every other beat, as people do (a step per beat at 160 bpm is a sprint), and
    because the beat metric cannot resolve motion beats 11 frames apart (its speed curve is
    smoothed with σ = 5 frames). Stepping on every other beat keeps half of the beats matched."""
    _check_genre(genre)
    _check_seconds(seconds)
    beats = np.asarray(beat_times, np.float64).ravel()
    if beats.size and not np.all(np.isfinite(beats)):
        raise ValueError("beat_times contain NaN or inf")
    beats = np.sort(beats[(beats >= 0) & (beats < seconds)])
    kept = []
    for t in beats:
        if not kept or t - kept[-1] >= 0.2:
            kept.append(float(t))
    if len(kept) < 2:
        raise ValueError(f"need at least 2 beats (0.2 s apart) inside the {seconds:.1f} s clip to dance to; "
                         f"got {len(kept)}")
    period = float(np.median(np.diff(kept)))
    half_time = 60.0 / period > HALF_TIME_ABOVE_BPM and len(kept) >= 4
    if half_time:
        kept, period = kept[::2], 2 * period
    while kept[-1] < seconds + 3 * period or len(kept) < 4:
        kept.append(kept[-1] + period)
    n_frames = int(round(seconds * FPS))
    _, rng_motion = _rngs(genre, 0, seed)
    clip = _choreograph(genre, 0, np.asarray(kept), n_frames, rng_motion, seed)
    clip.meta.update({"bpm": round(60.0 / period, 2), "beat_offset": kept[0], "source": "dance_to_beats",
                      "half_time": bool(half_time)})
    clip.audio = np.zeros(0, np.float32)
    return clip


def _choreograph(genre: str, choreo: int, beat_times: np.ndarray, n_frames: int,
                 rng_motion: np.random.Generator, seed: int) -> SynthClip:
    """Leader moves keyed on ``beat_times`` (one key per beat; times may run past the clip's
    end) and the partner-rule follower; the clip's metadata without the music fields."""
    style, gm = GENRES[genre], GENRE_MOTION[genre]
    name = f"{genre}_{choreo:02d}_{TAKE}"
    duration = n_frames / FPS
    key_times = np.asarray(beat_times, np.float64)
    n_keys = int(np.searchsorted(key_times, duration)) + 2
    if key_times.size < n_keys:
        raise ValueError("beat_times must run at least two beats past the clip's end")
    key_times = key_times[:n_keys]
    variation = draw_variation(genre, rng_motion)
    # Fast music: shorter steps, so the body's speed stays in the genre's range.
    bpm = 60.0 / float(np.median(np.diff(key_times)))
    typical_high = TEMPO_CHOICES[genre][0][1]  # top of the genre's typical tempo range
    variation = replace(variation, step=variation.step * min(1.0, typical_high / bpm))
    builder = StepBuilder(stance=gm.stance, turnout=gm.turnout, swing=0.06 if genre == "Ballet" else 0.08)
    builder.style.curl = BASE_CURL[genre]
    builder.style.lean = variation.lean if gm.hold is None else 0.02
    builder.style.hold = 1.0 if gm.hold else 0.0
    start_yaw = float(rng_motion.uniform(-np.pi, np.pi))
    builder.start(float(rng_motion.uniform(-0.5, 0.5)), float(rng_motion.uniform(-0.5, 0.5)), start_yaw)
    moves = plan_leader(genre, style.meter, n_keys - 1, builder, variation, rng_motion)
    lead_keys = {k: v[:n_keys] for k, v in builder.arrays().items()}
    distance = float(rng_motion.uniform(*gm.distance))
    lag = int(rng_motion.integers(0, 3))
    foll_keys = follower_keys(lead_keys, style, gm, distance, FOLLOWER_LEAN[genre], FOLLOWER_HEAD[genre])

    times = np.arange(n_frames) / FPS
    base = BASE_HEIGHT[genre]
    pulse = PULSE[genre] * float(rng_motion.uniform(0.85, 1.15))
    # Ballroom partners turn their upper bodies together (same world direction), so the hold
    # keeps its shape; Ballet mirrors the leader; HipHop dances in unison.
    pulse_sign = -1.0 if genre == "Ballet" else 1.0
    lead_track = body.track_from_keys(lead_keys, key_times, times, base, pulse=pulse)
    foll_track = body.track_from_keys(foll_keys, key_times, times, base, style_lag=lag / FPS,
                                      pulse=pulse_sign * pulse)
    lead_local, lead_rots, lead_pos = body.solve_body(lead_track)
    foll_local, foll_rots, foll_pos = body.solve_body(foll_track)

    lt, lp = body.free_arm_targets(lead_track, lead_pos)
    ft, fp = body.free_arm_targets(foll_track, foll_pos)
    grips = [np.zeros((n_frames, 2)), np.zeros((n_frames, 2))]
    if gm.hold:
        hold = hold_targets(gm.hold, lead_pos, foll_pos, lead_track.yaw, foll_track.yaw, lead_track.raise_hands)
        w = lead_track.hold[:, None]
        for (dancer, arm), (tgt, pole) in hold.items():
            t_arr, p_arr = (lt, lp) if dancer == 0 else (ft, fp)
            t_arr[:, arm] += w * (tgt - t_arr[:, arm])
            p_arr[:, arm] = p_arr[:, arm] + w * (pole - p_arr[:, arm])
        grips[0][:, 0] = lead_track.hold
        grips[1][:, 1] = lead_track.hold
    lead_local = body.solve_arms(lead_local, lead_rots, lead_pos, lt, lp, grips[0], lead_track.curl)
    foll_local = body.solve_arms(foll_local, foll_rots, foll_pos, ft, fp, grips[1], foll_track.curl)

    beat_times = key_times[key_times < duration]
    beat_idx = np.arange(beat_times.size)
    meta = {
        "name": name, "genre": genre, "choreo": int(choreo), "take": TAKE, "split": "test" if is_test_choreo(genre, choreo) else "train",
        "version": VERSION, "seed": int(seed), "frames": n_frames, "fps": FPS, "seconds": duration,
        "meter": style.meter,
        "beat_times": [round(float(t), 6) for t in beat_times],
        "beat_frames": [int(f) for f in np.round(beat_times * FPS)],
        "downbeat_frames": [int(f) for f in np.round(beat_times[beat_idx % style.meter == 0] * FPS)],
        "phrase_frames": [int(f) for f in np.round(beat_times[beat_idx % (PHRASE_BARS * style.meter) == 0] * FPS)],
        "moves": [dict(m, start_frame=int(round(float(key_times[min(m["start_beat"], n_keys - 1)]) * FPS)))
                  for m in moves if m["start_beat"] < beat_times.size],
        "partner": {
            "distance": round(distance, 6), "offset": [round(float(x), 6) for x in partner_offset(style, gm, distance)],
            "facing": style.facing, "hold": gm.hold, "style_lag_frames": lag,
            "phrase_turn_bars": gm.phrase_turn,
        },
        "variation": {"step": round(variation.step, 6), "turn": round(variation.turn, 6),
                      "bounce": round(variation.bounce, 6), "arms": list(variation.arms),
                      "lean": round(variation.lean, 6)},
        "planted": {
            "leader": {"left": _runs(lead_track.planted[:, 0]), "right": _runs(lead_track.planted[:, 1])},
            "follower": {"left": _runs(foll_track.planted[:, 0]), "right": _runs(foll_track.planted[:, 1])},
        },
        "hold_frames": _runs(lead_track.hold > 0.999) if gm.hold else [],
    }
    return SynthClip(name, _smplx_dict(lead_local, lead_track.pelvis), _smplx_dict(foll_local, foll_track.pelvis),
                     np.zeros(0, np.float32), meta)


# ------------------------------------------------------------------------------- writing
def _write_json(path: Path, obj) -> None:
    atomic_write_json(path, obj, indent=1)


def write_clip(out_dir: str | os.PathLike, clip: SynthClip) -> None:
    root = Path(out_dir)
    motion_dir = root / "motion" / "smplx" / "all"
    atomic_save_npy(motion_dir / f"{clip.name}_00.npy", clip.follower, allow_pickle=True)
    atomic_save_npy(motion_dir / f"{clip.name}_01.npy", clip.leader, allow_pickle=True)
    atomic_write(root / "music" / "mp3" / "all" / f"{clip.name}.wav",
                 lambda tmp: sf.write(tmp, clip.audio, SAMPLE_RATE, subtype="PCM_16", format="WAV"))
    _write_json(root / "synth_meta" / f"{clip.name}.json", clip.meta)


def check_tempo_band(band) -> tuple[float, float] | None:
    """``band`` as a (low, high) bpm pair with 0 < low < high, finite; None stays None."""
    if band is None:
        return None
    try:
        lo, hi = (float(x) for x in band)
    except (TypeError, ValueError):
        raise ValueError(f"tempo band must be a (low, high) pair of bpm; got {band!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"tempo band must have 0 < low < high (bpm); got {band!r}")
    return lo, hi


def band_genres(tempo_band: tuple[float, float] | None = None) -> list[str]:
    """The genres a dataset in ``tempo_band`` holds: those with a tempo range meeting it (all
    genres without a band); a ValueError naming the ranges when none does."""
    genres = [g for g in GENRES if tempo_ranges(g, tempo_band)]
    if not genres:
        ranges = {g: [c[:2] for c in TEMPO_CHOICES[g]] for g in GENRES}
        raise ValueError(f"no genre's tempo range meets the band {tempo_band} bpm; the ranges: {ranges}")
    return genres


def plan_dataset(minutes: float, seed: int = 0,
                 tempo_band: tuple[float, float] | None = None) -> list[tuple[str, int, float]]:
    """(genre, choreo index, seconds) of every clip: minutes split evenly over the genres (all
    five, or those :func:`band_genres` keeps for a tempo band), clips of about CLIP_SECONDS
    (+-15 %), at least 2 per genre with both train and test choreographies."""
    if not np.isfinite(minutes) or minutes <= 0:
        raise ValueError(f"minutes must be a positive number; got {minutes}")
    genres = band_genres(check_tempo_band(tempo_band))
    per_genre = minutes * 60.0 / len(genres)
    n = max(2, int(round(per_genre / CLIP_SECONDS)))
    if per_genre / n < 4.0:
        raise ValueError(f"minutes={minutes} is too short: need at least {8 * len(genres) / 60:.2f} minutes")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 9999]))
    plan = []
    for genre in genres:
        raw = rng.uniform(0.85, 1.15, n)
        lengths = np.round(raw / raw.sum() * per_genre * FPS) / FPS
        for idx, sec in zip(_choreo_indices(genre, n), lengths):
            plan.append((genre, idx, float(sec)))
    return plan


def _generate_one(job: tuple, plan_item: tuple[str, int, float]) -> str:
    """Synthesize and write one planned clip (a worker task of :func:`generate`); its name."""
    out_dir, seed, tempo_band = job
    genre, idx, sec = plan_item
    clip = synthesize_clip(genre, idx, sec, seed, tempo_band)
    write_clip(out_dir, clip)
    return clip.name


def generate(out_dir: str | os.PathLike, seed: int = 0, minutes: float = 60.0, progress: bool = True,
             workers: int | None = None, meanwhile: Callable[[], None] | None = None,
             tempo_band: tuple[float, float] | None = None) -> list[str]:
    """Write a SynthDuet dataset of about ``minutes`` minutes to ``out_dir``; returns clip names.

    ``tempo_band`` (low, high) bpm: every song's nominal tempo inside it (drift and rubato move
    the beats a few per cent around it), only the genres with a tempo range meeting it — e.g.
    ``(130, 180)`` for extra training clips of fast songs, which the full dataset holds few of.

    Clips are independent (each seeded by seed, genre and choreography), so they are made on
    ``workers`` processes (:mod:`duet_env.workers`; None = ``$DUET_WORKERS`` or the cores) with
    files identical to the serial loop's. ``meanwhile`` runs in this process while they work.
    ``dataset.json``, the completion marker, is written last.
    """
    from ..workers import map_ordered

    tempo_band = check_tempo_band(tempo_band)
    plan = plan_dataset(minutes, seed, tempo_band)
    names = map_ordered(_generate_one, plan, workers, shared=(str(out_dir), int(seed), tempo_band),
                        desc="SynthDuet", progress=progress, meanwhile=meanwhile)
    band = {} if tempo_band is None else {"tempo_band_bpm": list(tempo_band)}  # the default's file unchanged
    _write_json(Path(out_dir) / "synth_meta" / "dataset.json", {
        "version": VERSION, "seed": int(seed), "minutes": float(minutes), **band, "fps": FPS,
        "sample_rate": SAMPLE_RATE, "clip_seconds_mean": CLIP_SECONDS, "genres": list(dict.fromkeys(g for g, _, _ in plan)),
        "clips": [{"name": f"{g}_{i:02d}_{TAKE}", "genre": g, "choreo": i, "seconds": s,
                   "split": "test" if is_test_choreo(g, i) else "train"} for g, i, s in plan],
    })
    return names


# ------------------------------------------------------------------------ reading back
def load_meta(root: str | os.PathLike, name: str) -> dict:
    path = Path(root) / "synth_meta" / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no SynthDuet metadata {path} (is {root} a SynthDuet folder?)")
    return json.loads(path.read_text())


def _load_dancer(path: Path) -> Dancer:
    if not path.is_file():
        raise FileNotFoundError(f"motion file {path} does not exist")
    try:
        d = load_npy_dict(path)  # the restricted unpickler: a crafted file cannot run code
        return Dancer(d["poses"], d["transl"], d["betas"], d["gender"])
    except (KeyError, ValueError, OSError, AttributeError) as exc:
        raise ValueError(f"motion file {path} is not a SMPL-X dict with poses/transl/betas/gender: {exc}") from exc


def rule_follower(root: str | os.PathLike, name: str) -> Dancer:
    """The partner-rule follower of clip ``name`` (the written _00 file IS the rule follower),
    for measuring how far a generated follower is from a correct response."""
    return _load_dancer(Path(root) / "motion" / "smplx" / "all" / f"{name}_00.npy")


def leader(root: str | os.PathLike, name: str) -> Dancer:
    return _load_dancer(Path(root) / "motion" / "smplx" / "all" / f"{name}_01.npy")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m duet_env.data.synth", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (DD100 layout)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--workers", type=int, default=None,
                    help="worker processes (default: $DUET_WORKERS or the cores; 1 = none)")
    ap.add_argument("--tempo", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                    help="every song's nominal tempo in LOW..HIGH bpm (only the genres with a range there)")
    args = ap.parse_args(argv)
    try:
        names = generate(args.out, seed=args.seed, minutes=args.minutes, progress=not args.quiet,
                         workers=args.workers, tempo_band=args.tempo)
    except ValueError as exc:
        ap.error(str(exc))
    print(f"wrote {len(names)} clips to {args.out}")


if __name__ == "__main__":
    main()
