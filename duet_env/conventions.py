"""The one home of the conventions every layer shares: time, music layout, joint sets, body
parts and token streams. Everything else imports these names; nothing restates the numbers.

Units and axes: world positions in metres, y up, SMPL-X joint order (:mod:`duet_env.skeleton`
holds the 55 joint names and :data:`~duet_env.skeleton.JOINT_INDEX`; every joint set below is
built from names through it).

Time
    ``FPS`` = 30 motion and music frames per second (DD100's rate); ``FRAME_TIME`` = 1/30 s.
    One token covers ``TOKEN_FRAMES`` = 4 frames (``TOKEN_TIME`` = 0.133 s, 7.5 tokens/s).
    A reward step sees ``CONTEXT_FRAMES`` = 32 frames: ``HISTORY_FRAMES`` = 28 before the token.

Music features (:mod:`duet_env.music`), ``MUSIC_DIM`` = 54 columns per frame
    ``MFCC_COLUMNS`` 0–19, ``MFCC_DELTA_COLUMNS`` 20–39, ``CHROMA_COLUMNS`` 40–51,
    ``ONSET_COLUMN`` 52 (onset strength), ``BEAT_COLUMN`` 53 (beat one-hot: > 0.5 is a beat).
    A token's music is its 4 frames flattened time-major: ``MUSIC_TOKEN_DIM`` = 216.

Body parts and token streams
    The body is split into four parts, each with its own tokenizer (checkpoint stems
    ``vqvae_upper`` …): ``PART_NAMES`` = upper, lower, lhand, rhand, joint sets ``PART_JOINTS``.
    Token *streams* (action entries, GPT embeddings, observations, ``info``) keep the short
    names of the shipped GPT checkpoint, whose stored config is keyed by them:
    ``POSE_STREAMS`` = up, down, lhand, rhand (``PART_OF_STREAM`` / ``STREAM_OF_PART`` map the
    two namings), and the follower adds ``TRANSL_STREAM`` = transl (its offset to the leader).
"""
from __future__ import annotations

from .skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS

# ---- time -----------------------------------------------------------------------------------
FPS = 30
FRAME_TIME = 1.0 / FPS
TOKEN_FRAMES = 4
TOKEN_TIME = TOKEN_FRAMES / FPS
# The frames a reward step sees (rewards.StepContext): HISTORY_FRAMES of history, then the
# TOKEN_FRAMES of the token just decoded. The env keeps this much history per slot.
HISTORY_FRAMES = 28
CONTEXT_FRAMES = HISTORY_FRAMES + TOKEN_FRAMES  # 32

# ---- music feature layout -------------------------------------------------------------------
MFCC_COLUMNS = range(0, 20)
MFCC_DELTA_COLUMNS = range(20, 40)
CHROMA_COLUMNS = range(40, 52)
ONSET_COLUMN = 52
BEAT_COLUMN = 53
MUSIC_DIM = 54
MUSIC_TOKEN_DIM = TOKEN_FRAMES * MUSIC_DIM  # 216: one token's frames, time-major


# ---- joint sets (SMPL-X indices, built from names) --------------------------------------------
def joints(*names: str) -> tuple[int, ...]:
    """SMPL-X indices of the named joints, in the order given."""
    return tuple(JOINT_INDEX[n] for n in names)


def joint_span(first: str, last: str) -> tuple[int, ...]:
    """SMPL-X indices from joint ``first`` to joint ``last``, both included."""
    return tuple(range(JOINT_INDEX[first], JOINT_INDEX[last] + 1))


# The 22 body joints pelvis … wrists (no jaw, eyes, fingers): what speeds and features use,
# since the 30 finger joints would otherwise dominate a mean over joints.
BODY_JOINTS: tuple[int, ...] = joint_span("pelvis", "right_wrist")
# Ankles and toe bases: the joints that touch the floor.
FOOT_JOINTS: tuple[int, ...] = joints("left_ankle", "right_ankle", "left_foot", "right_foot")
PELVIS: int = JOINT_INDEX["pelvis"]
WRIST_OF_HAND: dict[str, int] = {"lhand": JOINT_INDEX["left_wrist"], "rhand": JOINT_INDEX["right_wrist"]}

# ---- body parts ------------------------------------------------------------------------------
PART_NAMES: tuple[str, ...] = ("upper", "lower", "lhand", "rhand")  # in token stream order
# Each joint belongs to exactly one part.
PART_JOINTS: dict[str, tuple[int, ...]] = {
    "lower": joints("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                    "right_ankle", "left_foot", "right_foot"),
    "upper": joints("spine1", "spine2", "spine3") + joint_span("neck", "right_eye"),
    "lhand": joint_span("left_index1", "left_thumb3"),
    "rhand": joint_span("right_index1", "right_thumb3"),
}

# ---- token streams ---------------------------------------------------------------------------
POSE_STREAMS: tuple[str, ...] = ("up", "down", "lhand", "rhand")
TRANSL_STREAM = "transl"
LEADER_STREAMS: tuple[str, ...] = POSE_STREAMS
FOLLOWER_STREAMS: tuple[str, ...] = POSE_STREAMS + (TRANSL_STREAM,)
PART_OF_STREAM: dict[str, str] = dict(zip(POSE_STREAMS, PART_NAMES))
STREAM_OF_PART: dict[str, str] = {**{p: s for s, p in PART_OF_STREAM.items()}, TRANSL_STREAM: TRANSL_STREAM}

assert sorted(j for js in PART_JOINTS.values() for j in js) == list(range(NUM_JOINTS)) == list(
    range(len(JOINT_NAMES)))
