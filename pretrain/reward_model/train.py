"""Fit the learned reward model to ranked demonstrations: the Bradley–Terry loss of
:mod:`rewards.learned`, with atomic training checkpoints, resume and data parallelism.

    L = mean over pairs of softplus(r(worse) − r(better))

Each step draws a global batch of ``batch_size`` window pairs (same leader, same window, two
comparable levels) from an RNG seeded by ``(seed, step)``. Under ``torchrun`` every rank draws
the same global batch and trains on its contiguous share (:mod:`pretrain.distributed`);
DistributedDataParallel averages the gradients, so N ranks take the step one process takes.
Rank 0 writes the checkpoints and the progress bar.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from duet_env import checkpoint
from duet_env.skeleton import NUM_JOINTS
from pretrain import distributed
from rewards.context import CONTEXT_FRAMES
from rewards.learned import (DEFAULT_NOISE_LEVELS, DemoLevel, RewardModel, RewardModelConfig, noise_level,
                             pair_features, perturb_follower, save_reward_model)

TRAINING_STEM = "reward_model_training"  # weights + Adam moments + step, for resume


def _as_joints(x, what: str) -> np.ndarray:
    a = np.asarray(x, np.float32)
    if a.ndim != 3 or a.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"train_reward_model: {what} must be joints (T, {NUM_JOINTS}, 3); got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"train_reward_model: {what} contains NaN or inf")
    return a


def _as_level(level, i: int) -> DemoLevel:
    if isinstance(level, DemoLevel):
        return level
    if isinstance(level, (int, float, np.integer, np.floating)) and not isinstance(level, bool) \
            and np.isfinite(level):
        return noise_level(float(level))
    raise ValueError(f"train_reward_model: demo {i} level must be a finite noise level or a DemoLevel; "
                     f"got {level!r}")


def _demo_groups(demos: Sequence, noise_levels: Sequence[float], rng: np.random.Generator
                 ) -> list[list[tuple[np.ndarray, np.ndarray, DemoLevel]]]:
    """Groups of demonstrations sharing one leader, each a list of (leader, follower, level)."""
    groups: dict[Any, list] = {}
    for i, item in enumerate(demos):
        if hasattr(item, "leader") and hasattr(item, "follower"):  # a duet_env Clip
            item = (item.leader.joints, item.follower.joints)
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise ValueError(f"train_reward_model: demo {i} must be a Clip, (leader, follower) or "
                             f"(leader, follower, eps); got {type(item).__name__}")
        leader = _as_joints(item[0], f"demo {i} leader")
        follower = _as_joints(item[1], f"demo {i} follower")
        if follower.shape != leader.shape:
            raise ValueError(f"train_reward_model: demo {i} leader {leader.shape} and follower {follower.shape} differ")
        if len(item) == 3:
            key = hashlib.sha1(leader.tobytes()).hexdigest()
            groups.setdefault(key, []).append((leader, follower, _as_level(item[2], i)))
        else:
            groups[("clean", i)] = [(leader, perturb_follower(follower, e, rng), noise_level(e)) for e in noise_levels]
    usable = [g for g in groups.values() if _comparable_pairs(g)]
    if not usable:
        raise ValueError("train_reward_model: no leader has two demonstrations at comparable levels to rank")
    return usable


def _comparable_pairs(group) -> list[tuple[int, int]]:
    """Index pairs (better, worse) of a group's demonstrations whose levels can be ranked."""
    return [(i, j) for i in range(len(group)) for j in range(len(group))
            if group[i][2].comparable(group[j][2]) and group[i][2].rank < group[j][2].rank]


def _sample_pairs(groups, window: int, batch: int, rng: np.random.Generator,
                  pairs: list[list[tuple[int, int]]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features of ``batch`` (better, worse) window pairs: same leader and window, ranked levels.

    A group is drawn uniformly, then one of its comparable pairs uniformly (``pairs``: the
    groups' :func:`_comparable_pairs`, computed here when not given)."""
    pairs = pairs if pairs is not None else [_comparable_pairs(g) for g in groups]
    better, worse = [], []
    while len(better) < batch:
        k = int(rng.integers(len(groups)))
        i, j = pairs[k][int(rng.integers(len(pairs[k])))]
        (li, a, _), (_, b, _) = groups[k][i], groups[k][j]
        t = min(len(a), len(b))
        start = int(rng.integers(0, max(t - window, 0) + 1))
        idx = np.clip(np.arange(start, start + window), 0, t - 1)  # short demos repeat the last frame
        better.append((li[idx], a[idx]))
        worse.append((li[idx], b[idx]))
    fb = pair_features(np.stack([x[0] for x in better]), np.stack([x[1] for x in better]))
    fw = pair_features(np.stack([x[0] for x in worse]), np.stack([x[1] for x in worse]))
    return fb, fw


def train_reward_model(demos: Sequence, out: str | os.PathLike | None = None, *,
                       noise_levels: Iterable[float] = DEFAULT_NOISE_LEVELS, window: int = CONTEXT_FRAMES,
                       hidden: int = 64, steps: int = 500, batch_size: int = 64, lr: float = 1e-3,
                       seed: int = 0, resume: bool = False, checkpoint_every: int = 200,
                       progress: bool = True) -> tuple[RewardModel, RewardModelConfig]:
    """Fit a :class:`RewardModel` to automatically ranked demonstrations (Bradley–Terry loss).

    demos: Clips (``.leader.joints``, ``.follower.joints``), ``(leader, follower)`` joint pairs
    ``(T, 55, 3)`` — perturbed at ``noise_levels`` by :func:`perturb_follower` — or pre-ranked
    ``(leader, follower, level)`` triples, ``level`` a noise level ε or a :class:`DemoLevel`
    (grouped by identical leader). Each step draws ``batch_size`` window pairs of one leader at
    two comparable levels; the lower rank is the better.

    With ``out``, the fitted checkpoint is written there at the end, and every
    ``checkpoint_every`` steps a training checkpoint (weights, Adam moments, step) is written
    atomically beside it; ``resume=True`` continues from it. Step k's batch is drawn from an RNG
    seeded by ``(seed, k)``, so a resumed run gives the same model as an uninterrupted one.
    Returns the model (eval mode) and its config; ``config.train`` records the final loss and
    ranking accuracy on a fresh batch. Under torchrun (:func:`pretrain.distributed.init` called
    first) every rank calls this with the same arguments.
    """
    noise_levels = [float(e) for e in noise_levels]
    if window < 2 or steps < 1 or batch_size < 1:
        raise ValueError(f"train_reward_model: need window >= 2, steps >= 1, batch_size >= 1; "
                         f"got {window}, {steps}, {batch_size}")
    if resume and out is None:
        raise ValueError("train_reward_model: resume=True needs the run folder `out`")
    rows = distributed.shard_rows(batch_size)  # refuses a batch the ranks do not divide
    main = distributed.is_main()
    groups = _demo_groups(demos, noise_levels, np.random.default_rng(seed))
    pairs = [_comparable_pairs(g) for g in groups]
    with torch.random.fork_rng(devices=[]):  # seeded init that leaves the caller's torch RNG alone
        torch.manual_seed(seed)
        model = RewardModel(hidden=hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    # what a resumed run must share with the checkpoint (steps may grow: a run can be extended)
    hyper = {"window": window, "hidden": hidden, "batch_size": batch_size, "lr": lr, "seed": seed}
    start, loss_value = 0, float("nan")
    if resume and (Path(out) / f"{TRAINING_STEM}.json").is_file():
        start, loss_value = _restore_training(Path(out), model, opt, hyper)
    model.train()
    net = distributed.wrap(model)
    bar = tqdm(range(start, steps), desc="reward model", disable=not (progress and main), initial=start, total=steps)
    for step in bar:
        fb, fw = _sample_pairs(groups, window, batch_size, np.random.default_rng([seed, step]), pairs)
        fb, fw = fb[rows], fw[rows]  # this rank's share of the global batch
        # one forward for both sides of every pair (DDP wants one forward per backward)
        r = net(torch.from_numpy(np.concatenate([fb, fw])))
        loss = nn.functional.softplus(r[len(fb):] - r[:len(fb)]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_value = distributed.mean_loss(loss.detach())
        if not np.isfinite(loss_value):
            raise FloatingPointError(f"train_reward_model: the loss became {loss_value} at step {step + 1}; "
                                     f"lower the learning rate")
        bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
        if main and out is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            _save_training(Path(out), model, opt, hyper, step + 1, loss_value)
    model.eval()
    with torch.no_grad():
        fb, fw = _sample_pairs(groups, window, max(batch_size, 128), np.random.default_rng([seed, steps]), pairs)
        rb, rw = model(torch.from_numpy(fb)), model(torch.from_numpy(fw))
        scores = torch.cat([rb, rw])
    levels = sorted({lv for g in groups for _, _, lv in g}, key=lambda lv: (lv.chain, lv.rank))
    config = RewardModelConfig(
        window=window, hidden=hidden, score_mean=float(scores.mean()), score_std=max(float(scores.std()), 1e-6),
        noise_levels=noise_levels,
        train={"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "final_loss": loss_value,
               "ranking_accuracy": float((rb > rw).float().mean()),
               "levels": [asdict(lv) for lv in levels]},
    )
    if main and out is not None:
        save_reward_model(out, model, config)
    distributed.barrier()  # no rank returns while rank 0 still writes
    return model, config


def _save_training(folder: Path, model: RewardModel, opt: torch.optim.Optimizer, hyper: dict, step: int,
                   loss: float) -> None:
    tensors = {**model.state_dict(), **checkpoint.optimizer_tensors(opt)}
    checkpoint.save(folder, TRAINING_STEM, tensors, hyper, {"step": step, "loss": loss})


def _restore_training(folder: Path, model: RewardModel, opt: torch.optim.Optimizer, hyper: dict) -> tuple[int, float]:
    """Load the training checkpoint into ``model`` and ``opt``; returns (step, last loss)."""
    tensors, config, state = checkpoint.load(folder, TRAINING_STEM)
    checkpoint.check_config(hyper, {k: config.get(k) for k in hyper}, f"{folder}/{TRAINING_STEM}")
    weights = {k: v for k, v in tensors.items() if not k.startswith(checkpoint.OPTIM_PREFIX)}
    checkpoint.load_state_dict_strict(model, weights, f"{folder}/{TRAINING_STEM}")
    checkpoint.restore_optimizer(opt, tensors)
    return int(state["step"]), float(state.get("loss", float("nan")))


