"""VQ-VAE for one token stream: temporal conv encoder (x4 down), EMA codebook, causal decoders.

* Encoder (not streamed): Conv1d -> 2 x [strided Conv1d (x2 down) + dilated residual blocks]
  -> Conv1d to the code dimension: one code per 4 frames (duet_env.tokens.TOKEN_FRAMES).
* Decoders (streamed): causal convolutions only — a causal Conv1d at token rate, then
  2 x [causal dilated residual blocks + ConvTranspose1d(kernel 2, stride 2)] and a causal
  output Conv1d. A stride-2 transposed conv with kernel 2 maps each input step to two output
  steps with no overlap, so it needs no state; each causal conv keeps its last
  (kernel − 1)·dilation inputs. Decoding one more token therefore costs the same at any step.
* Hybrid training (Bailando++ §3.2): the position decoder's loss trains encoder + decoder
  (the codebook follows its EMA); the rotation decoder reads the *detached* quantised codes,
  so it learns to read a fixed code space without moving it.

At run time :class:`FusedDecoder` packs the trained decoders of all streams into stacked weight
tensors, so a streaming step is a few batched matmuls instead of dozens of small convolutions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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


class CausalDecoder(nn.Module):
    """Codes ``(B, D, N)`` -> frames ``(B, out_dim, 4N)``, causal (frame t sees codes up to t // 4)."""

    def __init__(self, code_dim: int, width: int, out_dim: int, depth: int, kernel: int = 3):
        super().__init__()
        self.out_dim, self.code_dim = out_dim, code_dim
        self.conv_in = CausalConv1d(code_dim, width, kernel)
        self.levels = nn.ModuleList()
        for _ in range(DOWNSAMPLE_LEVELS):
            blocks = nn.ModuleList([CausalResBlock(width, kernel, 3 ** i) for i in range(depth)])
            up = nn.ConvTranspose1d(width, width, 2, stride=2)
            self.levels.append(nn.ModuleDict({"blocks": blocks, "up": up}))
        self.conv_out = CausalConv1d(width, out_dim, kernel)

    def stateful(self) -> list[CausalConv1d]:
        convs = [self.conv_in]
        for lvl in self.levels:
            convs += [b.conv for b in lvl["blocks"]]
        return convs + [self.conv_out]

    def init_state(self, batch: int, device=None, dtype=torch.float32) -> list[torch.Tensor]:
        """Zero state (the decoder at rest) for ``batch`` streams."""
        return [torch.zeros(batch, c.cin, c.context, device=device, dtype=dtype) for c in self.stateful()]

    def forward(self, z: torch.Tensor, state: list[torch.Tensor] | None = None):
        """Whole sequence from rest (``state=None``) -> output; or a chunk with state -> (output, new state)."""
        it = iter(state) if state is not None else None
        new: list[torch.Tensor] = []

        def run(layer, x):
            y, s = layer(x, next(it) if it is not None else None)
            new.append(s)
            return y

        h = run(self.conv_in, z)
        for lvl in self.levels:
            for block in lvl["blocks"]:
                h = run(block, h)
            h = lvl["up"](F.relu(h))
        out = run(self.conv_out, F.relu(h))
        return out if state is None else (out, new)


class StreamVQVAE(nn.Module):
    """VQ-VAE of one token stream (a body part, or the relative translation).

    ``in_dim`` channels in and out (positions; for the lower part + root velocity),
    ``rot_joints`` > 0 adds a rotation decoder with 6-D outputs per joint.
    """

    def __init__(self, in_dim: int, rot_joints: int, codebook_size: int, code_dim: int, width: int,
                 depth: int, kernel: int = 3, decay: float = 0.99, restart_threshold: float = 1.0):
        super().__init__()
        self.in_dim, self.rot_joints = in_dim, rot_joints
        self.encoder = Encoder(in_dim, width, code_dim, depth, kernel)
        self.quantizer = EMAQuantizer(codebook_size, code_dim, decay, restart_threshold=restart_threshold)
        self.pos_decoder = CausalDecoder(code_dim, width, in_dim, depth, kernel)
        self.rot_decoder = CausalDecoder(code_dim, width, 6 * rot_joints, depth, kernel) if rot_joints else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, in_dim)`` -> codes ``(B, T // 4)`` (nearest codebook entries)."""
        z = self.encoder(x.transpose(1, 2))
        b, d, n = z.shape
        return self.quantizer.nearest(z.permute(0, 2, 1).reshape(-1, d)).view(b, n)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass on ``(B, T, in_dim)``: positions ``(B, T, in_dim)``, 6-D rotations
        ``(B, T, J, 6)`` (from the detached codes), codes ``(B, T // 4)`` and the commit loss."""
        zq, codes, commit = self.quantizer(self.encoder(x.transpose(1, 2)))
        out = {"pos": self.pos_decoder(zq).transpose(1, 2), "codes": codes, "commit": commit}
        if self.rot_decoder is not None:
            r = self.rot_decoder(zq.detach()).transpose(1, 2)
            out["rot6d"] = r.unflatten(-1, (self.rot_joints, 6))
        return out


class FusedDecoder(nn.Module):
    """G trained :class:`CausalDecoder` s of one width/depth/kernel/code_dim packed for fast inference.

    Activations are laid out ``(G, B, L, C)`` and every convolution is one batched matmul over
    the groups (``torch.baddbmm``) on the stacked taps ``[x_{t}, x_{t+d}, …, x_{t+(k−1)d}]`` of
    the state-prefixed input — for the tiny inputs of a streaming step this is far cheaper than
    G separate (or grouped) ``conv1d`` calls. Outputs are zero-padded to the largest ``out_dim``;
    group g's channels are ``[:out_dims[g]]``. ``forward(z, state=None)`` decodes a whole sequence
    from rest; with a state (from :meth:`init_state`) it decodes a chunk and returns the new state.
    """

    def __init__(self, decoders: list["CausalDecoder"]):
        super().__init__()
        first = decoders[0]
        sig = lambda d: (d.conv_in.conv.out_channels, len(d.levels[0]["blocks"]), d.conv_in.conv.kernel_size[0],
                         d.code_dim)
        if any(sig(d) != sig(first) for d in decoders):
            raise ValueError("FusedDecoder needs decoders of one width, depth, kernel and code dimension")
        self.groups = len(decoders)
        self.out_dims = [d.out_dim for d in decoders]
        self.out_dim = max(self.out_dims)
        self.kernel = first.conv_in.conv.kernel_size[0]
        self.depth = len(first.levels[0]["blocks"])
        self.width = first.conv_in.conv.out_channels
        self.contexts: list[tuple[int, int]] = []  # (dilation, context) of each stateful conv
        self._n = 0

        def conv(convs: list[nn.Conv1d], pad_out: int | None = None) -> None:
            w = torch.stack([self._pack_conv(c.weight, pad_out) for c in convs])
            b = torch.stack([nn.functional.pad(c.bias, (0, (pad_out or c.bias.shape[0]) - c.bias.shape[0]))
                             for c in convs])
            self.register_buffer(f"w{self._n}", w.detach().clone())
            self.register_buffer(f"b{self._n}", b.detach().clone().unsqueeze(1))
            self._n += 1

        conv([d.conv_in.conv for d in decoders])
        self.contexts.append((1, first.conv_in.context))
        for li in range(DOWNSAMPLE_LEVELS):
            for bi in range(self.depth):
                blocks = [d.levels[li]["blocks"][bi] for d in decoders]
                conv([bl.conv.conv for bl in blocks])
                self.contexts.append((blocks[0].conv.conv.dilation[0], blocks[0].conv.context))
                conv([bl.proj for bl in blocks])
            ups = [d.levels[li]["up"] for d in decoders]
            # transposed conv (Cin, Cout, 2) -> (Cin, 2·Cout): output step 2t+j from input t
            self.register_buffer(f"w{self._n}", torch.stack([u.weight.permute(0, 2, 1).reshape(u.weight.shape[0], -1)
                                                             for u in ups]).detach().clone())
            self.register_buffer(f"b{self._n}", torch.stack([u.bias.repeat(2) for u in ups]).detach().clone().unsqueeze(1))
            self._n += 1
        conv([d.conv_out.conv for d in decoders], self.out_dim)
        self.contexts.append((1, first.conv_out.context))

    @staticmethod
    def _pack_conv(w: torch.Tensor, pad_out: int | None) -> torch.Tensor:
        """Conv1d weight (Cout, Cin, k) -> (k·Cin, Cout), tap-major, output zero-padded."""
        cout, cin, k = w.shape
        packed = w.permute(2, 1, 0).reshape(k * cin, cout)
        return nn.functional.pad(packed, (0, (pad_out or cout) - cout))

    def init_state(self, batch: int, device=None, dtype=torch.float32) -> list[torch.Tensor]:
        """Zero state (the decoders at rest) for ``batch`` streams: one (G, B, context, C) per causal conv."""
        chans = [self.w0.shape[1] // self.kernel] + [self.width] * (len(self.contexts) - 1)
        return [torch.zeros(self.groups, batch, ctx, c, device=device, dtype=dtype)
                for (_, ctx), c in zip(self.contexts, chans)]

    def _causal(self, i: int, x: torch.Tensor, state: torch.Tensor, dilation: int):
        g, b, length, c = x.shape
        xx = torch.cat([state, x], dim=2)
        taps = torch.cat([xx[:, :, k * dilation:k * dilation + length] for k in range(self.kernel)], dim=-1)
        y = torch.baddbmm(getattr(self, f"b{i}"), taps.reshape(g, b * length, -1), getattr(self, f"w{i}"))
        return y.view(g, b, length, -1), xx[:, :, xx.shape[2] - state.shape[2]:]

    def forward(self, z: torch.Tensor, state: list[torch.Tensor] | None = None):
        """``z`` (G, B, N, D) -> (G, B, 4N, out_dim) [, new state]."""
        g, b, n, _ = z.shape
        st = state if state is not None else self.init_state(b, z.device, z.dtype)
        new: list[torch.Tensor] = []
        si, wi = 0, 0

        def causal(x):
            nonlocal si, wi
            y, s = self._causal(wi, x, st[si], self.contexts[si][0])
            new.append(s)
            si += 1
            wi += 1
            return y

        def linear(x):
            nonlocal wi
            gg, bb, ll, _ = x.shape
            y = torch.baddbmm(getattr(self, f"b{wi}"), x.reshape(gg, bb * ll, -1), getattr(self, f"w{wi}"))
            wi += 1
            return y.view(gg, bb, ll, -1)

        h = causal(z)
        for _ in range(DOWNSAMPLE_LEVELS):
            for _ in range(self.depth):
                h = h + linear(torch.relu(causal(torch.relu(h))))
            up = linear(torch.relu(h))  # (G, B, L, 2·C)
            h = up.view(g, b, up.shape[2] * 2, -1)
        out = causal(torch.relu(h))
        return out if state is None else (out, new)
