"""Teacher-forced evaluation of the follower GPT against two baselines, on a dataset split.

For every token t of every clip of the split, the GPT sees the env's observation of step t
(music/leader t−H … t+A, the *true* follower tokens t−H … t−1) and predicts the follower
tokens at t. Per stream s we report

* top-1 accuracy: mean over t of [argmax_k p(k) = y_t];
* cross-entropy in nats: −mean_t log p(y_t).

Baselines, measured in the same run on the same tokens:

* ``unigram`` — p(k) = (n_k + 1) / (N + K), the add-one-smoothed frequency of token k in the
  training split; prediction = the most frequent token.
* ``repeat_previous`` — prediction = the follower's previous token y_{t−1}; for the
  cross-entropy the smoothed distribution p = 0.9·onehot(y_{t−1}) + 0.1·unigram (a pure
  one-hot would give infinite CE whenever the token changes). At t = 0 (no previous token)
  both fall back to the unigram baseline.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from duet_env.paths import cache_dir
from duet_env.conventions import FOLLOWER_STREAMS
from duet_env import checkpoint

from .data import WindowSampler
from .model import FollowerGPT

REPEAT_WEIGHT = 0.9


def unigram_probabilities(train_clips: list[dict], codebook_sizes: dict[str, int]) -> list[np.ndarray]:
    """Per stream, the add-one-smoothed token frequencies of the training clips."""
    tokens = np.concatenate([c["follower"] for c in train_clips])
    probs = []
    for i, s in enumerate(FOLLOWER_STREAMS):
        counts = np.bincount(tokens[:, i], minlength=codebook_sizes[s]).astype(np.float64) + 1.0
        probs.append(counts / counts.sum())
    return probs


@torch.no_grad()
def gpt_log_probs(model: FollowerGPT, clips: list[dict], codebook_sizes: dict[str, int], batch_size: int = 256,
                  progress: bool = True) -> list[np.ndarray]:
    """Per stream, (N_total, K_s) log-probabilities at every step of every clip (clip-major)."""
    model.eval()
    dev = next(model.parameters()).device
    sampler = WindowSampler(clips, codebook_sizes, model.history, model.lookahead)
    flat = np.arange(sampler.n_steps)
    out: list[list[np.ndarray]] = [[] for _ in FOLLOWER_STREAMS]
    for start in tqdm(range(0, len(flat), batch_size), desc="gpt evaluate", disable=not progress, leave=False):
        win = sampler.windows(*sampler.locate(flat[start:start + batch_size]))
        music = model.music_input(torch.from_numpy(win["music"]).to(dev), torch.from_numpy(win["leader_turn"]))
        logits = model(music, torch.from_numpy(win["leader"]).to(dev),
                       torch.from_numpy(win["follower"]).to(dev), last_only=True)
        for i, lg in enumerate(logits):
            out[i].append(torch.log_softmax(lg.float(), -1).cpu().numpy())
    return [np.concatenate(o) for o in out]


def _scores(log_p_true: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    return {"accuracy": float(correct.mean()), "cross_entropy": float(-log_p_true.mean())}


def evaluate_tokens(model: FollowerGPT, test_clips: list[dict], train_clips: list[dict],
                    codebook_sizes: dict[str, int], batch_size: int = 256, progress: bool = True) -> dict:
    """Per-stream accuracy and cross-entropy of the GPT and of both baselines (module docstring)."""
    truth = np.concatenate([c["follower"] for c in test_clips])
    # previous token within the same clip; -1 marks a clip's first step
    prev = np.concatenate([np.concatenate([np.full((1, truth.shape[1]), -1), c["follower"][:-1]]) for c in test_clips])
    unigram = unigram_probabilities(train_clips, codebook_sizes)
    gpt = gpt_log_probs(model, test_clips, codebook_sizes, batch_size, progress)
    rows = np.arange(len(truth))
    streams, totals = {}, {"gpt": 0.0, "unigram": 0.0, "repeat_previous": 0.0}
    for i, s in enumerate(FOLLOWER_STREAMS):
        y, yp, uni = truth[:, i], prev[:, i], unigram[i]
        has_prev = yp >= 0
        rep_p = (1 - REPEAT_WEIGHT) * uni[y] + REPEAT_WEIGHT * (has_prev & (yp == y))
        rep_p = np.where(has_prev, rep_p, uni[y])
        rep_pred = np.where(has_prev, yp, uni.argmax())
        row = {
            "gpt": _scores(gpt[i][rows, y], gpt[i].argmax(1) == y),
            "unigram": _scores(np.log(uni[y]), uni.argmax() == y),
            "repeat_previous": _scores(np.log(rep_p), rep_pred == y),
        }
        streams[s] = row
        for k in totals:
            totals[k] += row[k]["cross_entropy"]
    return {"n_tokens": int(len(truth)), "n_clips": len(test_clips), "streams": streams,
            "sum_cross_entropy": totals,
            "method": "teacher forcing at the decision position of every step (env observation); "
                      "cross-entropy in nats; repeat_previous CE uses 0.9*onehot(prev)+0.1*unigram"}


def main(args) -> dict:
    """``python -m pretrain.gpt evaluate`` (see __main__.py for the arguments)."""
    from .data import load_split_tokens
    from .policy import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model, config, state = load_model(args.checkpoint, checkpoint.resolve_device(args.device))
    cache = Path(args.cache) if args.cache else cache_dir() / "gpt-tokens"
    test, sizes = load_split_tokens(args.data, args.split, args.tokenizer, cache, progress=not args.quiet)
    train, _ = load_split_tokens(args.data, "train", args.tokenizer, cache, progress=not args.quiet)
    want = {s: int(config["codebook_sizes"][s]) for s in FOLLOWER_STREAMS}
    if want != sizes:
        raise checkpoint.CheckpointError(f"GPT checkpoint {args.checkpoint} has codebook sizes {want} but tokenizer "
                                         f"{args.tokenizer!r} has {sizes}")
    result = evaluate_tokens(model, test, train, sizes, batch_size=args.batch_size, progress=not args.quiet)
    result.update({"checkpoint": str(args.checkpoint), "tokenizer": str(args.tokenizer), "data": str(args.data),
                   "split": args.split, "config": config.get("name"), "trained_steps": state.get("step")})
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.json:
        checkpoint.atomic_write_json(args.json, result)
    print(text)
    return result
