"""Training without some genres: ``python -m pretrain.gpt --exclude-genre G``.

A GPT that never saw a genre is what the ``unseen-genre`` benchmark task starts from
(:mod:`agents.benchmark.held_out_gpt`). Token clips (:mod:`pretrain.gpt.data`) carry only their
name, so the genre of each comes from the dataset loader's own listing
(:func:`duet_env.data.dd100.scan`: the ``genre`` every loaded :class:`~duet_env.data.clip.Clip`
carries), not from parsing names here. The excluded clips leave training *and* the validation
hold-out (the filter runs before :func:`pretrain.gpt.train.hold_out`).

The excluded genres are written into the checkpoint's state (``state["excluded_genres"]``, a
sorted list, empty when nothing is excluded), and a ``--resume`` with a different exclusion is
refused: the continued run would mix two training sets.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

STATE_KEY = "excluded_genres"


def parse_genres(values: Iterable[str] | None) -> list[str]:
    """``["Waltz,Tango", "Ballet"]`` (repeated flags, comma lists) -> sorted unique names."""
    names = {n.strip() for v in values or () for n in str(v).split(",")}
    return sorted(n for n in names if n)


def genres_of(data: str | os.PathLike) -> dict[str, str]:
    """Clip name -> genre for every complete clip of the dataset ``data`` (the loader's genres)."""
    from duet_env.data import resolve_root
    from duet_env.data.dd100 import scan

    clips, _ = scan(resolve_root(data))  # problems are the loader's business, not this map's
    return {c.name: c.genre for c in clips}


def exclude_genres(clips: list[dict], genre_of: dict[str, str], excluded: Iterable[str]) -> list[dict]:
    """The token clips whose genre is not in ``excluded``.

    Raises ValueError naming the clips' genres when an excluded genre is not among them (a typo
    would otherwise train on everything), and when nothing would be left.
    """
    excluded = parse_genres(excluded)
    missing = sorted({c["name"] for c in clips} - set(genre_of))
    if missing:
        raise ValueError(f"no genre known for token clip(s) {missing[:3]} (not in the dataset's clip list)")
    present = sorted({genre_of[c["name"]] for c in clips})
    unknown = [g for g in excluded if g not in present]
    if unknown:
        raise ValueError(f"--exclude-genre {', '.join(unknown)}: no such genre in the training clips; "
                         f"the dataset's genres are {', '.join(present)}")
    kept = [c for c in clips if genre_of[c["name"]] not in excluded]
    if not kept:
        raise ValueError(f"--exclude-genre {', '.join(excluded)} excludes every genre of the dataset "
                         f"({', '.join(present)}): nothing left to train on")
    return kept


def check_resume_exclusion(out_dir: str | os.PathLike, excluded: Iterable[str]) -> None:
    """Refuse to resume a checkpoint in ``out_dir`` trained with other excluded genres (a
    checkpoint without the key excluded nothing). No checkpoint: nothing to check."""
    import json

    from .policy import CHECKPOINT_STEM

    path = Path(out_dir) / f"{CHECKPOINT_STEM}.json"
    if not path.is_file():
        return
    found = parse_genres(json.loads(path.read_text()).get("state", {}).get(STATE_KEY, []))
    asked = parse_genres(excluded)
    if found != asked:
        raise ValueError(f"cannot resume {out_dir}: it was trained with excluded genres {found or 'none'}, "
                         f"asked to resume with {asked or 'none'} (use the same --exclude-genre, or another --out)")
