"""Weighted sums of reward terms, built from a JSON-serialisable spec.

Spec forms accepted by :func:`make_reward`:

* a term name: ``"beat"`` (weight 1);
* a registered composite name: ``"default"``, ``"duolando"``, ``"bailando"``, ``"partner"``;
* a dict ``{term: weight}``: ``{"beat": 5, "facing": 1}``; a value may also be
  ``{"weight": w, **options}`` to pass constructor options, e.g.
  ``{"learned": {"weight": 1, "checkpoint": "runs/rm"}}``;
* a :class:`CompositeReward` (returned as is).

Built-in composites:

====================  ==========================================================================
``default``           beat 1, facing 1, contact 1, distance 1, penetration 1, skating 1, smooth 1
                      — every hand-written duet term at equal weight (range [−3, 7])
``duolando``          skating 1 — Duolando's active RL reward (anti-skating)
``bailando``          beat 5, half_body 1 — Bailando++ §4's trade-offs γ_b = 5, γ_c = 1
``partner``           facing 1, contact 1, distance 1, penetration 1 — partner geometry only
``e3d2``              learned 1, beat 1, facing 1, contact 1 — the shipped learned reward (E3D2) with
                      the beat and two partner terms (range [−2, 5])
====================  ==========================================================================
"""
from __future__ import annotations

import inspect
import json
from typing import Any, Mapping

import numpy as np

from .context import StepContext
from .registry import RewardTerm, composite_weights, make_term, register_composite, term_class


class CompositeReward:
    """``total = Σ_i w_i · term_i(ctx)``; ``components`` are the unweighted term values.

    Attributes: ``names`` (term order), ``weights`` (name -> weight), ``terms`` (name -> term),
    ``spec`` (JSON-serialisable; ``make_reward(spec)`` rebuilds an equal reward), ``range``
    (low, high) = Σ_i of w_i · term range (ends swapped for negative weights).
    """

    def __init__(self, terms: Mapping[str, RewardTerm], weights: Mapping[str, float]):
        if set(terms) != set(weights):
            raise ValueError(f"CompositeReward: terms {sorted(terms)} and weights {sorted(weights)} differ")
        if not terms:
            raise ValueError("CompositeReward needs at least one term")
        self.names: tuple[str, ...] = tuple(terms)
        self.terms: dict[str, RewardTerm] = dict(terms)
        self.weights: dict[str, float] = {n: float(weights[n]) for n in self.names}

    @property
    def spec(self) -> dict[str, Any]:
        """``{name: weight}``, or ``{name: {"weight": w, **options}}`` for options off their defaults."""
        out: dict[str, Any] = {}
        for n in self.names:
            cfg = _non_default_options(self.terms[n])
            out[n] = {"weight": self.weights[n], **cfg} if cfg else self.weights[n]
        return out

    def to_json(self) -> str:
        return json.dumps(self.spec, sort_keys=True)

    @property
    def range(self) -> tuple[float, float]:
        lo = hi = 0.0
        for n in self.names:
            w, (a, b) = self.weights[n], self.terms[n].range
            lo += min(w * a, w * b)
            hi += max(w * a, w * b)
        return lo, hi

    @property
    def stateful(self) -> bool:
        return any(t.stateful for t in self.terms.values())

    def __call__(self, ctx: StepContext) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        components = {n: self.terms[n](ctx) for n in self.names}
        total = np.zeros(ctx.batch_size, np.float32)
        for n in self.names:
            total += np.float32(self.weights[n]) * components[n]
        return total, components

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Clear per-env state of stateful terms where ``mask`` (all envs when None)."""
        for t in self.terms.values():
            t.reset(mask)

    def __repr__(self) -> str:
        return f"CompositeReward({self.to_json()})"


def _non_default_options(term: RewardTerm) -> dict[str, Any]:
    """The term's constructor options that differ from the constructor's defaults."""
    try:
        params = inspect.signature(type(term).__init__).parameters
    except (TypeError, ValueError):
        return dict(term.config)
    out = {}
    for k, v in term.config.items():
        p = params.get(k)
        if p is None or p.default is inspect.Parameter.empty or p.default != v:
            out[k] = v
    return out


def _entry(name: str, value: Any) -> tuple[float, dict[str, Any]]:
    """A dict-spec value -> (weight, term options)."""
    if isinstance(value, Mapping):
        opts = dict(value)
        if "weight" not in opts:
            raise ValueError(f"reward spec for {name!r}: an options dict needs a 'weight' key; got {value!r}")
        weight = opts.pop("weight")
    else:
        weight, opts = value, {}
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.integer, np.floating)) \
            or not np.isfinite(weight):
        raise ValueError(f"reward spec for {name!r}: weight must be a finite number; got {weight!r}")
    return float(weight), opts


def make_reward(spec: str | Mapping[str, Any] | CompositeReward) -> CompositeReward:
    """Build a :class:`CompositeReward` from a spec (see the module docstring for the forms).

    Unknown names raise ValueError listing the registered terms and composites.
    """
    if isinstance(spec, CompositeReward):
        return spec
    if isinstance(spec, str):
        weights = composite_weights(spec)
        if weights is None:
            term_class(spec)  # raises the "unknown name" error
            weights = {spec: 1.0}
        spec = weights
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"reward spec must be a name, a non-empty {{term: weight}} dict or a CompositeReward; "
                         f"got {spec!r}")
    terms, weights = {}, {}
    for name, value in spec.items():
        weight, opts = _entry(name, value)
        terms[name] = make_term(name, **opts)
        weights[name] = weight
    return CompositeReward(terms, weights)


def register_builtin_composites() -> None:
    register_composite("default", {"beat": 1, "facing": 1, "contact": 1, "distance": 1, "penetration": 1,
                                   "skating": 1, "smooth": 1})
    register_composite("duolando", {"skating": 1})
    register_composite("bailando", {"beat": 5, "half_body": 1})
    register_composite("partner", {"facing": 1, "contact": 1, "distance": 1, "penetration": 1})
    register_composite("e3d2", {"learned": 1, "beat": 1, "facing": 1, "contact": 1})
