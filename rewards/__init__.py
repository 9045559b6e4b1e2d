"""Swappable reward terms for dance accompaniment, their registry and weighted composition.

Importable without the environment: terms see only a :class:`StepContext` of plain arrays.

    >>> import rewards
    >>> reward = rewards.make_reward({"beat": 5, "facing": 1})
    >>> total, components = reward(ctx)          # (B,), {"beat": (B,), "facing": (B,)}

Register a term of your own and use it by name::

    @rewards.register("upright", range=(0, 1))
    def upright(ctx):
        ...

A term may read quantities shared by the terms of one step from ``ctx.shared`` (headings,
palms, capsule gaps, body speeds, dance beats, jerk; :mod:`rewards.shared`); it need not.

Built-in terms: beat, half_body, facing, contact, penetration, skating, distance, smooth, learned.
Built-in composites: default, duolando, bailando, partner, e3d2 (see :mod:`rewards.compose`).
"""
from .compose import CompositeReward, make_reward, register_builtin_composites
from .context import CONTEXT_FRAMES, HISTORY_FRAMES, StepContext, episode_contexts
from .primitives import tolerance
from .registry import (RewardTerm, make_term, register, register_composite, registered, registered_composites,
                       term_class)
from . import terms  # noqa: F401  (registers the built-in terms)
from .learned import LearnedTerm, RewardModel

register_builtin_composites()

__all__ = [
    "CONTEXT_FRAMES", "HISTORY_FRAMES", "CompositeReward", "LearnedTerm", "RewardModel", "RewardTerm",
    "StepContext", "episode_contexts", "make_reward", "make_term", "register", "register_composite",
    "registered", "registered_composites", "term_class", "tolerance",
]
