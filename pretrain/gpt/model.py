"""FollowerGPT: the follower's token model (Duolando-style cross-conditional GPT).

Input, for one decision step t (duet_env/tokens.py layout, window W = H + 1 + A):

* ``music`` (B, W, 216): features of the 4 frames of each token t−H … t+A (zeros outside the clip);
* ``leader`` (B, W, 4): leader tokens up/down/lhand/rhand over the same window (pad id K outside);
* with config ``leader_turn``: ``music`` is (B, W, 220), each token's 216 music features followed
  by the leader's turn at its 4 frames (rad/s, the env's ``"leader_turn"``; :meth:`FollowerGPT.music_input`
  builds it), projected and added to the leader streams' inputs — his tokens are facing-invariant
  and cannot show a spin, and the follower's tokens live in his turning frame;
* ``follower`` (B, H, 5): the follower's previous tokens t−H … t−1 (pad id K before the start).

Architecture (docs/design.md "Pretraining"; after Duolando, Siyao et al. ICLR 2024, github.com/lisiyao21/Duolando):

1. Look-ahead encoders for music (1 stream) and leader (4 streams) over the W window, with
   banded attention: in layer l a position attends to every stream's positions within ±b_l,
   Σ b_l = A (:func:`pretrain.gpt.config.encoder_bands`), so position t sees exactly A ahead.
2. The main transformer runs on S = 10 streams × L = H + 1 positions (window positions
   0 … H = times t−H … t): music and the 4 leader streams hold the encoders' outputs; follower
   stream s at position p holds the embedding of its token at p − 1 (shifted right; a learned
   start embedding at p = 0). Cross-conditional block-causal mask: (s, p) may attend to
   (s', p') iff p' ≤ p — a lower-triangular time mask tiled over all stream pairs.
3. Five heads (one per follower stream, own embedding tables — unlike Duolando, whose rhand
   reused the lhand table) read follower stream s at p and predict its token at p. The heads
   emit K_s logits (no pad id), so the pad id can never be predicted.

Loss (training): Σ_s CE_s, each the mean cross-entropy over positions that lie inside the clip.

For actor-critic fine-tuning (Bailando's "state network" = first half frozen) the blocks are a
``ModuleList`` and :meth:`FollowerGPT.state` / :meth:`FollowerGPT.head` split the forward pass
at any block index.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from duet_env.conventions import FOLLOWER_STREAMS, LEADER_STREAMS, MUSIC_DIM, TOKEN_FRAMES
from duet_env.tokens import window_length

from .config import encoder_bands, main_bands, validate_config

N_COND_STREAMS = 1 + len(LEADER_STREAMS)  # music + leader parts
N_STREAMS = N_COND_STREAMS + len(FOLLOWER_STREAMS)


class Block(nn.Module):
    """Pre-LayerNorm transformer block.

    ``mask`` (N, N) bool (True where attention is allowed) or float (added to the scores, −inf
    where forbidden). ``rope`` (cos, sin), each (N, d_head / 2), rotates queries and keys by their
    time index (rotary position embedding, Su et al. 2021), so that scores depend on time
    *differences* only — what makes the streaming architecture's KV cache exact.
    """

    def __init__(self, width: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.drop = nn.Dropout(dropout)

    def queries_keys_values(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None):
        """(B, N, D) -> q, k, v, each (B, heads, N, D / heads), q and k rotated by ``rope``."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = rotate(torch.stack([q, k]), *rope).unbind(0)
        return q, k, v

    def attend(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """The residual update of ``x`` (B, N, D) from attention of q over (k, v), then the MLP."""
        b, n, d = x.shape
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=0.0)  # attention dropout costs a (B,h,N,N) mask draw: too slow on CPU
        if not self.training:  # the same without dropout's calls (KV-cached steps are dispatch-bound)
            x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
            return x + self.mlp(self.ln2(x))
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.mlp(self.ln2(x)))

    def forward(self, x: torch.Tensor, mask: torch.Tensor,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        return self.attend(x, *self.queries_keys_values(x, rope), mask)


def rope_tables(times: torch.Tensor, head_dim: int, base: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin (N, head_dim / 2) of the rotary embedding at integer ``times`` (N,).

    Frequencies base^(−2i/head_dim), i = 0 … head_dim/2 − 1; the base is small (100, not 10⁴)
    because the attention spans only a few tokens.
    """
    angle = times.to(torch.float32)[:, None] * _rope_frequencies(head_dim, base, times.device)[None, :]
    return angle.cos(), angle.sin()


@functools.lru_cache(maxsize=32)
def _rope_frequencies(head_dim: int, base: float, device: torch.device) -> torch.Tensor:
    half = head_dim // 2
    return base ** (-torch.arange(half, dtype=torch.float32, device=device) / max(half, 1))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive halves of the last axis of x (..., N, d) by the angles of (cos, sin) (N, d/2).

    (The head width is even by construction: width and heads are checked to divide evenly and
    the pairs are (i, i + d/2), the "rotate-half" form of the rotary embedding.)"""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def _time_index(n_streams: int, length: int) -> torch.Tensor:
    """Time position of each element of a stream-major flattened (stream, time) sequence."""
    return torch.arange(n_streams * length) % length


def band_scores(bias: torch.Tensor, n_streams: int, length: int, lo: int, hi: int) -> torch.Tensor:
    """Additive attention mask (heads, N, N) of a banded relative-time attention.

    Query (s, t) may attend key (s', t') iff lo ≤ t' − t ≤ hi, for every stream pair; the allowed
    scores get ``bias[h, t' − t − lo]`` (a learned bias per head and offset), the rest −inf.
    """
    index, forbidden = _band_index(n_streams, length, lo, hi, bias.device)
    return bias[:, index].masked_fill(forbidden, float("-inf"))


@functools.lru_cache(maxsize=64)
def _band_index(n_streams: int, length: int, lo: int, hi: int, device: torch.device):
    """(offset index into the bias, forbidden mask), both (N, N), of :func:`band_scores`."""
    t = _time_index(n_streams, length).to(device)
    off = t[None, :] - t[:, None]
    return (off - lo).clamp(0, hi - lo), (off < lo) | (off > hi)


class LookaheadEncoder(nn.Module):
    """Banded-attention encoder over ``n_streams`` × W positions (look-ahead of Σ bands).

    ``streaming=False`` (the original architecture): learned absolute positions over a window of
    exactly ``window`` positions, symmetric bands ±b_l. ``streaming=True``: no absolute positions
    (rotary embedding + a learned bias per relative offset) and *forward-only* bands 0 … b_l, so the
    output at time t depends on the inputs at t … t + Σ b_l only, for any input length.
    """

    def __init__(self, n_streams: int, window: int, width: int, n_heads: int, bands: list[int], dropout: float,
                 streaming: bool = False):
        super().__init__()
        self.n_streams, self.window, self.streaming = n_streams, window, streaming
        self.bands = list(bands)
        self.head_dim = width // n_heads
        if not streaming:
            self.pos_emb = nn.Parameter(torch.zeros(window, width))
        else:
            self.bias = nn.ParameterList(nn.Parameter(torch.zeros(n_heads, b + 1)) for b in bands)
        self.stream_emb = nn.Parameter(torch.zeros(n_streams, width))
        self.blocks = nn.ModuleList(Block(width, n_heads, dropout) for _ in bands)
        self.ln = nn.LayerNorm(width)
        if not streaming:
            t = _time_index(n_streams, window)
            dist = (t[:, None] - t[None, :]).abs()
            for i, band in enumerate(bands):
                self.register_buffer(f"mask{i}", dist <= band, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_streams, W, D) -> (B, n_streams, W, D)."""
        b, s, w, d = x.shape
        if not self.streaming:
            h = (x + self.pos_emb[None, None] + self.stream_emb[None, :, None]).reshape(b, s * w, d)
            for i, block in enumerate(self.blocks):
                h = block(h, getattr(self, f"mask{i}"))
            return self.ln(h).view(b, s, w, d)
        h = (x + self.stream_emb[None, :, None]).reshape(b, s * w, d)
        rope = rope_tables(_time_index(s, w).to(x.device), self.head_dim)
        for block, band, bias in zip(self.blocks, self.bands, self.bias):
            h = block(h, band_scores(bias, s, w, 0, band).to(h.dtype), rope)
        return self.ln(h).view(b, s, w, d)


class FollowerGPT(nn.Module):
    """The follower GPT of a validated config (see module docstring)."""

    def __init__(self, config: dict):
        super().__init__()
        validate_config(config)
        self.config = dict(config)
        d, heads, p = config["width"], config["n_heads"], float(config["dropout"])
        self.arch = config.get("arch", "window")
        self.streaming = self.arch == "streaming"
        self.history, self.lookahead = config["history"], config["lookahead"]
        self.window = window_length(self.history, self.lookahead)
        # Main-transformer positions of an observation window: t−H … t (window arch) or
        # t−H+1 … t (streaming: time j's follower input is token j−1, so t−H is not needed).
        self.length = self.history if self.streaming else self.history + 1
        self.n_streams = N_STREAMS
        self.head_dim = d // heads
        self.codebook_sizes = [int(config["codebook_sizes"][s]) for s in FOLLOWER_STREAMS]
        if config["music_dim"] != TOKEN_FRAMES * MUSIC_DIM:
            raise ValueError(f"GPT config: music_dim must be {TOKEN_FRAMES * MUSIC_DIM} "
                             f"({TOKEN_FRAMES} frames x {MUSIC_DIM} features), got {config['music_dim']}")
        # Per-feature normalisation of the raw 54-d music, set from the training data
        # (:meth:`set_music_normalisation`) and saved with the weights.
        self.register_buffer("music_mean", torch.zeros(MUSIC_DIM))
        self.register_buffer("music_std", torch.ones(MUSIC_DIM))

        # The leader's turn (duet_env/tokens.py "leader_turn"): 4 yaw rates per token, appended to
        # the music input; a spot turn runs at 2-3 rad/s, so 1/π puts it near 1.
        self.leader_turn = bool(config.get("leader_turn", False))
        self.music_width = config["music_dim"] + (TOKEN_FRAMES if self.leader_turn else 0)
        if self.leader_turn:
            self.turn_in = nn.Linear(TOKEN_FRAMES, d)

        bands = encoder_bands(self.lookahead, config["enc_layers"])
        self.music_in = nn.Linear(config["music_dim"], d)
        self.music_encoder = LookaheadEncoder(1, self.window, d, heads, bands, p, self.streaming)
        # The leader shares the follower's codebooks (same tokenizer, pose streams only).
        self.leader_emb = nn.ModuleList(nn.Embedding(k + 1, d) for k in self.codebook_sizes[:len(LEADER_STREAMS)])
        self.leader_encoder = LookaheadEncoder(len(LEADER_STREAMS), self.window, d, heads, bands, p, self.streaming)

        self.follower_emb = nn.ModuleList(nn.Embedding(k + 1, d) for k in self.codebook_sizes)
        self.stream_emb = nn.Parameter(torch.zeros(N_STREAMS, d))
        self.drop = nn.Dropout(p)
        self.blocks = nn.ModuleList(Block(d, heads, p) for _ in range(config["n_layers"]))
        self.ln_f = nn.LayerNorm(d)
        self.heads = nn.ModuleList(nn.Linear(d, k) for k in self.codebook_sizes)
        init_normal = [self.stream_emb, self.music_encoder.stream_emb, self.leader_encoder.stream_emb]
        if self.streaming:
            self.bands = main_bands(self.history, config["n_layers"])
            self.bias = nn.ParameterList(nn.Parameter(torch.zeros(heads, b + 1)) for b in self.bands)
        else:
            self.start_emb = nn.Parameter(torch.zeros(len(FOLLOWER_STREAMS), d))
            self.pos_emb = nn.Parameter(torch.zeros(self.length, d))
            t = _time_index(N_STREAMS, self.length)
            self.register_buffer("mask", t[None, :] <= t[:, None], persistent=False)
            init_normal += [self.start_emb, self.pos_emb, self.music_encoder.pos_emb, self.leader_encoder.pos_emb]
        self.apply(self._init_weights)
        for prm in init_normal:
            nn.init.normal_(prm, std=0.02)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    @torch.no_grad()
    def set_music_normalisation(self, mean, std) -> None:
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(MUSIC_DIM)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(MUSIC_DIM)
        self.music_mean.copy_(mean)
        self.music_std.copy_(std.clamp_min(1e-4))

    def music_input(self, music: torch.Tensor, leader_turn: torch.Tensor | None = None) -> torch.Tensor:
        """The GPT's music input from the observation's ``music`` (B, W, 216) and ``leader_turn``
        (B, W, 4) (rad/s; a flat (B, W·4) is reshaped): the music alone for a GPT without
        ``leader_turn``, the two concatenated (B, W, 220) for one with it."""
        if not self.leader_turn:
            return music
        if leader_turn is None:
            raise ValueError("FollowerGPT: this GPT reads the leader's turn (config leader_turn) but got none: pass "
                             "the env's \"tokens\" observation key 'leader_turn' (duet_env/tokens.py)")
        leader_turn = torch.as_tensor(leader_turn, dtype=music.dtype, device=music.device)
        if leader_turn.shape[0] != music.shape[0] or leader_turn[0].numel() != music.shape[1] * TOKEN_FRAMES:
            raise ValueError(f"FollowerGPT: leader_turn {tuple(leader_turn.shape)} does not match music "
                             f"{tuple(music.shape)}: expected (B, W, {TOKEN_FRAMES}) over the same window")
        return torch.cat([music, leader_turn.reshape(*music.shape[:2], TOKEN_FRAMES)], dim=-1)

    # -- input checks -------------------------------------------------------------------
    def check_inputs(self, music: torch.Tensor, leader: torch.Tensor, follower: torch.Tensor,
                     window: int | None = None) -> None:
        """Shapes, finite music and id ranges. The window arch takes exactly the observation
        window (history H); the streaming arch any history h ≥ 1 (training uses longer ones).
        ``window`` (w, with h = w): check a slice of w times of each input instead (a KV-cached step)."""
        b = music.shape[0] if music.ndim == 3 else None
        h = self.history
        if self.streaming and follower.ndim == 3 and follower.shape[1] >= 1:
            h = follower.shape[1]
        w = window_length(h, self.lookahead) if window is None else window
        problems = []
        if music.shape != (b, w, self.music_width):
            hint = " (music features + the leader's turn: FollowerGPT.music_input)" if self.leader_turn else ""
            problems.append(f"music {tuple(music.shape)} != (B, {w}, {self.music_width}){hint}")
        if leader.shape != (b, w, len(LEADER_STREAMS)):
            problems.append(f"leader {tuple(leader.shape)} != (B, {w}, {len(LEADER_STREAMS)})")
        if follower.shape != (b, h, len(FOLLOWER_STREAMS)):
            problems.append(f"follower {tuple(follower.shape)} != (B, {h}, {len(FOLLOWER_STREAMS)})")
        if problems:
            raise ValueError(f"FollowerGPT (history {h}, lookahead {self.lookahead}, window {w}) got wrong "
                             "input shapes: " + "; ".join(problems))
        if not torch.isfinite(music).all():
            raise ValueError("FollowerGPT: music features contain NaN or inf")
        for name, ids, sizes in (("leader", leader, self.codebook_sizes[:len(LEADER_STREAMS)]),
                                 ("follower", follower, self.codebook_sizes)):
            k = torch.tensor(sizes, device=ids.device)
            if ids.numel() and ((ids < 0) | (ids > k)).any():
                raise ValueError(f"FollowerGPT: {name} token ids must lie in [0, K] per stream (K = {sizes}, pad = K)")

    # -- forward pieces -------------------------------------------------------------------
    def condition_inputs(self, music: torch.Tensor, leader: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The look-ahead encoders' inputs: music (B, T, 216) normalised and projected, leader ids
        (B, T, 4) embedded (plus the projected leader turn, music's last 4 columns, for a GPT with
        ``leader_turn``) -> (B, 1, T, D), (B, 4, T, D)."""
        b, w, _ = music.shape
        n = TOKEN_FRAMES * MUSIC_DIM
        frames = (music[..., :n].reshape(b, w, TOKEN_FRAMES, MUSIC_DIM) - self.music_mean) / self.music_std
        lead = torch.stack([emb(leader[..., i]) for i, emb in enumerate(self.leader_emb)], dim=1)
        if self.leader_turn:
            lead = lead + self.turn_in(music[..., n:] * (1.0 / math.pi))[:, None]
        return self.music_in(frames.reshape(b, w, -1))[:, None], lead

    def encode_conditions(self, music: torch.Tensor, leader: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Look-ahead encoders: music (B, T, 216) and leader ids (B, T, 4) -> (B, 1, T, D), (B, 4, T, D)."""
        m, lead = self.condition_inputs(music, leader)
        return self.music_encoder(m), self.leader_encoder(lead)

    def embed_follower(self, follower: torch.Tensor) -> torch.Tensor:
        """Follower ids (B, T, 5) -> (B, 5, T, D)."""
        return torch.stack([emb(follower[..., i]) for i, emb in enumerate(self.follower_emb)], dim=1)

    def embed(self, music: torch.Tensor, leader: torch.Tensor, follower: torch.Tensor) -> torch.Tensor:
        """Encoders + input embeddings -> the main transformer's input (B, S·L, D), stream-major."""
        self.check_inputs(music, leader, follower)
        b = music.shape[0]
        if self.streaming:
            # Window position 0 (time t−h) is outside every output's receptive field: drop it.
            m, lead = self.encode_conditions(music[:, 1:], leader[:, 1:])
            fol = self.embed_follower(follower)  # time j holds token j−1 (pad id before the start)
            L = follower.shape[1]
            x = torch.cat([m[:, :, :L], lead[:, :, :L], fol], dim=1) + self.stream_emb[None, :, None]
            return self.drop(x.reshape(b, N_STREAMS * L, -1))
        m, lead = self.encode_conditions(music, leader)
        fol = self.embed_follower(follower)
        start = self.start_emb[None, :, None].expand(b, -1, 1, -1)
        fol = torch.cat([start, fol], dim=2)  # shifted right: position p holds token p-1
        L = self.length
        x = torch.cat([m[:, :, :L], lead[:, :, :L], fol], dim=1)
        x = x + self.pos_emb[None, None] + self.stream_emb[None, :, None]
        return self.drop(x.reshape(b, N_STREAMS * L, -1))

    def run_blocks(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Blocks ``start`` … ``stop``−1 on a (B, S·L, D) hidden state."""
        if not self.streaming:
            for block in self.blocks[start:stop]:
                x = block(x, self.mask)
            return x
        L = x.shape[1] // N_STREAMS
        rope = rope_tables(_time_index(N_STREAMS, L).to(x.device), self.head_dim)
        stop = len(self.blocks) if stop is None else stop
        for i in range(start, stop):
            x = self.blocks[i](x, band_scores(self.bias[i], N_STREAMS, L, -self.bands[i], 0).to(x.dtype), rope)
        return x

    def state(self, music: torch.Tensor, leader: torch.Tensor, follower: torch.Tensor,
              n_blocks: int) -> torch.Tensor:
        """Embeddings + the first ``n_blocks`` blocks (the RL "state network")."""
        return self.run_blocks(self.embed(music, leader, follower), 0, n_blocks)

    def read_out(self, x: torch.Tensor, last_only: bool = False) -> list[torch.Tensor]:
        """Final LayerNorm + the 5 heads on the follower streams of a (B, S·L, D) hidden state."""
        x = self.ln_f(x)
        b = x.shape[0]
        fol = x.view(b, N_STREAMS, x.shape[1] // N_STREAMS, -1)[:, N_COND_STREAMS:]
        if last_only:
            fol = fol[:, :, -1]
        return [head(fol[:, i]) for i, head in enumerate(self.heads)]

    def head(self, x: torch.Tensor, start_block: int, last_only: bool = False) -> list[torch.Tensor]:
        """Blocks from ``start_block`` on + final LayerNorm + the 5 heads.

        Returns one tensor per follower stream: (B, L, K_s), or (B, K_s) for the decision
        position only when ``last_only``.
        """
        return self.read_out(self.run_blocks(x, start_block), last_only)

    def forward(self, music: torch.Tensor, leader: torch.Tensor, follower: torch.Tensor,
                last_only: bool = False) -> list[torch.Tensor]:
        """Logits per follower stream: (B, L, K_s) over the main positions (times t−H … t for the
        window arch, t−h+1 … t for the streaming arch), or (B, K_s) at t when ``last_only``."""
        return self.head(self.embed(music, leader, follower), 0, last_only=last_only)

    def loss(self, logits: list[torch.Tensor], targets: torch.Tensor, counts: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Σ_s mean CE_s over targets (B, L, 5); entries < 0 (outside the clip) are ignored.

        ``counts`` (5,), if given, divides each stream's summed CE instead of the batch's own number
        of valid targets. Data-parallel training passes the *global* batch's counts / world size:
        each rank's loss is then its share of the global mean, and DDP's average of the ranks'
        gradients is the gradient of the global batch's loss (the shards' own means would weight
        a rank by its share of padded targets).
        """
        if counts is None:
            per_stream = [F.cross_entropy(lg.reshape(-1, lg.shape[-1]), targets[..., i].reshape(-1), ignore_index=-100)
                          for i, lg in enumerate(logits)]
        else:
            per_stream = [F.cross_entropy(lg.reshape(-1, lg.shape[-1]), targets[..., i].reshape(-1), ignore_index=-100,
                                          reduction="sum") / counts[i] for i, lg in enumerate(logits)]
        return torch.stack(per_stream).sum(), per_stream
