"""The compiled kernels (duet_env.jit, rewards.kernels) against their numpy reference code."""
from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

import duet_env  # noqa: F401  (registers the env)
from duet_env.capsules import NUM_CAPSULES, deepest_overlap, hold_pair_mask
from duet_env.jit import jit_available, use_jit
from rewards import kernels, make_term
from rewards.primitives import SIGMOID_CODES, tolerance, tolerance_spec
from rewards.terms.beat import beats_from_speed, mean_joint_speed
from tests.reward_golden import golden_episodes
from tests.test_rewards import random_contexts

pytestmark = pytest.mark.skipif(not jit_available(), reason="numba is not installed")

DEFAULT_TERMS = ("beat", "facing", "contact", "distance", "penetration", "skating", "smooth")
# No transcendental function in these: the kernel must round exactly as numpy does.
BIT_EXACT = ("beat", "penetration", "skating")


def _both(fn):
    with use_jit(False):
        ref = fn()
    with use_jit(True):
        fast = fn()
    return ref, fast


def test_compiled_terms_equal_the_numpy_terms_over_whole_episodes():
    """Each default term, compiled and numpy, on the golden episodes (random batches with and
    without a root-velocity prediction, SynthDuet duets): the same values step after step,
    including the beat term's state carried between steps."""
    episodes = golden_episodes()
    episodes["random_batch7"] = list(random_contexts(np.random.default_rng(5), batch=7, steps=10, with_pred=True))
    for name in DEFAULT_TERMS:
        for ep, contexts in episodes.items():
            ref_term, fast_term = make_term(name), make_term(name)
            for ctx in contexts:
                with use_jit(False):
                    ref = ref_term(dataclasses.replace(ctx))
                with use_jit(True):
                    fast = fast_term(dataclasses.replace(ctx))
                assert fast.dtype == ref.dtype == np.float32 and fast.shape == ref.shape
                if name in BIT_EXACT:
                    np.testing.assert_array_equal(fast, ref, err_msg=f"{ep}: {name}")
                else:
                    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-6, err_msg=f"{ep}: {name}")


def test_the_switch_selects_the_kernels(monkeypatch):
    """use_jit(True) really runs the kernels and use_jit(False) never does (otherwise the equality
    tests above would compare numpy with itself)."""
    ctx = next(random_contexts(np.random.default_rng(0), batch=2, steps=1, with_pred=True))
    term = make_term("facing")

    def boom(*args):
        raise RuntimeError("kernel called")

    monkeypatch.setattr(kernels, "facing", boom)
    with use_jit(False):
        term(ctx)
    with use_jit(True), pytest.raises(RuntimeError, match="kernel called"):
        term(ctx)


@pytest.mark.parametrize("layout", ["none", "one", "per_env", "per_frame"])
def test_overlap_kernel_equals_the_numpy_overlap_bit_for_bit(layout):
    rng = np.random.default_rng(3)
    b, k = 3, 5
    a = (rng.normal(size=(b, k, 55, 3)) * 0.25).astype(np.float32)
    # partner B close by: many pairs overlap, some only just
    other = (a + rng.normal(size=a.shape).astype(np.float32) * 0.15 + np.float32(0.2)).astype(np.float32)
    excused = {"none": None, "one": hold_pair_mask("closed"),
               "per_env": hold_pair_mask("closed")[None, None] & (np.arange(b) % 2 == 0)[:, None, None, None],
               "per_frame": rng.random((b, k, NUM_CAPSULES, NUM_CAPSULES)) < 0.3}[layout]
    ref, fast = _both(lambda: deepest_overlap(a, other, excused))
    assert ref.shape == fast.shape == (b, k) and (ref > 0).mean() > 0.5
    np.testing.assert_array_equal(fast, ref)


def test_beat_kernels_equal_the_numpy_detector_bit_for_bit():
    rng = np.random.default_rng(4)
    found = 0
    for trial in range(400):
        b, n = int(rng.integers(1, 4)), int(rng.integers(3, 50))
        speed = rng.random((b, n)).astype(np.float32 if trial % 2 else np.float64)
        if trial % 3 == 0:
            speed = np.round(speed * 3) / 3  # plateaus: ties between neighbours
        sigma, radius = [(0.0, 0), (2.0, 4), (5.0, 10), (1.5, 3)][trial % 4]
        depth, half = [0.0, 0.3, 0.6][trial % 3], int(rng.integers(1, 6))
        ref, fast = _both(lambda: beats_from_speed(speed, sigma, radius, depth, half))
        np.testing.assert_array_equal(fast, ref, err_msg=f"trial {trial}")
        found += int(ref.sum())
    assert found > 500  # the comparison covered many beats, not only empty rows
    joints = (np.cumsum(rng.normal(size=(2, 40, 22, 3)), axis=1) * 0.01).astype(np.float32)
    ref, fast = _both(lambda: mean_joint_speed(joints, 30))
    assert ref.dtype == fast.dtype == np.float32
    np.testing.assert_array_equal(fast, ref)


@pytest.mark.parametrize("sigmoid", list(SIGMOID_CODES))
def test_kernel_tolerance_matches_tolerance(sigmoid):
    x = np.linspace(-1.0, 3.0, 401)
    value = 0.0 if sigmoid in ("linear", "quadratic", "cosine") else 0.1
    ref = tolerance(x, (0.2, 0.5), 0.7, sigmoid, value)
    spec = tolerance_spec(0.2, 0.5, 0.7, sigmoid, value)
    fast = np.array([kernels.tolerance_value(v, *spec) for v in x])
    np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-15)
    assert 0.0 < ref.min() < 1.0 or sigmoid in ("linear", "quadratic", "cosine")


def test_every_sigmoid_has_a_kernel_code():
    from rewards.primitives import _SIGMOIDS

    assert set(SIGMOID_CODES) == set(_SIGMOIDS) and len(set(SIGMOID_CODES.values())) == len(_SIGMOIDS)


def test_tolerance_spec_rejects_what_tolerance_rejects():
    for args, match in [((0.5, 0.2, 0.1), "low <= high"), ((0.0, 1.0, -1.0), "margin"),
                        ((0.0, 1.0, 0.5, "nope"), "unknown sigmoid"), ((0.0, 1.0, 0.5, "gaussian", 0.0), "value_at_margin")]:
        with pytest.raises(ValueError, match=match):
            tolerance_spec(*args)
        with pytest.raises(ValueError, match=match):
            tolerance(0.3, args[:2], *args[2:])


def test_env_rewards_are_the_same_with_the_numpy_reward(env_kwargs):
    """What a user gets: the same env, same seed and actions, rewards and every component equal
    with the compiled and the numpy reward over whole episodes."""
    def rollout(compiled: bool):
        env = gym.make("DuetAccompany-v0", **env_kwargs)
        env.reset(seed=1)
        env.action_space.seed(1)
        out = []
        with use_jit(compiled):
            for _ in range(30):
                _, r, term, trunc, info = env.step(env.action_space.sample())
                out.append([r] + [info["reward_components"][n] for n in DEFAULT_TERMS])
                if term or trunc:
                    env.reset()
        return np.array(out)

    ref, fast = rollout(False), rollout(True)
    assert np.ptp(ref[:, 1:], axis=0).max() > 0.1  # the terms moved
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-5)


def test_unchecked_context_takes_the_arrays_as_they_are_and_names_bad_fields():
    ctx = next(random_contexts(np.random.default_rng(2), batch=2, steps=1, with_pred=True))
    kwargs = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx)}
    fast = type(ctx).unchecked(**kwargs)
    assert fast.follower_joints is ctx.follower_joints  # no copy, no conversion
    np.testing.assert_array_equal(make_term("facing")(fast), make_term("facing")(ctx))
    with pytest.raises(TypeError, match="unknown fields \\['colour'\\]"):
        type(ctx).unchecked(colour=1, **kwargs)
    del kwargs["music"]
    with pytest.raises(TypeError, match="missing fields \\['music'\\]"):
        type(ctx).unchecked(**kwargs)


@pytest.mark.parametrize("value, enabled", [("0", False), ("off", False), ("1", True)])
def test_the_environment_variable_sets_the_default(value, enabled):
    import os
    import subprocess
    import sys

    code = "from duet_env.jit import jit_enabled, use_jit\nprint(jit_enabled())\nwith use_jit(True): print(jit_enabled())"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, DUET_JIT=value), capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [str(enabled), "True"]
