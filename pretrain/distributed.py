"""Data-parallel training across processes: the one module of the trainers that knows torch.distributed.

Launch any trainer with ``torchrun --nproc_per_node N -m pretrain.gpt ...`` (or ``pretrain.vqvae``,
``pretrain.transl``, ``pretrain.reward_model``). torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init` reads them. Without them (a plain ``python -m ...``), or with a world
of one, nothing here communicates and every function is the identity, so a single process runs
exactly the code, and gets exactly the numbers, it got before data parallelism existed.

**How a global batch is split.** Our trainers do not iterate over a dataset; each step draws a
random batch from a seeded generator (the GPT: seeded by ``(seed, step)``; the VQ-VAEs: one
generator advanced step by step). Every rank draws the *same global batch* — same generator, same
calls — and keeps its contiguous share of the rows (:func:`shard_rows`). That is
DistributedSampler's contract (disjoint, equally sized shards that together are the global batch)
for random batches, and it keeps the generator state identical on every rank, so a checkpoint
(written by rank 0 only) resumes every rank. Gradients are averaged by DistributedDataParallel
(:func:`wrap`), never by hand; since DDP averages the ranks' gradients, a rank's loss must be
normalised so that the average of the ranks' losses is the global batch's loss (equal shards and
per-element means do this by themselves; the GPT's masked cross-entropy passes the global counts).

API (everything a trainer needs; ``pretrain.reward_model.train`` shows the minimal use)::

    device = distributed.init(args.device)      # process group from torchrun's env: gloo on CPU, nccl on CUDA
    distributed.world_size(), distributed.rank(), distributed.is_main()
    with distributed.main_first():              # rank 0 builds caches first, the others then read them
        data = load(...)
    rows = distributed.shard_rows(batch_size)   # this rank's slice; ValueError if the world does not divide it
    net = distributed.wrap(model, device)       # DistributedDataParallel when world > 1, else the model itself
    local = distributed.shard(batch, rows)      # a dict of arrays / tensors -> this rank's rows
    loss = loss_fn(net(...)); loss.backward()   # DDP averages the gradients
    value = distributed.mean_loss(loss)         # float: the mean over ranks (for logs and the NaN check)
    stop = distributed.any_rank(out_of_time)    # one decision for all ranks
    if distributed.is_main(): save(...)         # checkpoints, logs, progress bars: rank 0 only
    distributed.barrier(); distributed.cleanup()

Checkpoints are the unwrapped model's state (:func:`unwrap`), so a checkpoint written under
torchrun loads in a single process and vice versa. Resuming reads the checkpoint on every rank:
``--out`` must be on a file system all ranks see (one machine, or a shared mount).
"""
from __future__ import annotations

import contextlib
import inspect
import os
from typing import Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = ["init", "world_size", "rank", "is_main", "wrap", "unwrap", "shard_rows", "shard", "mean_loss",
           "any_rank", "barrier", "main_first", "cleanup", "env_world_size"]


def env_world_size() -> int:
    """The world size torchrun announced in the environment (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device: str = "auto") -> torch.device:
    """Join the process group torchrun describes and return this rank's device.

    ``device``: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``. Under torchrun with
    more than one process, rank r uses ``cuda:LOCAL_RANK`` on a GPU machine (nccl) and the CPU
    otherwise (gloo); an explicit ``cuda:i`` is refused there, because every rank would take the
    same GPU. Without torchrun (or with one process) no group is created and the device is
    ``device`` resolved as the single-process trainers always did. Idempotent.
    """
    from duet_env.checkpoint import resolve_device

    dev = resolve_device(device)
    if env_world_size() <= 1:
        return dev
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        if dev.index is not None and str(device) != "auto":
            raise ValueError(f"--device {device}: under torchrun each rank uses cuda:LOCAL_RANK; pass --device cuda")
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices are visible")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise ValueError(f"data-parallel training runs on cpu or cuda, not {dev}")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return dev


def world_size() -> int:
    """Number of data-parallel ranks (1 in a single process)."""
    return dist.get_world_size() if _active() else 1


def rank() -> int:
    """This process's rank (0 in a single process)."""
    return dist.get_rank() if _active() else 0


def is_main() -> bool:
    """True on rank 0 (and in a single process): the one that writes checkpoints, logs and bars."""
    return rank() == 0


def wrap(model: nn.Module, device: torch.device | str | None = None) -> nn.Module:
    """``DistributedDataParallel(model)`` when world > 1, else ``model`` itself (no wrapper at all).

    DDP broadcasts rank 0's parameters and buffers once here, so every rank starts from the same
    weights. Buffers are not re-broadcast at every forward (``forward_sync_buffers=False``): ours are
    either constants (the GPT's music normalisation) or kept equal explicitly (the VQ codebook's
    EMA statistics are summed over ranks, duet_env.tokenizer.quantizer).
    """
    if not _active():
        return model
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    ids = [dev.index] if dev.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel
    # torch 2.13 renamed the per-forward buffer sync (``broadcast_buffers`` is deprecated there)
    no_forward_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(ddp).parameters
                       else {"broadcast_buffers": False})
    return ddp(model, device_ids=ids, output_device=dev.index if ids else None, **no_forward_sync)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (checkpoints hold its state, without DDP's ``module.`` prefix)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def shard_rows(global_batch: int) -> slice:
    """This rank's contiguous rows of a global batch of ``global_batch`` rows.

    Raises ValueError when the world size does not divide the batch: unequal shards would weight
    the ranks' gradients unequally under DDP's average, and silently dropping rows would change
    the batch the config names.
    """
    n = world_size()
    if global_batch % n:
        raise ValueError(f"the global batch of {global_batch} is not divisible by the {n} data-parallel ranks: "
                         f"pick a batch size that is a multiple of {n} (or another --nproc_per_node)")
    size = global_batch // n
    return slice(rank() * size, (rank() + 1) * size)


def shard(batch: Mapping[str, np.ndarray | torch.Tensor], rows: slice | None = None) -> dict:
    """This rank's rows of every entry of a batch (arrays or tensors with the batch first)."""
    if rows is None:
        first = next(iter(batch.values()))
        rows = shard_rows(len(first))
    return {k: v[rows] for k, v in batch.items()}


def mean_loss(loss: torch.Tensor | float) -> float:
    """The mean of a scalar over all ranks, as a float (a single process: ``float(loss)``).

    For logging and for the non-finite check, which must stop every rank or none.
    """
    if not _active():
        return float(loss.item() if isinstance(loss, torch.Tensor) else loss)
    dev = loss.device if isinstance(loss, torch.Tensor) else torch.device("cpu")
    if dist.get_backend() == "nccl" and dev.type != "cuda":
        dev = torch.device("cuda", torch.cuda.current_device())
    t = torch.as_tensor(loss, dtype=torch.float64, device=dev).detach().clone().reshape(1)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (a stop decision all ranks share)."""
    if not _active():
        return bool(flag)
    dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([1.0 if flag else 0.0], device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if _active():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the block on rank 0 first and on the other ranks after it: caches (dataset, music
    features, tokens) are built once and then read, instead of N ranks building them at once."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def cleanup() -> None:
    """Leave the process group (call at the end of a trainer's main; no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
