"""Partner conventions per dance genre: what a correct follower response looks like.

One table shared by SynthDuet (which generates followers by these rules) and by the env
(which hands the expectations to reward terms as plain numbers). Unknown genres, e.g. from a
user's own DD100-layout data, fall back to :data:`DEFAULT_STYLE`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenreStyle:
    """name: genre tag used in clip names (no underscores). bpm: (low, high) typical tempo range (the most
    common of SynthDuet's per-genre tempo choices, :data:`duet_env.data.synth_music.TEMPO_CHOICES`,
    which also hold rarer fast ranges: Viennese waltz, fast hip-hop).
    meter: beats per bar. partner_distance: (low, high) pelvis-to-pelvis metres.
    hold: whether the partners hold hands (ballroom). facing: expected relative heading of
    the follower to the leader in radians (π = face to face, 0 = same direction)."""

    name: str
    bpm: tuple[float, float]
    meter: int
    partner_distance: tuple[float, float]
    hold: bool
    facing: float


_PI = 3.141592653589793

GENRES: dict[str, GenreStyle] = {
    s.name: s
    for s in [
        GenreStyle("Waltz", (78.0, 108.0), 3, (0.30, 0.45), True, _PI),
        GenreStyle("Tango", (108.0, 138.0), 4, (0.30, 0.45), True, _PI),
        GenreStyle("ChaCha", (100.0, 132.0), 4, (0.60, 0.95), True, _PI),
        GenreStyle("HipHop", (76.0, 120.0), 4, (0.90, 1.50), False, 0.0),
        GenreStyle("Ballet", (60.0, 96.0), 4, (0.50, 1.20), False, _PI),
    ]
}

DEFAULT_STYLE = GenreStyle("Unknown", (60.0, 180.0), 4, (0.30, 1.50), False, _PI)


def style_of(genre: str) -> GenreStyle:
    return GENRES.get(genre, DEFAULT_STYLE)
