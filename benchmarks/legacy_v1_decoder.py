"""The first tokenizer's streaming decoder (architecture v1, shipped until the keyframe/FK
decoder replaced it), kept only as the reference row of benchmarks/decode_step.py.

v1 decoded at the frame rate: per stream a position decoder and a rotation decoder (9 groups,
width 64, two x2 transposed-convolution upsamplers), joints from the position decoders. The
weights here are random: a step's cost does not depend on their values. Not used by the package.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from duet_env import motion
from duet_env.conventions import PART_JOINTS, PART_NAMES, WRIST_OF_HAND
from duet_env.tokenizer import features
from duet_env.tokenizer.model import CausalConv1d, CausalResBlock

DOWNSAMPLE_LEVELS = 2
BODY_GATHER = torch.tensor([(list(PART_JOINTS["lower"]) + list(PART_JOINTS["upper"])).index(j)
                            for j in range(25)])


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


def compose_joints(pos: dict[str, torch.Tensor], leader_forward: torch.Tensor, pelvis: torch.Tensor) -> torch.Tensor:
    """World joints ``(..., T, 55, 3)`` from decoded part positions (as :func:`pose_features`).

    Body joints come from the lower+upper position decoders (root-relative; the decoded pelvis
    offset is ignored: the pelvis is the origin by construction), fingers are the hand decoders'
    wrist offsets / features.HAND_SCALE added to the *decoded* wrists; the result is rotated back by the
    leader's yaw and placed at the world ``pelvis`` ``(..., T, 3)``.
    """
    lower = pos["lower"][..., : 3 * len(PART_JOINTS["lower"])].unflatten(-1, (-1, 3))
    lower = torch.cat([torch.zeros_like(lower[..., :1, :]), lower[..., 1:, :]], dim=-2)
    upper = pos["upper"].unflatten(-1, (-1, 3))
    body = torch.cat([lower, upper], dim=-2).index_select(-2, BODY_GATHER.to(lower.device))
    lh = pos["lhand"].unflatten(-1, (-1, 3)) / features.HAND_SCALE + body[..., WRIST_OF_HAND["lhand"]:WRIST_OF_HAND["lhand"] + 1, :]
    rh = pos["rhand"].unflatten(-1, (-1, 3)) / features.HAND_SCALE + body[..., WRIST_OF_HAND["rhand"]:WRIST_OF_HAND["rhand"] + 1, :]
    rel = torch.cat([body, lh, rh], dim=-2)
    return motion.from_heading_frame(rel, leader_forward.unsqueeze(-2)) + pelvis.unsqueeze(-2)




# (kind, stream) groups of v1 and their output widths
V1_GROUPS = [("pos", p) for p in PART_NAMES] + [("rot", p) for p in PART_NAMES] + [("pos", "transl")]


def v1_out_dim(kind: str, stream: str) -> int:
    if stream == "transl":
        return 3
    n = len(PART_JOINTS[stream])
    return 6 * n if kind == "rot" else 3 * n + (3 if stream == "lower" else 0)


class V1StreamingDecoder:
    """v1's streaming step: embedding lookup, fused frame-rate decoder, position/rotation assembly."""

    def __init__(self, batch: int, codebook: int = 256, code_dim: int = 64, width: int = 64, depth: int = 2, seed: int = 0):
        torch.manual_seed(seed)
        decs = [CausalDecoder(code_dim, width, v1_out_dim(k, s), depth) for k, s in V1_GROUPS]
        self.fused = FusedDecoder(decs).eval()
        self.table = torch.randn(5 * codebook, code_dim)
        self.offsets = torch.arange(5) * codebook
        self.group_stream = torch.tensor([PART_NAMES.index(s) if s != "transl" else 4 for _, s in V1_GROUPS])
        self.state = self.fused.init_state(batch)
        self.dims = self.fused.out_dims

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, leader: torch.Tensor) -> dict[str, torch.Tensor]:
        z = F.embedding(tokens.unsqueeze(1) + self.offsets, self.table)
        z = z.index_select(2, self.group_stream).permute(2, 0, 1, 3)
        y, self.state = self.fused(z, self.state)
        pos = {p: y[i, ..., : self.dims[i]] for i, p in enumerate(PART_NAMES)}
        n = len(PART_NAMES)
        rot = {p: features.rot6d_to_matrix(y[n + i, ..., : self.dims[n + i]].unflatten(-1, (-1, 6)))
               for i, p in enumerate(PART_NAMES)}
        fwd = motion.heading_from_joints(leader)
        pelvis = leader[..., 0, :] + motion.from_heading_frame(y[2 * n, ..., :3], fwd)
        return {"rotmats": features.compose_rotations(torch.cat([rot[p] for p in PART_NAMES], -3), fwd), "joints": compose_joints(pos, fwd, pelvis), "root": pelvis}
