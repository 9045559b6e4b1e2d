"""Beat alignment (Bailando++, Siyao et al. 2023, eq. 21), delivered with a fixed one-token delay."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from duet_env.conventions import BODY_JOINTS

from ..context import StepContext
from ..registry import RewardTerm, register


def dance_beats(joints: np.ndarray, fps: float, sigma: float, radius: int) -> np.ndarray:
    """Motion beats ``(B, F)`` bool of joints ``(B, F, J, 3)``: strict local minima of the
    gaussian-smoothed mean joint speed (the BAS definition of Bailando, Siyao et al. 2022; docs/metrics.md).

    speed_f = mean_j |x_f,j − x_f−1,j| · fps for f ≥ 1 (frame 0 has no speed); the first and last
    frames are never beats (a minimum needs both neighbours).
    """
    speed = np.linalg.norm(np.diff(joints, axis=1), axis=-1).mean(-1) * fps  # (B, F-1): frames 1..F-1
    if sigma > 0:
        speed = gaussian_filter1d(speed, sigma, axis=1, mode="nearest", truncate=radius / sigma)
    beats = np.zeros(joints.shape[:2], bool)
    beats[:, 2:-1] = (speed[:, 1:-1] < speed[:, :-2]) & (speed[:, 1:-1] < speed[:, 2:])
    return beats


@register("beat")
class BeatTerm(RewardTerm):
    """Beat alignment of the follower with the music, Bailando++ eq. 21, with a one-token delay.

    For a token window W (its 4 frames)::

        R_b(W) = −1  if a music beat falls in W and no dance beat does,
                 +1  otherwise.

    Dance beats: strict local minima of the mean speed of the follower's 22 body joints,
    gaussian-smoothed with ``sigma`` (default 2 frames, kernel radius ``radius`` = 4 frames). The
    metric BAS uses σ = 5; the reward uses a narrower kernel because only one token (4 frames) of
    look-ahead exists when the reward is paid.

    **Delay.** Deciding whether frame f is a speed minimum needs the frames after f, so the term
    pays for token t at step t+1: at step t it evaluates the *previous* token's window
    (context frames F−8 … F−5), whose look-ahead (the current token's 4 frames) is now known.
    With radius 4 the smoothed speed of that window is exact except at its last frame, whose
    right neighbour would need one frame beyond the context (edge padded). At step 0 nothing is
    pending and the term gives 0. At the last step (``is_last``) the current window is flushed
    too, with the look-ahead available (its last frame cannot be a beat), and the sum is returned.
    So over an episode of N tokens the term pays exactly N values in {−1, +1}.

    State: per env, whether a previous token is pending (set after a non-final step, cleared by
    ``reset(mask)`` and after ``is_last``). A pending window is only paid when ``step > 0`` too,
    so a missed ``reset`` cannot pay a window of the previous episode.

    Range: [−2, 2] (one window in {−1, +1}, or two at the final step, or 0 at step 0).
    """

    range = (-2.0, 2.0)
    stateful = True
    delay_tokens = 1

    def __init__(self, sigma: float = 2.0, radius: int = 4):
        if sigma < 0 or radius < 0:
            raise ValueError(f"beat: sigma and radius must be >= 0; got sigma={sigma}, radius={radius}")
        self.sigma, self.radius = float(sigma), int(radius)
        self.config = {"sigma": self.sigma, "radius": self.radius}
        self._pending: np.ndarray | None = None

    @staticmethod
    def window_value(music_beat: np.ndarray, dance_beat: np.ndarray) -> np.ndarray:
        """Eq. 21 on windows: music_beat, dance_beat ``(B, w)`` bool -> (B,) in {−1, +1}."""
        missed = music_beat.any(axis=1) & ~dance_beat.any(axis=1)
        return np.where(missed, -1.0, 1.0)

    def compute(self, ctx: StepContext) -> np.ndarray:
        b, f, k = ctx.batch_size, ctx.num_frames, ctx.token_frames
        if f < 2 * k + 2:
            raise ValueError(f"beat needs at least {2 * k + 2} context frames; got F={f}")
        if self._pending is None or self._pending.shape != (b,):
            # First call (or a new batch size): any env past its first step has a pending window.
            self._pending = ctx.step > 0
        dance = dance_beats(ctx.follower_joints[:, :, list(BODY_JOINTS)], ctx.fps, self.sigma, self.radius)
        prev = slice(f - 2 * k, f - k)
        cur = slice(f - k, f)
        pay_prev = self._pending & (ctx.step > 0)
        out = np.where(pay_prev, self.window_value(ctx.music_beat[:, prev], dance[:, prev]), 0.0)
        out += np.where(ctx.is_last, self.window_value(ctx.music_beat[:, cur], dance[:, cur]), 0.0)
        self._pending = ~ctx.is_last
        return out

    def reset(self, mask: np.ndarray | None = None) -> None:
        if self._pending is None:
            return
        if mask is None:
            self._pending[:] = False
        else:
            self._pending[np.asarray(mask, bool)] = False
