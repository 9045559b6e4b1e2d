"""A batched ``gymnasium.vector.VectorEnv`` for ``DuetAccompany-v0``: all envs decode and
score in one torch / numpy call (``gym.make_vec("DuetAccompany-v0", num_envs=N)``).

Autoreset is same-step (``AutoresetMode.SAME_STEP``): when an episode ends, the returned
observation is already the next episode's first one, and the last observation and info of the
ended episode are in ``infos["final_obs"]`` / ``infos["final_info"]`` (masked by ``"_final_obs"``).
"""
from __future__ import annotations

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .env import build_core, merge_config
from .observations import observation_factory
from .tokens import FOLLOWER_STREAMS


class DuetVectorEnv(VectorEnv):
    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **config):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1; got {num_envs}")
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.config = merge_config(config)
        self.core = build_core(self.config, self.num_envs)
        self.observation_type = observation_factory(self.config["observation"])
        self.single_observation_space = self.observation_type.space(self.core)
        from gymnasium import spaces

        self.single_action_space = spaces.MultiDiscrete(self.core.nvec.copy())
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._pending_reward = None
        self._started = False

    def set_reward(self, spec) -> None:
        """Use the reward ``spec`` for every env from the next ``reset()`` on (one reward per batch:
        the envs share one batched reward call, so autoresets keep the current one)."""
        from rewards import make_reward

        self._pending_reward = make_reward(spec)

    def _new_episode(self, i: int) -> None:
        clip_id = int(self._np_random.integers(len(self.core.clips)))
        start, length = self.core.episode_bounds(clip_id, self._np_random, None, self.config["random_start"])
        self.core.reset_slot(i, clip_id, start, length)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None or self._np_random is None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        options = dict(options or {})
        if "reward" in options:
            self.set_reward(options.pop("reward"))
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the vector env takes: reward")
        if self._pending_reward is not None:
            self.core.reward, self._pending_reward = self._pending_reward, None
        for i in range(self.num_envs):
            self._new_episode(i)
        self._started = True
        return self.observation_type.observe(self.core), self._infos(None)

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs, len(FOLLOWER_STREAMS)):
            raise ValueError(f"actions must have shape ({self.num_envs}, {len(FOLLOWER_STREAMS)}); got {a.shape}")
        reward, components, terminated = self.core.step(a)
        obs = self.observation_type.observe(self.core)
        infos = self._infos(components)
        if terminated.any():
            done = np.flatnonzero(terminated)
            if isinstance(obs, dict):
                final_obs = np.empty(self.num_envs, object)
                for i in done:
                    final_obs[i] = {k: v[i].copy() for k, v in obs.items()}
            else:
                final_obs = np.empty(self.num_envs, object)
                for i in done:
                    final_obs[i] = obs[i].copy()
            final_info = np.empty(self.num_envs, object)
            for i in done:
                final_info[i] = {"reward_components": {n: float(v[i]) for n, v in components.items()},
                                 "clip": self.core.clips[self.core.clip_index[i]].name}
                self._new_episode(i)
            obs = self.observation_type.observe(self.core)
            infos.update(final_obs=final_obs, _final_obs=terminated.copy(),
                         final_info=final_info, _final_info=terminated.copy())
        truncated = np.zeros(self.num_envs, bool)
        return obs, reward, terminated.copy(), truncated, infos

    def _infos(self, components) -> dict:
        names = self.core.reward.names
        comp = {n: (np.asarray(components[n], np.float32) if components is not None
                    else np.zeros(self.num_envs, np.float32)) for n in names}
        return {"reward_components": comp, "step": self.core.t.copy(), "clip_index": self.core.clip_index.copy()}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        from .render import render_frame

        leader = self.core.leader_context()[:, -1]
        follower = self.core.follower_frames()[:, -1]
        return tuple(render_frame(leader[i], follower[i]) for i in range(self.num_envs))
