"""The shared capsule body model: segment distances, capsule gaps, hold pairs, and the three users agreeing."""
from __future__ import annotations

import numpy as np
import pytest

from duet_env import capsules, skeleton
from duet_env.capsules import (CAPSULE_KINDS, CAPSULE_NAMES, CAPSULE_RADII, PENETRATION_ALLOWANCE, capsule_gaps,
                               capsule_segments, deepest_overlap, hold_pair_mask, overlap_depth, pairwise_segment_distance,
                               segment_distance)
from duet_env.data import synth_checks
from duet_env.metrics import contact_and_penetration_frames
from rewards.terms.penetration import penetration_depth


def posed_bodies(frames: int, seed: int, spread: float = 0.25) -> np.ndarray:
    """Joints (frames, 55, 3) of randomly posed bodies (limb angles up to ~0.6 rad) at random yaw."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(scale=spread, size=(frames, skeleton.POSE_DIM))
    poses[:, :3] = 0.0
    poses[:, 1] = rng.uniform(-np.pi, np.pi, frames)
    return skeleton.forward_kinematics(poses, np.zeros((frames, 3)))


# ---------------------------------------------------------------- segment distance

def test_segment_distance_known_answers():
    p = lambda *v: np.array(v, dtype=float)  # noqa: E731
    o, x = p(0, 0, 0), p(1, 0, 0)
    assert segment_distance(o, x, p(0, 1, 0), p(1, 1, 0)) == pytest.approx(1.0)  # parallel
    assert segment_distance(o, x, p(0.5, -1, 2), p(0.5, 1, 2)) == pytest.approx(2.0)  # crossing, 2 apart
    assert segment_distance(o, x, p(0.5, -1, 0), p(0.5, 1, 0)) == pytest.approx(0.0)  # crossing, touching
    assert segment_distance(o, x, p(4, 4, 0), p(4, 8, 0)) == pytest.approx(5.0)  # end points
    assert segment_distance(o, x, p(2, 0, 0), p(3, 0, 0)) == pytest.approx(1.0)  # collinear
    assert segment_distance(o, x, p(0.3, 0.2, 0), p(0.3, 0.2, 0)) == pytest.approx(0.2)  # point
    assert segment_distance(o, o, p(3, 4, 0), p(3, 4, 0)) == pytest.approx(5.0)  # two points


def test_segment_distance_matches_brute_force():
    rng = np.random.default_rng(1)
    p0, p1, q0, q1 = (rng.normal(size=(300, 3)) for _ in range(4))
    p1[:30] = p0[:30]  # point vs segment
    q1[30:60] = q0[30:60]  # segment vs point
    q1[60:90] = q0[60:90] + 0.5 * (p1[60:90] - p0[60:90])  # parallel
    d = segment_distance(p0, p1, q0, q1)
    s = np.linspace(0, 1, 201)[None, :, None]
    ps, qs = p0[:, None] + s * (p1 - p0)[:, None], q0[:, None] + s * (q1 - q0)[:, None]
    brute = np.linalg.norm(ps[:, :, None] - qs[:, None], axis=-1).min(axis=(1, 2))
    assert (d <= brute + 1e-9).all()  # never above any sampled pair
    assert (brute - d < 0.02).all()  # and within the sampling resolution of the true minimum
    pairs = pairwise_segment_distance(*(x.reshape(30, 10, 3) for x in (p0, p1, q0, q1)))  # (30, 10, 10)
    a, b = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    g = lambda x: x.reshape(30, 10, 3)[:, a]  # noqa: E731
    h = lambda x: x.reshape(30, 10, 3)[:, b]  # noqa: E731
    np.testing.assert_allclose(pairs, segment_distance(g(p0), g(p1), h(q0), h(q1)), atol=1e-12)


# ---------------------------------------------------------------- capsule gaps

def test_capsule_gaps_equal_the_direct_formula_over_blocks_and_batches():
    a = posed_bodies(100, seed=2)  # more frames than one block of the blocked loop
    b = posed_bodies(100, seed=3) + np.array([0.3, 0.0, 0.1])
    gaps = capsule_gaps(a, b)
    sa, sb = capsule_segments(a), capsule_segments(b)
    direct = (segment_distance(sa[:, :, None, 0], sa[:, :, None, 1], sb[:, None, :, 0], sb[:, None, :, 1])
              - CAPSULE_RADII[:, None] - CAPSULE_RADII[None, :])
    assert gaps.shape == (100, 18, 18)
    np.testing.assert_allclose(gaps, direct, atol=1e-12)
    batched = capsule_gaps(a.reshape(4, 25, 55, 3).astype(np.float32), b.reshape(4, 25, 55, 3).astype(np.float32))
    np.testing.assert_allclose(batched.reshape(100, 18, 18), gaps, atol=1e-5)  # float32 input: ~µm
    assert (gaps < 0).any() and (gaps > 0).any()
    with pytest.raises(ValueError, match="joints_b"):
        capsule_gaps(a, b[:, :54])


def test_rest_body_has_the_documented_adult_dimensions():
    seg = capsule_segments(skeleton.rest_joints()[None])[0]  # (C, 2, 3)
    r = dict(zip(CAPSULE_NAMES, CAPSULE_RADII))
    top = seg[CAPSULE_NAMES.index("head"), 1, 1] + r["head"]
    sole = seg[CAPSULE_NAMES.index("left_foot"), :, 1].min() - r["left_foot"]
    assert 1.68 < top - sole < 1.74  # stature of the ~1.70 m adult
    hips = seg[CAPSULE_NAMES.index("hips")]
    assert 0.30 < abs(hips[0, 0] - hips[1, 0]) + 2 * r["hips"] < 0.36  # hip breadth


def test_overlap_depth_of_two_bodies_face_to_face():
    leader = skeleton.forward_kinematics(np.zeros((1, skeleton.POSE_DIM)), np.zeros((1, 3)))
    poses = np.zeros((1, skeleton.POSE_DIM))
    poses[0, 1] = np.pi
    follower = skeleton.forward_kinematics(poses, np.array([[0.0, 0.0, 0.18]]))
    # pelvises 0.18 m apart, lower-torso capsules r = 0.12 each: 0.24 − 0.18 = 0.06 m deep
    assert overlap_depth(capsule_gaps(follower, leader))[0] == pytest.approx(0.06, abs=2e-3)


@pytest.mark.parametrize("hold", [None, "open", "closed"])
def test_deepest_overlap_equals_the_full_gap_table(hold):
    """The broad phase only skips work: equal (not close) to overlap_depth of the full table, on
    bodies from far apart to deep in each other, far from the origin, batched, float32, in blocks."""
    rng = np.random.default_rng(7)
    frames = 250  # more than one broad-phase block
    leader = posed_bodies(frames, seed=8, spread=0.5)
    follower = posed_bodies(frames, seed=9, spread=0.5)
    follower += np.stack([rng.uniform(-1.0, 1.0, frames), rng.uniform(-0.1, 0.1, frames),
                          rng.uniform(0.0, 1.2, frames)], 1)[:, None]
    far = np.array([350.0, 0.0, -120.0])  # world position must not matter
    excused = hold_pair_mask(hold)
    for a, b in ((follower, leader), (follower + far, leader + far)):
        reference = overlap_depth(capsule_gaps(a, b), excused)
        np.testing.assert_array_equal(deepest_overlap(a, b, excused), reference)
    reference = overlap_depth(capsule_gaps(follower, leader), excused)
    assert 0.1 < (reference > 0).mean() < 0.9  # a mix of touching and clear frames
    # per-env masks over (envs, frames), as the reward term passes them, and float32 joints
    envs = np.arange(10) % 2 == 0
    masks = envs[:, None, None, None] & excused
    fa, la = follower.reshape(10, 25, 55, 3).astype(np.float32), leader.reshape(10, 25, 55, 3).astype(np.float32)
    np.testing.assert_array_equal(deepest_overlap(fa, la, masks), overlap_depth(capsule_gaps(fa, la), masks))
    assert deepest_overlap(fa[:, :0], la[:, :0]).shape == (10, 0)
    with pytest.raises(ValueError, match="joints_b"):
        deepest_overlap(follower, leader[:, :54])


# ---------------------------------------------------------------- hold pairs

def test_hold_pairs_open_within_closed_and_never_legs_heads_or_torso_on_torso():
    none, open_, closed = hold_pair_mask(None), hold_pair_mask("open"), hold_pair_mask("closed")
    for mask in (open_, closed):
        np.testing.assert_array_equal(mask, mask.T)  # either dancer order
    assert not none.any()
    assert (closed >= open_).all() and closed.sum() > open_.sum()
    ix = {n: i for i, n in enumerate(CAPSULE_NAMES)}
    assert open_[ix["left_hand"], ix["right_hand"]] and open_[ix["right_forearm"], ix["left_hand"]]
    assert not open_[ix["left_hand"], ix["upper_torso"]]
    assert closed[ix["left_upper_arm"], ix["right_upper_arm"]] and closed[ix["right_hand"], ix["upper_torso"]]
    never = [i for i, k in enumerate(CAPSULE_KINDS) if k in ("thigh", "shin", "foot", "head")]
    assert not closed[never].any()
    torso = [i for i, k in enumerate(CAPSULE_KINDS) if k == "torso"]
    assert not closed[np.ix_(torso, torso)].any()
    with pytest.raises(ValueError, match="hold"):
        hold_pair_mask("tight")


# ---------------------------------------------------------------- the three users agree

@pytest.mark.parametrize("hold", [None, "closed"])
def test_metric_reward_and_synth_checks_count_the_same_frames(hold):
    rng = np.random.default_rng(4)
    leader = posed_bodies(120, seed=5)
    follower = posed_bodies(120, seed=6)
    follower += np.stack([rng.uniform(-0.4, 0.4, 120), np.zeros(120), rng.uniform(0.1, 0.6, 120)], 1)[:, None]
    metric = contact_and_penetration_frames(follower, leader, hold=hold)[1]
    depth = penetration_depth(follower[None].astype(np.float32), leader[None].astype(np.float32),
                              np.array([hold is not None]))[0]
    share, _ = synth_checks.penetration(leader, follower, hold)
    assert 0.1 < metric.mean() < 0.9  # a mix of penetrating and clear frames
    mismatch = metric != (depth > PENETRATION_ALLOWANCE)
    assert mismatch.sum() <= 1  # float32 joints in the reward path may flip a frame at the 2 cm edge
    assert share == pytest.approx(metric.mean(), abs=1e-12)


def test_capsules_module_imports_no_env_data_or_agents():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(capsules))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "typing", "numpy", "skeleton", "jit"}, imported
