"""Accompany any song: the music and a leader in, a duet out (video with the music, BVH, SMPL-X files).

    python -m agents.accompany --music SONG.mp3 [--leader synth[:GENRE]|FILE.npy|FILE.npz|FILE.bvh]
        [--policy default|PATH] [--genre G] [--seed S] [--out DIR] [--smplx-model DIR] [--no-video]

The song's beats and tempo come from the audio (librosa); without a leader file a SynthDuet leader
dances on those beats. The policy (the shipped follower GPT by default) generates the follower
over the whole song through the env's own rollout (sliding context, no length limit). DIR gets
leader.npy, follower.npy, joints.npz, duet.bvh, duet.mp4, metrics.json and card.md, all at once
(written to a temporary folder, moved into place at the end). Bad input — unreadable, empty or
silent audio; a leader with wrong keys, shapes or NaN; a BVH without the SMPL-X body joints; a
leader much shorter or longer than the song — is an error naming the file and the problem, and
leaves no output folder.

Modules: :mod:`.song` (features, beats, tempo), :mod:`.leaders` (leader sources, length rule),
:mod:`.pipeline` (the stages), :mod:`.outputs` (files and card), :mod:`.video`, :mod:`.staging`
(the all-or-nothing output folder), :mod:`.cli`.
"""
from .errors import AccompanyError
from .pipeline import AccompanyConfig, AccompanyResult, accompany

__all__ = ["AccompanyConfig", "AccompanyError", "AccompanyResult", "accompany"]
