"""``DuetAccompany-v0``: generate the follower's dance, one token at a time."""
from __future__ import annotations

import copy
import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rewards import make_reward

from .conventions import FPS, TOKEN_FRAMES
from .core import DuetCore
from .episodes import EpisodeClip, episode_clips, load_dataset_clips, user_clip
from .observations import observation_factory
from .threads import check_torch_threads
from .tokens import DEFAULT_HISTORY, DEFAULT_LOOKAHEAD
from .tokenizer.compiled import check_compile


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
        "torch_threads": 1,         # intra-op threads of the env's decode, restored after (None: torch's own)
        "compile_decoder": "auto",  # torch.compile the decode step: "auto" (after 1,000 steps) | True | False
    }


def merge_config(user: dict[str, Any]) -> dict[str, Any]:
    cfg = default_config()
    unknown = sorted(set(user) - set(cfg))
    if unknown:
        raise ValueError(f"unknown DuetAccompany config keys {unknown}; known: {sorted(cfg)}")
    cfg.update(copy.deepcopy(user))
    return cfg


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str, device: str = "cpu"):
    """The tokenizer ``name`` (shipped name or folder) on ``device``, loaded once per process."""
    from .tokenizer import Tokenizer

    return Tokenizer.load(name, device=device)




@functools.lru_cache(maxsize=8)
def _dataset_bank(data: str, split: str, tokenizer: str, device: str) -> tuple[EpisodeClip, ...]:
    clips, key = load_dataset_clips(data, split)
    return tuple(episode_clips(clips, load_tokenizer(tokenizer, device), cache_key=key))


def build_core(cfg: dict[str, Any], num_envs: int) -> DuetCore:
    """Load (once per process, cached) the tokenizer and clips a config names; build the core."""
    tok = load_tokenizer(str(cfg["tokenizer"]), str(cfg["device"]))
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
                    make_reward(cfg["reward"]), cfg["device"], check_torch_threads(cfg["torch_threads"]),
                    check_compile(cfg["compile_decoder"]))


# Keys of ``info`` in both envs (the vector env batches each value over envs).
INFO_KEYS: tuple[str, ...] = ("clip", "clip_index", "start", "step", "reward_components")


class DuetFrontend:
    """What ``gym.make`` and ``gym.make_vec`` share over one :class:`DuetCore`: building the
    core from a config, the pending reward swap, the started-episode check, episode starts,
    ``info`` building (:data:`INFO_KEYS`) and rendering. Action validation is
    :meth:`DuetCore.check_actions`."""

    render_mode: str | None
    config: dict[str, Any]
    core: DuetCore

    def _setup(self, render_mode: str | None, config: dict[str, Any], num_envs: int) -> tuple[spaces.Space, spaces.Space]:
        """Build config, core and observation type; returns the single-env (observation, action) spaces."""
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array'; got {render_mode!r}")
        self.render_mode = render_mode
        self.config = merge_config(config)
        self.core = build_core(self.config, num_envs)
        self.observation_type = observation_factory(self.config["observation"])
        self._pending_reward = None
        self._running = False
        return self.observation_type.space(self.core), spaces.MultiDiscrete(self.core.nvec.copy())

    # ---- reward swapping ----------------------------------------------------------------
    def set_reward(self, spec) -> None:
        """Use the reward ``spec`` (name, {name: weight} dict or composite) from the next
        ``reset()`` on. In the vector env the envs share one batched reward call, so
        autoresets keep the current reward."""
        self._pending_reward = make_reward(spec)  # fails now, with the known names, if unknown

    @property
    def reward_names(self) -> list[str]:
        return list(self.core.reward.names)

    def _take_reward_option(self, options: dict | None) -> dict:
        """Apply ``options["reward"]`` and any pending reward; returns the other options."""
        options = dict(options or {})
        if "reward" in options:
            self.set_reward(options.pop("reward"))
        if self._pending_reward is not None:
            self.core.reward, self._pending_reward = self._pending_reward, None
        return options

    # ---- episodes -----------------------------------------------------------------------
    def _check_started(self) -> None:
        if not self._running:
            raise RuntimeError("call reset() before step() (the episode has ended or never started)")

    def _new_episode(self, i: int, rng: np.random.Generator, clip_id: int | None = None,
                     start: int | None = None) -> None:
        """Start an episode in slot ``i`` (clip drawn with ``rng`` unless given)."""
        if clip_id is None:
            clip_id = int(rng.integers(len(self.core.clips)))
        s, length = self.core.episode_bounds(clip_id, rng, start, self.config["random_start"])
        self.core.reset_slot(i, clip_id, s, length)
        self._running = True

    # ---- info ---------------------------------------------------------------------------
    def _slot_info(self, i: int, components) -> dict:
        """The info dict of slot ``i`` (:data:`INFO_KEYS`); ``components`` None: all terms 0."""
        c = self.core
        return {"clip": c.clips[c.clip_index[i]].name, "clip_index": int(c.clip_index[i]),
                "start": int(c.start[i]), "step": int(c.t[i]),
                "reward_components": {n: float(components[n][i]) if components is not None else 0.0
                                      for n in c.reward.names}}

    def _batch_info(self, components) -> dict:
        """The info of all slots, each key batched over envs (:data:`INFO_KEYS`)."""
        c = self.core
        comp = {n: (np.asarray(components[n], np.float32) if components is not None
                    else np.zeros(c.num_envs, np.float32)) for n in c.reward.names}
        return {"clip": np.array([c.clips[k].name for k in c.clip_index], object),
                "clip_index": c.clip_index.copy(), "start": c.start.copy(), "step": c.t.copy(),
                "reward_components": comp}

    # ---- rendering ----------------------------------------------------------------------
    def _render_frames(self) -> list[np.ndarray] | None:
        """One rgb_array image per env (both dancers at the last decoded frame), or None."""
        if self.render_mode != "rgb_array":
            return None
        from .render import render_frame

        leader = self.core.leader_context()[:, -1]
        follower = self.core.follower_frames()[:, -1]
        return [render_frame(leader[i], follower[i]) for i in range(self.core.num_envs)]


class DuetAccompanyEnv(DuetFrontend, gym.Env):
    """
    ## Description
    Dance accompaniment: music plays and a leader dances; the agent is the follower. Every step
    the agent picks the follower's next motion token — 4 frames (0.133 s at 30 fps) of pose for
    each body part plus the offset to the leader — and the frozen tokenizer decoder turns it into
    motion placed relative to the leader. Episodes are clips of SynthDuet (the embedded default
    dataset), of the user's DD100-layout data, or of the user's own music and leader motion.

    ## Action Space
    ``MultiDiscrete([K_up, K_down, K_lhand, K_rhand, K_transl])``: one codebook entry per
    follower stream (upper body, lower body, left hand, right hand, relative translation; the
    stream names of :mod:`duet_env.conventions`). The
    first two entries are the pose-code pair. Sizes come from the tokenizer checkpoint.

    ## Observation Space
    ``"tokens"`` (default) — Dict, the layout of :mod:`duet_env.tokens`: ``music`` Box (W·216,)
    float32 features of the window t−H … t+A (W = H + 1 + A, time-major), ``leader`` MultiDiscrete (W·4,)
    leader tokens of the same window, ``follower`` MultiDiscrete (H·5,) own previous tokens;
    outside the episode, token streams hold the pad id K and music is zero.
    ``"features"`` — Box float32 vector for MLP policies (see
    :class:`duet_env.observations.FeaturesObservation`).

    ## Info
    The same keys for ``gym.make`` and ``gym.make_vec`` (:data:`INFO_KEYS`; the vector env
    batches each value over envs, its ``final_info`` entries are single-env dicts):
    ``clip`` (clip name), ``clip_index`` (its index in the env's clip bank), ``start`` (the
    episode's first token in the clip), ``step`` (tokens decoded so far in the episode) and
    ``reward_components`` (``{term name: value}`` of this step; zeros after reset).

    ## Rewards
    A weighted sum of named terms from :mod:`rewards` (beat, half_body, facing, contact,
    penetration, skating, distance, smooth, learned, or the user's own), chosen by ``reward=`` (a name,
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
    history_tokens, lookahead_tokens, reward, music_file, leader_file, genre, device, torch_threads,
    compile_decoder.
    ``torch_threads`` (default 1) is the intra-op thread count of the env's decode, set around
    each step and restored, so the user's ``torch.get_num_threads()`` is untouched
    (:mod:`duet_env.threads` says why one thread; None keeps torch's setting).
    ``compile_decoder`` ("auto", True or False) runs the decode step through ``torch.compile``:
    "auto" switches to it after 1,000 eager steps of an env (CPU, up to 16 envs), when a one-time
    compile (about 30 s cold, a few seconds from inductor's disk cache) pays for itself; the two
    agree within 1e-5 (:mod:`duet_env.tokenizer.compiled`).
    ``render_mode="rgb_array"`` draws both dancers (stick figures) at the last decoded frame.

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS // TOKEN_FRAMES}

    def __init__(self, render_mode: str | None = None, **config):
        self.observation_space, self.action_space = self._setup(render_mode, config, num_envs=1)
        self._clip_names = {c.name: i for i, c in enumerate(self.core.clips)}

    # ---- gymnasium API ------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = self._take_reward_option(options)
        clip = options.pop("clip", None)
        start = options.pop("start", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; known: clip, start, reward")
        self._new_episode(0, self.np_random, self._clip_id(clip), start)
        return self._observe(), self._info(None)

    def step(self, action):
        self._check_started()
        reward, components, terminated = self.core.step(action, single=True)
        done = bool(terminated[0])
        self._running = not done
        return self._observe(), float(reward[0]), done, False, self._info(components)

    def _clip_id(self, clip) -> int:
        if clip is None:
            return int(self.np_random.integers(len(self.core.clips)))
        if isinstance(clip, (int, np.integer)):
            if not 0 <= int(clip) < len(self.core.clips):
                raise ValueError(f"clip index {int(clip)} out of range 0..{len(self.core.clips) - 1}")
            return int(clip)
        if clip in self._clip_names:
            return self._clip_names[clip]
        raise ValueError(f"unknown clip {clip!r}; this env has {len(self._clip_names)} clips, "
                         f"e.g. {sorted(self._clip_names)[:5]}")

    def _observe(self):
        obs = self.observation_type.observe(self.core)
        if isinstance(obs, dict):
            return {k: v[0] for k, v in obs.items()}
        return obs[0]

    def _info(self, components) -> dict:
        return self._slot_info(0, components)

    def render(self):
        frames = self._render_frames()
        return None if frames is None else frames[0]

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
