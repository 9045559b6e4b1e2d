"""Reward terms on constructed motion whose answer is known, plus registry/composition checks."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import rewards
from duet_env import skeleton
from rewards import StepContext, episode_contexts, make_reward, make_term, tolerance
from rewards.context import CONTEXT_FRAMES
from rewards.terms.beat import BeatTerm
from rewards.terms.contact import LEFT_PALM, RIGHT_PALM

F = CONTEXT_FRAMES


def dancer(yaw: float = 0.0, pos=(0.0, 0.0, 0.0), frames: int = F, poses: np.ndarray | None = None) -> np.ndarray:
    """Joints (frames, 55, 3) of the rest pose turned by ``yaw`` about y and moved to ``pos``."""
    p = np.zeros((frames, skeleton.POSE_DIM)) if poses is None else np.array(poses, dtype=np.float64)
    p[:, 1] = yaw
    tr = np.tile(np.asarray(pos, np.float64), (frames, 1))
    return skeleton.forward_kinematics(p, tr)


def ctx_of(leader, follower, **kw) -> StepContext:
    kw.setdefault("music_beat", np.zeros(leader.shape[0], bool))
    return StepContext.from_single(leader, follower, **kw)


LEADER = dancer(0.0)  # at the origin, facing +z
FACE_TO_FACE = dancer(np.pi, (0.0, 0.0, 0.4))  # 0.4 m in front, facing −z


# --- primitives ---------------------------------------------------------------------------

@pytest.mark.parametrize("sigmoid", ["gaussian", "linear", "quadratic", "cosine", "hyperbolic", "long_tail",
                                     "reciprocal", "tanh_squared"])
def test_tolerance_known_values(sigmoid):
    x = np.array([0.2, 0.5, 1.0, 1.5, 0.0 - 0.7, 1.5 + 0.7])
    out = tolerance(x, bounds=(0.0, 1.5), margin=0.7, sigmoid=sigmoid, value_at_margin=0.1)
    np.testing.assert_allclose(out[:4], 1.0)
    np.testing.assert_allclose(out[4], 0.1, rtol=1e-9)  # 0.7 below the low bound
    np.testing.assert_allclose(out[5], 0.1, rtol=1e-9)  # 0.7 above the high bound
    farther = tolerance(np.array([3.0, 10.0]), (0.0, 1.5), 0.7, sigmoid, 0.1)
    assert farther[0] <= 0.1 and farther[1] <= farther[0]


def test_tolerance_linear_midpoint_and_indicator():
    assert tolerance(1.5, (0, 1), margin=1.0, sigmoid="linear", value_at_margin=0.0) == pytest.approx(0.5)
    assert tolerance(3.0, (0, 1), margin=1.0, sigmoid="linear", value_at_margin=0.0) == 0.0
    np.testing.assert_array_equal(tolerance(np.array([-0.1, 0.5, 1.1]), (0, 1)), [0.0, 1.0, 0.0])
    # per-element bounds broadcast
    out = tolerance(np.array([0.5, 0.5]), (np.array([0.0, 0.6]), np.array([1.0, 0.9])), 0.1, "linear", 0.0)
    np.testing.assert_allclose(out, [1.0, 0.0], atol=1e-12)


def test_tolerance_rejects_bad_arguments():
    with pytest.raises(ValueError, match="bounds"):
        tolerance(0.0, (1.0, 0.0), 1.0)
    with pytest.raises(ValueError, match="value_at_margin"):
        tolerance(0.0, (0.0, 1.0), 1.0, "gaussian", 0.0)
    with pytest.raises(ValueError, match="unknown sigmoid"):
        tolerance(0.0, (0.0, 1.0), 1.0, "bogus")


# --- step context -------------------------------------------------------------------------

def test_step_context_validates_shapes_and_values():
    with pytest.raises(ValueError, match="follower_joints"):
        StepContext.from_single(LEADER, FACE_TO_FACE[:, :54], np.zeros(F, bool))
    bad = FACE_TO_FACE.copy()
    bad[3, 5, 1] = np.nan
    with pytest.raises(ValueError, match="follower_joints contains NaN"):
        StepContext.from_single(LEADER, bad, np.zeros(F, bool))
    with pytest.raises(ValueError, match="follower_root_velocity_pred"):
        StepContext.from_single(LEADER, FACE_TO_FACE, np.zeros(F, bool), follower_root_velocity_pred=np.zeros((3, 3)))
    ctx = StepContext.from_single(LEADER, FACE_TO_FACE, genre="Waltz")
    assert ctx.hold_expected[0] and ctx.distance_range[0].tolist() == pytest.approx([0.30, 0.45])
    both = StepContext.stack([ctx, ctx])
    assert both.batch_size == 2 and both.num_frames == F and both.history_frames == F - 4


# --- facing -------------------------------------------------------------------------------

def test_facing_rewards_the_expected_relation():
    facing = make_term("facing")
    face = facing(ctx_of(LEADER, FACE_TO_FACE, facing_expected=np.pi))[0]
    away = facing(ctx_of(LEADER, dancer(0.0, (0, 0, 0.4)), facing_expected=np.pi))[0]
    side = facing(ctx_of(LEADER, dancer(np.pi / 2, (0, 0, 0.4)), facing_expected=np.pi))[0]
    assert face == pytest.approx(1.0)
    assert away < 1e-3 < side < face
    # HipHop-style expectation (same direction): facing away from the leader is now right.
    assert facing(ctx_of(LEADER, dancer(0.0, (0, 0, 0.4)), facing_expected=0.0))[0] == pytest.approx(1.0)
    # 10° off is still within the 15° tolerance
    assert facing(ctx_of(LEADER, dancer(np.pi + np.deg2rad(10), (0, 0, 0.4))))[0] == pytest.approx(1.0)


# --- half body ----------------------------------------------------------------------------

def test_half_body_penalises_opposite_halves():
    term = make_term("half_body")
    twisted = np.zeros((F, skeleton.POSE_DIM))
    twisted[:, 3 * 3 + 1] = np.pi  # spine1 turned 180° about y: the upper body faces backwards
    quarter = np.zeros((F, skeleton.POSE_DIM))
    quarter[:, 3 * 3 + 1] = np.pi / 2
    assert term(ctx_of(LEADER, FACE_TO_FACE))[0] == pytest.approx(1.0)
    assert term(ctx_of(LEADER, dancer(0.0, poses=twisted)))[0] == pytest.approx(0.0, abs=1e-5)
    assert term(ctx_of(LEADER, dancer(0.0, poses=quarter)))[0] == pytest.approx(1.0, abs=1e-5)


# --- beat ---------------------------------------------------------------------------------

PERIOD = 12  # frames between music beats (150 bpm at 30 fps)


def moving_follower(frames: int, minima_at: int) -> np.ndarray:
    """Rest-pose follower sliding along x with speed 1 − 0.8 cos(2π (f − minima_at) / PERIOD) m/s:
    strict speed minima exactly at frames minima_at + k·PERIOD."""
    f = np.arange(frames)
    speed = 1.0 - 0.8 * np.cos(2 * np.pi * (f - minima_at) / PERIOD)
    speed[0] = 0.0
    x = np.cumsum(speed) / 30.0
    base = dancer(np.pi, (0, 0, 0.4), frames=1)[0]
    out = np.repeat(base[None], frames, 0)
    out[..., 0] += x[:, None]
    return out


def run_episode(term, leader, follower, beats, **kw) -> np.ndarray:
    return np.array([term(c)[0] for c in episode_contexts(leader, follower, beats, **kw)])


def test_beat_on_aligned_motion_pays_plus_one_per_token_with_one_step_delay():
    frames = 96  # 24 tokens
    beats = np.zeros(frames, bool)
    beats[6::PERIOD] = True
    follower = moving_follower(frames, minima_at=6)
    leader = dancer(0.0, frames=frames)
    values = run_episode(BeatTerm(), leader, follower, beats)
    assert values[0] == 0.0  # nothing to pay at step 0
    np.testing.assert_array_equal(values[1:-1], 1.0)  # token t paid at step t+1
    assert values[-1] == 2.0  # flush: previous token + the last token
    assert values.sum() == frames // 4


def test_beat_off_the_motion_minima_pays_minus_one_at_the_documented_step():
    frames = 96
    leader = dancer(0.0, frames=frames)
    follower = moving_follower(frames, minima_at=6)
    beats = np.zeros(frames, bool)
    beats[12::PERIOD] = True  # at the speed maxima: no dance beat anywhere near
    values = run_episode(BeatTerm(), leader, follower, beats)
    beat_tokens = sorted({f // 4 for f in np.flatnonzero(beats)})
    for t in beat_tokens[:-1]:
        assert values[t + 1] == -1.0, f"token {t} with a missed beat is paid at step {t + 1}"
    others = [s for s in range(1, len(values) - 1) if s - 1 not in beat_tokens]
    np.testing.assert_array_equal(values[others], 1.0)
    # A still follower has no dance beats: one beat in token 5 only costs exactly at step 6.
    beats = np.zeros(frames, bool)
    beats[21] = True
    still = np.repeat(FACE_TO_FACE[:1], frames, 0)
    values = run_episode(BeatTerm(), leader, still, beats)
    assert values[6] == -1.0 and np.delete(values[1:-1], 5).tolist() == [1.0] * 21


def test_beat_counts_only_real_slow_downs():
    """A speed wobble of ±10 % has strict minima on the music beats but no real dip: under the
    depth rule (speed at most 0.7 × the lower side peak within 4 frames) it is off the beat."""
    frames = 96
    leader = dancer(0.0, frames=frames)
    beats = np.zeros(frames, bool)
    beats[18::PERIOD] = True
    f = np.arange(frames)
    speed = 1.0 - 0.1 * np.cos(2 * np.pi * (f - 6) / PERIOD)
    shallow = np.repeat(dancer(np.pi, (0, 0, 0.4), frames=1), frames, 0)
    shallow[..., 0] += (np.cumsum(speed) / 30.0)[:, None]
    beat_tokens = sorted({t // 4 for t in np.flatnonzero(beats)})[:-1]
    plain = run_episode(BeatTerm(depth=0.0), leader, shallow, beats)
    deep = run_episode(BeatTerm(), leader, shallow, beats)
    assert [plain[t + 1] for t in beat_tokens] == [1.0] * len(beat_tokens)  # Bailando++: every minimum
    assert [deep[t + 1] for t in beat_tokens] == [-1.0] * len(beat_tokens)
    # The deep wobble of moving_follower keeps its beats under both rules.
    follower = moving_follower(frames, minima_at=6)
    np.testing.assert_array_equal(run_episode(BeatTerm(), leader, follower, beats),
                                  run_episode(BeatTerm(depth=0.0), leader, follower, beats))
    assert make_reward({"beat": {"weight": 1, "depth": 0.5}}).spec == {"beat": {"weight": 1.0, "depth": 0.5}}
    with pytest.raises(ValueError, match="depth"):
        BeatTerm(depth=1.0)


def test_beat_reset_clears_pending_window():
    term = BeatTerm()
    ctxs = list(episode_contexts(dancer(0.0, frames=40), moving_follower(40, 6), np.zeros(40, bool)))
    assert term(ctxs[0])[0] == 0.0 and term(ctxs[1])[0] == 1.0
    term.reset(np.array([True]))
    assert term(ctxs[2])[0] == 0.0  # the pending window belonged to the reset episode
    assert term(ctxs[3])[0] == 1.0


# --- contact ------------------------------------------------------------------------------

def test_contact_near_one_with_hands_together_low_apart_neutral_without_hold():
    term = make_term("contact")
    apart = dancer(np.pi, (0.0, 0.0, 0.5))  # T-pose face to face: right palm 50 cm from leader's left palm
    together = apart.copy()
    # Move the follower's right wrist and hand onto the leader's left palm (2 cm off).
    hand = [21] + list(range(40, 55))
    shift = LEADER[:, LEFT_PALM].mean(1) - together[:, RIGHT_PALM].mean(1) + np.array([0.0, 0.02, 0.0])
    together[:, hand] += shift[:, None, :]
    near = term(ctx_of(LEADER, together, hold_expected=True))[0]
    far = term(ctx_of(LEADER, apart, hold_expected=True))[0]
    assert near > 0.99 and far < 0.01
    assert term(ctx_of(LEADER, together, hold_expected=False))[0] == 0.0
    assert make_term("contact", neutral=0.5)(ctx_of(LEADER, apart, hold_expected=False))[0] == 0.5


# --- penetration --------------------------------------------------------------------------

def test_penetration_penalises_overlap_only():
    term = make_term("penetration")
    assert term(ctx_of(LEADER, dancer(np.pi, (0.0, 0.0, 1.0))))[0] == 0.0
    assert term(ctx_of(LEADER, FACE_TO_FACE))[0] == 0.0  # 0.4 m chest to chest: apart
    assert term(ctx_of(LEADER, dancer(np.pi, (0.0, 0.0, 0.0))))[0] == pytest.approx(-1.0)
    # Face to face with pelvises 0.18 m apart the deepest capsule overlap (lower torso, r = 0.12,
    # on both) is 0.24 − 0.18 = 0.06 m -> −(0.06 − 0.02 allowance) / 0.10 = −0.4.
    assert term(ctx_of(LEADER, dancer(np.pi, (0.0, 0.0, 0.18))))[0] == pytest.approx(-0.4, abs=0.01)
    assert term(ctx_of(LEADER, dancer(np.pi, (0.0, 0.0, 0.23))))[0] == 0.0  # 1 cm: within the allowance
    # T-pose side by side 1.62 m apart: only the outstretched hands overlap; allowed in a hold.
    side = dancer(0.0, (1.62, 0.0, 0.0))
    assert term(ctx_of(LEADER, side, hold_expected=False))[0] < 0.0
    assert term(ctx_of(LEADER, side, hold_expected=True))[0] == 0.0


# --- distance -----------------------------------------------------------------------------

def test_distance_inside_range_is_one_far_is_zero():
    term = make_term("distance")
    assert term(ctx_of(LEADER, FACE_TO_FACE, distance_range=(0.3, 0.45)))[0] == 1.0
    assert term(ctx_of(LEADER, dancer(np.pi, (0, 0, 3.0)), distance_range=(0.3, 0.45)))[0] < 1e-6
    half_metre_out = term(ctx_of(LEADER, dancer(np.pi, (0, 0, 0.95)), distance_range=(0.3, 0.45)))[0]
    assert half_metre_out == pytest.approx(0.1, rel=1e-4)  # value_at_margin at the 0.5 m margin


# --- skating ------------------------------------------------------------------------------

def test_skating_with_predicted_root_velocity():
    term = make_term("skating")
    follower = moving_follower(F, minima_at=6)
    actual = np.diff(follower[-5:, 0], axis=0)
    assert term(ctx_of(LEADER, follower, follower_root_velocity_pred=actual))[0] == 1.0
    assert term(ctx_of(LEADER, follower, follower_root_velocity_pred=actual + [0.02, 0, 0]))[0] == 1.0  # ±3 cm
    assert term(ctx_of(LEADER, follower, follower_root_velocity_pred=actual + [0, 0, 1.0]))[0] == 0.0


def test_skating_without_prediction_penalises_planted_foot_sliding():
    term = make_term("skating")
    assert term(ctx_of(LEADER, FACE_TO_FACE))[0] == 1.0  # standing still
    sliding = FACE_TO_FACE.copy()
    sliding[..., 0] += 0.05 * np.arange(F)[:, None]  # whole body glides 5 cm/frame with feet down
    assert term(ctx_of(LEADER, sliding))[0] == 0.0
    walking = sliding.copy()  # same glide but the feet are lifted: not a slide
    walking[:, [7, 8, 10, 11], 1] += 0.3
    walking[: F // 2, [7, 8, 10, 11], 1] -= 0.3  # they were down earlier in the window (sets the ground)
    assert term(ctx_of(LEADER, walking))[0] == 1.0


# --- smooth -------------------------------------------------------------------------------

def test_smooth_known_values_on_cubic_motion():
    """x = a t³ (t in seconds) has jerk 6a on every joint: 1 up to the bound, ½ halfway through
    the margin (cosine), 0 beyond it."""
    term = make_term("smooth")
    t = np.arange(F) / 30.0

    def cubic(jerk):
        out = FACE_TO_FACE.copy()
        out[..., 0] += (jerk / 6.0 * t ** 3)[:, None]
        return out

    assert term(ctx_of(LEADER, FACE_TO_FACE))[0] == 1.0  # still
    assert term(ctx_of(LEADER, cubic(0.99 * term.bound)))[0] == 1.0
    assert term(ctx_of(LEADER, cubic(term.bound + 0.5 * term.margin)))[0] == pytest.approx(0.5, abs=1e-3)
    assert term(ctx_of(LEADER, cubic(term.bound + 1.01 * term.margin)))[0] == 0.0
    assert make_term("smooth", bound=1000.0)(ctx_of(LEADER, cubic(900.0)))[0] == 1.0
    with pytest.raises(ValueError, match="margin"):
        make_term("smooth", margin=0.0)


# --- registry and composition -------------------------------------------------------------

def test_custom_term_by_decorator_in_names_and_dicts():
    @rewards.register("test_upright")
    class Upright(rewards.RewardTerm):
        """Mean head height above the pelvis of the follower, clipped to [0, 1]."""
        range = (0.0, 1.0)

        def __init__(self):
            self.config = {}

        def compute(self, ctx):
            j = ctx.current(ctx.follower_joints)
            return np.clip((j[..., 15, 1] - j[..., 0, 1]).mean(1), 0, 1)

    @rewards.register("test_const", range=(0.0, 2.0))
    def const(ctx):
        return np.full(ctx.batch_size, 2.0)

    assert {"test_upright", "test_const"} <= set(rewards.registered())
    ctx = ctx_of(LEADER, FACE_TO_FACE)
    total, comps = make_reward("test_upright")(ctx)
    assert comps["test_upright"][0] == pytest.approx(0.6, abs=0.1) and total[0] == comps["test_upright"][0]
    r = make_reward({"test_upright": 2, "test_const": 0.5, "distance": 1})
    total, comps = r(ctx)
    assert total[0] == pytest.approx(2 * comps["test_upright"][0] + 1.0 + 1.0)
    assert r.range == (0.0, 4.0)


def test_reward_pickles_with_state_and_custom_terms():
    @rewards.register("test_pickled", range=(0.0, 1.0))
    def half(ctx):
        return np.full(ctx.batch_size, 0.5)

    r = make_reward({"beat": 1, "test_pickled": 2, "facing": {"weight": 1, "margin_deg": 30}})
    ctxs = list(episode_contexts(dancer(0.0, frames=40), moving_follower(40, 6), np.zeros(40, bool)))
    r(ctxs[0])  # leaves a pending beat window in the state
    back = pickle.loads(pickle.dumps(r))
    assert back.spec == r.spec
    a, b = r(ctxs[1]), back(ctxs[1])
    assert a[0][0] == b[0][0] and b[1]["beat"][0] == 1.0 and b[1]["test_pickled"][0] == 0.5


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown reward term 'nope'.*beat.*facing"):
        make_reward("nope")
    with pytest.raises(ValueError, match="unknown reward term 'nope'"):
        make_reward({"beat": 1, "nope": 2})
    with pytest.raises(ValueError, match="weight"):
        make_reward({"beat": "five"})


def test_builtin_composites_and_range():
    assert make_reward("duolando").names == ("skating",)
    bail = make_reward("bailando")
    assert bail.weights == {"beat": 5.0, "half_body": 1.0} and bail.range == (-10.0, 11.0)
    assert set(make_reward("partner").names) == {"facing", "contact", "distance", "penetration"}
    assert make_reward("default").range == (-3.0, 7.0)  # 7 terms since smooth joined
    rewards.register_composite("test_mix", {"facing": 2, "penetration": 3})
    assert make_reward("test_mix").range == (-3.0, 2.0)


def test_spec_round_trips_through_json():
    r = make_reward({"beat": 5, "facing": {"weight": 1, "margin_deg": 30}, "contact": 1})
    back = make_reward(json.loads(json.dumps(r.spec)))
    assert back.spec == r.spec == {"beat": 5.0, "facing": {"weight": 1.0, "margin_deg": 30.0}, "contact": 1.0}
    ctx = ctx_of(LEADER, dancer(np.pi + 0.9, (0, 0, 0.4)), hold_expected=True)
    a, b = r(ctx), back(ctx)
    assert a[0][0] == b[0][0] and a[0][0] != make_reward({"beat": 5, "facing": 1, "contact": 1})(ctx)[0][0]


def test_composite_total_is_weighted_sum_and_reset_reaches_terms():
    r = make_reward("default")
    ctx = StepContext.stack([ctx_of(LEADER, FACE_TO_FACE, step=1, hold_expected=True),
                             ctx_of(LEADER, dancer(np.pi, (0, 0, 2.0)), step=1)])
    total, comps = r(ctx)
    expect = sum(r.weights[n] * comps[n] for n in r.names)
    np.testing.assert_allclose(total, expect, rtol=1e-6)
    assert total.dtype == np.float32 and comps["distance"][1] < comps["distance"][0]
    r.reset(np.array([True, False]))
    assert r.terms["beat"]._pending.tolist() == [False, True]


def test_rewards_import_without_the_env():
    # (gymnasium itself comes with duet_env/__init__, which registers the env id by string only)
    code = ("import sys, rewards; bad = [m for m in sys.modules if m in ('duet_env.env', 'duet_env.vector', "
            "'duet_env.tokenizer') or m.startswith('agents') or m.startswith('duet_env.data')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- learned ------------------------------------------------------------------------------

def test_learned_term_refuses_a_missing_checkpoint(tmp_path):
    assert "learned" in rewards.registered()
    with pytest.raises(FileNotFoundError, match="reward_model"):
        make_reward({"learned": {"weight": 1, "checkpoint": str(tmp_path / "missing")}})


@pytest.fixture(scope="module")
def learned_checkpoint(tmp_path_factory):
    from pretrain.reward_model import train_reward_model

    frames = 64
    demos = [(dancer(0.0, frames=frames), moving_follower(frames, minima_at=s)) for s in (2, 7)]
    folder = tmp_path_factory.mktemp("reward_model")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared 2-core machine: more threads only contend
    try:
        _, config = train_reward_model(demos, folder, noise_levels=(0.0, 0.3, 1.0), steps=80,
                                               batch_size=16, hidden=16, progress=False)
    finally:
        torch.set_num_threads(threads)
    return folder, config


def test_learned_reward_ranks_clean_above_noisy(learned_checkpoint):
    folder, config = learned_checkpoint
    assert config.train["ranking_accuracy"] > 0.8
    term = make_term("learned", checkpoint=str(folder))
    frames = 64
    clean = moving_follower(frames, minima_at=2)
    rng = np.random.default_rng(5)
    noisy = rewards.learned.perturb_follower(clean, 1.0, rng)
    leader = dancer(0.0, frames=frames)
    c_clean = [term(c)[0] for c in episode_contexts(leader, clean, np.zeros(frames, bool))]
    c_noisy = [term(c)[0] for c in episode_contexts(leader, noisy, np.zeros(frames, bool))]
    assert np.mean(c_clean) > np.mean(c_noisy)


# --- suite check: every registered term stays in its documented range ---------------------

def random_contexts(rng: np.random.Generator, batch: int, steps: int, with_pred: bool):
    """A short random episode for ``batch`` envs: random poses and positions, random beats."""
    frames = F + 4 * steps
    def random_dancer():
        poses = np.cumsum(rng.normal(0, 0.15, (frames, skeleton.POSE_DIM)), 0) * 0.2
        transl = np.cumsum(rng.normal(0, 0.05, (frames, 3)), 0) + rng.normal(0, 0.5, 3)
        return skeleton.forward_kinematics(poses, transl)
    lead = np.stack([random_dancer() for _ in range(batch)])
    foll = np.stack([random_dancer() for _ in range(batch)])
    beats = rng.random((batch, frames)) < 0.1
    for t in range(steps):
        end = F + 4 * t
        sl = slice(end - F, end)
        yield StepContext(
            leader_joints=lead[:, sl], follower_joints=foll[:, sl], music_beat=beats[:, sl],
            music=rng.normal(size=(batch, F, 54)).astype(np.float32), hold_expected=rng.random(batch) < 0.5,
            facing_expected=rng.choice([0.0, np.pi], batch), distance_range=np.tile([0.3, 1.2], (batch, 1)),
            step=np.full(batch, t), is_last=np.full(batch, t == steps - 1),
            follower_root_velocity_pred=rng.normal(0, 0.03, (batch, 4, 3)) if with_pred else None)


def test_every_registered_term_stays_in_its_range(learned_checkpoint):
    rng = np.random.default_rng(0)
    options = {"learned": {"checkpoint": str(learned_checkpoint[0])}}
    names = [n for n in rewards.registered() if not n.startswith("test_")]
    assert {"beat", "half_body", "facing", "contact", "penetration", "skating", "distance", "smooth",
            "learned"} <= set(names)
    terms = {n: make_term(n, **options.get(n, {})) for n in names}
    seen = {n: [] for n in names}
    for with_pred in (False, True):
        for ctx in random_contexts(rng, batch=6, steps=4, with_pred=with_pred):
            for n, term in terms.items():
                out = term(ctx)
                assert out.shape == (6,) and out.dtype == np.float32 and np.isfinite(out).all()
                lo, hi = term.range
                assert ((out >= lo - 1e-6) & (out <= hi + 1e-6)).all(), f"{n} left its range {term.range}: {out}"
                seen[n].append(out)
    # The random motion must exercise the terms, not leave them constant.
    for n in ("facing", "distance", "learned", "skating"):
        assert np.ptp(np.concatenate(seen[n])) > 0.01, n


def test_registrations_do_not_leak_between_tests_part_1():
    @rewards.register("test_leak_probe", range=(0.0, 1.0))
    def probe(ctx):
        return np.zeros(ctx.batch_size, np.float32)

    rewards.register_composite("test_leak_mix", {"facing": 1})
    assert "test_leak_probe" in rewards.registered() and "test_leak_mix" in rewards.registered_composites()


def test_registrations_do_not_leak_between_tests_part_2():
    # runs after part 1 (same file, same worker): the conftest fixture restored the registry
    assert "test_leak_probe" not in rewards.registered()
    assert "test_leak_mix" not in rewards.registered_composites()
