"""Training loop of the follower GPT: teacher forcing on env-shaped windows, resumable.

Loss: Σ_s CE_s over the 5 follower streams (Duolando), each CE the mean over the window
positions t−H … t that lie inside the clip. Optimiser: AdamW (weight decay on matrices only),
linear warm-up then cosine decay to 10 % of ``lr`` over the run's total steps, gradient-norm
clipping.

Validation and the best checkpoint: with ``train.validation_fraction`` > 0, every k-th training
clip (k = round(1 / fraction), in name order, so every genre gives some) is held out of training
(:func:`hold_out`); at every checkpoint the held-out clips' teacher-forced cross-entropy (summed over
streams, as ``pretrain.gpt evaluate`` computes it) is measured and, when it is the lowest so far, the
weights are written to ``out_dir/best`` — early stopping by selection: the run goes on, the best
point is kept. ``train.music_augment`` > 0 perturbs that share of the windows' music features,
and ``train.leader_desync`` > 0 gives that share of the windows an unrelated leader
(:mod:`pretrain.gpt.augment`); ``train.turn_focus`` > 0 draws that share of the windows among the
steps near a leader's spin (:meth:`pretrain.gpt.data.WindowSampler.turn_steps`); ``train.self_feed`` > 0
replaces up to that share of the follower history by the model's own predictions
(:mod:`pretrain.gpt.self_feed`).

Reproducibility: the batch and the dropout masks of step k are drawn from generators seeded
by ``(seed, k)``, so a run resumed from a checkpoint at step k continues exactly as the
uninterrupted run would (on CPU), with nothing but the step to restore besides the weights and
the AdamW moments.

Data parallelism (``torchrun --nproc_per_node N -m pretrain.gpt``, :mod:`pretrain.distributed`):
every rank draws the same global batch of ``train.batch_size`` windows and trains on its
contiguous share under DistributedDataParallel; the loss of a shard is normalised by the global
batch's counts of valid targets (:meth:`FollowerGPT.loss`), so the averaged gradient is the global
batch's — the same run as one process on the same batch, up to float summation order. Dropout
masks are seeded by ``(seed, k, rank)``. Rank 0 alone validates and writes checkpoints and bars.
On CUDA the forward runs under bf16 autocast (:mod:`pretrain.precision`).
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from duet_env import checkpoint
from duet_env.conventions import MUSIC_DIM
from pretrain import distributed
from pretrain.precision import autocast

from .augment import augment_music, desync_leader
from .config import with_codebook_sizes
from .data import IGNORE, WindowSampler
from .model import FollowerGPT
from .policy import CHECKPOINT_STEM
from .self_feed import self_fed_history, self_feed_share

TURN_FOCUS_RATE = 1.5  # rad/s: ChaCha spot turns run at 2-3.6; couple turns (Waltz, Tango) stay below 1



def build_optimizer(model: FollowerGPT, train_cfg: dict) -> torch.optim.AdamW:
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "emb" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "emb" not in n)]
    groups = [{"params": decay, "weight_decay": float(train_cfg["weight_decay"])},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=float(train_cfg["lr"]), betas=(0.9, 0.95))


def lr_at(step: int, train_cfg: dict, total_steps: int) -> float:
    """Linear warm-up for ``warmup_steps``, then cosine from ``lr`` down to 0.1·``lr`` at ``total_steps``."""
    lr, warm = float(train_cfg["lr"]), int(train_cfg["warmup_steps"])
    if step < warm:
        return lr * (step + 1) / warm
    frac = min(1.0, (step - warm) / max(1, total_steps - warm))
    return lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def music_statistics(clips: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the 54-d music over all training frames."""
    frames = np.concatenate([np.asarray(c["music"], np.float32).reshape(-1, MUSIC_DIM) for c in clips])
    return frames.mean(0), frames.std(0)


def hold_out(clips: list[dict], fraction: float) -> tuple[list[dict], list[dict]]:
    """(training clips, held-out clips): every k-th clip in name order, k = round(1 / fraction)."""
    if not fraction or fraction <= 0:
        return list(clips), []
    if fraction >= 0.5:
        raise ValueError(f"train.validation_fraction must be in [0, 0.5); got {fraction}")
    k = max(2, int(round(1.0 / fraction)))
    ordered = sorted(clips, key=lambda c: c["name"])
    held = [c for i, c in enumerate(ordered) if i % k == k // 2]
    kept = [c for i, c in enumerate(ordered) if i % k != k // 2]
    if not held or not kept:
        raise ValueError(f"cannot hold out {fraction:.0%} of {len(clips)} clips for validation")
    return kept, held


def validation_cross_entropy(model: FollowerGPT, clips: list[dict], codebook_sizes: dict[str, int]) -> float:
    """Σ over streams of the mean teacher-forced cross-entropy (nats) on ``clips``."""
    from .evaluate import gpt_log_probs

    was_training = model.training
    logp = gpt_log_probs(model, clips, codebook_sizes, progress=False)
    model.train(was_training)
    truth = np.concatenate([c["follower"] for c in clips])
    rows = np.arange(len(truth))
    return float(sum(-lp[rows, truth[:, i]].mean() for i, lp in enumerate(logp)))


def training_history(config: dict) -> int:
    """History of the training windows: the observation's H for the window arch; H − 1 + n for
    the streaming arch, whose last n = ``train.window_targets`` positions each see their whole
    receptive field (H − 1 earlier times) inside the window."""
    if config.get("arch", "window") == "streaming":
        return int(config["history"]) - 1 + int(config["train"]["window_targets"])
    return int(config["history"])


def decision_targets(targets: np.ndarray, config: dict) -> np.ndarray:
    """WindowSampler targets (B, h + 1, 5) for times t−h … t -> the model's positions.

    Window arch: unchanged. Streaming arch: positions are times t−h+1 … t, and the first H − 1 of
    them are ignored — their receptive field reaches before the window, so their logits are not
    what the env's decision at that time would be; every other position is exactly that decision.
    """
    if config.get("arch", "window") != "streaming":
        return targets
    out = targets[:, 1:].copy()
    out[:, :int(config["history"]) - 1] = IGNORE
    return out


def _step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % (2 ** 63)


def global_target_counts(targets: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """Per-stream valid-target counts of the global batch ÷ world size (None in a single process,
    whose loss keeps its own mean): the denominators of a data-parallel shard's loss."""
    world = distributed.world_size()
    if world == 1:
        return None
    counts = (targets != IGNORE).reshape(-1, targets.shape[-1]).sum(0)
    return torch.as_tensor(counts / world, dtype=torch.float32, device=device)


def save_training_checkpoint(out_dir: Path, model: FollowerGPT, opt: torch.optim.Optimizer, config: dict,
                             state: dict) -> None:
    tensors = {**model.state_dict(), **checkpoint.optimizer_tensors(opt)}
    checkpoint.save(out_dir, CHECKPOINT_STEM, tensors, config, state)


def export_weights(src: str | os.PathLike, dst: str | os.PathLike, extra_state: dict | None = None) -> Path:
    """Copy a training checkpoint without its optimiser tensors (the shipped form)."""
    tensors, config, state = checkpoint.load(src, CHECKPOINT_STEM)
    weights = {k: v for k, v in tensors.items() if not k.startswith(checkpoint.OPTIM_PREFIX)}
    return checkpoint.save(dst, CHECKPOINT_STEM, weights, config, {**state, **(extra_state or {})})


def train(config: dict, train_clips: list[dict], codebook_sizes: dict[str, int], out_dir: str | os.PathLike,
          steps: int | None = None, seed: int = 0, resume: bool = False, overwrite: bool = False,
          device: str = "cpu", progress: bool = True, extra_state: dict | None = None,
          on_step: Callable[[int, float], None] | None = None, max_minutes: float | None = None,
          val_clips: list[dict] | None = None, precision: str = "auto") -> dict:
    """Train (or resume) a FollowerGPT on token clips; returns the final checkpoint state.

    ``out_dir`` receives ``gpt.safetensors`` / ``gpt.json`` every ``train.checkpoint_every``
    steps and at the end (weights + AdamW moments + step). ``resume`` continues from the
    checkpoint in ``out_dir`` (refusing one whose config differs); without it an existing
    checkpoint is an error unless ``overwrite``. ``on_step(step, loss)`` is called after
    every optimiser step (tests use it to simulate a kill). ``max_minutes`` stops early (with a
    checkpoint, resumable) once this run has used that much wall time. ``val_clips`` (held out,
    see :func:`hold_out`) are scored at every checkpoint; the best weights go to ``out_dir/best``.
    ``precision`` (auto | fp32 | bf16): autocast of the forward pass (:mod:`pretrain.precision`).

    Under torchrun (:func:`pretrain.distributed.init` called first) every rank calls this with the
    same arguments; each trains on its shard of every global batch, rank 0 writes. The returned
    state is rank 0's (on other ranks ``best`` is not tracked).
    """
    out_dir = Path(out_dir)
    config = with_codebook_sizes(config, codebook_sizes)
    tcfg = config["train"]
    total = int(steps if steps is not None else tcfg["steps"])
    dev = checkpoint.resolve_device(device)
    rows = distributed.shard_rows(int(tcfg["batch_size"]))  # refuses a batch the world does not divide
    main = distributed.is_main()
    have_ckpt = (out_dir / f"{CHECKPOINT_STEM}.json").exists()
    if have_ckpt and not resume and not overwrite:
        raise FileExistsError(f"{out_dir} already holds a GPT checkpoint: pass --resume to continue it, "
                              "or --overwrite / another --out to start afresh")

    torch.manual_seed(seed)
    model = FollowerGPT(config).to(dev)
    opt = build_optimizer(model, tcfg)
    step, history, ema, best = 0, [], None, None
    if resume and have_ckpt:
        tensors, found, state = checkpoint.load(out_dir, CHECKPOINT_STEM, device="cpu")
        checkpoint.check_config(config, found, where=str(out_dir))
        checkpoint.load_state_dict_strict(model, {k: v for k, v in tensors.items() if not k.startswith(checkpoint.OPTIM_PREFIX)},
                                          where=str(out_dir))
        checkpoint.restore_optimizer(opt, {k: v.to(dev) for k, v in tensors.items() if k.startswith(checkpoint.OPTIM_PREFIX)})
        step, history = int(state.get("step", 0)), list(state.get("loss_history", []))
        ema = state.get("loss")
        best = state.get("best")
        if int(state.get("seed", seed)) != seed:
            raise checkpoint.CheckpointError(f"checkpoint {out_dir} was trained with seed {state.get('seed')}, "
                                             f"asked to resume with seed {seed}")
    else:
        mean, std = music_statistics(train_clips)
        model.set_music_normalisation(mean, std)

    sampler = WindowSampler(train_clips, codebook_sizes, training_history(config), config["lookahead"])
    elapsed0 = float(history[-1]["elapsed_s"]) if history else 0.0
    t0 = time.perf_counter()

    def state_now(loss: float | None) -> dict:
        return {"step": step, "seed": seed, "total_steps": total, "loss": loss, "loss_history": history,
                "train_windows": sampler.n_steps, "best": best,
                "validation_clips": [c["name"] for c in val_clips or []], **(extra_state or {})}

    augment = float(tcfg.get("music_augment", 0.0))
    desync = float(tcfg.get("leader_desync", 0.0))
    # train.turn_focus: that share of the windows is drawn among the steps whose window holds a
    # leader spin (|turn| > TURN_FOCUS_RATE): spot turns are ~0.6 % of all steps, and the
    # follower's counter-rotation at their onset is what a free-running GPT must not miss.
    turn_focus = float(tcfg.get("turn_focus", 0.0))
    turn_focus_steps = sampler.turn_steps(TURN_FOCUS_RATE) if turn_focus > 0 else None
    follower_pad = torch.as_tensor(sampler.follower_pad, device=dev)
    stats = (model.music_mean.cpu().numpy(), model.music_std.cpu().numpy())

    net = distributed.wrap(model, dev)
    bar = tqdm(total=total, initial=step, desc="gpt train", disable=not (progress and main), dynamic_ncols=True)
    model.train()
    while step < total:
        rng = np.random.default_rng(_step_seed(seed, step))
        torch.manual_seed(_step_seed(seed, step) + 7919 * distributed.rank())  # rank 0: the single-process seed
        batch = sampler.sample(rng, int(tcfg["batch_size"]), int(tcfg["episode_tokens"]),
                               float(tcfg["episode_fraction"]), turn_focus_steps, turn_focus)
        if desync > 0:
            batch["leader"], batch["leader_turn"] = desync_leader(batch["leader"], rng, desync, sampler.leader_pad,
                                                                  batch["leader_turn"])
        if augment > 0:
            batch["music"] = augment_music(batch["music"], rng, *stats, probability=augment)
        batch["targets"] = decision_targets(batch["targets"], config)
        counts = global_target_counts(batch["targets"], dev)
        batch = distributed.shard(batch, rows)
        music = model.music_input(torch.from_numpy(batch["music"]).to(dev), torch.from_numpy(batch["leader_turn"]))
        leader = torch.from_numpy(batch["leader"]).to(dev)
        follower = torch.from_numpy(batch["follower"]).to(dev)
        share = self_feed_share(float(tcfg.get("self_feed", 0.0)), step, total)
        if share > 0:  # the model's own tokens in part of the history (pretrain/gpt/self_feed.py)
            follower = self_fed_history(model, music, leader, follower, share, follower_pad)
        targets = torch.from_numpy(batch["targets"]).to(dev)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tcfg, total)
        with autocast(dev, precision):
            logits = net(music, leader, follower)
        loss, _ = model.loss([lg.float() for lg in logits], targets, counts)
        value = distributed.mean_loss(loss)  # the global batch's loss, the same on every rank
        if not math.isfinite(value):
            raise FloatingPointError(f"GPT training loss became {value} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP: the gradients are averaged over the ranks here
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(tcfg["grad_clip"]))
        opt.step()
        step += 1
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.3f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
        out_of_time = max_minutes is not None and distributed.any_rank(time.perf_counter() - t0 > 60.0 * max_minutes)
        if main and (step % int(tcfg["checkpoint_every"]) == 0 or step == total or out_of_time):
            entry = {"step": step, "loss_ema": ema, "elapsed_s": elapsed0 + time.perf_counter() - t0}
            if val_clips:
                entry["val_ce"] = validation_cross_entropy(model, val_clips, codebook_sizes)
                bar.write(f"step {step}: validation CE {entry['val_ce']:.4f}"
                          + ("" if best is None else f" (best {best['val_ce']:.4f} at step {best['step']})"))
                if best is None or entry["val_ce"] < best["val_ce"]:
                    best = {"step": step, "val_ce": entry["val_ce"]}
                    checkpoint.save(out_dir / "best", CHECKPOINT_STEM, dict(model.state_dict()), config,
                                    {**state_now(ema), "step": step})
            history.append(entry)
            save_training_checkpoint(out_dir, model, opt, config, state_now(ema))
        if on_step is not None:
            on_step(step, value)
        if out_of_time:
            if main:
                print(f"stopping at step {step}/{total}: --max-minutes {max_minutes} reached (resume with --resume)")
            break
    bar.close()
    if main and not have_ckpt and total == 0:
        save_training_checkpoint(out_dir, model, opt, config, state_now(None))
    model.eval()
    return state_now(ema)


def main(args) -> dict:
    """``python -m pretrain.gpt`` (see __main__.py for the arguments); under torchrun, one rank."""
    from .config import load_config, validate_config
    from .data import extra_train_clips, load_split_tokens
    from .genres import STATE_KEY as EXCLUDED_KEY, check_resume_exclusion, exclude_genres, genres_of, parse_genres

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config(args.config)
    if getattr(args, "extra_train", None):  # the flag replaces the config's list ("none" clears it)
        sources = [] if args.extra_train == ["none"] else list(dict.fromkeys(args.extra_train))
        config = {**config, "train": {**config["train"], "extra_train": sources}}
        validate_config(config, where=f"config {config.get('name')!r} with --extra-train", need_codebooks=False)
    from duet_env.paths import cache_dir

    device = distributed.init(args.device)
    try:
        main_rank = distributed.is_main()
        out = Path(args.out)
        cache = Path(args.cache) if args.cache else cache_dir() / "gpt-tokens"
        with distributed.main_first():  # rank 0 tokenises into the cache, the others read it
            clips, sizes = load_split_tokens(args.data, "train", args.tokenizer, cache_folder=cache,
                                             progress=main_rank and not args.quiet)
        excluded = parse_genres(getattr(args, "exclude_genre", None))
        if excluded:  # before the hold-out: the excluded genres are not validated on either
            clips = exclude_genres(clips, genres_of(args.data), excluded)
        if args.resume:
            check_resume_exclusion(out, excluded)
        clips, val_clips = hold_out(clips, float(config["train"].get("validation_fraction", 0.0)))
        extra_sources = list(config["train"].get("extra_train", []))
        if extra_sources:  # after the hold-out: validation stays on --data's own clips
            with distributed.main_first():
                extra = extra_train_clips(extra_sources, args.data, args.tokenizer, cache, excluded,
                                          progress=main_rank and not args.quiet)
            if main_rank:
                print(f"training clips: {len(clips)} of {args.data} and {len(extra)} of train.extra_train "
                      f"({', '.join(extra_sources)})")
            clips = clips + extra
        state = train(config, clips, sizes, out, steps=args.steps, seed=args.seed, resume=args.resume,
                      overwrite=args.overwrite, device=str(device), progress=not args.quiet,
                      max_minutes=args.max_minutes, precision=args.precision,
                      extra_state={"tokenizer": str(args.tokenizer), "data": str(args.data),
                                   EXCLUDED_KEY: excluded, "train_clips": len(clips)}, val_clips=val_clips)
        if main_rank:
            ranks = distributed.world_size()
            print(f"trained {state['step']} steps, loss {state['loss']:.4f}"
                  + (f" on {ranks} data-parallel ranks" if ranks > 1 else "") + f"; checkpoint in {out}")
            if state.get("best"):
                print(f"best validation CE {state['best']['val_ce']:.4f} at step {state['best']['step']}: {out / 'best'}")
        distributed.barrier()  # no rank leaves while rank 0 still writes
    finally:
        distributed.cleanup()
    return state
