"""The batched duet simulation behind both the single env and the vector env.

``DuetCore`` keeps B episode slots. One :meth:`step` decodes the chosen tokens of all B
followers with one streaming-decoder call, scores all B with one reward call and advances
them; the single env is B = 1. Per-slot episode data sits in preallocated buffers indexed by
the token counter ``t``, so a step's cost does not depend on how far into the episode it is.

Buffer layout (frames): index ``P + f`` holds episode frame ``f`` with ``P = F`` pad frames in
front (copies of frame 0: a padded history looks like standing still, as rewards.context
documents) and one token of copies of the last frame behind.
Token buffers: index ``H + t`` holds token ``t``; ``H`` pads before, ``A`` pads after (pad id K
for token streams, zeros for music) — the "tokens" observation layout of duet_env.tokens.
"""
from __future__ import annotations

import numpy as np
import torch

from rewards.context import StepContext

from .conventions import (BEAT_COLUMN, CONTEXT_FRAMES, FOLLOWER_STREAMS, FPS, LEADER_STREAMS, MUSIC_DIM,
                          MUSIC_TOKEN_DIM, NUM_JOINTS, TOKEN_FRAMES)
from .episodes import EpisodeClip
from .motion import heading_from_joints, turn_per_token
from .threads import check_torch_threads, torch_threads
from .tokens import window_length


class DuetCore:
    def __init__(self, clips: list[EpisodeClip], tokenizer, num_envs: int, history: int, lookahead: int,
                 episode_tokens: int | None, reward, device: str | torch.device = "cpu",
                 torch_threads: int | None = None, compile_decoder: bool | str = False):
        """``torch_threads``: intra-op threads for the decode, set around it and restored
        (:mod:`duet_env.threads`); None (the default here) keeps the caller's setting — the env
        passes its config key ``torch_threads`` (default 1). ``compile_decoder``: the decode step
        eager (False, the default here), compiled (True) or "auto"
        (:mod:`duet_env.tokenizer.compiled`); the env passes its config key (default "auto")."""
        if not clips:
            raise ValueError("DuetCore needs at least one clip")
        self.clips = clips
        self.tokenizer = tokenizer
        self.num_envs = b = int(num_envs)
        self.history, self.lookahead = int(history), int(lookahead)
        self.episode_tokens = episode_tokens
        self.reward = reward
        self.device = torch.device(device)
        self.torch_threads = check_torch_threads(torch_threads)
        self.codebook_sizes = dict(tokenizer.codebook_sizes)
        self.nvec = np.array([self.codebook_sizes[s] for s in FOLLOWER_STREAMS], np.int64)
        self.decoder = tokenizer.streaming_decoder(b, compile_decoder)
        self.F = CONTEXT_FRAMES
        max_tokens = max(c.num_tokens for c in clips)
        self.max_len = min(max_tokens, episode_tokens) if episode_tokens else max_tokens
        w = window_length(self.history, self.lookahead)
        self.W = w
        n_tok = self.history + self.max_len + self.lookahead + 1  # +1: the terminal observation (t = L)
        n_frames = self.F + self.max_len * TOKEN_FRAMES + TOKEN_FRAMES
        self.music_tok = np.zeros((b, n_tok, MUSIC_TOKEN_DIM), np.float32)
        self.leader_tok = np.zeros((b, n_tok, len(LEADER_STREAMS)), np.int64)
        self.leader_turn_tok = np.zeros((b, n_tok, TOKEN_FRAMES), np.float32)  # rad/s per frame
        self.leader_frames = np.zeros((b, n_frames, NUM_JOINTS, 3), np.float32)
        self.leader_forward = np.zeros((b, n_frames, 3), np.float32)  # the tokenizer's leader frame
        self._heading_cache: dict[int, np.ndarray] = {}
        self._turn_cache: dict[int, np.ndarray] = {}
        self.music_frames = np.zeros((b, n_frames, MUSIC_DIM), np.float32)
        self.follower_history = np.zeros((b, self.history, len(FOLLOWER_STREAMS)), np.int64)
        self.follower_joints_hist = np.zeros((b, self.F, NUM_JOINTS, 3), np.float32)
        self.t = np.zeros(b, np.int64)
        self.length = np.ones(b, np.int64)
        self.clip_index = np.zeros(b, np.int64)
        self.start = np.zeros(b, np.int64)
        self.hold = np.zeros(b, bool)
        self.facing = np.zeros(b, np.float32)
        self.distance = np.zeros((b, 2), np.float32)
        self._arange = np.arange(b)
        self._win = np.arange(w)
        self._ctx = np.arange(self.F)
        self._tok = np.arange(TOKEN_FRAMES)
        # Pad ids (the codebook size K of each stream) written outside the episode.
        self.leader_pad = np.array([self.codebook_sizes[s] for s in LEADER_STREAMS], np.int64)
        self.follower_pad = self.nvec.copy()
        self.last_root_velocity = np.zeros((b, TOKEN_FRAMES, 3), np.float32)

    # ---- episode slots ------------------------------------------------------------------
    def episode_bounds(self, clip_id: int, rng: np.random.Generator | None, start: int | None = None,
                       random_start: bool = True) -> tuple[int, int]:
        """(start token, length) of an episode on clip ``clip_id``."""
        n = self.clips[clip_id].num_tokens
        length = min(n, self.episode_tokens) if self.episode_tokens else n
        if start is None:
            start = int(rng.integers(0, n - length + 1)) if (random_start and rng is not None) else 0
        if not 0 <= start <= n - length:
            raise ValueError(f"start token {start} out of range for clip {self.clips[clip_id].name} "
                             f"({n} tokens, episode of {length}): use 0..{n - length}")
        return int(start), int(length)

    def reset_slot(self, i: int, clip_id: int, start: int, length: int,
                   music_from: tuple[int, int] | None = None) -> None:
        """Start an episode in slot ``i``: clip ``clip_id`` from token ``start`` for ``length`` tokens.

        ``music_from=(clip, start)`` plays another clip's music under this leader (an
        out-of-distribution condition for exploration, as Duolando's fine-tuning uses); the
        music beats the rewards see are then that music's.
        """
        c = self.clips[clip_id]
        mc, ms = (clip_id, start) if music_from is None else music_from
        m = self.clips[mc]
        if ms < 0 or ms + length > m.num_tokens:
            raise ValueError(f"music_from={music_from}: clip {m.name} has {m.num_tokens} tokens, "
                             f"too few for {length} tokens from {ms}")
        h, p = self.history, self.F
        sl = slice(start, start + length)
        self.music_tok[i] = 0.0
        self.music_tok[i, h:h + length] = np.clip(m.music_tokens[ms:ms + length], -1e4, 1e4)  # the obs Box
        self.leader_tok[i] = self.leader_pad
        self.leader_tok[i, h:h + length] = c.leader_tokens[sl]
        self.leader_turn_tok[i] = 0.0
        self.leader_turn_tok[i, h:h + length] = self.clip_leader_turn(clip_id)[sl]
        f0, f1 = start * TOKEN_FRAMES, (start + length) * TOKEN_FRAMES
        lj, mu = c.leader_joints[f0:f1], m.music[ms * TOKEN_FRAMES:(ms + length) * TOKEN_FRAMES]
        self.leader_frames[i, :p] = lj[0]
        self.leader_frames[i, p:p + len(lj)] = lj
        self.leader_frames[i, p + len(lj):] = lj[-1]
        fwd = self.clip_leader_heading(clip_id)[f0:f1]
        self.leader_forward[i, :p] = fwd[0]
        self.leader_forward[i, p:p + len(fwd)] = fwd
        self.leader_forward[i, p + len(fwd):] = fwd[-1]
        self.music_frames[i] = 0.0
        self.music_frames[i, p:p + len(mu)] = mu
        self.follower_history[i] = self.follower_pad
        # Nothing is decoded yet: the follower's history starts as the leader's first frame.
        self.follower_joints_hist[i] = lj[0]
        self.t[i], self.length[i], self.clip_index[i], self.start[i] = 0, length, clip_id, start
        self.hold[i] = c.style.hold
        self.facing[i] = c.style.facing
        self.distance[i] = c.style.partner_distance
        mask = np.zeros(self.num_envs, bool)
        mask[i] = True
        with torch_threads(self.torch_threads):
            self.decoder.reset(torch.from_numpy(mask))
        if hasattr(self.reward, "reset"):
            self.reward.reset(mask)

    # ---- views used by observations -----------------------------------------------------
    def window(self) -> tuple[np.ndarray, np.ndarray]:
        """Music (B, W, 216) and leader tokens (B, W, 4) of the window t−H … t+A."""
        idx = self.t[:, None] + self._win
        return self.music_tok[self._arange[:, None], idx], self.leader_tok[self._arange[:, None], idx]

    def leader_turn_window(self) -> np.ndarray:
        """The leader's turn (B, W, 4), rad/s per frame, of the window t−H … t+A; 0 outside the episode."""
        idx = self.t[:, None] + self._win
        return self.leader_turn_tok[self._arange[:, None], idx]

    def leader_context(self, t: np.ndarray | None = None) -> np.ndarray:
        """Leader frames (B, F, 55, 3) ending at the last frame of token t−1 (t = current)."""
        t = self.t if t is None else t
        idx = (t * TOKEN_FRAMES)[:, None] + self._ctx  # P + 4t − F + k with P = F
        return self.leader_frames[self._arange[:, None], idx]

    def _upcoming_index(self) -> tuple[np.ndarray, np.ndarray]:
        return self._arange[:, None], (self.F + self.t * TOKEN_FRAMES)[:, None] + self._tok

    def leader_upcoming(self) -> np.ndarray:
        """Leader frames (B, 4, 55, 3) of the token about to be decoded."""
        return self.leader_frames[self._upcoming_index()]

    def leader_upcoming_forward(self) -> np.ndarray:
        """The tokenizer's leader heading (B, 4, 3) at the frames of the token about to be decoded."""
        return self.leader_forward[self._upcoming_index()]

    def clip_leader_heading(self, clip_id: int) -> np.ndarray:
        """The tokenizer's (time-smoothed) leader heading (T, 3) of a whole clip, computed once."""
        if clip_id not in self._heading_cache:
            lj = self.clips[clip_id].leader_joints
            self._heading_cache[clip_id] = self.tokenizer.clip_leader_heading(lj)
        return self._heading_cache[clip_id]

    def clip_leader_turn(self, clip_id: int) -> np.ndarray:
        """The turn rate (N, 4) of the tokenizer's leader frame per token and frame, rad/s
        (:func:`duet_env.motion.turn_per_token` of :meth:`clip_leader_heading`), computed once."""
        if clip_id not in self._turn_cache:
            self._turn_cache[clip_id] = turn_per_token(self.clip_leader_heading(clip_id))
        return self._turn_cache[clip_id]

    def leader_forward_last(self) -> np.ndarray:
        return heading_from_joints(self.leader_context()[:, -1]).astype(np.float32)

    # ---- stepping -----------------------------------------------------------------------
    def check_actions(self, actions, single: bool = False) -> np.ndarray:
        """The actions as a (B, 5) int64 array, or a clear error (shape, non-integer, out of range).

        ``single``: one env's action of shape (5,) (the single env, B = 1).
        """
        a = np.asarray(actions)
        if single:
            if a.shape != (len(FOLLOWER_STREAMS),):
                raise ValueError(f"action must have shape ({len(FOLLOWER_STREAMS)},) "
                                 f"[{', '.join(FOLLOWER_STREAMS)}]; got {a.shape}")
            a = a[None]
        if a.shape != (self.num_envs, len(FOLLOWER_STREAMS)):
            raise ValueError(f"actions must have shape ({self.num_envs}, {len(FOLLOWER_STREAMS)}) "
                             f"[{', '.join(FOLLOWER_STREAMS)}]; got {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            if not np.all(np.equal(np.mod(a, 1), 0)):
                raise ValueError(f"actions must be integer token ids; got {a.dtype} values")
            a = a.astype(np.int64)
        bad = (a < 0) | (a >= self.nvec)
        if bad.any():
            env_i, stream_i = np.argwhere(bad)[0]
            raise ValueError(
                f"action {a[env_i].tolist()} (env {env_i}) has {FOLLOWER_STREAMS[stream_i]}={a[env_i, stream_i]} "
                f"outside 0..{self.nvec[stream_i] - 1}"
            )
        return a.astype(np.int64, copy=False)

    def step(self, actions, single: bool = False):
        """Decode, place and score one token for all B slots; returns (reward, components, terminated).

        ``actions``: (B, 5) token ids, or one env's (5,) with ``single`` (see :meth:`check_actions`).
        """
        a = self.check_actions(actions, single)
        lead, fwd = self.leader_upcoming(), self.leader_upcoming_forward()
        with torch_threads(self.torch_threads):
            out = self.decoder.step(torch.from_numpy(a).to(self.device), torch.from_numpy(lead).to(self.device),
                                    torch.from_numpy(fwd).to(self.device))
            joints = out["joints"].detach().cpu().numpy().astype(np.float32, copy=False)  # (B, 4, 55, 3)
            rootvel = out.get("root_velocity")
            if rootvel is not None:
                rootvel = (rootvel.detach().cpu().numpy() / FPS).astype(np.float32)  # m/s -> m/frame
        if not np.isfinite(joints.sum()):  # a NaN or inf anywhere makes the sum one (no joint is near 1e37 m)
            raise FloatingPointError("the decoder produced NaN or inf joints: check that the tokenizer checkpoint "
                                     "is intact and matches its config (duet_env.tokenizer.load)")
        self.last_decoded = out  # kept for recorders (agents.rollout saves SMPL-X from it)
        first = self.t == 0
        if first.any():  # the history before the first token repeats the first decoded frame
            self.follower_joints_hist[first] = joints[first, :1]
        self.follower_joints_hist[:, :-TOKEN_FRAMES] = self.follower_joints_hist[:, TOKEN_FRAMES:]
        self.follower_joints_hist[:, -TOKEN_FRAMES:] = joints
        self.follower_history[:, :-1] = self.follower_history[:, 1:]
        self.follower_history[:, -1] = a
        t_next = self.t + 1
        music = self._context_frames(self.music_frames, t_next)
        # unchecked: every array below has the context's dtype and shape by construction, the
        # leader and music were checked when the clips were loaded, the decoded joints just above.
        ctx = StepContext.unchecked(
            leader_joints=self._context_frames(self.leader_frames, t_next),
            follower_joints=self.follower_joints_hist,
            music_beat=music[..., BEAT_COLUMN] > 0.5,
            music=music,
            hold_expected=self.hold, facing_expected=self.facing, distance_range=self.distance,
            step=self.t.copy(), is_last=t_next >= self.length,
            follower_root_velocity_pred=rootvel,
            follower_tokens=a,
        )
        total, components = self.reward(ctx)
        self.t = t_next
        return np.asarray(total, np.float32), components, self.t >= self.length

    def _context_frames(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        """A copy of ``x[b, 4 t_b + k]`` for k < F, ``(B, F, ...)``: the context window ending at
        token ``t_b − 1`` of each slot (``x`` is padded by F frames in front). One env takes a
        slice (a third of the fancy index's cost)."""
        if self.num_envs == 1:
            start = int(t[0]) * TOKEN_FRAMES
            return x[:, start:start + self.F].copy()
        return x[self._arange[:, None], (t * TOKEN_FRAMES)[:, None] + self._ctx]

    def follower_frames(self) -> np.ndarray:
        """The last decoded follower frames (B, 4, 55, 3)."""
        return self.follower_joints_hist[:, -TOKEN_FRAMES:]
