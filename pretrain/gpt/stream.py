"""KV-cached decisions of the streaming follower GPT: one new time step per call, exactly.

:class:`FollowerGPT` recomputes a whole observation window (10 streams × H times, every block,
and both look-ahead encoders over the W = H + 1 + A window) for each decision. With
``arch: "streaming"`` (pretrain/gpt/config.py) the same decision follows from the new step alone:

* every attention score depends on time *differences* only (rotary embedding + a learned bias
  per offset, no absolute positions), so a key computed at an earlier step stays valid;
* main block l lets time t attend to t − b_l … t with Σ b_l = H − 1 (:func:`main_bands`): a key
  kept for a past time j was computed from inputs that every later window using it still holds
  (j − Σ_{i<l} b_i ≥ t − H + 1 whenever t − j ≤ b_l), so the cache holds exactly what the window
  computation recomputes;
* the look-ahead encoders attend forward only: encoder block i lets time p attend to p … p + b_i,
  Σ b_i = A. Each step brings one new input time (t + A), so block i can finish exactly one new
  time, p = t + A − Σ_{j≤i} b_j, from its buffer of the b_i + 1 newest inputs; the last block
  finishes time t, the decision's music and leader encoding.

So a step embeds 1 music and 4 leader tokens, runs each encoder block on one time and each main
block on the 10 new tokens against ≤ 10·(b_l + 1) keys — instead of 125 + 160 tokens through every
block. The first call of an episode (and any row flagged in ``restart``) runs the full window once
and fills the buffers from it; padding before the episode start is part of that window, exactly as
in the full computation.

Contract: consecutive calls must see consecutive steps of the same episodes (what
``agents.rollout`` and ``agents.finetune`` feed). ``tests/test_gpt_stream.py`` checks the logits
against the full window over a 300-step rollout, across the window's slide, within 1e-4.

A ``"window"``-architecture GPT has no exact cache; its stream simply runs the full window.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import (N_COND_STREAMS, N_STREAMS, FollowerGPT, LookaheadEncoder, _time_index, band_scores,
                    rope_tables)


def _rope_at(time: int, head_dim: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    return rope_tables(torch.tensor([time], device=device), head_dim)  # (1, d/2): broadcasts over tokens


class _EncoderBuffers:
    """Streaming state of one :class:`LookaheadEncoder`: per block, the input x and its q, k, v
    at the b_i + 1 newest times that block has (see the module docstring)."""

    def __init__(self, enc: LookaheadEncoder):
        self.enc = enc
        self.bufs: list[list[torch.Tensor]] = []

    def fill(self, x: torch.Tensor, t_first: int) -> torch.Tensor:
        """Full pass over inputs x (B, S, T, D) at rotary times t_first … t_first + T − 1 (the
        encoder's forward, block by block); keeps each block's last complete inputs. Returns the
        output (B, S, T, D)."""
        enc = self.enc
        b, s, w, d = x.shape
        h = (x + enc.stream_emb[None, :, None]).reshape(b, s * w, d)
        rope = rope_tables(_time_index(s, w).to(x.device) + t_first, enc.head_dim)
        self.bufs, self.t_last, reach = [], t_first + w - 1, 0
        # step masks: keys (s', p + j) get bias[:, j] (weights are fixed while a stream runs)
        self.masks = [bias.repeat(1, s)[:, None, :].to(x.dtype) for bias in enc.bias]
        for block, band, bias in zip(enc.blocks, enc.bands, enc.bias):
            q, k, v = block.queries_keys_values(h, rope)
            # this block's inputs are complete up to the last time minus the reach used so far
            stop = w - reach
            keep = slice(stop - band, stop)
            self.bufs.append([h.view(b, s, w, d)[:, :, keep].clone()]
                             + [t.view(b, t.shape[1], s, w, -1)[:, :, :, keep].clone() for t in (q, k, v)])
            h = block.attend(h, q, k, v, band_scores(bias, s, w, 0, band).to(h.dtype))
            reach += band
        return enc.ln(h).view(b, s, w, d)

    def step(self, x_new: torch.Tensor) -> torch.Tensor:
        """The input at the next time (B, S, D) -> the output at the time A earlier (B, S, D)."""
        enc = self.enc
        self.t_last += 1
        h, t_in = x_new + enc.stream_emb[None], self.t_last
        for i, (block, band) in enumerate(zip(enc.blocks, enc.bands)):
            q, k, v = block.queries_keys_values(h, _rope_at(t_in, enc.head_dim, h.device))
            bx, bq, bk, bv = self.bufs[i]  # x (B, S, band, D); q, k, v (B, h, S, band, d)
            xs = torch.cat([bx, h[:, :, None]], dim=2)
            qs, ks, vs = (torch.cat([buf, new[:, :, :, None]], dim=3) for buf, new in ((bq, q), (bk, k), (bv, v)))
            b, hh, s, _, dh = ks.shape
            h = block.attend(xs[:, :, 0], qs[:, :, :, 0], ks.reshape(b, hh, -1, dh), vs.reshape(b, hh, -1, dh),
                             self.masks[i])
            self.bufs[i] = [xs[:, :, 1:], qs[:, :, :, 1:], ks[:, :, :, 1:], vs[:, :, :, 1:]]
            t_in -= band
        return enc.ln(h)

    def tensors(self) -> list[torch.Tensor]:
        return [t for buf in self.bufs for t in buf]


class FollowerStream:
    """Per-episode caches of a :class:`FollowerGPT` over a fixed batch of episodes."""

    def __init__(self, model: FollowerGPT):
        self.model = model
        self.main: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.music = _EncoderBuffers(model.music_encoder) if model.streaming else None
        self.leader = _EncoderBuffers(model.leader_encoder) if model.streaming else None
        self.time = 0  # the rotary time of the last decision (only differences matter)

    def reset(self) -> None:
        """Forget every episode: the next call runs the full window for all rows."""
        self.main = None

    def _state(self) -> tuple:
        """Everything a step reads and writes (the caches, the rotary time, the batch's shapes)."""
        return self.main, self.music.bufs, self.leader.bufs, self.time, self.shapes

    def _set_state(self, state: tuple) -> None:
        self.main, self.music.bufs, self.leader.bufs, self.time, self.shapes = state

    def _tensors(self) -> list[torch.Tensor]:
        return [t for kv in self.main for t in kv] + self.music.tensors() + self.leader.tensors()

    @torch.no_grad()
    def logits(self, music: torch.Tensor, leader: torch.Tensor, follower: torch.Tensor,
               restart: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Decision logits (B, K_s) per follower stream for batched observation windows
        (music (B, W, 216), leader (B, W, 4), follower (B, H, 5)).

        ``restart`` (B,) bool marks rows whose episode starts at this call (or whose observation
        does not continue the previous call's): they are computed from the full window.
        """
        m = self.model
        if not m.streaming:
            return m(music, leader, follower, last_only=True)
        b = music.shape[0]
        restart = None if restart is None else torch.as_tensor(restart, dtype=torch.bool, device=music.device)
        if not self.main or self.main[0][0].shape[0] != b or (restart is not None and bool(restart.all())):
            return self._full(music, leader, follower)
        self._check_step(music, leader, follower)
        out = self._next(music, leader, follower)
        if restart is not None and bool(restart.any()):
            # the restarted rows' full windows, at this step's rotary time, written into the caches
            rows = restart.nonzero()[:, 0]
            kept, kept_tensors = self._state(), self._tensors()
            fresh = self._full(music[rows], leader[rows], follower[rows], time=self.time)
            for old, new in zip(kept_tensors, self._tensors()):
                old[rows] = new
            self._set_state(kept)  # (the encoders' t_last is the same: both end at this step)
            for lg, f in zip(out, fresh):
                lg[rows] = f
        return out

    def _check_step(self, music, leader, follower) -> None:
        """The checks of :meth:`FollowerGPT.check_inputs` on what a step reads: the shapes of the
        first call, and the new music / token columns (older ones were checked when they were new)."""
        if (music.shape, leader.shape, follower.shape) != self.shapes:
            raise ValueError(f"FollowerStream: observation shapes {tuple(music.shape)}, {tuple(leader.shape)}, "
                             f"{tuple(follower.shape)} differ from the episode's first ({self.shapes}); "
                             "call reset() for a new batch")
        self.model.check_inputs(music[:, -1:], leader[:, -1:], follower[:, -1:], window=1)

    # -- the two paths ----------------------------------------------------------------------
    def _full(self, music, leader, follower, time: int | None = None) -> list[torch.Tensor]:
        """The window computation of :meth:`FollowerGPT.forward`, filling every cache on the way.
        ``time``: rotary time of the decision (default: H − 1)."""
        m = self.model
        m.check_inputs(music, leader, follower)
        self.shapes = (music.shape, leader.shape, follower.shape)
        b, h = follower.shape[:2]
        tau = h - 1 if time is None else int(time)
        first = tau - h + 1  # rotary time of window position 1 (position 0 is unused)
        mus_in, lead_in = m.condition_inputs(music[:, 1:], leader[:, 1:])
        mus = self.music.fill(mus_in, first)
        lead = self.leader.fill(lead_in, first)
        fol = m.embed_follower(follower)
        x = torch.cat([mus[:, :, :h], lead[:, :, :h], fol], dim=1) + m.stream_emb[None, :, None]
        x = x.reshape(b, N_STREAMS * h, -1)
        rope = rope_tables(_time_index(N_STREAMS, h).to(x.device) + first, m.head_dim)
        cache = []
        for block, band, bias in zip(m.blocks, m.bands, m.bias):
            q, k, v = block.queries_keys_values(x, rope)
            cache.append(tuple(t.view(b, t.shape[1], N_STREAMS, h, -1)[:, :, :, h - band:].clone() for t in (k, v)))
            x = block.attend(x, q, k, v, band_scores(bias, N_STREAMS, h, -band, 0).to(x.dtype))
        self.main, self.time = cache, tau
        # step masks: key (s, t − band + j) gets bias[:, j] (weights are fixed while a stream runs)
        self.masks = [bias.repeat(1, N_STREAMS)[:, None, :].to(x.dtype) for bias in m.bias]
        k_max = max(m.codebook_sizes)
        self.head_weight = torch.stack([F.pad(h.weight.t(), (0, k_max - h.weight.shape[0])) for h in m.heads])
        self.head_bias = torch.stack([F.pad(h.bias, (0, k_max - h.bias.shape[0])) for h in m.heads])[:, None]
        return m.read_out(x, last_only=True)

    def _next(self, music, leader, follower) -> list[torch.Tensor]:
        """One decision from the new step's inputs and the caches (see the module docstring)."""
        m = self.model
        mus_in, lead_in = m.condition_inputs(music[:, -1:], leader[:, -1:])  # the new time t + A
        mus = self.music.step(mus_in[:, :, 0])
        lead = self.leader.step(lead_in[:, :, 0])
        fol = m.embed_follower(follower[:, -1:])[:, :, 0]  # token t − 1
        x = torch.cat([mus, lead, fol], dim=1) + m.stream_emb[None]
        t = self.time + 1
        rope = _rope_at(t, m.head_dim, x.device)
        b = x.shape[0]
        for i, block in enumerate(m.blocks):
            q, k, v = block.queries_keys_values(x, rope)
            ck, cv = self.main[i]
            keys = torch.cat([ck, k[:, :, :, None]], dim=3)  # (B, h, S, band + 1, d): times t − band … t
            values = torch.cat([cv, v[:, :, :, None]], dim=3)
            hh, dh = keys.shape[1], keys.shape[-1]
            x = block.attend(x, q, keys.reshape(b, hh, -1, dh), values.reshape(b, hh, -1, dh), self.masks[i])
            self.main[i] = (keys[:, :, :, 1:], values[:, :, :, 1:])
        self.time = t
        x = m.ln_f(x[:, N_COND_STREAMS:])  # (B, 5, D): the follower streams
        # the five heads as one batched product (one op instead of five; same numbers)
        fused = torch.baddbmm(self.head_bias, x.transpose(0, 1), self.head_weight)  # (5, B, K_max)
        return [fused[s, :, :k] for s, k in enumerate(m.codebook_sizes)]
