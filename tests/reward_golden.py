"""Golden reward-term values for tests/test_reward_sharing.py, and the contexts they score.

The values in ``tests/data/reward_terms_golden.npz`` were computed by the reward code *before*
the shared per-step pass existed (commit cd88f52, each term computing everything itself), with::

    PYTHONPATH=. python -m tests.reward_golden       # rewrites the file: only from such a commit

so the test compares today's terms with the old code path, not with themselves. The contexts
are rebuilt here deterministically; a fingerprint of their arrays is stored too, so a change of
the inputs (e.g. of SynthDuet's generator) fails with that message instead of a value mismatch.
After such a change, dump the episodes' input arrays from the current tree, score them with
``rewards.episode_contexts`` + the terms in a worktree of cd88f52, and store those values with
the current fingerprint (done for SynthDuet 3's closed hold: the Waltz values came out unchanged).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).parent / "data" / "reward_terms_golden.npz"
# Every built-in hand-written term (the learned one needs a trained checkpoint; it is checked
# against the unshared path in the test instead).
TERMS = ("beat", "facing", "contact", "distance", "penetration", "skating", "smooth", "half_body")


def golden_episodes():
    """``{name: list of StepContext}``: random batched episodes (with and without a root-velocity
    prediction) and SynthDuet duets scored token by token (rewards.episode_contexts)."""
    from duet_env import skeleton
    from duet_env.data import synth
    from rewards import episode_contexts
    from tests.test_rewards import random_contexts

    out = {}
    for with_pred in (False, True):
        rng = np.random.default_rng(11 + with_pred)
        out[f"random_pred{int(with_pred)}"] = list(random_contexts(rng, batch=5, steps=8, with_pred=with_pred))
    frames = 64  # a follower whose upper body turns 0 → 270° against its hips (exercises half_body)
    twist = np.zeros((frames, skeleton.POSE_DIM))
    twist[:, 3 * 3 + 1] = np.linspace(0.0, 1.5 * np.pi, frames)
    twist[:, 1] = np.pi
    lead = skeleton.forward_kinematics(np.zeros((frames, skeleton.POSE_DIM)), np.zeros((frames, 3)))
    foll = skeleton.forward_kinematics(twist, np.tile([0.0, 0.0, 0.5], (frames, 1)))
    out["twist"] = list(episode_contexts(lead, foll, np.arange(frames) % 9 == 0, genre="Waltz"))
    for genre in ("Waltz", "HipHop"):
        clip = synth.dance_to_beats(genre, np.arange(0.4, 9.0, 0.5), 6.0, seed=0)
        lead = skeleton.forward_kinematics(clip.leader["poses"], clip.leader["transl"]).astype(np.float32)
        foll = skeleton.forward_kinematics(clip.follower["poses"], clip.follower["transl"]).astype(np.float32)
        beats = np.zeros(len(foll), bool)
        frames = np.asarray(clip.meta["beat_frames"])
        beats[frames[frames < len(foll)]] = True
        wobble = 0.04 * np.sin(np.arange(len(foll)) / 3.0)[:, None]  # a root-velocity guess, off by 0–4 cm/frame
        pred = np.diff(foll[:, 0], axis=0, prepend=foll[:1, 0]) + wobble
        out[f"synth_{genre}"] = list(episode_contexts(lead, foll, beats, genre=genre))
        out[f"synth_{genre}_pred"] = list(episode_contexts(lead, foll, beats, genre=genre,
                                                           follower_root_velocity_pred=pred))
    return out


def fingerprint(contexts) -> str:
    """sha256 of every array field of the contexts, in order."""
    h = hashlib.sha256()
    for ctx in contexts:
        for name in ("leader_joints", "follower_joints", "music_beat", "hold_expected", "facing_expected",
                     "distance_range", "step", "is_last", "follower_root_velocity_pred"):
            v = getattr(ctx, name)
            h.update(b"none" if v is None else np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


def score_episode(contexts, names=TERMS) -> dict[str, np.ndarray]:
    """``{term: (steps, B)}`` for fresh instances of the terms over one episode."""
    from rewards import make_term

    terms = {n: make_term(n) for n in names}
    return {n: np.stack([t(ctx) for ctx in contexts]) for n, t in terms.items()}


def main() -> None:
    arrays = {}
    for ep, contexts in golden_episodes().items():
        arrays[f"{ep}/fingerprint"] = np.array(fingerprint(contexts))
        for n, v in score_episode(contexts).items():
            arrays[f"{ep}/{n}"] = v
    GOLDEN.parent.mkdir(exist_ok=True)
    np.savez_compressed(GOLDEN, **arrays)
    print(f"wrote {GOLDEN} ({len(arrays)} arrays)")


if __name__ == "__main__":
    main()
