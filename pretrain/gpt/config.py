"""Named follower-GPT configurations (``pretrain/configs/gpt_<name>.json``) and their checks.

A config is a flat dict of model sizes plus a ``train`` sub-dict of optimiser settings:

* ``n_layers``, ``n_heads``, ``width`` — the main (cross-conditional) transformer;
* ``enc_layers`` — layers of each look-ahead encoder (music, leader); their attention bands
  add up to ``lookahead`` (see :func:`encoder_bands`);
* ``history`` H, ``lookahead`` A — the observation window t−H … t+A (duet_env/tokens.py);
* ``codebook_sizes`` — ``{up, down, lhand, rhand, transl}``, filled in from the tokenizer
  the GPT is trained with (:func:`with_codebook_sizes`);
* ``leader_turn`` — true: the GPT also reads the env's ``"leader_turn"`` observation (the leader
  frame's yaw rate, duet_env/tokens.py), appended to each token's music features; false or absent
  (checkpoints before it): it does not;
* ``arch`` — ``"streaming"`` (relative positions and shrinking causal bands: the decision's
  logits depend on the observation window only, and a KV cache computes them exactly, see
  :mod:`pretrain.gpt.stream`) or ``"window"`` (the first architecture: absolute positions over the
  window, every position attends to the whole past window; checkpoints without the key).

``train.window_targets`` (streaming only): decision steps per training window. A window of
history H − 1 + n gives n positions whose whole receptive field lies inside it, each exactly
the env's decision at that step, so one forward pass trains n decisions.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from duet_env.conventions import FOLLOWER_STREAMS

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MODEL_KEYS = ("n_layers", "n_heads", "width", "enc_layers", "history", "lookahead", "dropout", "music_dim")
TRAIN_DEFAULTS = {
    "batch_size": 32, "lr": 1e-3, "warmup_steps": 100, "weight_decay": 0.01, "grad_clip": 1.0,
    "steps": 1000, "checkpoint_every": 250,
    # share of training windows cut inside an env-sized episode (padded outside it, as the env does)
    "episode_tokens": 64, "episode_fraction": 0.5,
    "window_targets": 32,
}
# ``train.extra_train`` (optional, no default entry so that configs without it stay equal to their
# checkpoints): data sources whose train split is added to the training clips, never validated or
# tested on — e.g. "synth:seed=1,minutes=120", more SynthDuet choreographies
# (:func:`pretrain.gpt.data.extra_train_clips`).
ARCHS = ("window", "streaming")


def named_configs() -> list[str]:
    return sorted(p.stem[len("gpt_"):] for p in CONFIG_DIR.glob("gpt_*.json"))


def load_config(name_or_path: str | os.PathLike) -> dict:
    """``"tiny" | "small" | "paper"`` or a JSON file path -> a validated config dict."""
    p = Path(name_or_path)
    if not p.is_file():
        p = CONFIG_DIR / f"gpt_{name_or_path}.json"
        if not p.is_file():
            raise FileNotFoundError(
                f"GPT config {str(name_or_path)!r} is neither a JSON file nor a named config {named_configs()}"
            )
    try:
        config = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"GPT config file {p} is not valid JSON: {e}") from e
    config.setdefault("name", p.stem)
    config["train"] = {**TRAIN_DEFAULTS, **config.get("train", {})}
    validate_config(config, where=str(p), need_codebooks=False)
    return config


def validate_config(config: dict, where: str = "config", need_codebooks: bool = True) -> None:
    missing = [k for k in MODEL_KEYS if k not in config]
    if missing:
        raise ValueError(f"GPT {where}: missing keys {missing}")
    for k in ("n_layers", "n_heads", "width", "history", "music_dim"):
        if not isinstance(config[k], int) or config[k] < 1:
            raise ValueError(f"GPT {where}: {k} must be a positive integer, got {config[k]!r}")
    for k in ("enc_layers", "lookahead"):
        if not isinstance(config[k], int) or config[k] < 0:
            raise ValueError(f"GPT {where}: {k} must be a non-negative integer, got {config[k]!r}")
    if config["width"] % config["n_heads"]:
        raise ValueError(f"GPT {where}: width {config['width']} is not divisible by n_heads {config['n_heads']}")
    if not 0.0 <= float(config["dropout"]) < 1.0:
        raise ValueError(f"GPT {where}: dropout must be in [0, 1), got {config['dropout']!r}")
    if not isinstance(config.get("leader_turn", False), bool):
        raise ValueError(f"GPT {where}: leader_turn must be true or false, got {config['leader_turn']!r}")
    if config.get("arch", "window") not in ARCHS:
        raise ValueError(f"GPT {where}: arch must be one of {list(ARCHS)}, got {config['arch']!r}")
    extra = config.get("train", {}).get("extra_train", [])
    if not isinstance(extra, list) or not all(isinstance(x, str) and x for x in extra):
        raise ValueError(f"GPT {where}: train.extra_train must be a list of data sources (strings), got {extra!r}")
    if config["lookahead"] > 0 and config["enc_layers"] == 0:
        raise ValueError(f"GPT {where}: a lookahead of {config['lookahead']} needs enc_layers >= 1")
    if need_codebooks or "codebook_sizes" in config:
        sizes = config.get("codebook_sizes")
        if not isinstance(sizes, dict) or set(sizes) != set(FOLLOWER_STREAMS):
            raise ValueError(f"GPT {where}: codebook_sizes must map {list(FOLLOWER_STREAMS)} to sizes, got {sizes!r}")
        bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"GPT {where}: codebook sizes must be positive integers, got {bad}")


def with_codebook_sizes(config: dict, codebook_sizes: dict[str, int]) -> dict:
    """The config with the tokenizer's codebook sizes; refuses a config that names other sizes."""
    sizes = {s: int(codebook_sizes[s]) for s in FOLLOWER_STREAMS}
    if "codebook_sizes" in config and config["codebook_sizes"] != sizes:
        raise ValueError(
            f"GPT config {config.get('name')!r} fixes codebook_sizes {config['codebook_sizes']} but the tokenizer has {sizes}"
        )
    out = {**config, "codebook_sizes": sizes}
    validate_config(out, where=f"config {config.get('name')!r}")
    return out


def encoder_bands(lookahead: int, enc_layers: int) -> list[int]:
    """Per-layer attention half-widths of a look-ahead encoder, summing to ``lookahead``.

    A stack of banded layers with half-widths b_1..b_n lets position t see t + Σ b_l, so the
    bands are split to make the total reach exactly the look-ahead A: the follower at t sees
    the leader and music up to t + A and not one token further (earlier layers get the
    remainder: A = 8, 3 layers -> [3, 3, 2]).
    """
    if enc_layers == 0:
        return []
    base, extra = divmod(lookahead, enc_layers)
    return [base + (1 if i < extra else 0) for i in range(enc_layers)]


def main_bands(history: int, n_layers: int) -> list[int]:
    """Per-layer causal attention reach of the streaming main transformer, summing to H − 1.

    Layer l lets time t attend to t − b_l … t, so the decision at t sees t − Σ b_l … t: with
    Σ b_l = H − 1 that is exactly the H main positions of an observation window (t − H + 1 … t)
    and never further. Because each layer reaches only its own b_l, the keys a KV cache keeps
    for a past time were computed from inputs that the window still holds, so the cached and the
    window computations agree (:mod:`pretrain.gpt.stream`). Earlier layers get the remainder:
    H = 16, 4 layers -> [4, 4, 4, 3].
    """
    return encoder_bands(history - 1, n_layers)
