"""Music-feature augmentation for GPT training: the same dance under other recordings.

SynthDuet's songs come from a finite set of synthesised voices, kits and mixes; a user's
recording has other timbres, keys, loudness and noise. Each training window's raw 54-d
features (columns from :mod:`duet_env.conventions`) are perturbed per window, so that the GPT
learns what stays when the recording changes (the beat and onset columns, the rhythm) rather
than SynthDuet's exact timbres:

* **transposition** — the 12 chroma columns rolled by k ~ U{0..11} semitones (exactly what a
  key change does to chroma);
* **loudness** — MFCC 0 (log energy) shifted by N(0, 0.5 σ₀), σ₀ its training std;
* **timbre** — MFCC 1–19 scaled by 1 + N(0, 0.2) per coefficient and the delta-MFCC block with
  them; per-frame noise N(0, 0.1 σ) on all MFCC and delta columns;
* **onset gain** — the onset-strength column scaled by exp(N(0, 0.3));
* **block dropout** — with probability ``p_drop`` each, the MFCC + delta block or the chroma
  block is replaced by its training mean (the model must then rely on the rest).

The beat column is never changed: it is the one feature that means the same in every song.
Applied with probability ``probability`` per window (the rest stay clean). Whether this helps is
measured (GPT card: the same run with and without, on SynthDuet test and on the real-music set).
"""
from __future__ import annotations

import numpy as np

from duet_env.conventions import CHROMA_COLUMNS, MFCC_COLUMNS, MFCC_DELTA_COLUMNS, MUSIC_DIM, ONSET_COLUMN


def _slice(columns: range) -> slice:
    return slice(columns.start, columns.stop)


MFCC, DELTA, CHROMA = _slice(MFCC_COLUMNS), _slice(MFCC_DELTA_COLUMNS), _slice(CHROMA_COLUMNS)
TIMBRE = slice(MFCC.start, DELTA.stop)  # MFCC and delta-MFCC: one block


def augment_music(music: np.ndarray, rng: np.random.Generator, mean: np.ndarray, std: np.ndarray,
                  probability: float = 0.5, p_drop: float = 0.1) -> np.ndarray:
    """Augmented copy of a batch of windows ``music`` (B, W, F·54) of raw features.

    ``mean``/``std`` (54,) are the training statistics (the GPT's normalisation buffers).
    Padding rows (all zero: outside the clip or episode) stay zero.
    """
    b, w, flat = music.shape
    frames = music.reshape(b, w, flat // MUSIC_DIM, MUSIC_DIM).astype(np.float32, copy=True)
    pad = ~np.any(frames != 0.0, axis=-1, keepdims=True)
    use = rng.random(b) < probability
    if not use.any():
        return music
    x = frames[use]
    n = x.shape[0]
    shift = rng.integers(0, 12, n)
    chroma = x[..., CHROMA]
    idx = (np.arange(12)[None, :] - shift[:, None]) % 12  # out[k] = in[k - shift]: a transposition up
    x[..., CHROMA] = np.take_along_axis(chroma, np.broadcast_to(idx[:, None, None, :], chroma.shape), -1)
    x[..., MFCC.start] += (rng.normal(0.0, 0.5, n) * std[MFCC.start])[:, None, None]
    scale = 1.0 + rng.normal(0.0, 0.2, (n, 19))
    x[..., MFCC.start + 1:MFCC.stop] *= scale[:, None, None, :]  # coefficient 0 is loudness
    x[..., DELTA.start + 1:DELTA.stop] *= scale[:, None, None, :]
    x[..., TIMBRE] += rng.normal(0.0, 0.1, x[..., TIMBRE].shape) * std[TIMBRE]
    x[..., ONSET_COLUMN] *= np.exp(rng.normal(0.0, 0.3, n))[:, None, None]
    drop_timbre = rng.random(n) < p_drop
    drop_chroma = rng.random(n) < p_drop
    x[drop_timbre, ..., TIMBRE] = mean[TIMBRE]
    x[drop_chroma, ..., CHROMA] = mean[CHROMA]
    frames[use] = x
    frames = np.where(pad, 0.0, frames)
    return frames.reshape(b, w, flat).astype(np.float32)


def desync_leader(leader: np.ndarray, rng: np.random.Generator, probability: float,
                  leader_pad: np.ndarray, turn: np.ndarray | None = None):
    """Leader windows ``(B, W, 4)`` of which a share ``probability`` is swapped for another row's.

    Why: a SynthDuet follower always dances with a leader who dances to the same song, so the GPT
    can take its timing from the leader alone — and with a leader who does not dance to the music
    (a user's leader on their own recording; issue "real music") it follows the leader off the
    beat. In a swapped window the leader is an unrelated dancer (another clip, time or genre) while
    the music and the follower targets stay aligned, so the beats can only come from the music.

    The chosen rows are permuted among themselves (a derangement by one position, so no row keeps
    its own leader); where a row's own leader is padding (outside the clip or episode, padded with
    its music by the sampler) the swapped leader is padding too. Fewer than two chosen rows:
    nothing changes.

    ``turn`` (B, W, 4), the windows' leader turn: swapped with its leader (zero where the swapped
    leader is padding) and returned as ``(leader, turn)``.
    """
    rows = np.flatnonzero(rng.random(len(leader)) < probability) if probability > 0 else np.zeros(0, np.int64)
    if len(rows) < 2:
        return leader if turn is None else (leader, turn)
    pad = (leader[rows] == leader_pad).all(-1)
    swapped = leader[np.roll(rows, 1)]  # fancy indexing: a copy
    swapped[pad] = leader_pad
    out = leader.copy()
    out[rows] = swapped
    if turn is None:
        return out
    swapped_turn = turn[np.roll(rows, 1)]
    swapped_turn[pad] = 0.0
    out_turn = turn.copy()
    out_turn[rows] = swapped_turn
    return out, out_turn
