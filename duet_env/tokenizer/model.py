"""VQ-VAE for one token stream: temporal conv encoder (x4 down), EMA codebook, causal keyframe decoder.

* Encoder (not streamed): Conv1d -> 2 x [strided Conv1d (x2 down) + dilated residual blocks]
  -> Conv1d to the code dimension: one code per 4 frames (duet_env.tokens.TOKEN_FRAMES).
* Decoder (streamed, :class:`KeyframeDecoder`): causal dilated convolutions at the token rate
  predict one keyframe and one tangent per token; the token's four frames are the cubic Hermite
  curve from the previous token's keyframe to its own. Each causal conv keeps its last
  (kernel − 1)·dilation inputs, so decoding one more token costs the same at any step, and
  the motion is continuous in position and velocity across token boundaries by construction.
* What the decoder writes is what the body shows: the body-part decoders write the 6-D local
  rotations of their joints, and joints are forward kinematics of those rotations on the body's
  fixed bones (duet_env.tokenizer.Tokenizer), so the rewarded joints and the exported SMPL-X
  files are one motion. Training puts its position losses on those forward-kinematics joints
  (pretrain.vqvae.train).

Departure from Bailando++/Duolando (position decoder + detached rotation decoder, frame-rate
upsampling): one rotation decoder trained through forward kinematics, and keyframe + Hermite
upsampling instead of transposed convolutions.

At run time :class:`FusedDecoder` packs the trained decoders of all streams into stacked weight
tensors, so a streaming step is a few batched matmuls instead of dozens of small convolutions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tokens import TOKEN_FRAMES
from .quantizer import EMAQuantizer

DOWNSAMPLE_LEVELS = 2  # x2 each: 4 frames per token


class CausalConv1d(nn.Module):
    """Conv1d that only looks back: left zero-padding of (kernel − 1)·dilation.

    ``forward(x, state)`` with ``state`` ``(B, C_in, context)`` (the previous inputs) processes a
    new chunk and returns the next state; with ``state=None`` it processes a whole sequence
    from rest (zeros before the start — the same as a fresh zero state).
    """

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, dilation=dilation)
        self.context = (kernel - 1) * dilation
        self.cin = cin

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        if state is None:
            return self.conv(F.pad(x, (self.context, 0))), None
        xx = torch.cat([state, x], dim=-1)
        return self.conv(xx), xx[..., xx.shape[-1] - self.context:]


class CausalResBlock(nn.Module):
    """x + Conv1x1(ReLU(CausalConv_k,d(ReLU(x))))."""

    def __init__(self, width: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(width, width, kernel, dilation)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, x, state=None):
        h, state = self.conv(F.relu(x), state)
        return x + self.proj(F.relu(h)), state


class ResBlock(nn.Module):
    """Non-causal residual block of the encoder: x + Conv1x1(ReLU(Conv_k,d(ReLU(x))))."""

    def __init__(self, width: int, kernel: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.proj = nn.Conv1d(width, width, 1)

    def forward(self, x):
        return x + self.proj(F.relu(self.conv(F.relu(x))))


class Encoder(nn.Module):
    """``(B, C, T)`` -> ``(B, D, T // 4)``; T must be a multiple of 4."""

    def __init__(self, in_dim: int, width: int, code_dim: int, depth: int, kernel: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_dim, width, 3, padding=1)]
        for _ in range(DOWNSAMPLE_LEVELS):
            layers.append(nn.Conv1d(width, width, 4, stride=2, padding=1))
            layers += [ResBlock(width, kernel, 3 ** i) for i in range(depth)]
        layers += [nn.ReLU(), nn.Conv1d(width, code_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


_HERMITE: dict = {}


def hermite_weights(dtype=torch.float32, device=None) -> torch.Tensor:
    """Cubic Hermite basis ``(4, 4)`` at the token's frames: row j = (h00, h10, h01, h11)(s_j), s_j = (j + 1) / 4.

    A token's segment runs from the previous keyframe (frame 4k − 1, s = 0) to its own (frame
    4k + 3, s = 1): ``x(s) = h00 P_{k−1} + h10 M_{k−1} + h01 P_k + h11 M_k`` with tangents M in
    units per segment. Position and first derivative are continuous at every token boundary.
    """
    key = (dtype, device)
    if key not in _HERMITE:
        s = torch.arange(1, TOKEN_FRAMES + 1, dtype=torch.float64) / TOKEN_FRAMES
        h = torch.stack([2 * s ** 3 - 3 * s ** 2 + 1, s ** 3 - 2 * s ** 2 + s, -2 * s ** 3 + 3 * s ** 2, s ** 3 - s ** 2], -1)
        _HERMITE[key] = h.to(dtype=dtype, device=device)
    return _HERMITE[key]


def hermite_frames(keys: torch.Tensor, tangents: torch.Tensor, prev_key: torch.Tensor | None = None,
                   prev_tangent: torch.Tensor | None = None, has_prev: torch.Tensor | None = None) -> torch.Tensor:
    """Frames ``(..., 4N, C)`` from per-token keyframes and tangents ``(..., N, C)`` (time axis −2).

    Token 0 starts from ``prev_key``/``prev_tangent`` (``(..., 1, C)``) where ``has_prev``
    (``(..., 1, 1)``, 0 or 1) is 1; at rest (no previous token) it starts from its own keyframe
    with a zero tangent, so the first frames hold still rather than fly in from the origin.
    """
    p0, m0 = keys[..., :1, :], torch.zeros_like(tangents[..., :1, :])
    if prev_key is not None:
        p0 = has_prev * prev_key + (1 - has_prev) * p0
        m0 = has_prev * prev_tangent
    pp = torch.cat([p0, keys[..., :-1, :]], dim=-2)
    mp = torch.cat([m0, tangents[..., :-1, :]], dim=-2)
    h = hermite_weights(keys.dtype, keys.device)  # (4 frames, 4 terms)
    terms = torch.stack([pp, mp, keys, tangents], dim=-2)  # (..., N, 4 terms, C)
    return (h @ terms).flatten(-3, -2)  # (..., N, 4 frames, C) -> (..., 4N, C)


class KeyframeDecoder(nn.Module):
    """Codes ``(B, D, N)`` -> frames ``(B, 4N, out_dim)``, causal and smooth by construction.

    A stack of causal dilated convolutions at the *token* rate (conv_in, ``2·depth`` residual
    blocks with dilations 1, 3, 9, …, conv_out) predicts for every token a keyframe P_k (the
    pose at the token's last frame) and a tangent M_k; the token's four frames are the cubic
    Hermite curve from (P_{k−1}, M_{k−1}) to (P_k, M_k) (:func:`hermite_frames`). The decoded
    motion is therefore C¹-continuous across token boundaries and a cubic within a token: no
    frame-rate layer can add jitter (the ×2 transposed-convolution upsampler of the first
    decoder produced period-2/4 artefacts). Frame t only depends on tokens ≤ t // 4.
    ``offset`` (out_dim,) is added to the keyframes (the 6-D identity rotation for rotation
    channels), so an untrained decoder outputs the rest pose.
    """

    def __init__(self, code_dim: int, width: int, out_dim: int, depth: int, kernel: int = 3,
                 offset: torch.Tensor | None = None):
        super().__init__()
        self.out_dim, self.code_dim = out_dim, code_dim
        self.conv_in = CausalConv1d(code_dim, width, kernel)
        self.blocks = nn.ModuleList([CausalResBlock(width, kernel, 3 ** (i % depth)) for i in range(2 * depth)])
        self.conv_out = CausalConv1d(width, 2 * out_dim, kernel)
        with torch.no_grad():  # start near the offset (rest pose, zero tangents)
            self.conv_out.conv.weight.mul_(0.1)
            self.conv_out.conv.bias.zero_()
        self.register_buffer("offset", torch.zeros(out_dim) if offset is None else offset.clone().float())

    def keyframes(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole sequence from rest: keyframes and tangents ``(B, N, out_dim)``."""
        h, _ = self.conv_in(z)
        for block in self.blocks:
            h, _ = block(h)
        y, _ = self.conv_out(F.relu(h))
        y = y.transpose(1, 2)
        return y[..., : self.out_dim] + self.offset, y[..., self.out_dim:]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        keys, tangents = self.keyframes(z)
        return hermite_frames(keys, tangents)


class StreamVQVAE(nn.Module):
    """VQ-VAE of one token stream (a body part, or the relative translation).

    The encoder reads ``in_dim`` channels (root-relative joint positions of the part, see
    :mod:`.features`); the :class:`KeyframeDecoder` writes ``out_dim`` channels per frame (6-D
    local rotations of the part's joints, plus the pelvis velocity for the lower part; the
    relative translation for ``transl``). ``offset`` is the decoder's keyframe offset.
    """

    def __init__(self, in_dim: int, out_dim: int, codebook_size: int, code_dim: int, width: int,
                 depth: int, kernel: int = 3, decay: float = 0.99, restart_threshold: float = 1.0,
                 offset: torch.Tensor | None = None):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.encoder = Encoder(in_dim, width, code_dim, depth, kernel)
        self.quantizer = EMAQuantizer(codebook_size, code_dim, decay, restart_threshold=restart_threshold)
        self.decoder = KeyframeDecoder(code_dim, width, out_dim, depth, kernel, offset)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, in_dim)`` -> codes ``(B, T // 4)`` (nearest codebook entries)."""
        z = self.encoder(x.transpose(1, 2))
        b, d, n = z.shape
        return self.quantizer.nearest(z.permute(0, 2, 1).reshape(-1, d)).view(b, n)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass on ``(B, T, in_dim)``: decoded frames ``(B, T, out_dim)``, codes ``(B, T // 4)``
        and the commitment loss."""
        zq, codes, commit = self.quantizer(self.encoder(x.transpose(1, 2)))
        return {"frames": self.decoder(zq), "codes": codes, "commit": commit}


class FusedDecoder(nn.Module):
    """G trained :class:`KeyframeDecoder` s of one width/depth/kernel/code_dim packed for fast inference.

    Activations are laid out ``(G, B, N, C)`` at the token rate and every convolution is one
    batched matmul over the groups (``torch.baddbmm``) on the stacked taps ``[x_t, x_{t+d}, …]``
    of the state-prefixed input — for the tiny inputs of a streaming step far cheaper than G
    separate ``conv1d`` calls. Keyframes and tangents are zero-padded to the largest ``out_dim``;
    group g's channels are ``[:out_dims[g]]``. The state is the causal convolutions' last inputs
    plus the previous keyframe, tangent and a has-previous flag (zero state = at rest), so
    ``forward(z, state)`` on chunks equals ``forward(z)`` on the whole sequence.
    """

    def __init__(self, decoders: list[KeyframeDecoder]):
        super().__init__()
        first = decoders[0]
        sig = lambda d: (d.conv_in.conv.out_channels, len(d.blocks), d.conv_in.conv.kernel_size[0], d.code_dim)
        if any(sig(d) != sig(first) for d in decoders):
            raise ValueError("FusedDecoder needs decoders of one width, depth, kernel and code dimension")
        self.groups = len(decoders)
        self.out_dims = [d.out_dim for d in decoders]
        self.out_dim = max(self.out_dims)
        self.kernel = first.conv_in.conv.kernel_size[0]
        self.width = first.conv_in.conv.out_channels
        self.dilations: list[int] = []
        self.contexts: list[int] = []
        self._n = 0

        def add(w: torch.Tensor, b: torch.Tensor) -> None:
            self.register_buffer(f"w{self._n}", w.detach().clone())
            self.register_buffer(f"b{self._n}", b.detach().clone().unsqueeze(1))
            self._n += 1

        def causal(convs: list[CausalConv1d]) -> None:
            add(torch.stack([self._pack(c.conv.weight) for c in convs]), torch.stack([c.conv.bias for c in convs]))
            self.dilations.append(convs[0].conv.dilation[0])
            self.contexts.append(convs[0].context)

        causal([d.conv_in for d in decoders])
        for bi in range(len(first.blocks)):
            blocks = [d.blocks[bi] for d in decoders]
            causal([bl.conv for bl in blocks])
            add(torch.stack([self._pack(bl.proj.weight) for bl in blocks]), torch.stack([bl.proj.bias for bl in blocks]))
        # output conv: keyframe and tangent channels each padded to out_dim
        ws, bs = [], []
        for d in decoders:
            w, b = self._pack(d.conv_out.conv.weight), d.conv_out.conv.bias
            o = d.out_dim
            pad = lambda t: nn.functional.pad(t, (0, self.out_dim - o))
            ws.append(torch.cat([pad(w[:, :o]), pad(w[:, o:])], -1))
            bs.append(torch.cat([pad(b[:o]), pad(b[o:])], -1))
        add(torch.stack(ws), torch.stack(bs))
        self.dilations.append(1)
        self.contexts.append(first.conv_out.context)
        offs = torch.stack([nn.functional.pad(d.offset, (0, self.out_dim - d.out_dim)) for d in decoders])
        self.register_buffer("offset", offs.detach().clone()[:, None, None, :])  # (G, 1, 1, O)

    @staticmethod
    def _pack(w: torch.Tensor) -> torch.Tensor:
        """Conv1d weight (Cout, Cin, k) -> (k·Cin, Cout), tap-major."""
        cout, cin, k = w.shape
        return w.permute(2, 1, 0).reshape(k * cin, cout)

    def init_state(self, batch: int, device=None, dtype=torch.float32) -> list[torch.Tensor]:
        """Zero state (the decoders at rest) for ``batch`` streams: one (G, B, context, C) per causal
        conv, then the previous keyframe and tangent (G, B, 1, out_dim) and the flag (G, B, 1, 1)."""
        chans = [self.w0.shape[1] // self.kernel] + [self.width] * (len(self.contexts) - 1)
        convs = [torch.zeros(self.groups, batch, ctx, c, device=device, dtype=dtype)
                 for ctx, c in zip(self.contexts, chans)]
        key = torch.zeros(self.groups, batch, 1, self.out_dim, device=device, dtype=dtype)
        flag = torch.zeros(self.groups, batch, 1, 1, device=device, dtype=dtype)
        return convs + [key, key.clone(), flag]

    def forward(self, z: torch.Tensor, state: list[torch.Tensor] | None = None):
        """``z`` (G, B, N, D) -> frames (G, B, 4N, out_dim) [, new state]."""
        g, b, n, _ = z.shape
        st = state if state is not None else self.init_state(b, z.device, z.dtype)
        new: list[torch.Tensor] = []
        wi = 0

        def mm(x: torch.Tensor, i: int) -> torch.Tensor:
            gg, bb, ll, _ = x.shape
            return torch.baddbmm(getattr(self, f"b{i}"), x.reshape(gg, bb * ll, -1), getattr(self, f"w{i}")).view(gg, bb, ll, -1)

        def causal(x: torch.Tensor, ci: int) -> torch.Tensor:
            nonlocal wi
            s, d = st[ci], self.dilations[ci]
            xx = torch.cat([s, x], dim=2)
            taps = torch.cat([xx[:, :, k * d:k * d + x.shape[2]] for k in range(self.kernel)], dim=-1)
            new.append(xx[:, :, xx.shape[2] - s.shape[2]:])
            y = mm(taps, wi)
            wi += 1
            return y

        h = causal(z, 0)
        ci = 1
        for _ in range(len(self.contexts) - 2):
            h = h + mm(torch.relu(causal(torch.relu(h), ci)), wi)
            wi += 1
            ci += 1
        y = causal(torch.relu(h), ci)
        keys, tangents = y[..., : self.out_dim] + self.offset, y[..., self.out_dim:]
        prev_key, prev_tan, flag = st[-3], st[-2], st[-1]
        frames = hermite_frames(keys, tangents, prev_key, prev_tan, flag)
        if state is None:
            return frames
        return frames, new + [keys[:, :, -1:], tangents[:, :, -1:], torch.ones_like(flag)]
