"""Term base class and the name registries of terms and composite rewards.

A *term* is a class registered under a name with :func:`register`; it is built with keyword
arguments (all JSON-serialisable, so a reward spec can be stored) and called on a
:class:`~rewards.context.StepContext` to give one float per env. A *composite* is a registered
``{term name: weight}`` mix (:func:`register_composite`).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .context import StepContext


class RewardTerm:
    """Base class of reward terms.

    Subclasses set ``range = (low, high)`` (every output lies in it) and implement
    :meth:`compute`; ``__call__`` checks the output shape and casts to float32. Stateless unless
    ``stateful = True``; stateful terms keep per-env state and override :meth:`reset`.
    ``name`` is filled in by :func:`register`; ``config`` holds the constructor kwargs.
    """

    name: str = ""
    range: tuple[float, float] = (0.0, 1.0)
    stateful: bool = False

    def __init__(self, **config: Any):
        if config:
            raise TypeError(f"reward term {self.name or type(self).__name__!r} takes no options; got {sorted(config)}")
        self.config: dict[str, Any] = {}

    def compute(self, ctx: StepContext) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, ctx: StepContext) -> np.ndarray:
        out = np.asarray(self.compute(ctx), dtype=np.float32)
        if out.shape != (ctx.batch_size,):
            raise ValueError(f"reward term {self.name!r} returned shape {out.shape}; expected ({ctx.batch_size},)")
        return out

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Clear the state of the envs where ``mask`` is True (all envs when ``mask`` is None)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"

    def __reduce__(self):
        # Pickle by registered name, so terms made from functions or defined in notebooks pickle
        # too (the env pickles with its reward); the unpickling process must register the name.
        if self.name and _TERMS.get(self.name) is type(self):
            return (_restore_term, (self.name,), self.__dict__.copy())
        return super().__reduce__()


def _restore_term(name: str) -> RewardTerm:
    cls = term_class(name)
    return cls.__new__(cls)


_TERMS: dict[str, type[RewardTerm]] = {}
_COMPOSITES: dict[str, dict[str, float]] = {}


def _function_term(name: str, fn: Callable[[StepContext], np.ndarray], range_: tuple[float, float]) -> type[RewardTerm]:
    """Wrap a plain ``fn(ctx) -> (B,)`` into a stateless term class."""

    class FunctionTerm(RewardTerm):
        range = (float(range_[0]), float(range_[1]))

        def compute(self, ctx: StepContext) -> np.ndarray:
            return fn(ctx)

    FunctionTerm.__name__ = FunctionTerm.__qualname__ = f"FunctionTerm_{name}"
    FunctionTerm.__doc__ = fn.__doc__
    return FunctionTerm


def register(name: str, *, range: tuple[float, float] | None = None):  # noqa: A002 - "range" reads best for users
    """Decorator registering a reward term under ``name``.

    Decorate a :class:`RewardTerm` subclass, or a plain function ``fn(ctx) -> (B,)`` together
    with its ``range=(low, high)``. Re-registering a name replaces the previous term (so a
    notebook can redefine it). Returns the decorated object (a function is returned unchanged).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"reward term name must be a non-empty string; got {name!r}")
    if name in _COMPOSITES:
        raise ValueError(f"{name!r} is already a composite reward name")

    def deco(obj):
        if isinstance(obj, type) and issubclass(obj, RewardTerm):
            cls = obj
        elif callable(obj) and not isinstance(obj, type):
            if range is None:
                raise ValueError(f"register({name!r}) on a function needs range=(low, high)")
            cls = _function_term(name, obj, range)
        else:
            raise TypeError(f"register({name!r}) decorates a RewardTerm subclass or a function; got {obj!r}")
        lo, hi = cls.range
        if not lo <= hi:
            raise ValueError(f"reward term {name!r}: range must be (low, high) with low <= high; got {cls.range}")
        cls.name = name
        _TERMS[name] = cls
        return obj

    return deco


def registered() -> list[str]:
    """Names of the registered terms, sorted."""
    return sorted(_TERMS)


def registered_composites() -> dict[str, dict[str, float]]:
    """Registered composite names -> a copy of their ``{term: weight}``."""
    return {k: dict(v) for k, v in _COMPOSITES.items()}


def term_class(name: str) -> type[RewardTerm]:
    """The class registered under ``name``; ValueError listing the known names otherwise."""
    try:
        return _TERMS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown reward term {name!r}; registered terms: {', '.join(registered())}; "
            f"composites: {', '.join(sorted(_COMPOSITES))}"
        ) from None


def make_term(name: str, **config: Any) -> RewardTerm:
    """An instance of the term registered under ``name``, built with ``config``."""
    cls = term_class(name)
    try:
        return cls(**config)
    except TypeError as e:
        raise ValueError(f"reward term {name!r}: bad options {config}: {e}") from e


def register_composite(name: str, weights: dict[str, float]) -> None:
    """Register ``name`` as the mix ``{term name: weight}`` (terms must be registered)."""
    if name in _TERMS:
        raise ValueError(f"{name!r} is already a reward term name")
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"composite {name!r} needs a non-empty {{term: weight}} dict; got {weights!r}")
    for term, w in weights.items():
        term_class(term)
        if not isinstance(w, (int, float)) or not np.isfinite(w):
            raise ValueError(f"composite {name!r}: weight of {term!r} must be a finite number; got {w!r}")
    _COMPOSITES[name] = {k: float(v) for k, v in weights.items()}


def composite_weights(name: str) -> dict[str, float] | None:
    """The ``{term: weight}`` of a registered composite, or None."""
    w = _COMPOSITES.get(name)
    return None if w is None else dict(w)
