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

A step is dispatch- and weight-read-bound at batch 1 (width 128: tiny matrices), so it is written
for few ops: new tokens share one time, so their rotary embedding is one (d, d) matrix product
(:func:`_rotation`); attention over ≤ 50 keys is softmax(q kᵀ/√d + mask) v in four ops; and the two
look-ahead encoders run as one batched computation (:class:`_PairedEncoders`). The window path
(:meth:`FollowerStream._full`) uses the modules as training does.

Contract: consecutive calls must see consecutive steps of the same episodes (what
``agents.rollout`` and ``agents.finetune`` feed). ``tests/test_gpt_stream.py`` checks the logits
against the full window over a 300-step rollout, across the window's slide, within 1e-4.

A ``"window"``-architecture GPT has no exact cache; its stream simply runs the full window.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .model import (N_COND_STREAMS, N_STREAMS, Block, FollowerGPT, LookaheadEncoder, _time_index, band_scores,
                    rope_tables)


@functools.lru_cache(maxsize=4096)
def _rotation(time: int, head_dim: int, device: torch.device) -> torch.Tensor:
    """The rotary embedding at one time as a (d, d) matrix R: ``x @ R`` equals
    :func:`pretrain.gpt.model.rotate` of x at that time (pairs (i, i + d/2) turned by angle θ_i).

    A step's new tokens all share one time, so their rotation is one matrix product instead of
    the ~10 elementwise ops of ``rotate`` (the step is dispatch-bound). Cached per time: an
    episode's times repeat in every episode."""
    cos, sin = (t[0] for t in rope_tables(torch.tensor([time], device=device), head_dim))
    half = head_dim // 2
    i = torch.arange(half, device=device)
    r = torch.zeros(head_dim, head_dim, device=device)
    r[i, i] = cos
    r[i + half, i + half] = cos
    r[i + half, i] = -sin
    r[i, i + half] = sin
    return r


def _step_qkv(block: Block, x: torch.Tensor, rotation: torch.Tensor):
    """:meth:`Block.queries_keys_values` of new tokens x (B, N, D) that share one time (its
    rotation matrix): q, k, v each (B, heads, N, d). Functional calls, one rotation product."""
    b, n, d = x.shape
    y = F.layer_norm(x, (d,), block.ln1.weight, block.ln1.bias, block.ln1.eps)
    qkv = F.linear(y, block.qkv.weight, block.qkv.bias).view(b, n, 3, block.n_heads, d // block.n_heads)
    qkv = qkv.permute(2, 0, 3, 1, 4)
    qk = torch.matmul(qkv[:2], rotation)
    return qk[0], qk[1], qkv[2]


def _step_attend(block: Block, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """:meth:`Block.attend` in eval mode (the only mode :class:`FollowerStream` runs) for a few
    queries (B, h, N, d) over (B, h, M, d) keys, with the additive ``mask`` (h, 1, M):
    softmax(q kᵀ/√d + mask) v written out in 4 ops (equal to scaled_dot_product_attention within
    float rounding; its generic path costs more here)."""
    b, n, d = x.shape
    scores = torch.add(mask, torch.matmul(q, k.transpose(-1, -2)), alpha=1.0 / math.sqrt(q.shape[-1]))
    a = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(b, n, d)
    x = x + F.linear(a, block.proj.weight, block.proj.bias)
    up, _, down = block.mlp
    y = F.layer_norm(x, (d,), block.ln2.weight, block.ln2.bias, block.ln2.eps)
    return x + F.linear(F.gelu(F.linear(y, up.weight, up.bias)), down.weight, down.bias)


class _EncoderBuffers:
    """The full-window pass of one :class:`LookaheadEncoder` that keeps, per block, the input x
    and its q, k, v at the b_i + 1 newest times that block has (see the module docstring); the
    steps that follow run in :class:`_PairedEncoders`."""

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


def _stacked_norm(norms: list) -> tuple[torch.Tensor, torch.Tensor, float]:
    """LayerNorms' (weight, bias) stacked as (G, 1, 1, D) for inputs (G, B, N, D), and their eps."""
    return (torch.stack([n.weight for n in norms])[:, None, None], torch.stack([n.bias for n in norms])[:, None, None],
            norms[0].eps)


def _stacked_linear(linears: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Linears' transposed weights (G, in, out) and biases (G, 1, out), for ``baddbmm``."""
    return torch.stack([m.weight.t() for m in linears]), torch.stack([m.bias for m in linears])[:, None]


class _PairedEncoders:
    """The music and leader encoders' steps as one batched computation.

    The two :class:`LookaheadEncoder` have the same bands and widths but their own weights; a step
    gives the music encoder 1 new token and the leader encoder 4, so run apart each block is two
    sets of tiny, dispatch-bound ops. Here the music stream is padded to the leader's 4 streams,
    the two weight sets are stacked, and each block is one set of batched products
    (``baddbmm`` over the pair); the padded music streams are masked out of every attention (−inf),
    so the music output is that of the music encoder alone. The full window (:meth:`fill`) still
    runs each encoder on its own (:class:`_EncoderBuffers`) and the pair's buffers are built from
    theirs. Eval mode only (no dropout), as :class:`FollowerStream` requires.
    """

    def __init__(self, music: LookaheadEncoder, leader: LookaheadEncoder):
        self.music, self.leader = _EncoderBuffers(music), _EncoderBuffers(leader)
        self.n = leader.n_streams
        self.bufs: list[list[torch.Tensor]] = []

    def _pad(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        """Music tensor with 1 stream at ``dim`` -> zeros appended up to the leader's streams."""
        shape = list(t.shape)
        shape[dim] = self.n - t.shape[dim]
        return torch.cat([t, t.new_zeros(shape)], dim=dim)

    def _pad_keys(self, bias: torch.Tensor) -> torch.Tensor:
        """The music encoder's step mask (h, band + 1) -> (h, 4·(band + 1)), −inf on padded streams."""
        pad = bias.new_full((bias.shape[0], (self.n - 1) * bias.shape[1]), float("-inf"))
        return torch.cat([bias, pad], dim=1)

    def fill(self, mus_in: torch.Tensor, lead_in: torch.Tensor, t_first: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Both encoders' full passes (:meth:`_EncoderBuffers.fill`); keeps their buffers stacked,
        x (2, B, 4, band, D) and q, k, v (2, B, h, 4, band, d), music first."""
        mus = self.music.fill(mus_in, t_first)
        lead = self.leader.fill(lead_in, t_first)
        self.t_last = self.music.t_last
        self.bufs = [[torch.stack([self._pad(m, 1 if j == 0 else 2), ld])
                      for j, (m, ld) in enumerate(zip(mb, lb))]
                     for mb, lb in zip(self.music.bufs, self.leader.bufs)]
        self._stack_weights(mus_in.dtype)
        return mus, lead

    def _stack_weights(self, dtype: torch.dtype) -> None:
        """Per block, the two encoders' parameters stacked for batched products (the weights are
        fixed while a stream runs, as for the step masks)."""
        encs = (self.music.enc, self.leader.enc)
        self.blocks = []
        for i, band in enumerate(encs[1].bands):
            blk = [e.blocks[i] for e in encs]
            self.blocks.append({
                "band": band, "heads": blk[0].n_heads,
                "ln1": _stacked_norm([b.ln1 for b in blk]), "ln2": _stacked_norm([b.ln2 for b in blk]),
                "qkv": _stacked_linear([b.qkv for b in blk]), "proj": _stacked_linear([b.proj for b in blk]),
                "up": _stacked_linear([b.mlp[0] for b in blk]), "down": _stacked_linear([b.mlp[2] for b in blk]),
                # keys (s', p + j) get bias[:, j]; the music encoder's padded streams get −inf
                "mask": torch.stack([self._pad_keys(encs[0].bias[i]), encs[1].bias[i].repeat(1, self.n)]
                                    )[:, None, :, None, :].to(dtype),  # (2, 1, h, 1, 4·(band + 1))
            })
        self.stream_emb = torch.stack([self._pad(e.stream_emb[None], 1)[0] for e in encs])[:, None]  # (2, 1, 4, D)
        self.ln = _stacked_norm([e.ln for e in encs])
        self.head_dim = encs[0].head_dim

    def step(self, mus_new: torch.Tensor, lead_new: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs at the next time, music (B, 1, D) and leader (B, 4, D) -> both encoders'
        outputs at the time A earlier, (B, 1, D) and (B, 4, D)."""
        self.t_last += 1
        b, n, d = lead_new.shape
        h = torch.stack([self._pad(mus_new, 1), lead_new]) + self.stream_emb  # (2, B, 4, D)
        t_in = self.t_last
        for i, p in enumerate(self.blocks):
            heads, dh = p["heads"], d // p["heads"]
            y = torch.addcmul(p["ln1"][1], F.layer_norm(h, (d,), eps=p["ln1"][2]), p["ln1"][0])
            qkv = torch.baddbmm(p["qkv"][1], y.view(2, b * n, d), p["qkv"][0])
            qkv = qkv.view(2, b, n, 3, heads, dh).permute(3, 0, 1, 4, 2, 5)  # (3, 2, B, h, 4, d)
            qk = torch.matmul(qkv[:2], _rotation(t_in, self.head_dim, h.device))
            bx, bq, bk, bv = self.bufs[i]  # x (2, B, 4, band, D); q, k, v (2, B, h, 4, band, d)
            xs = torch.cat([bx, h[:, :, :, None]], dim=3)
            qs, ks, vs = (torch.cat([buf, new[..., None, :]], dim=4)
                          for buf, new in ((bq, qk[0]), (bk, qk[1]), (bv, qkv[2])))
            keys, values = ks.reshape(2, b, heads, -1, dh), vs.reshape(2, b, heads, -1, dh)
            scores = torch.add(p["mask"], torch.matmul(qs[:, :, :, :, 0], keys.transpose(-1, -2)),
                               alpha=1.0 / math.sqrt(dh))  # (2, B, h, 4, 4·(band + 1))
            a = torch.matmul(scores.softmax(-1), values).transpose(2, 3).reshape(2, b * n, d)
            x = xs[:, :, :, 0] + torch.baddbmm(p["proj"][1], a, p["proj"][0]).view(2, b, n, d)
            y = torch.addcmul(p["ln2"][1], F.layer_norm(x, (d,), eps=p["ln2"][2]), p["ln2"][0]).view(2, b * n, d)
            h = x + torch.baddbmm(p["down"][1], F.gelu(torch.baddbmm(p["up"][1], y, p["up"][0])),
                                  p["down"][0]).view(2, b, n, d)
            self.bufs[i] = [xs[:, :, :, 1:], qs[..., 1:, :], ks[..., 1:, :], vs[..., 1:, :]]
            t_in -= p["band"]
        out = torch.addcmul(self.ln[1], F.layer_norm(h, (d,), eps=self.ln[2]), self.ln[0])
        return out[0, :, :1], out[1]

    def tensors(self) -> list[torch.Tensor]:
        """The buffers with the batch axis first (views: writing rows writes the buffers)."""
        return [t.transpose(0, 1) for buf in self.bufs for t in buf]


class FollowerStream:
    """Per-episode caches of a :class:`FollowerGPT` over a fixed batch of episodes."""

    def __init__(self, model: FollowerGPT):
        self.model = model
        self.main: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self.encoders = _PairedEncoders(model.music_encoder, model.leader_encoder) if model.streaming else None
        self.time = 0  # the rotary time of the last decision (only differences matter)

    def reset(self) -> None:
        """Forget every episode: the next call runs the full window for all rows."""
        self.main = None

    def _state(self) -> tuple:
        """Everything a step reads and writes (the caches, the rotary time, the batch's shapes)."""
        return self.main, self.encoders.bufs, self.time, self.shapes

    def _set_state(self, state: tuple) -> None:
        self.main, self.encoders.bufs, self.time, self.shapes = state

    def _tensors(self) -> list[torch.Tensor]:
        """Every cached tensor, batch axis first (the restart path writes rows into them)."""
        return [t for kv in self.main for t in kv] + self.encoders.tensors()

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
        if m.training:
            raise ValueError("FollowerStream: the GPT is in training mode; the KV cache computes the eval-mode "
                             "network (dropout would make cached keys differ from the window's): call model.eval()")
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
        mus, lead = self.encoders.fill(mus_in, lead_in, first)
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
        mus, lead = self.encoders.step(mus_in[:, :, 0], lead_in[:, :, 0])
        fol = m.embed_follower(follower[:, -1:])[:, :, 0]  # token t − 1
        x = torch.cat([mus, lead, fol], dim=1) + m.stream_emb[None]
        t = self.time + 1
        rotation = _rotation(t, m.head_dim, x.device)
        b = x.shape[0]
        for i, block in enumerate(m.blocks):
            q, k, v = _step_qkv(block, x, rotation)
            ck, cv = self.main[i]
            keys = torch.cat([ck, k[:, :, :, None]], dim=3)  # (B, h, S, band + 1, d): times t − band … t
            values = torch.cat([cv, v[:, :, :, None]], dim=3)
            hh, dh = keys.shape[1], keys.shape[-1]
            x = _step_attend(block, x, q, keys.reshape(b, hh, -1, dh), values.reshape(b, hh, -1, dh), self.masks[i])
            self.main[i] = (keys[:, :, :, 1:], values[:, :, :, 1:])
        self.time = t
        x = m.ln_f(x[:, N_COND_STREAMS:])  # (B, 5, D): the follower streams
        # the five heads as one batched product (one op instead of five; same numbers)
        fused = torch.baddbmm(self.head_bias, x.transpose(0, 1), self.head_weight)  # (5, B, K_max)
        return [fused[s, :, :k] for s, k in enumerate(m.codebook_sizes)]
