"""The frozen motion tokenizer: pose VQ-VAEs per body part + relative-translation VQ-VAE.

Used by the environment (leader tokens at load time, streaming decode of the follower's action),
the follower GPT (training tokens) and the agents. Streams and frame convention: duet_env.tokens.

* ``encode(leader_joints, follower_joints)`` -> leader tokens ``(..., N, 4)`` (up, down, lhand,
  rhand) and follower tokens ``(..., N, 5)`` (+ transl); poses in the leader's heading frame,
  so tokens do not change when both dancers turn together. ``T`` frames give ``N = T // 4``
  tokens: trailing ``T % 4`` frames are dropped.
* ``decode(follower_tokens, leader_joints)`` -> the follower's frames in the world: local
  rotations (root rotation in world), pelvis position, joint positions and the lower decoder's
  predicted pelvis velocity. **The joints are forward kinematics of the decoded rotations and
  pelvis on the body's fixed bones** (duet_env.skeleton): the env's joints, the rewards, the
  metrics, ``render`` and every SMPL-X export (``poses`` = the rotations, ``transl`` = pelvis −
  REST_OFFSETS[0]) are one motion. The pelvis is the leader's pelvis plus the decoded relative
  translation rotated back from the leader's heading frame.
* ``streaming_decoder(B)`` decodes one token per call with cached convolution state: the cost of
  a step does not depend on how many steps came before, and the result equals ``decode`` on the
  whole sequence (see tests/test_tokenizer.py).

All five decoders (rotations of four parts, translation) are packed into one
:class:`duet_env.tokenizer.model.FusedDecoder` at load time, so a step is a few dozen small kernels
at the token rate, a Hermite expansion to four frames, and one level-batched FK.
Everything runs in eval mode under ``torch.no_grad``; numpy in gives numpy out.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from .. import checkpoint
from . import features, floor
from .compiled import CompilableStep
from .config import STREAMS, build_model, checkpoint_stem, heading_sigma_of, load_config, stream_config
from .model import FusedDecoder, StreamVQVAE

from .. import motion, skeleton
from ..conventions import FOLLOWER_STREAMS, NUM_JOINTS, PART_JOINTS, PART_NAMES, STREAM_OF_PART, TOKEN_FRAMES

# the fused decoder has one group per stream, in STREAMS order (upper, lower, lhand, rhand, transl)
_GROUP_STREAM = list(range(len(STREAMS)))
_LOWER_ROT = 6 * len(PART_JOINTS["lower"])  # lower part: rotations, then the pelvis velocity


class Tokenizer:
    """Frozen VQ-VAEs of the five token streams; see the module docstring."""

    def __init__(self, models: dict[str, StreamVQVAE], device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, configs: dict[str, dict] | None = None):
        missing = [s for s in STREAMS if s not in models]
        if missing:
            raise ValueError(f"tokenizer needs a model for every stream; missing {missing}")
        self.device, self.dtype = torch.device(device), dtype
        self.configs = dict(configs or {})  # per-stream flat model configs, for save()
        # The leader frame's heading smoothing: one value for all five models (they share the frame).
        sigmas = {s: heading_sigma_of(c) for s, c in self.configs.items()}
        if len(set(sigmas.values())) > 1:
            raise checkpoint.CheckpointError(f"tokenizer models disagree on heading_sigma (the leader frame): {sigmas}")
        self.heading_sigma = next(iter(sigmas.values())) if sigmas else features.HEADING_SIGMA_FRAMES
        self.models = {s: models[s].to(self.device, dtype).eval() for s in STREAMS}
        for m in self.models.values():
            m.requires_grad_(False)
        self.codebook_sizes: dict[str, int] = {STREAM_OF_PART[s]: self.models[s].quantizer.num_codes for s in STREAMS}
        self._k = torch.tensor([self.codebook_sizes[s] for s in FOLLOWER_STREAMS], device=self.device)
        sizes = [self.models[s].quantizer.num_codes for s in STREAMS]
        self._offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), device=self.device)
        self._table = torch.cat([self.models[s].quantizer.codebook for s in STREAMS])  # (ΣK, D)
        self._group_stream = torch.tensor(_GROUP_STREAM, device=self.device)
        decs = [self.models[s].decoder for s in STREAMS]
        self._fused = FusedDecoder(decs).to(self.device).eval()
        self._dims = self._fused.out_dims
        self._rest_pelvis = torch.tensor(skeleton.REST_OFFSETS[0], device=self.device, dtype=dtype)
        # The floor under the decoded feet (duet_env/tokenizer/floor.py), from the lower part's config.
        try:
            self.floor = floor.check_floor(self.configs.get("lower", {}).get("floor"))
        except ValueError as e:
            raise checkpoint.CheckpointError(f"lower part config: {e}") from e
        self._floor = None if self.floor is None else torch.tensor(self.floor, device=self.device, dtype=dtype)

    # ---------------------------------------------------------------- construction
    @classmethod
    def load(cls, name_or_path: str | os.PathLike = "default", device: str = "cpu") -> "Tokenizer":
        """Load the five checkpoints (``vqvae_<part>``, ``transl``) of a shipped name or a folder."""
        folder = checkpoint.resolve(name_or_path)
        dev = checkpoint.resolve_device(device)
        models, configs = {}, {}
        for s in STREAMS:
            stem = checkpoint_stem(s)
            tensors, cfg, _ = checkpoint.load(folder, stem, dev)
            if cfg.get("stream") != s:
                raise checkpoint.CheckpointError(f"{folder}/{stem}.json is not a {s!r} VQ-VAE config: {cfg}")
            try:
                model = build_model(cfg)
            except ValueError as e:
                raise checkpoint.CheckpointError(f"{folder}/{stem}.json: {e}") from e
            weights = {k: v for k, v in tensors.items() if not k.startswith(("optim/", "rng/"))}
            checkpoint.load_state_dict_strict(model, {k: v.float() for k, v in weights.items()
                                                      if v.is_floating_point()} | {
                k: v for k, v in weights.items() if not v.is_floating_point()}, f"{folder}/{stem}")
            models[s] = model
            configs[s] = cfg
        return cls(models, dev, configs=configs)

    @classmethod
    def from_config(cls, config: str | dict = "tiny", seed: int = 0, device: str = "cpu",
                    dtype: torch.dtype = torch.float32) -> "Tokenizer":
        """An untrained tokenizer of a named config (for tests and shapes; float64 for exactness checks)."""
        cfg = load_config(config)
        gen_state = torch.get_rng_state()
        torch.manual_seed(seed)
        configs = {s: stream_config(cfg, s) for s in STREAMS}
        try:
            models = {s: build_model(configs[s]) for s in STREAMS}
        finally:
            torch.set_rng_state(gen_state)
        return cls(models, checkpoint.resolve_device(device), dtype, configs=configs)

    def save(self, folder: str | os.PathLike) -> None:
        """Write the five checkpoints (weights + config) so that ``Tokenizer.load(folder)`` reads them."""
        missing = [s for s in STREAMS if s not in self.configs]
        if missing:
            raise ValueError(f"cannot save a tokenizer built without configs for {missing}")
        for s in STREAMS:
            weights = {k: v.float() if v.is_floating_point() else v for k, v in self.models[s].state_dict().items()}
            checkpoint.save(folder, checkpoint_stem(s), weights, self.configs[s])

    def leader_heading(self, leader_joints):
        """The leader frame's heading ``(..., T, 3)`` of whole leader sequences ``(..., T, 55, 3)``:
        :func:`duet_env.tokenizer.features.leader_heading` with this tokenizer's ``heading_sigma``
        (numpy in, numpy out)."""
        if isinstance(leader_joints, np.ndarray):
            return features.leader_heading(torch.from_numpy(leader_joints), self.heading_sigma).numpy()
        return features.leader_heading(leader_joints, self.heading_sigma)

    def clip_leader_heading(self, leader_joints) -> np.ndarray:
        """The leader frame of a whole clip as the env keeps it: :meth:`leader_heading` of the
        joints ``(T, 55, 3)`` (as float32, computed in float64), stored as float32 ``(T, 3)``. The
        env decodes in it and the GPT's token clips take the leader's turn from it, so both call this."""
        joints = np.asarray(leader_joints, np.float32).astype(np.float64)
        return self.leader_heading(joints).astype(np.float32)

    @property
    def fingerprint(self) -> str:
        """SHA-1 of every model's weights: keys caches of encoded tokens (so a retrained
        tokenizer with the same codebook sizes never reuses stale tokens)."""
        if getattr(self, "_fingerprint", None) is None:
            import hashlib

            h = hashlib.sha1()
            for s in STREAMS:
                for k, v in sorted(self.models[s].state_dict().items()):
                    h.update(k.encode())
                    h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def streaming_decoder(self, batch_size: int, compile: bool | str = False) -> "StreamingDecoder":
        """A token-by-token decoder for ``batch_size`` streams; ``compile``: False (eager), True or
        "auto" (:mod:`duet_env.tokenizer.compiled`)."""
        return StreamingDecoder(self, batch_size, compile)

    # ---------------------------------------------------------------- helpers
    def _joints_in(self, x, name: str, min_frames: int = 1) -> tuple[torch.Tensor, bool, tuple]:
        was_np = not isinstance(x, torch.Tensor)
        t = torch.as_tensor(np.asarray(x) if was_np else x)
        if t.ndim < 3 or tuple(t.shape[-2:]) != (NUM_JOINTS, 3):
            raise ValueError(f"{name} must have shape (T, {NUM_JOINTS}, 3) or (B, T, {NUM_JOINTS}, 3); got {tuple(t.shape)}")
        if t.shape[-3] < min_frames:
            raise ValueError(f"{name} needs at least {min_frames} frames; got {t.shape[-3]}")
        t = t.to(self.device, self.dtype)
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        lead = tuple(t.shape[:-3])
        return t.reshape(-1, *t.shape[-3:]), was_np, lead

    def _check_tokens(self, tokens: torch.Tensor, name: str) -> None:
        if tokens.dtype.is_floating_point:
            raise TypeError(f"{name} must be integer token ids; got {tokens.dtype}")
        bad = (tokens < 0) | (tokens >= self._k)
        if bool(bad.any()):
            col = int(bad.nonzero()[0, -1])
            s = FOLLOWER_STREAMS[col]
            k = self.codebook_sizes[s]
            v = int(tokens[..., col][bad[..., col]][0])
            what = f"the pad id {k} (not decodable)" if v == k else f"{v}"
            raise ValueError(f"{name}: stream {s!r} token {what} is outside the codebook [0, {k})")

    def _decoder_input(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, N, 5)`` -> fused decoder input ``(G, B, N, D)``."""
        z = torch.nn.functional.embedding(tokens + self._offsets, self._table)  # (B, N, 5, D)
        return z.index_select(2, self._group_stream).permute(2, 0, 1, 3)

    def _assemble(self, y: torch.Tensor, leader: torch.Tensor, fwd: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fused decoder output ``(G, B, L, O)`` + leader joints ``(B, L, 55, 3)`` -> world follower.

        One motion: the decoded local rotations and pelvis are the SMPL-X pose; the joints are
        their forward kinematics on the body's fixed bones, so what rewards score, what render
        draws and what an export writes agree exactly. With a ``floor`` (the lower part's config)
        the pelvis and joints are lifted where a foot would sink below it (:mod:`.floor`).
        """
        n = len(PART_NAMES)
        six = torch.cat([y[i, ..., : 6 * len(PART_JOINTS[p])] for i, p in enumerate(PART_NAMES)], -1)
        rotmats_parts = features.rot6d_to_matrix(six.unflatten(-1, (-1, 6)))  # (B, L, 55, 3, 3), parts order
        transl = y[n, ..., :3] / features.TRANSL_SCALE
        pelvis = leader[..., 0, :] + motion.from_heading_frame(transl, fwd)
        vel = y[PART_NAMES.index("lower"), ..., _LOWER_ROT:_LOWER_ROT + 3] / features.VEL_SCALE
        rotmats = features.compose_rotations(rotmats_parts, fwd)
        joints = skeleton.joint_positions(rotmats, pelvis - self._rest_pelvis)
        if self._floor is not None:  # no foot below the data's floor: the body moves up, the pose stays
            joints, pelvis = floor.lift_onto_floor(joints, pelvis, self._floor)
        return {"rotmats": rotmats, "joints": joints, "root": pelvis,
                "root_velocity": motion.from_heading_frame(vel, fwd)}

    # ---------------------------------------------------------------- public API
    @torch.no_grad()
    def encode(self, leader_joints, follower_joints=None) -> dict:
        """Tokens of world joint positions ``(T, 55, 3)`` or ``(B, T, 55, 3)``; T % 4 trailing frames dropped.

        Returns ``{"leader": int64 (..., N, 4)}`` plus ``"follower": int64 (..., N, 5)`` when the
        follower is given (same leading shape and T as the leader).
        """
        lead, was_np, shape = self._joints_in(leader_joints, "leader_joints", TOKEN_FRAMES)
        t = lead.shape[1] // TOKEN_FRAMES * TOKEN_FRAMES
        lead = lead[:, :t]
        dancers = [lead]
        if follower_joints is not None:
            foll, _, fshape = self._joints_in(follower_joints, "follower_joints", TOKEN_FRAMES)
            if fshape != shape or foll.shape[1] // TOKEN_FRAMES * TOKEN_FRAMES != t:
                raise ValueError(f"follower_joints {tuple(foll.shape)} must match leader_joints "
                                 f"{tuple(lead.shape)} in batch shape and frame count")
            foll = foll[:, :t]
            dancers.append(foll)
        fwd = self.leader_heading(lead)
        both = torch.cat(dancers)
        feats = features.pose_features(both, fwd.repeat(len(dancers), 1, 1))
        codes = torch.stack([self.models[p].encode(feats[p]) for p in PART_NAMES], -1)  # (k·B, N, 4)
        b = lead.shape[0]
        out = {"leader": codes[:b]}
        if follower_joints is not None:
            tr = self.models["transl"].encode(features.transl_features(foll, lead, fwd))
            out["follower"] = torch.cat([codes[b:], tr.unsqueeze(-1)], -1)
        out = {k: v.reshape(*shape, *v.shape[1:]) for k, v in out.items()}
        return {k: v.cpu().numpy() for k, v in out.items()} if was_np else out

    @torch.no_grad()
    def decode(self, follower_tokens, leader_joints, leader_forward=None) -> dict:
        """Follower frames from tokens ``(..., N, 5)`` and the leader's joints ``(..., 4N, 55, 3)``.

        ``leader_forward`` ``(..., 4N, 3)``: the leader frame's heading; by default
        :meth:`leader_heading` of ``leader_joints`` (pass it when the frames are a cut of a longer
        leader sequence, whose smoothed heading differs near the cut).

        Returns ``rotmats (..., 4N, 55, 3, 3)`` (local; root in world), ``joints (..., 4N, 55, 3)``,
        ``root (..., 4N, 3)`` (pelvis), ``root_velocity (..., 4N, 3)`` (m/s, world).
        """
        was_np = not isinstance(follower_tokens, torch.Tensor)
        tok = torch.as_tensor(np.asarray(follower_tokens) if was_np else follower_tokens).to(self.device)
        if tok.ndim < 2 or tok.shape[-1] != len(FOLLOWER_STREAMS):
            raise ValueError(f"follower_tokens must have shape (..., N, 5); got {tuple(tok.shape)}")
        self._check_tokens(tok, "follower_tokens")
        shape = tuple(tok.shape[:-2])
        n = tok.shape[-2]
        lead, _, lshape = self._joints_in(leader_joints, "leader_joints")
        if lshape != shape or lead.shape[1] != n * TOKEN_FRAMES:
            raise ValueError(f"leader_joints {tuple(np.shape(leader_joints))} must have shape {(*shape, n * TOKEN_FRAMES, NUM_JOINTS, 3)} "
                             f"for {n} tokens")
        tok = tok.reshape(-1, n, tok.shape[-1]).long()
        if leader_forward is None:
            fwd = self.leader_heading(lead)
        else:
            fwd = torch.as_tensor(np.asarray(leader_forward) if not isinstance(leader_forward, torch.Tensor)
                                  else leader_forward).to(self.device, self.dtype).reshape(-1, lead.shape[1], 3)
            if fwd.shape != (lead.shape[0], lead.shape[1], 3):
                raise ValueError(f"leader_forward must have shape {(*shape, n * TOKEN_FRAMES, 3)}; got "
                                 f"{tuple(np.shape(leader_forward))}")
        out = self._assemble(self._fused(self._decoder_input(tok)), lead, fwd)
        out = {k: v.reshape(*shape, *v.shape[1:]) for k, v in out.items()}
        return {k: v.cpu().numpy() for k, v in out.items()} if was_np else out


class StreamingDecoder:
    """Token-by-token decoder for ``batch_size`` parallel streams (one per env)."""

    def __init__(self, tokenizer: Tokenizer, batch_size: int, compile: bool | str = False):
        """``compile``: False (eager), True (``torch.compile`` from the first step) or "auto"
        (compiled after 1,000 eager steps, small batches on CPU); :mod:`duet_env.tokenizer.compiled`."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.tokenizer, self.batch_size = tokenizer, batch_size
        self.state = tokenizer._fused.init_state(batch_size, tokenizer.device, tokenizer.dtype)

        def decode_step(tokens, state, leader_joints, leader_forward):
            # a pure tensor function of its inputs: what torch.compile traces
            y, new_state = tokenizer._fused(tokenizer._decoder_input(tokens.unsqueeze(1)), state)
            return tokenizer._assemble(y, leader_joints, leader_forward), new_state

        self._step = CompilableStep(decode_step, compile, batch_size, tokenizer.device)

    @property
    def is_compiled(self) -> bool:
        """Whether the steps now run the ``torch.compile`` d step."""
        return self._step.is_compiled

    def reset(self, mask=None) -> None:
        """Forget the history of the streams where ``mask`` ``(B,)`` is True (all when None)."""
        if mask is None:
            for s in self.state:
                s.zero_()
            return
        m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask,
                            device=self.tokenizer.device)
        if m.shape != (self.batch_size,) or m.dtype != torch.bool:
            raise ValueError(f"mask must be a bool array of shape ({self.batch_size},); got {m.dtype} {tuple(m.shape)}")
        rows = m.nonzero().squeeze(1)  # index_fill_ on indices: a tenth of a bool-mask assignment's cost
        for s in self.state:
            s.index_fill_(1, rows, 0.0)  # state layout (G, B, context, C)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, leader_joints: torch.Tensor, leader_forward: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decode one token per stream -> its 4 frames.

        ``tokens`` ``(B, 5)`` int64; ``leader_joints`` ``(B, 4, 55, 3)`` the leader's frames of the
        token; ``leader_forward`` ``(B, 4, 3)`` the same frames of
        ``tokenizer.leader_heading(whole leader sequence)`` (the heading is smoothed over the whole
        sequence, so it cannot be computed from four frames; the env computes it once per clip).
        """
        tk = self.tokenizer
        b = self.batch_size
        if tokens.shape != (b, 5):
            raise ValueError(f"tokens must have shape ({b}, 5); got {tuple(tokens.shape)}")
        if leader_joints.shape != (b, TOKEN_FRAMES, NUM_JOINTS, 3):
            raise ValueError(f"leader_joints must have shape ({b}, {TOKEN_FRAMES}, {NUM_JOINTS}, 3); got {tuple(leader_joints.shape)}")
        if leader_forward.shape != (b, TOKEN_FRAMES, 3):
            raise ValueError(f"leader_forward must have shape ({b}, {TOKEN_FRAMES}, 3); got {tuple(leader_forward.shape)}")
        tokens = tokens.to(tk.device)
        tk._check_tokens(tokens, "tokens")
        out, self.state = self._step(tokens.long(), self.state, leader_joints.to(tk.device, tk.dtype),
                                     leader_forward.to(tk.device, tk.dtype))
        return out
