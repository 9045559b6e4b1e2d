"""Benchmark tasks: a name -> the env config, reward, pretrained policy and fixed test episodes.

A task is what every algorithm of a benchmark is trained on and scored on. It is a registry like
the reward composites (:func:`rewards.register_composite`): :func:`register_task` adds one,
:func:`get_task` looks one up and names the known ones when the name is wrong.

Test episodes are fixed (no sampling): the test split's clips, ordered round-robin over genres
(so a few clips still cover every genre), cut to ``eval_tokens`` tokens. Every algorithm of a
task is evaluated on exactly these episodes, greedily.

``foreign-music`` plays the leader of one test clip to the music of a test clip of another genre
— the out-of-distribution condition ``agents.finetune`` explores with (``ood_share``; in the env
core ``DuetCore.reset_slot(music_from=...)``). The pairing is deterministic: each clip takes the
music of the next clip, in the round-robin order, whose genre differs. Its ``rule_error_cm``
still compares with the leader clip's ground-truth follower (the genre rule's answer to that
leader under its own music), so read it as "distance from the in-distribution answer".

``unseen-genre`` starts every algorithm from a GPT trained without one genre
(:data:`UNSEEN_GENRE`, HipHop) and plays only that genre's test clips. The GPT is trained the
first time a cell needs it and cached (:mod:`agents.benchmark.held_out_gpt`, the shipped GPT's
recipe); ``--policy`` replaces it. Why HipHop: its partner convention is the one no other genre
shares — no hold, the follower dancing in unison facing the *same* way as the leader
(``duet_env.genres``: facing 0, every other genre π), 1.3–1.45 m apart, with its own move
vocabulary (punches, running man, body waves). Waltz and Tango share one convention (closed
hold, 0.30–0.45 m, face to face: holding out one, the other teaches it), ChaCha sits between the
ballroom and Ballet distances, and Ballet has only 2 test clips. A GPT that never saw HipHop has
to extrapolate, so the task has headroom a reward (``facing``, ``distance``, ``contact``) can pay
for. Fine-tuning still trains on the whole train split (the env has no genre filter), where the
held-out genre's train leaders appear in about a fifth of the episodes: the reward is what
teaches the genre. Measured so far, it does not: the held-out GPT gives the HipHop ground truth's
tokens a log-probability of about −11, so sampling around its choices never proposes them, and no
anchor, shaping, budget or HipHop-only training of ``ac`` reached the facing term's headroom
(``benchmarks/unseen_genre_probe.py``; docs/benchmarks.md).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from agents.benchmark.held_out_gpt import GPTRecipe
from agents.benchmark.registry import Registry
from duet_env.conventions import TOKEN_FRAMES
from duet_env.data.clip import Clip


class TaskNotAvailable(RuntimeError):
    """A registered task that cannot run on this install yet (its pretrained policy is missing)."""


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    reward: object = "default"          # the env's reward= (a name, {name: weight} or composite)
    data: str = "synth"                  # "synth" or a DD100-layout folder
    tokenizer: str = "default"           # shipped name or checkpoint folder
    policy: str = "default"              # the pretrained GPT every algorithm starts from
    foreign_music: bool = False          # test (and offpolicy exploration) music from another genre
    policy_missing: str | None = None    # why the default policy cannot be used, if it cannot
    genre: str | None = None             # test episodes of this genre only (None: every genre)
    held_out_gpt: GPTRecipe | None = None  # policy = this recipe's GPT, trained once and cached

    def with_overrides(self, data: str | None = None, tokenizer: str | None = None,
                       policy: str | None = None) -> "Task":
        """This task on other data / tokenizer / GPT (tests use tiny ones; ``policy`` also
        makes a task whose own GPT is not shipped runnable, and replaces a held-out GPT)."""
        changes = {k: v for k, v in (("data", data), ("tokenizer", tokenizer), ("policy", policy)) if v is not None}
        if policy is not None:
            changes.update(policy_missing=None, held_out_gpt=None)
        return dataclasses.replace(self, **changes)

    def check_available(self) -> None:
        if self.policy_missing:
            raise TaskNotAvailable(f"task {self.name!r}: {self.policy_missing}")

    def with_policy_ready(self, progress: bool = True) -> "Task":
        """This task with ``policy`` a GPT that exists: a held-out GPT is trained now if it is not
        cached yet (once, even with several processes asking; :mod:`agents.benchmark.held_out_gpt`)."""
        if self.held_out_gpt is None:
            return self
        from agents.benchmark.held_out_gpt import held_out_gpt

        folder = held_out_gpt(self.held_out_gpt, self.data, self.tokenizer, progress=progress)
        return dataclasses.replace(self, policy=str(folder), held_out_gpt=None)

    def test_clips(self, eval_clips: int = 0, eval_tokens: int = 0) -> list[Clip]:
        """The task's fixed test episodes (``eval_clips`` 0 = all, ``eval_tokens`` 0 = whole clips)."""
        clips = genre_round_robin(_test_split(self.data))
        if self.genre is not None:
            kept = [c for c in clips if c.genre == self.genre]
            if not kept:
                raise ValueError(f"task {self.name!r}: dataset {self.data!r} has no test clips of genre "
                                 f"{self.genre!r}; its test genres are {sorted({c.genre for c in clips})}")
            clips = kept
        if self.foreign_music:
            clips = foreign_music_pairs(clips)
        if eval_clips:
            clips = clips[:eval_clips]
        if eval_tokens:
            clips = [c.slice(0, eval_tokens * TOKEN_FRAMES) for c in clips]
        return clips

    def reference(self):
        """The metrics' reference statistics: the train split's ground-truth duets (as
        ``agents.evaluate`` and ``agents.finetune`` use), computed once per process."""
        return _reference(self.data)

    def env_kwargs(self, history: int, lookahead: int, episode_tokens: int, observation: str = "tokens") -> dict:
        """``gym.make("DuetAccompany-v0", **kwargs)`` for training on this task.

        The decode step stays eager (``compile_decoder=False``): a cell must give the same numbers
        on every machine, with or without a C++ compiler, and the compiled step agrees with the
        eager one only to 1e-5, which a long training run can amplify."""
        return {"data": self.data, "tokenizer": self.tokenizer, "reward": self.reward,
                "episode_tokens": episode_tokens, "history_tokens": history,
                "lookahead_tokens": lookahead, "observation": observation, "compile_decoder": False}


@functools.lru_cache(maxsize=4)
def _test_split(data: str) -> tuple[Clip, ...]:
    from duet_env.data import load_split

    clips = load_split(data, "test", progress=False)
    if not clips:
        raise ValueError(f"dataset {data!r} has no test clips")
    return tuple(clips)


@functools.lru_cache(maxsize=4)
def _reference(data: str):
    from duet_env.data import load_split
    from duet_env.metrics import ReferenceStats

    train = load_split(data, "train", progress=False)
    return ReferenceStats.from_duets([(c.follower.joints, c.leader.joints, c.beat_frames) for c in train])


def genre_round_robin(clips) -> list[Clip]:
    """Clips reordered one genre at a time (genres sorted, clips in split order within a genre)."""
    by_genre: dict[str, list[Clip]] = {}
    for c in clips:
        by_genre.setdefault(c.genre, []).append(c)
    queues = [by_genre[g] for g in sorted(by_genre)]
    out = []
    for i in range(max(len(q) for q in queues)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def foreign_music_pairs(clips: list[Clip]) -> list[Clip]:
    """Each clip's leader (and ground-truth follower) with the music of the next clip of another
    genre, both cut to the shorter of the two."""
    if len({c.genre for c in clips}) < 2:
        raise ValueError("foreign-music needs test clips of at least two genres")
    out = []
    for i, lead in enumerate(clips):
        music = next(clips[(i + k) % len(clips)] for k in range(1, len(clips))
                     if clips[(i + k) % len(clips)].genre != lead.genre)
        n = min(len(lead), len(music))
        out.append(Clip(f"{lead.name}+music:{music.name}", lead.genre, music.music[:n],
                        lead.leader.slice(0, n), lead.follower.slice(0, n), music.audio_path))
    return out


# ------------------------------------------------------------------------------------------
_TASKS: Registry[Task] = Registry("task")
register_task = _TASKS.register
task_names = _TASKS.names
get_task = _TASKS.get  # unknown name: KeyError naming the known ones

register_task(Task("in-distribution", "SynthDuet test leaders with their own music, default reward"))
register_task(Task("foreign-music", "a test leader dancing to the music of a test clip of another genre, "
                   "default reward", foreign_music=True))
register_task(Task("e3d2", "in-distribution episodes scored with the shipped learned reward (e3d2)", reward="e3d2"))
UNSEEN_GENRE = "HipHop"  # the one partner convention no other genre shares (module docstring)
register_task(Task("unseen-genre", f"a GPT trained without {UNSEEN_GENRE} (the shipped GPT's recipe, trained once "
                   f"and cached), played on the {UNSEEN_GENRE} test clips, default reward", genre=UNSEEN_GENRE,
                   held_out_gpt=GPTRecipe(UNSEEN_GENRE)))
