"""The accompaniment run: song -> leader -> follower (the env's rollout) -> files, timed per stage.

Stages (each timed; the card and :class:`AccompanyResult` report them):

1. ``music``: features, beats and tempo of the song (:mod:`.song`);
2. ``leader``: the leader from ``--leader`` and the length rule (:mod:`.leaders`);
3. ``load models``: the tokenizer and the policy;
4. ``generate``: the follower over the whole song — :func:`agents.rollout.generate_followers`, the
   env's own machinery: the leader is tokenized once, then the policy picks one token per step
   from its sliding window (H past, A look-ahead tokens), the env's streaming decoder turns it
   into rotations and their forward kinematics, for as many tokens as the song has (no length
   limit; a progress bar counts the tokens);
5. ``metrics``: duet metrics (:func:`.outputs.duet_metrics`);
6. ``files``: leader.npy, follower.npy, joints.npz, duet.bvh, metrics.json;
7. ``video``: duet.mp4 with the music (skipped with ``--no-video``).

Everything is written into a temporary folder that becomes ``--out`` at the end (:mod:`.staging`).
"""
from __future__ import annotations

import logging
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from duet_env.conventions import FPS, TOKEN_FRAMES
from duet_env.data.clip import Clip

from . import outputs
from .errors import AccompanyError
from .leaders import Leader, fit_length, load_leader
from .song import Song, analyse_song
from .staging import Staging, check_target

log = logging.getLogger("agents.accompany")


@dataclass
class AccompanyConfig:
    """What ``python -m agents.accompany`` takes (its flags, one field each)."""

    music: Path
    out: Path
    leader: str = "synth"
    policy: str = "default"
    genre: str | None = None
    seed: int = 0
    smplx_model: Path | None = None
    video: bool = True
    trim: bool = False
    overwrite: bool = False
    tokenizer: str = "default"
    progress: bool = True
    command: str = ""


@dataclass
class AccompanyResult:
    out: Path
    song: Song
    leader: Leader
    frames: int
    timings: dict[str, float] = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Length of the song (s): the speeds' real time."""
        return self.song.seconds

    def speed(self, stages=None) -> float:
        """× real time of the given stages (default: all but the video)."""
        stages = [s for s in self.timings if s != "video"] if stages is None else stages
        return self.seconds / max(sum(self.timings[s] for s in stages), 1e-9)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (ffmpeg), user + system."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Timer:
    """Wall-clock seconds per stage (``timings``) and CPU seconds (``cpu``: what the stage cost,
    which other processes on a busy machine inflate less than the wall clock)."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        start, cpu = time.perf_counter(), cpu_seconds()
        log.info("[%s] ...", stage)
        yield
        self.timings[stage] = time.perf_counter() - start
        self.cpu[stage] = cpu_seconds() - cpu
        log.info("[%s] %.2f s", stage, self.timings[stage])


def load_models(policy: str, tokenizer: str):
    """The tokenizer and the policy (None for "random"), or AccompanyError naming the bad one."""
    from agents.rollout import load_policy
    from duet_env.env import load_tokenizer

    try:
        tok = load_tokenizer(tokenizer, "cpu")
    except (FileNotFoundError, ValueError) as exc:
        raise AccompanyError(f"--tokenizer {tokenizer}: cannot load: {exc}") from exc
    try:
        pol = load_policy(policy)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise AccompanyError(f"--policy {policy}: cannot load: {exc}") from exc
    if pol is not None:
        want = {k: int(v) for k, v in pol.config["codebook_sizes"].items()}
        have = {k: int(v) for k, v in tok.codebook_sizes.items()}
        if want != have:
            raise AccompanyError(f"--policy {policy}: trained for codebooks {want}, but --tokenizer {tokenizer} "
                                 f"has {have}")
    return tok, pol


def _clip(song: Song, leader: Leader, frames: int) -> Clip:
    lead = leader.dancer.slice(0, frames)
    # No follower exists yet: the leader stands in so the clip is well formed (never scored),
    # as in the env's own user_clip.
    return Clip(song.path.stem, leader.genre, song.features[:frames], lead, lead, audio_path=str(song.path))


def accompany(cfg: AccompanyConfig) -> AccompanyResult:
    """Run the whole accompaniment (module docstring); AccompanyError for bad input."""
    out = Path(cfg.out)
    check_target(out, cfg.overwrite)  # before any work
    if cfg.smplx_model is not None and not Path(cfg.smplx_model).is_dir():
        raise AccompanyError(f"--smplx-model {cfg.smplx_model}: not a folder")
    timer = Timer()
    with timer("music"):
        song = analyse_song(cfg.music)
    log.info("music %s: %s", song.path, song.describe())
    with timer("leader"):
        leader = load_leader(cfg.leader, song, cfg.genre, cfg.seed)
        frames = fit_length(leader, song, cfg.trim)
        if frames < TOKEN_FRAMES:
            raise AccompanyError(f"--music {song.path}: the duet would be {frames} frames, shorter than one token")
    for note in leader.notes:
        log.info("leader: %s", note)
    with timer("load models"):
        tok, pol = load_models(cfg.policy, cfg.tokenizer)
    with timer("generate"):
        from agents.rollout import generate_followers

        motion = generate_followers(pol, [_clip(song, leader, frames)], seed=cfg.seed, tokenizer=tok,
                                    reward=None, progress=cfg.progress)[0]  # no reward terms: faster
    t = len(motion.joints)  # whole tokens
    lead_joints = leader.dancer.joints[:t]
    beats = song.beats[song.beats < t]
    with timer("metrics"):
        metrics = outputs.duet_metrics(motion.joints, lead_joints, beats)
        metrics.update({"frames": t, "seconds": t / FPS, "genre": leader.genre})
    lead = outputs.smplx_dict(leader.dancer.poses[:t], leader.dancer.transl[:t], leader.dancer.betas,
                              leader.dancer.gender)
    foll = outputs.smplx_dict(motion.poses, motion.transl, np.zeros(10, np.float32), "neutral")
    result = AccompanyResult(out, song, leader, t, timer.timings, metrics, timer.cpu)
    with Staging(out, cfg.overwrite) as stage:
        with timer("files"):
            outputs.write_motion(stage.tmp, lead, foll)
            outputs.write_joints(stage.tmp, lead_joints, motion.joints, beats, motion.tokens)
            outputs.write_duet_bvh(stage.tmp, lead, lead_joints[:, 0], foll, motion.joints[:, 0])
            outputs.write_metrics(stage.tmp, metrics)
        if cfg.video:
            # the whole song plays (the last frame held) unless --trim cut the duet short on purpose
            total = t if cfg.trim and frames < song.frames else song.frames
            mesh = None if cfg.smplx_model is None else {"model": Path(cfg.smplx_model), "leader": lead,
                                                         "follower": foll}
            with timer("video"):
                from .video import write_duet_video

                write_duet_video(stage.tmp / "duet.mp4", lead_joints, motion.joints, song.path, total,
                                 song.path.name, mesh, cfg.progress)
        outputs.write_card(stage.tmp, outputs.card_text(_card_info(cfg, song, leader, t), timer.timings,
                                                        metrics, song.seconds, timer.cpu))
        stage.commit()
    log.info("wrote %s: %d frames (%.1f s); %.1fx real time without video", out, t, t / FPS, result.speed())
    return result


def _card_info(cfg: AccompanyConfig, song: Song, leader: Leader, frames: int) -> dict:
    return {
        "command": cfg.command or "(called from Python: agents.accompany.accompany)",
        "song file": song.path.name,
        "song": song.describe(),
        "leader": leader.source,
        "genre": f"{leader.genre} ({leader.genre_reason})",
        "policy": f"{cfg.policy} (greedy), tokenizer {cfg.tokenizer}, seed {cfg.seed}",
        "duet": f"{frames} frames ({frames / FPS:.1f} s) at {FPS} fps, whole tokens of {TOKEN_FRAMES} frames",
        "body": "built-in skeleton (duet_env.skeleton) for the joints, the BVH and the metrics"
        + (f"; video: SMPL-X meshes of {cfg.smplx_model}" if cfg.smplx_model and cfg.video else ""),
        "notes": list(leader.notes),
    }
