"""A batched ``gymnasium.vector.VectorEnv`` for ``DuetAccompany-v0``: all envs decode and
score in one torch / numpy call (``gym.make_vec("DuetAccompany-v0", num_envs=N)``).

Config, reward swapping, action checks and ``info`` keys are the single env's
(:class:`duet_env.env.DuetFrontend`); each ``info`` value is batched over envs.

Autoreset is same-step (``AutoresetMode.SAME_STEP``): when an episode ends, the returned
observation is already the next episode's first one, and the last observation and info of the
ended episode are in ``infos["final_obs"]`` / ``infos["final_info"]`` (masked by ``"_final_obs"``).
"""
from __future__ import annotations

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .env import DuetFrontend


class DuetVectorEnv(DuetFrontend, VectorEnv):
    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **config):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1; got {num_envs}")
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = self._setup(render_mode, config, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None or self._np_random is None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        options = self._take_reward_option(options)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the vector env takes: reward")
        for i in range(self.num_envs):
            self._new_episode(i, self._np_random)
        return self.observation_type.observe(self.core), self._batch_info(None)

    def step(self, actions):
        self._check_started()
        reward, components, terminated = self.core.step(actions)
        obs = self.observation_type.observe(self.core)
        infos = self._batch_info(components)
        if terminated.any():
            done = np.flatnonzero(terminated)
            final_obs = np.empty(self.num_envs, object)
            final_info = np.empty(self.num_envs, object)
            for i in done:
                final_obs[i] = ({k: v[i].copy() for k, v in obs.items()} if isinstance(obs, dict)
                                else obs[i].copy())
                final_info[i] = self._slot_info(i, components)
                self._new_episode(i, self._np_random)
            obs = self.observation_type.observe(self.core)
            infos.update(final_obs=final_obs, _final_obs=terminated.copy(),
                         final_info=final_info, _final_info=terminated.copy())
        truncated = np.zeros(self.num_envs, bool)
        return obs, reward, terminated.copy(), truncated, infos

    def render(self):
        frames = self._render_frames()
        return None if frames is None else tuple(frames)
