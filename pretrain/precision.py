"""Mixed precision of the trainers: bf16 autocast on the model's forward where it is safe.

``--precision auto`` (the default) trains in bf16 autocast on a CUDA device that supports bf16
(Ampere and later) and in fp32 everywhere else — on the CPU in particular, so CPU runs give the
numbers they always gave. ``fp32`` turns autocast off; ``bf16`` forces it (also on the CPU, where
it is slow but lets the tests exercise the autocast path without a GPU).

What autocast covers, and what stays fp32 (by design, not by autocast's defaults):

* covered: the forward pass of the GPT (linear layers, attention) and of the VQ-VAEs' encoders and
  decoders (convolutions);
* fp32: the weights and the optimiser state (autocast casts copies, so no loss scaling is needed
  with bf16's 8-bit exponent); the GPT's cross-entropy (the logits are cast to fp32 first); the
  VQ codebook — nearest-code distances, the EMA statistics and dead-code restarts run with
  autocast off (:class:`duet_env.tokenizer.quantizer.EMAQuantizer`), because ‖z‖² − 2z·e + ‖e‖²
  cancels catastrophically in bf16 and the EMA's 1 % steps are below bf16's resolution; the VQ
  losses, forward kinematics and Gram–Schmidt (pretrain.vqvae.train.stream_loss casts the decoded
  frames to fp32), because 55-joint chains of bf16 rotations drift by centimetres;
* evaluation, validation and the env always run in fp32.
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def autocast_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``device`` under ``precision`` (None: no autocast, plain fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dev = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if dev.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device | str, precision: str = "auto") -> contextlib.AbstractContextManager:
    """A context for the forward pass: bf16 autocast (see module docstring) or nothing."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
