"""The shared per-step pass (rewards.shared): same values as the unshared code, no stale state."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import rewards
from duet_env.jit import use_jit
from rewards import StepContext, make_reward, make_term
from rewards.shared import SharedPass, sharing, sharing_enabled
from tests.reward_golden import GOLDEN, TERMS, fingerprint, golden_episodes, score_episode
from tests.test_rewards import learned_checkpoint, random_contexts  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def numpy_terms():
    """The shared pass belongs to the terms' numpy path: test it there (the compiled terms,
    which skip it, are checked against that path in tests/test_jit.py)."""
    with use_jit(False):
        yield


@pytest.fixture(scope="module")
def episodes():
    return golden_episodes()


def test_terms_equal_the_values_of_the_unshared_code(episodes):
    """Each built-in term, sharing on, against values saved from the code before the shared pass."""
    golden = np.load(GOLDEN)
    for ep, contexts in episodes.items():
        assert str(golden[f"{ep}/fingerprint"]) == fingerprint(contexts), \
            f"the inputs of {ep} changed: regenerate {GOLDEN.name} from the unshared code (tests/reward_golden.py)"
        assert sharing_enabled()
        now = score_episode(contexts)
        for n in TERMS:
            np.testing.assert_allclose(now[n], golden[f"{ep}/{n}"], rtol=0, atol=1e-6, err_msg=f"{ep}: {n}")


def test_the_golden_values_exercise_the_terms():
    golden = np.load(GOLDEN)
    for n in TERMS:
        values = np.concatenate([golden[k].ravel() for k in golden.files if k.endswith(f"/{n}")])
        assert np.ptp(values) > 0.05, f"{n} is constant over the golden contexts: the comparison would prove little"


def _all_terms(learned_checkpoint):
    options = {"learned": {"checkpoint": str(learned_checkpoint[0])}}
    return {n: make_term(n, **options.get(n, {})) for n in rewards.registered()}


def test_every_registered_term_with_and_without_sharing(episodes, learned_checkpoint):
    """All registered terms in one composite (sharing on) equal each term alone with sharing off,
    on random and SynthDuet contexts: a term writing into a shared array, or reading another
    term's quantity by mistake, shows up here."""
    for ep, contexts in episodes.items():
        together = _all_terms(learned_checkpoint)
        alone = _all_terms(learned_checkpoint)
        reward = rewards.CompositeReward(together, {n: 1.0 for n in together})
        for ctx in contexts:
            fresh = dataclasses.replace(ctx)  # the same arrays, no shared pass yet
            _, shared_out = reward(fresh)
            with sharing(False):
                for n, term in alone.items():
                    np.testing.assert_array_equal(shared_out[n], term(ctx), err_msg=f"{ep}: {n}")


def test_sharing_off_recomputes_and_on_computes_once():
    ctx = next(random_contexts(np.random.default_rng(3), batch=2, steps=1, with_pred=False))
    with sharing(False):
        assert ctx.shared is not ctx.shared
        assert not sharing_enabled()
    assert sharing_enabled()
    assert ctx.shared is ctx.shared
    assert ctx.shared.capsule_gaps is ctx.shared.capsule_gaps
    assert ctx.shared.dance_beats(2.0, 4, 0.3) is ctx.shared.dance_beats(2.0, 4, 0.3)
    assert ctx.shared.dance_beats(2.0, 4, 0.3) is not ctx.shared.dance_beats(2.0, 4, 0.0)
    calls = []
    assert ctx.shared.cached("mine", lambda c: calls.append(c) or 7) == 7
    assert ctx.shared.cached("mine", lambda c: calls.append(c) or 8) == 7
    assert calls == [ctx]


def test_contexts_do_not_share_a_pass_across_steps():
    """Each step's context has its own pass; copying or re-assigning a field never reads old values."""
    a, b = random_contexts(np.random.default_rng(4), batch=3, steps=2, with_pred=False)
    assert a.shared is not b.shared and a.shared.ctx is a and b.shared.ctx is b
    assert not np.array_equal(a.shared.follower_heading, b.shared.follower_heading)
    np.testing.assert_array_equal(b.shared.follower_heading,
                                  rewards.primitives.body_heading(b.current(b.follower_joints)))
    heading_a = a.shared.follower_heading
    a.follower_joints = b.follower_joints.copy()  # a field re-assigned: the pass is dropped
    np.testing.assert_array_equal(a.shared.follower_heading, b.shared.follower_heading)
    assert not np.array_equal(a.shared.follower_heading, heading_a)
    c = dataclasses.replace(b, leader_joints=a.leader_joints)
    assert c.shared is not b.shared
    np.testing.assert_array_equal(c.shared.leader_heading, a.shared.leader_heading)


def test_one_composite_over_an_episode_matches_fresh_terms_per_step(episodes):
    """The env's use: one reward object over many steps, a new context each step (nothing stale)."""
    contexts = episodes["random_pred0"]
    reward = make_reward("default")
    for i, ctx in enumerate(contexts):
        total, comps = reward(dataclasses.replace(ctx))
        with sharing(False):
            ref = score_episode(contexts[: i + 1], names=[n for n in reward.names if n != "beat"])
        for n, v in ref.items():
            np.testing.assert_array_equal(comps[n], v[-1], err_msg=f"step {i}: {n}")


def test_a_plain_function_term_needs_no_change():
    seen = []

    @rewards.register("test_user_speed", range=(0.0, np.inf))
    def user_speed(ctx):
        """Mean pelvis speed of the follower over the token (m/frame), without ctx.shared."""
        seen.append(ctx)
        p = ctx.current(ctx.follower_joints)[:, :, 0]
        return np.linalg.norm(np.diff(p, axis=1), axis=-1).mean(1)

    reward = make_reward({"test_user_speed": 1.0, "facing": 1.0, "penetration": 1.0})
    ctxs = list(random_contexts(np.random.default_rng(5), batch=4, steps=3, with_pred=False))
    for ctx in ctxs:
        total, comps = reward(ctx)
        p = ctx.follower_joints[:, -4:, 0]
        np.testing.assert_allclose(comps["test_user_speed"], np.linalg.norm(np.diff(p, axis=1), axis=-1).mean(1),
                                   rtol=1e-6)
        np.testing.assert_allclose(total, comps["test_user_speed"] + comps["facing"] + comps["penetration"],
                                   rtol=1e-6)
    assert seen == ctxs
    assert "_shared_pass" in vars(ctxs[0])  # the built-in terms shared; the user's term never had to


def test_shared_pass_is_bound_to_its_context():
    ctx = StepContext.from_single(np.zeros((32, 55, 3)), np.ones((32, 55, 3)))
    sp = SharedPass(ctx)
    assert sp.ctx is ctx and ctx.shared is not sp  # a hand-made pass is not installed
    assert ctx.shared.follower_body.shape == (1, 32, 22, 3)
    assert ctx.shared.follower_body_speed.shape == (1, 31)
    assert ctx.shared.capsule_gaps.shape == (1, 4, 18, 18)

