"""Beat alignment (Bailando++, Siyao et al. 2023, eq. 21) on dance beats that are real slow-downs,
delivered with a fixed one-token delay."""
from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter1d

from duet_env.conventions import BODY_JOINTS
from duet_env.jit import jit_available, jit_enabled, kernel

from ..context import StepContext
from ..registry import RewardTerm, register


def dance_beats(joints: np.ndarray, fps: float, sigma: float, radius: int, depth: float = 0.0,
                half_window: int = 4) -> np.ndarray:
    """Motion beats ``(B, F)`` bool of joints ``(B, F, J, 3)``: strict local minima of the
    gaussian-smoothed mean joint speed (the BAS definition of Bailando, Siyao et al. 2022;
    docs/metrics.md) that are at least ``depth`` deep.

    speed_f = mean_j |x_f,j − x_f−1,j| · fps for f ≥ 1 (frame 0 has no speed), smoothed to s_f
    (gaussian, ``sigma`` frames, kernel radius ``radius``, edges padded with the nearest value).
    Frame f is a beat when::

        s_f < s_f−1  and  s_f < s_f+1                                    (strict local minimum)
        s_f ≤ (1 − depth) · min(max_{f−h ≤ g ≤ f} s_g,  max_{f ≤ g ≤ f+h} s_g)     (a real dip)

    with h = ``half_window``: the speed must rise to at least s_f / (1 − depth) within h frames
    on *both* sides (the lower of the two side peaks counts; windows are cut at the array's
    ends). ``depth = 0`` gives the plain local minima. The first and last frames are never beats
    (a minimum needs both neighbours).
    """
    return beats_from_speed(mean_joint_speed(joints, fps), sigma, radius, depth, half_window)


def mean_joint_speed(joints: np.ndarray, fps: float) -> np.ndarray:
    """Mean joint speed ``(B, F − 1)`` (frames 1 … F−1) of joints ``(B, F, J, 3)``:
    speed_f = mean_j |x_f,j − x_f−1,j| · fps."""
    if jit_enabled() and joints.ndim == 4 and joints.dtype == np.float32 and 1 <= joints.shape[2] <= 128 \
            and joints.shape[1] >= 1 and joints.shape[3] == 3:
        return _speed_kernel(joints, np.float32(fps))  # the same float32 values (tests/test_jit.py)
    step = joints[:, 1:] - joints[:, :-1]
    # einsum: the same sum of squares as np.linalg.norm without its (B, F, J, 3) temporary (2.6x faster)
    return np.sqrt(np.einsum("bfjk,bfjk->bfj", step, step)).mean(-1) * fps


def beats_from_speed(speed: np.ndarray, sigma: float, radius: int, depth: float = 0.0,
                     half_window: int = 4) -> np.ndarray:
    """:func:`dance_beats` from the mean joint speed ``(B, F − 1)`` of frames 1 … F−1 -> ``(B, F)`` bool."""
    if not 0.0 <= depth < 1.0:
        raise ValueError(f"dance_beats: depth must be in [0, 1); got {depth}")
    if jit_enabled() and speed.ndim == 2 and speed.dtype in (np.float32, np.float64) and speed.shape[1] >= 1:
        # The same beats by one numba kernel (bit for bit: tests/test_jit.py).
        weights, factor = _kernel_options(sigma, radius, depth, speed.dtype)
        return _beats_kernel(np.ascontiguousarray(speed), weights, factor, depth > 0, int(half_window))
    if sigma > 0:
        speed = gaussian_filter1d(speed, sigma, axis=1, mode="nearest", truncate=radius / sigma)
    inner = speed[:, 1:-1]
    is_min = (inner < speed[:, :-2]) & (inner < speed[:, 2:])
    if depth > 0:
        h = int(half_window)
        pad = np.full((speed.shape[0], h), -np.inf)
        left = sliding_window_view(np.concatenate([pad, speed], axis=1), h + 1, axis=1).max(-1)
        right = sliding_window_view(np.concatenate([speed, pad], axis=1), h + 1, axis=1).max(-1)
        peak = np.minimum(left, right)[:, 1:-1]
        is_min &= inner <= (1.0 - depth) * peak
    beats = np.zeros((speed.shape[0], speed.shape[1] + 1), bool)
    beats[:, 2:-1] = is_min
    return beats


# The body joints as a slice of the 55 when they are the first ones (they are: pelvis … wrists):
# the compiled step and the shared pass then read a view instead of gathering a copy.
BODY_SLICE = slice(0, len(BODY_JOINTS)) if tuple(BODY_JOINTS) == tuple(range(len(BODY_JOINTS))) else None


def _kernel_options(sigma: float, radius: int, depth: float, dtype) -> tuple[np.ndarray, np.ndarray]:
    """The beat kernels' smoothing weights (one weight 1 when ``sigma`` is 0) and depth factor
    (1 − depth) in the dtype numpy's ``(1 − depth) · peak`` has for speeds of ``dtype``."""
    weights = _gaussian_weights(float(sigma), int(radius)) if sigma > 0 else np.ones(1)
    return weights, (1.0 - depth) * np.ones(1, dtype)


@functools.lru_cache(maxsize=32)
def _gaussian_weights(sigma: float, radius: int) -> np.ndarray:
    """The kernel scipy's ``gaussian_filter1d(..., truncate=radius / sigma)`` applies, read off its
    response to a unit impulse (so the weights are scipy's own, not a re-derivation)."""
    impulse = np.zeros(2 * radius + 1)
    impulse[radius] = 1.0
    weights = gaussian_filter1d(impulse, sigma, mode="constant", truncate=radius / sigma)
    weights.setflags(write=False)
    return weights


def _pairwise_sum(a, n):
    """Kernel helper: numpy's pairwise summation of ``a[:n]`` for ``n <= 128`` (eight running sums
    combined as a tree, then the remainder), which ``mean`` of a float32 row uses; same rounding."""
    if n < 8:
        res = a[0] - a[0]  # zero of a's own type (a[0] * 0 would be float64: int promotes)
        for i in range(n):
            res += a[i]
        return res
    r = a[:8].copy()
    i = 8
    while i < n - (n % 8):
        for j in range(8):
            r[j] += a[i + j]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        res += a[i]
        i += 1
    return res


def _speed_kernel(joints, fps):
    """:func:`mean_joint_speed` of float32 joints ``(B, F, J, 3)``, ``J <= 128``, in float32 as numpy
    computes it (squares summed in order, square root, the row's mean by pairwise summation)."""
    b, f, num = joints.shape[0], joints.shape[1], joints.shape[2]
    out = np.empty((b, max(f - 1, 0)), np.float32)
    norms = np.empty(num, np.float32)
    for e in range(b):
        for t in range(1, f):
            for j in range(num):
                acc = np.float32(0.0)
                for c in range(3):
                    d = joints[e, t, j, c] - joints[e, t - 1, j, c]
                    acc += d * d
                norms[j] = np.sqrt(acc)
            out[e, t - 1] = _pairwise_sum(norms, num) / np.float32(num) * fps
    return out


def _beats_kernel(speed, weights, factor, test_depth, half_window):
    """:func:`beats_from_speed` in one pass (numba; the numpy code is the reference).

    Smoothing: scipy's ``correlate1d`` for a symmetric kernel, in its order of additions,
    ``acc = w_0 x_i + Σ_{j=r…1} w_j (x_{i−j} + x_{i+j})`` in float64 with the ends repeated
    ("nearest"), rounded to the speed's dtype as scipy stores it.
    """
    b, n = speed.shape
    r = weights.shape[0] // 2
    smooth = np.empty_like(speed)
    beats = np.zeros((b, n + 1), np.bool_)
    for e in range(b):
        x = speed[e]
        for i in range(n):
            if r == 0:
                smooth[e, i] = x[i]
                continue
            acc = np.float64(x[i]) * weights[r]
            for j in range(r, 0, -1):
                lo, hi = max(i - j, 0), min(i + j, n - 1)
                acc += (np.float64(x[lo]) + np.float64(x[hi])) * weights[r - j]
            smooth[e, i] = acc
        s = smooth[e]
        for i in range(1, n - 1):
            if not (s[i] < s[i - 1] and s[i] < s[i + 1]):
                continue
            if test_depth:  # the speed must rise to s_i / (1 − depth) within h frames on both sides
                left = s[i]
                for g in range(max(i - half_window, 0), i):
                    left = max(left, s[g])
                right = s[i]
                for g in range(i + 1, min(i + half_window, n - 1) + 1):
                    right = max(right, s[g])
                if not s[i] <= factor[0] * min(left, right):
                    continue
            beats[e, i + 1] = True
    return beats


def _payout_kernel(music_beat, dance, pending, step, is_last, k):
    """Kernel of :meth:`BeatTerm.compute`'s payout: the previous window's eq. 21 value where it is
    pending (and ``step > 0``), plus the current window's at the last step."""
    b, f = music_beat.shape
    out = np.zeros(b)
    for e in range(b):
        for window, pay in ((f - 2 * k, pending[e] and step[e] > 0), (f - k, is_last[e])):
            if not pay:
                continue
            music = danced = False
            for i in range(window, window + k):
                music |= music_beat[e, i]
                danced |= dance[e, i]
            out[e] += -1.0 if music and not danced else 1.0
    return out


def _step_kernel(joints, num_body, fps, weights, factor, test_depth, half_window, music_beat, pending, step,
                 is_last, k):
    """:meth:`BeatTerm.compute` in one call: the speed of the first ``num_body`` joints, the dance
    beats and the payout, by the three kernels above (the body joints are joints 0 … 21)."""
    speed = _speed_kernel(joints[:, :, :num_body], fps)
    dance = _beats_kernel(speed, weights, factor, test_depth, half_window)
    return _payout_kernel(music_beat, dance, pending, step, is_last, k)


if jit_available():  # compiled lazily, on the first call
    _pairwise_sum, _speed_kernel, _beats_kernel = kernel(_pairwise_sum), kernel(_speed_kernel), kernel(_beats_kernel)
    _payout_kernel, _step_kernel = kernel(_payout_kernel), kernel(_step_kernel)


@register("beat")
class BeatTerm(RewardTerm):
    """Beat alignment of the follower with the music, Bailando++ eq. 21, with a one-token delay.

    For a token window W (its 4 frames)::

        R_b(W) = −1  if a music beat falls in W and no dance beat does,
                 +1  otherwise.

    Dance beats (:func:`dance_beats`): frames f where the mean speed s of the follower's 22 body
    joints, gaussian-smoothed with ``sigma`` (default 2 frames, kernel radius ``radius`` = 4
    frames), is a strict local minimum **and really slows down**::

        s_f ≤ (1 − depth) · min(max_{f−h ≤ g ≤ f} s_g,  max_{f ≤ g ≤ f+h} s_g)

    with ``depth`` = 0.3 and h = ``half_window`` = 4 frames: within 4 frames on each side the
    smoothed speed must rise to at least 1 / 0.7 ≈ 1.43 times its value at the beat. Bailando++
    counts every local minimum (``depth=0`` restores that); then a follower jittering by a
    centimetre at 7–15 Hz has a shallow minimum in almost every token and is never "off the beat".

    How 0.3 was chosen (SynthDuet test split, 14 clips, 4,621 tokens; ``depth`` of a minimum =
    1 − s_f / lower side peak; commands in docs/rewards.md):

    * Ground-truth followers: every one of their 1,029 dance beats is at least 0.63 deep (1st
      percentile 0.74), so any depth ≤ 0.6 keeps all of them; the term pays them 0.888 per
      token at every depth from 0 to 0.5.
    * The env's follower is the tokenizer's decoding, whose reconstruction of the ground truth
      dips less (median depth 0.59, 10th percentile 0.31). The ground truth's own tokens replayed
      through the decoder earn 0.866 per token at depth 0, 0.851 at 0.2, 0.835 at 0.3, 0.772 at 0.5.
    * Jitter: the ground truth plus 1 cm white noise per joint and frame, 1 cm whole-body white
      noise, or a 1.5 cm 7.5 Hz or 12 Hz whole-body wobble earns 0.74–0.94 per token at depth 0
      (the wobbles more than the ground truth's 0.888) and 0.555–0.578 at depth 0.3, where 0.555
      is what never matching a beat earns on this split. Of the jitter's minima 0–7 % are 0.3
      deep or more (median depth 0.006–0.13).

    So 0.3 takes away nearly all the jitter's spurious beats while costing the decoded ground
    truth 4 % of its beat reward (0.5 would cost 11 %).
    The metric BAS uses σ = 5 and plain minima (Bailando's published definition, unchanged);
    the reward uses a narrower kernel because only one token (4 frames) of look-ahead exists when
    the reward is paid, and h = 4 uses exactly that look-ahead.

    **Delay.** Deciding whether frame f is a speed minimum needs the frames after f, so the term
    pays for token t at step t+1: at step t it evaluates the *previous* token's window
    (context frames F−8 … F−5), whose look-ahead (the current token's 4 frames) is now known.
    With radius 4 the smoothed speed of that window is exact except at its last frame, whose
    right neighbour would need one frame beyond the context (edge padded); the right-side peak of
    the depth test reads the current token's smoothed speeds (edge padded at the context end).
    At step 0 nothing is pending and the term gives 0. At the last step (``is_last``) the current
    window is flushed too, with the look-ahead available (its last frame cannot be a beat; its
    right-side peaks are cut at the context end), and the sum is returned.
    So over an episode of N tokens the term pays exactly N values in {−1, +1}.

    State: per env, whether a previous token is pending (set after a non-final step, cleared by
    ``reset(mask)`` and after ``is_last``). A pending window is only paid when ``step > 0`` too,
    so a missed ``reset`` cannot pay a window of the previous episode.

    Range: [−2, 2] (one window in {−1, +1}, or two at the final step, or 0 at step 0).
    """

    range = (-2.0, 2.0)
    stateful = True
    delay_tokens = 1

    def __init__(self, sigma: float = 2.0, radius: int = 4, depth: float = 0.3, half_window: int = 4):
        if sigma < 0 or radius < 0:
            raise ValueError(f"beat: sigma and radius must be >= 0; got sigma={sigma}, radius={radius}")
        if not 0.0 <= depth < 1.0 or half_window < 1:
            raise ValueError(f"beat: need 0 <= depth < 1 and half_window >= 1 frames; got depth={depth}, "
                             f"half_window={half_window}")
        self.sigma, self.radius = float(sigma), int(radius)
        self.depth, self.half_window = float(depth), int(half_window)
        self.config = {"sigma": self.sigma, "radius": self.radius, "depth": self.depth,
                       "half_window": self.half_window}
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
        if jit_enabled() and BODY_SLICE is not None:  # the same values in one compiled call
            weights, factor = _kernel_options(self.sigma, self.radius, self.depth, np.float32)
            out = _step_kernel(ctx.follower_joints, BODY_SLICE.stop, np.float32(ctx.fps), weights, factor,
                               self.depth > 0, self.half_window, ctx.music_beat, self._pending, ctx.step,
                               ctx.is_last, k)
            self._pending = ~ctx.is_last
            return out
        dance = ctx.shared.dance_beats(self.sigma, self.radius, self.depth, self.half_window)
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
