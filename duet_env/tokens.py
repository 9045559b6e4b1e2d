"""Token streams and the layout of the ``"tokens"`` observation: the contract between the
tokenizer, the follower GPT and the environment.

* One token covers ``TOKEN_FRAMES`` = 4 frames (7.5 tokens/s at 30 fps).
* Pose streams, in action order: ``up`` (upper body), ``down`` (lower body), ``lhand``,
  ``rhand``; the follower adds ``transl`` (relative translation). The action of
  ``DuetAccompany-v0`` is ``MultiDiscrete([K_up, K_down, K_lhand, K_rhand, K_transl])``.
* Pose tokens are computed in the **leader's heading frame** at each frame (leader heading
  from :func:`duet_env.motion.heading_from_joints` on the leader's joints), for both
  dancers: the leader's own tokens are therefore facing-invariant and the follower's
  tokens encode its pose *relative to the leader*. The relative translation is the
  follower-minus-leader pelvis offset in the same frame (docs/design.md). Decoding rotates back
  by the leader's heading and adds the leader's pelvis.
* Padding: outside the clip (before its start, after its end) a token stream holds the
  id ``K`` (its codebook size), so embedding tables have ``K + 1`` rows.

``"tokens"`` observation (a ``gymnasium.spaces.Dict``), for history ``H`` and look-ahead
``A`` tokens at decision step ``t`` (window ``W = H + 1 + A`` covers tokens t−H … t+A):

====================  ====================================  ==============================
key                   space                                 content
====================  ====================================  ==============================
``music``             Box float32 ``(W * 4 * 54,)``         music features of the frames of
                                                            each token in the window,
                                                            time-major (reshape to (W, 216));
                                                            zeros outside the clip
``leader``            MultiDiscrete ``(W * 4,)``            leader tokens, time-major:
                                                            ``[t-H: up, down, lhand, rhand,
                                                            t-H+1: ...]``; pad id K outside
``leader_turn``       Box float32 ``(W * 4,)``              the leader's turn: yaw rate
                                                            (rad/s, + = left) of the
                                                            leader frame at each frame of
                                                            each token in the window,
                                                            time-major; 0 outside the clip
``follower``          MultiDiscrete ``(H * 5,)``            the follower's own previous
                                                            tokens t−H … t−1, time-major,
                                                            streams up, down, lhand, rhand,
                                                            transl; pad id K before the start
====================  ====================================  ==============================

The leader's tokens are facing-invariant (each pose in his own heading frame), so they cannot
show him turning; ``leader_turn`` (:func:`duet_env.motion.turn_rate` of the tokenizer's smoothed
leader heading, the frame the follower's tokens live in) does. A follower who stays put while
the leader spins on the spot must turn her tokens against it; a GPT trained without this key
(config ``leader_turn`` false) ignores it.

All four are flat 1-D so that stable-baselines3's checker and MultiInputPolicy accept them;
consumers reshape (time-major) — :class:`pretrain.gpt.FollowerPolicy` accepts both forms.
"""
from __future__ import annotations

# The stream names and token length are conventions (duet_env.conventions), re-exported here.
from .conventions import (FOLLOWER_STREAMS, LEADER_STREAMS, PART_OF_STREAM, POSE_STREAMS,  # noqa: F401
                          TOKEN_FRAMES)

DEFAULT_HISTORY = 16
DEFAULT_LOOKAHEAD = 8


def window_length(history: int, lookahead: int) -> int:
    return history + 1 + lookahead
