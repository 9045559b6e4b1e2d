"""EMA vector quantiser with dead-code restart (VQ-VAE-2 / Jukebox style).

For a batch of encoder outputs z_i with nearest codes k(i) = argmin_k ||z_i − e_k||²
(van den Oord et al. 2017), the codebook follows exponential moving averages (decay γ = 0.99,
Razavi et al. 2019, as in Duolando):

    N_k ← γ N_k + (1 − γ) n_k,      S_k ← γ S_k + (1 − γ) Σ_{k(i)=k} z_i,
    e_k = S_k / Ñ_k,  Ñ_k = (N_k + ε) / (Σ N + K ε) · Σ N   (Laplace smoothing)

Dead-code restart (Dhariwal et al. 2020, Jukebox): a code whose usage average N_k fell below
``restart_threshold`` (it was unused for a while) is re-initialised to a random encoder output of
the current batch. The first training batch also initialises the whole codebook from data.
The commitment loss ||z − sg(e)||² is returned for the caller to weight (β = 0.02, Duolando);
gradients pass the quantisation straight through.

Precision: everything here runs in fp32 (the codebook's dtype) with autocast off, even when the
encoder and decoder train under bf16 autocast — distances ‖z‖² − 2z·e + ‖e‖² cancel badly in bf16
and the EMA's (1 − γ) = 1 % steps fall below its resolution.

Data parallelism: with ``data_parallel`` set (pretrain.vqvae.train does it under torchrun), the
batch statistics n_k and Σ z_i are summed over all ranks and the codebook initialisation and the
restarts draw from the encoder outputs of all ranks (gathered in rank order, i.e. the global
batch), with the torch generator that every rank seeds alike: every rank keeps the same codebook,
the one a single process would compute on the global batch.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class EMAQuantizer(nn.Module):
    def __init__(self, num_codes: int, code_dim: int, decay: float = 0.99, eps: float = 1e-5,
                 restart_threshold: float = 1.0):
        super().__init__()
        self.num_codes, self.code_dim = num_codes, code_dim
        self.decay, self.eps, self.restart_threshold = decay, eps, restart_threshold
        self.restart_enabled = True
        self.data_parallel = False  # sum statistics over torch.distributed ranks (see module docstring)
        self.register_buffer("codebook", torch.randn(num_codes, code_dim))
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embed_sum", torch.zeros(num_codes, code_dim))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Indices ``(M,)`` of the nearest codes to ``flat`` ``(M, D)`` (squared Euclidean distance)."""
        cb = self.codebook
        d = (flat * flat).sum(1, keepdim=True) - 2.0 * flat @ cb.t() + (cb * cb).sum(1)[None]
        return d.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors ``(..., D)`` of integer codes ``(...)``."""
        return F.embedding(codes, self.codebook)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z`` ``(B, D, N)`` -> (straight-through quantised ``(B, D, N)``, codes ``(B, N)``, commit loss)."""
        b, d, n = z.shape
        if d != self.code_dim:
            raise ValueError(f"quantiser expects {self.code_dim} channels, got {d}")
        with torch.autocast(z.device.type, enabled=False):
            z = z.to(self.codebook.dtype)  # a no-op outside autocast
            flat = z.permute(0, 2, 1).reshape(-1, d)
            if self.training and not bool(self.initialised):
                self._init_from(self._all_ranks(flat.detach()))
            codes = self.nearest(flat.detach())
            # quantise with the codes as they were when chosen; the EMA step then moves them
            zq = self.lookup(codes).view(b, n, d).permute(0, 2, 1).clone()
            if self.training:
                self.ema_update(flat.detach(), codes)
            commit = F.mse_loss(z, zq.detach())
            return z + (zq - z).detach(), codes.view(b, n), commit

    def _sum_over_ranks(self, t: torch.Tensor) -> torch.Tensor:
        if self.data_parallel and dist.is_initialized():
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def _all_ranks(self, flat: torch.Tensor) -> torch.Tensor:
        """Encoder outputs of every rank, in rank order (this rank's alone without data parallelism)."""
        if not (self.data_parallel and dist.is_initialized()):
            return flat
        parts = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, flat.contiguous())
        return torch.cat(parts)

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        idx = torch.randint(flat.shape[0], (self.num_codes,), device=flat.device)
        self.codebook.copy_(flat[idx])
        self.cluster_size.fill_(1.0)
        self.embed_sum.copy_(self.codebook)
        self.initialised.fill_(True)

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> int:
        """One EMA step on ``flat`` ``(M, D)`` assigned to ``codes`` ``(M,)``; returns the restart count."""
        onehot = F.one_hot(codes, self.num_codes).to(flat.dtype)
        self.cluster_size.mul_(self.decay).add_(self._sum_over_ranks(onehot.sum(0)), alpha=1.0 - self.decay)
        self.embed_sum.mul_(self.decay).add_(self._sum_over_ranks(onehot.t() @ flat), alpha=1.0 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.num_codes * self.eps) * total
        self.codebook.copy_(self.embed_sum / smoothed.unsqueeze(1))
        if not self.restart_enabled:
            return 0
        dead = self.cluster_size < self.restart_threshold
        n_dead = int(dead.sum())
        if n_dead:
            flat = self._all_ranks(flat)
            pick = flat[torch.randint(flat.shape[0], (n_dead,), device=flat.device)]
            self.codebook[dead] = pick
            self.cluster_size[dead] = self.restart_threshold
            self.embed_sum[dead] = pick * self.restart_threshold
        return n_dead
