"""``DuetAccompany-v0``: generate the follower's dance, one token at a time."""
from __future__ import annotations

import copy
import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .core import DuetCore
from .episodes import EpisodeClip, episode_clips, load_dataset_clips, user_clip
from .observations import observation_factory
from .conventions import FOLLOWER_STREAMS, FPS, TOKEN_FRAMES
from .tokens import DEFAULT_HISTORY, DEFAULT_LOOKAHEAD


def default_config() -> dict[str, Any]:
    """The env's configuration; every kwarg of ``gym.make`` overrides one key (JSON values only)."""
    return {
        "data": "synth",            # "synth" (embedded SynthDuet) or a DD100-layout folder
        "split": "train",           # "train" | "test"
        "episode_tokens": 64,       # tokens per episode (64 ≈ 8.5 s); None or 0 = whole clips
        "random_start": True,       # episode start drawn with np_random (else token 0)
        "tokenizer": "default",     # shipped name or checkpoint folder
        "observation": "tokens",    # "tokens" | "features" | {"type": ..., **options}
        "history_tokens": DEFAULT_HISTORY,
        "lookahead_tokens": DEFAULT_LOOKAHEAD,
        "reward": "default",        # name | {name: weight} | registered composite
        "music_file": None,         # single-clip env: the user's music (any format librosa reads) ...
        "leader_file": None,        # ... and leader motion (DD100-format SMPL-X .npy dict)
        "genre": "Unknown",         # genre of the user's clip (partner expectations, duet_env.genres)
        "device": "cpu",
    }


def merge_config(user: dict[str, Any]) -> dict[str, Any]:
    cfg = default_config()
    unknown = sorted(set(user) - set(cfg))
    if unknown:
        raise ValueError(f"unknown DuetAccompany config keys {unknown}; known: {sorted(cfg)}")
    cfg.update(copy.deepcopy(user))
    return cfg


@functools.lru_cache(maxsize=4)
def _tokenizer(name: str, device: str):
    from .tokenizer import Tokenizer

    return Tokenizer.load(name, device=device)


@functools.lru_cache(maxsize=8)
def _dataset_bank(data: str, split: str, tokenizer: str, device: str) -> tuple[EpisodeClip, ...]:
    clips, key = load_dataset_clips(data, split)
    return tuple(episode_clips(clips, _tokenizer(tokenizer, device), cache_key=key))


def build_core(cfg: dict[str, Any], num_envs: int) -> DuetCore:
    """Load (once per process, cached) the tokenizer and clips a config names; build the core."""
    from rewards import make_reward

    tok = _tokenizer(str(cfg["tokenizer"]), str(cfg["device"]))
    if cfg["music_file"] or cfg["leader_file"]:
        if not (cfg["music_file"] and cfg["leader_file"]):
            raise ValueError("a single-clip env needs both music_file and leader_file")
        clip = user_clip(cfg["music_file"], cfg["leader_file"], genre=cfg["genre"])
        bank = episode_clips([clip], tok, with_follower=False)
    else:
        bank = list(_dataset_bank(str(cfg["data"]), str(cfg["split"]), str(cfg["tokenizer"]), str(cfg["device"])))
    for name in ("history_tokens", "lookahead_tokens"):
        if int(cfg[name]) < 0 or (name == "history_tokens" and int(cfg[name]) < 1):
            raise ValueError(f"{name} must be a positive integer; got {cfg[name]!r}")
    return DuetCore(bank, tok, num_envs, int(cfg["history_tokens"]), int(cfg["lookahead_tokens"]),
                    int(cfg["episode_tokens"]) if cfg["episode_tokens"] else None,
                    make_reward(cfg["reward"]), cfg["device"])


class DuetAccompanyEnv(gym.Env):
    """
    ## Description
    Dance accompaniment: music plays and a leader dances; the agent is the follower. Every step
    the agent picks the follower's next motion token — 4 frames (0.133 s at 30 fps) of pose for
    each body part plus the offset to the leader — and the frozen tokenizer decoder turns it into
    motion placed relative to the leader. Episodes are clips of SynthDuet (the embedded default
    dataset), of the user's DD100-layout data, or of the user's own music and leader motion.

    ## Action Space
    ``MultiDiscrete([K_up, K_down, K_lhand, K_rhand, K_transl])``: one codebook entry per
    follower stream (upper body, lower body, left hand, right hand, relative translation). The
    first two entries are the pose-code pair. Sizes come from the tokenizer checkpoint.

    ## Observation Space
    ``"tokens"`` (default) — Dict, the layout of :mod:`duet_env.tokens`: ``music`` Box (W·216,)
    float32 features of the window t−H … t+A (W = H + 1 + A, time-major), ``leader`` MultiDiscrete (W·4,)
    leader tokens of the same window, ``follower`` MultiDiscrete (H·5,) own previous tokens;
    outside the episode, token streams hold the pad id K and music is zero.
    ``"features"`` — Box float32 vector for MLP policies (see
    :class:`duet_env.observations.FeaturesObservation`).

    ## Rewards
    A weighted sum of named terms from :mod:`rewards` (beat, half_body, facing, contact,
    penetration, skating, distance, learned, or the user's own), chosen by ``reward=`` (a name,
    a ``{name: weight}`` dict or a registered composite), by ``reset(options={"reward": ...})``
    or by ``env.unwrapped.set_reward(...)`` for later episodes. ``info["reward_components"]``
    holds every term's value every step. Terms that need look-ahead (beat) deliver with the
    delay documented in their docstring and are flushed at the last step.

    ## Starting State
    A clip is drawn with ``self.np_random`` (or given: ``reset(options={"clip": name, "start":
    token})``); the follower has no motion yet, its token history is all pad ids.

    ## Episode End
    Terminates when the episode's last token is decoded (``episode_tokens`` tokens, or the whole
    clip). Never truncates on its own.

    ## Arguments
    ``gym.make("DuetAccompany-v0", render_mode=None, **config)`` with the keys of
    :func:`default_config`: data, split, episode_tokens, random_start, tokenizer, observation,
    history_tokens, lookahead_tokens, reward, music_file, leader_file, genre, device.
    ``render_mode="rgb_array"`` draws both dancers (stick figures) at the last decoded frame.

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS // TOKEN_FRAMES}

    def __init__(self, render_mode: str | None = None, **config):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array'; got {render_mode!r}")
        self.render_mode = render_mode
        self.config = merge_config(config)
        self.core = build_core(self.config, 1)
        self.observation_type = observation_factory(self.config["observation"])
        self.observation_space = self.observation_type.space(self.core)
        self.action_space = spaces.MultiDiscrete(self.core.nvec.copy())
        self._clip_names = {c.name: i for i, c in enumerate(self.core.clips)}
        self._pending_reward = None
        self._needs_reset = True

    # ---- reward swapping ----------------------------------------------------------------
    def set_reward(self, spec) -> None:
        """Use the reward ``spec`` (name, {name: weight} dict or composite) from the next reset."""
        from rewards import make_reward

        self._pending_reward = make_reward(spec)  # fails now, with the known names, if unknown

    @property
    def reward_names(self) -> list[str]:
        return list(self.core.reward.names)

    # ---- gymnasium API ------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        if "reward" in options:
            self.set_reward(options.pop("reward"))
        if self._pending_reward is not None:
            self.core.reward, self._pending_reward = self._pending_reward, None
        clip = options.pop("clip", None)
        start = options.pop("start", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; known: clip, start, reward")
        if clip is None:
            clip_id = int(self.np_random.integers(len(self.core.clips)))
        elif isinstance(clip, (int, np.integer)):
            clip_id = int(clip)
            if not 0 <= clip_id < len(self.core.clips):
                raise ValueError(f"clip index {clip_id} out of range 0..{len(self.core.clips) - 1}")
        elif clip in self._clip_names:
            clip_id = self._clip_names[clip]
        else:
            raise ValueError(f"unknown clip {clip!r}; this env has {len(self._clip_names)} clips, "
                             f"e.g. {sorted(self._clip_names)[:5]}")
        s, length = self.core.episode_bounds(clip_id, self.np_random, start, self.config["random_start"])
        self.core.reset_slot(0, clip_id, s, length)
        self._needs_reset = False
        return self._observe(), self._info(None)

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("call reset() before step() (the episode has ended or never started)")
        a = np.asarray(action)
        if a.shape != (len(FOLLOWER_STREAMS),):
            raise ValueError(f"action must have shape ({len(FOLLOWER_STREAMS)},) "
                             f"[{', '.join(FOLLOWER_STREAMS)}]; got {a.shape}")
        reward, components, terminated = self.core.step(a[None])
        done = bool(terminated[0])
        self._needs_reset = done
        return self._observe(), float(reward[0]), done, False, self._info(components)

    def _observe(self):
        obs = self.observation_type.observe(self.core)
        if isinstance(obs, dict):
            return {k: v[0] for k, v in obs.items()}
        return obs[0]

    def _info(self, components) -> dict:
        info = {"clip": self.core.clips[self.core.clip_index[0]].name, "step": int(self.core.t[0]),
                "start": int(self.core.start[0])}
        names = self.core.reward.names
        info["reward_components"] = {n: float(components[n][0]) if components is not None else 0.0 for n in names}
        return info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        from .render import render_frame

        leader = self.core.leader_context()[0, -1]
        follower = self.core.follower_frames()[0, -1]
        return render_frame(leader, follower)

    # ---- extras -------------------------------------------------------------------------
    @property
    def follower_motion(self) -> np.ndarray:
        """The follower's last decoded frames (4, 55, 3)."""
        return self.core.follower_frames()[0].copy()

    def __getstate__(self):
        # Pickles as config + RNG: the unpickled env rebuilds its (cached) data and needs reset().
        return {"render_mode": self.render_mode, "config": self.config,
                "rng": None if self._np_random is None else self._np_random.bit_generator.state}

    def __setstate__(self, state):
        self.__init__(render_mode=state["render_mode"], **state["config"])
        if state["rng"] is not None:
            self._np_random = np.random.Generator(np.random.PCG64())
            self._np_random.bit_generator.state = state["rng"]
