"""duet: dance accompaniment as a reinforcement-learning problem.

``import duet_env`` registers ``DuetAccompany-v0`` (idempotently, string entry points);
``gym.make("duet_env:DuetAccompany-v0")`` works without the import.
"""
from __future__ import annotations

import gymnasium as gym

__version__ = "0.1.0"

ENV_ID = "DuetAccompany-v0"


def register_envs() -> None:
    if ENV_ID in gym.registry:
        return
    gym.register(
        id=ENV_ID,
        entry_point="duet_env.env:DuetAccompanyEnv",
        vector_entry_point="duet_env.vector:DuetVectorEnv",
        disable_env_checker=False,
    )


register_envs()
