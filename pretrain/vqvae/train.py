"""Training loop of one stream's VQ-VAE (a body part or the relative translation), resumable.

Loss of a batch, per frame t (mean absolute errors unless marked):

    x̂ = positions of the part's joints from forward kinematics of the decoded rotations, the
         other joints' rotations held at the data (teacher forcing), in the encoder's layout
         (root-relative in the leader's heading frame; hands relative to the wrist × 10);
         for ``transl`` the decoded relative translation itself
    L = λ_p |x̂ − x|₁ + w(s) (λ_v |Δx̂ − Δx|₁ + λ_a |Δ²x̂ − Δ²x|₁ + λ_j |Δ³x̂ − Δ³x|₁) + β ||z_e − sg(e)||²
        + λ_r ||R̂ − R||²            (decoded local rotations vs the data; R̂ from 6-D by Gram–Schmidt)
        + λ_rv |v̂_root − v_root|₁   (lower part: root-velocity channels)

with λ_p = 1, β = 0.02 (commit), Δ the frame difference and w(s) = min(1, s / smooth_warmup) a ramp over
the first share of the steps (velocity/acceleration terms at full weight from the start pull
the first decoder towards the mean pose). Departure from Bailando++/Duolando: positions are never
decoded — the loss on them reaches the rotations through FK, so the rotations a user exports are
what was trained to match the data. The rotation term is the mean squared (chordal) distance
rather than L1: with L1 a 180°-flipped Gram–Schmidt frame is a *stable* point (the sign gradient
pins the off-axis entries at 0 and the normalisation removes the radial pull); under the squared
loss that point is a maximum. Adam with linear warm-up then cosine decay to
10 % of the base rate. Dead-code restart runs for the first ``restart_until`` share of the steps,
so the decoders settle on the final codebook.

Checkpoints (duet_env.checkpoint) hold the weights, Adam's tensors (``optim/…``), the torch RNG
(``rng/torch``) and, in JSON, the step and the numpy generator state: a killed run resumed with
``--resume`` continues exactly as an uninterrupted one (CPU).

Data parallelism (``torchrun --nproc_per_node N -m pretrain.vqvae``, :mod:`pretrain.distributed`):
every rank draws the same global batch of ``train.batch`` windows from the same generator and
trains on its contiguous share under DistributedDataParallel (all losses are means over equal
shards, so DDP's gradient average is the global batch's gradient); the codebook's EMA statistics
and restarts are taken over all ranks (duet_env.tokenizer.quantizer), so every rank holds the
codebook one process would hold. Rank 0 alone writes checkpoints and the progress bar. On CUDA
the encoder and decoder run under bf16 autocast; the quantiser, forward kinematics and the losses
stay fp32 (:mod:`pretrain.precision`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from duet_env import checkpoint, skeleton
from duet_env.conventions import PART_JOINTS, WRIST_OF_HAND
from pretrain.motion_data import Batch, MotionWindows
from duet_env.tokenizer import features
from duet_env.tokenizer.config import build_model, checkpoint_stem, stream_config
from duet_env.tokenizer.model import StreamVQVAE
from pretrain import distributed
from pretrain.precision import autocast

TRAIN_KEYS = ("window", "batch", "lr", "pos", "commit", "vel", "acc", "jerk", "rot", "root_vel", "restart_until", "warmup",
              "smooth_warmup")


def train_config(cfg: dict, stream: str) -> dict:
    """The training hyper-parameters of one stream: ``cfg["train"]`` with the stream's entries of
    ``cfg["train"]["per_stream"]`` (if any) on top."""
    tcfg = {k: v for k, v in cfg["train"].items() if k != "per_stream"}
    tcfg.update(cfg["train"].get("per_stream", {}).get(stream, {}))
    return tcfg


def run_config(cfg: dict, stream: str, seed: int) -> dict:
    """What a checkpoint must match to be resumed: the model config, training hyper-parameters, seed."""
    out = stream_config(cfg, stream)
    tcfg = train_config(cfg, stream)
    out.update({f"train_{k}": tcfg[k] for k in TRAIN_KEYS})
    out["seed"] = seed
    return out


_REST_PELVIS = torch.tensor(skeleton.REST_OFFSETS[0], dtype=torch.float32)


def stream_loss(model: StreamVQVAE, batch: Batch, stream: str, tcfg: dict, progress: float = 1.0
                ) -> tuple[torch.Tensor, dict]:
    """Loss of one batch; ``progress`` (step / total) ramps the smoothness terms in (see module docstring).

    The model's forward may run under autocast; everything after it (forward kinematics, the
    losses) runs in fp32 with autocast off."""
    out = model(batch.x)
    with torch.autocast(batch.x.device.type, enabled=False):
        return _loss_terms(out["frames"].float(), out["commit"].float(), batch, stream, tcfg, progress)


def _loss_terms(frames: torch.Tensor, commit: torch.Tensor, batch: Batch, stream: str, tcfg: dict,
                progress: float) -> tuple[torch.Tensor, dict]:
    x = batch.x
    n_pos = x.shape[-1] - (features.ROOT_VEL_CHANNELS if stream == "lower" else 0)
    g = x[..., :n_pos]
    logs: dict[str, float] = {}
    rot_loss = None
    if stream == "transl":
        p = frames
    else:
        idx = torch.tensor(PART_JOINTS[stream], device=x.device)
        r = features.rot6d_to_matrix(frames[..., : 6 * len(idx)].unflatten(-1, (-1, 6)))
        # forward kinematics with the part's decoded rotations and the data's elsewhere (teacher
        # forcing), pelvis at the origin: the positions the user will see, in the encoder's layout
        full = batch.rot.index_copy(-3, idx, r)
        _, joints = skeleton.global_transforms(full, -_REST_PELVIS.to(x.device, x.dtype))
        p = features.part_positions(joints, stream)
        rot_loss = F.mse_loss(r, batch.rot.index_select(-3, idx))
    dp, dg = p[:, 1:] - p[:, :-1], g[:, 1:] - g[:, :-1]
    rec = F.l1_loss(p, g)
    ramp = min(1.0, progress / max(1e-6, tcfg["smooth_warmup"]))
    ddp, ddg = dp[:, 1:] - dp[:, :-1], dg[:, 1:] - dg[:, :-1]
    smooth = tcfg["vel"] * F.l1_loss(dp, dg) + tcfg["acc"] * F.l1_loss(ddp, ddg)
    if tcfg["jerk"]:
        smooth = smooth + tcfg["jerk"] * F.l1_loss(ddp[:, 1:] - ddp[:, :-1], ddg[:, 1:] - ddg[:, :-1])
    loss = tcfg["pos"] * rec + ramp * smooth
    loss = loss + tcfg["commit"] * commit
    scale = features.HAND_SCALE if stream in WRIST_OF_HAND else features.TRANSL_SCALE if stream == "transl" else 1.0
    err = (p - g).unflatten(-1, (-1, 3)).norm(dim=-1).mean() / scale
    logs.update(rec=rec.item(), err_cm=100.0 * err.item())
    if stream == "lower":
        rv = F.l1_loss(frames[..., 6 * len(PART_JOINTS["lower"]):], x[..., n_pos:])
        loss = loss + tcfg["root_vel"] * rv
        logs["root_vel"] = rv.item()
    if rot_loss is not None:
        loss = loss + tcfg["rot"] * rot_loss
        logs["rot"] = rot_loss.item()
    return loss, logs


def learning_rate(step: int, total: int, tcfg: dict) -> float:
    base, warm = tcfg["lr"], max(1, tcfg["warmup"])
    if step < warm:
        return base * (step + 1) / warm
    frac = (step - warm) / max(1, total - warm)
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac))))


def _optim_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    sd = opt.state_dict()
    tensors = {f"optim/{i}/{k}": v for i, st in sd["state"].items() for k, v in st.items()}
    return tensors, sd["param_groups"]


def _load_optim(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim/"):
            _, i, k = key.split("/")
            state.setdefault(int(i), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_run(out: Path, stream: str, model: StreamVQVAE, opt, rng: np.random.Generator, step: int,
             total: int, rcfg: dict) -> None:
    tensors = dict(model.state_dict())
    optim, groups = _optim_tensors(opt)
    tensors.update(optim)
    tensors["rng/torch"] = torch.get_rng_state()
    state = {"step": step, "total_steps": total, "numpy_rng": rng.bit_generator.state, "param_groups": groups}
    checkpoint.save(out, checkpoint_stem(stream), tensors, rcfg, state)


def model_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint without the optimiser/RNG entries of a training run."""
    return {k: v for k, v in tensors.items() if not k.startswith(("optim/", "rng/"))}


def train_stream(stream: str, cfg: dict, data: MotionWindows, out: str | os.PathLike, steps: int | None = None,
                 resume: bool = False, seed: int = 0, device: str = "cpu", progress: bool = True,
                 precision: str = "auto") -> StreamVQVAE:
    """Train (or resume) one stream's VQ-VAE; checkpoints go to ``out/<stem>.{safetensors,json}``.

    Under torchrun (:func:`pretrain.distributed.init` called first) every rank calls this with the
    same arguments and trains on its shard of each global batch; rank 0 writes the checkpoints.
    ``precision``: autocast of the encoder/decoder (:mod:`pretrain.precision`)."""
    out = Path(out)
    tcfg = train_config(cfg, stream)
    # steps: a per-stream entry ("upper") wins over the family default ("pose" / "transl")
    family = "transl" if stream == "transl" else "pose"
    total = int(steps if steps is not None else tcfg["steps"].get(stream, tcfg["steps"][family]))
    rcfg = run_config(cfg, stream, seed)
    dev = checkpoint.resolve_device(device)
    rows = distributed.shard_rows(int(tcfg["batch"])) if distributed.world_size() > 1 else None
    main = distributed.is_main()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(rcfg).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg["lr"])
    start = 0
    stem = checkpoint_stem(stream)
    if resume and (out / f"{stem}.json").exists():
        tensors, found, state = checkpoint.load(out, stem, dev)
        checkpoint.check_config(rcfg, found, f"{out}/{stem}")
        checkpoint.load_state_dict_strict(model, model_tensors(tensors), f"{out}/{stem}")
        _load_optim(opt, tensors, state["param_groups"])
        torch.set_rng_state(tensors["rng/torch"].cpu())
        rng.bit_generator.state = state["numpy_rng"]
        start = int(state["step"])
    elif resume and main:
        print(f"[{stream}] no checkpoint in {out}: starting from step 0")
    model.train()
    model.quantizer.data_parallel = distributed.world_size() > 1
    net = distributed.wrap(model, dev)
    save_every = int(tcfg["save_every"])
    bar = tqdm(range(start, total), desc=f"vqvae {stream}", disable=not (progress and main), initial=start,
               total=total)
    for step in bar:
        model.quantizer.restart_enabled = step < tcfg["restart_until"] * total
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, total, tcfg)
        batch = data.sample(rng, tcfg["batch"], dev, rows=rows)
        with autocast(dev, precision):
            loss, logs = stream_loss(net, batch, stream, tcfg, step / total)
        value = distributed.mean_loss(loss)  # the global batch's loss: every rank stops on NaN, or none
        if not math.isfinite(value):
            raise FloatingPointError(f"[{stream}] loss is {value} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP: the gradients are averaged over the ranks here
        opt.step()
        if step % 10 == 0:  # loss: the global batch's; the other terms: this rank's shard
            bar.set_postfix(loss=f"{value:.4f}", **{k: f"{v:.3g}" for k, v in logs.items()})
        if main and ((step + 1) % save_every == 0 or step + 1 == total):
            save_run(out, stream, model, opt, rng, step + 1, total, rcfg)
    if main and start >= total and not (out / f"{stem}.json").exists():
        save_run(out, stream, model, opt, rng, start, total, rcfg)
    model.quantizer.data_parallel = False
    return model.eval()
