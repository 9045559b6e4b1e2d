"""Named VQ-VAE configurations (duet_env/tokenizer/configs/*.json) and the per-stream model config.

A config file holds ``{"name", "model": {...}, "train": {...}}``; ``model.codebook_size`` maps
each stream (upper, lower, lhand, rhand, transl) to its codebook size K. ``model.floor`` (optional)
is the floor under the decoded feet (duet_env/tokenizer/floor.py): ``"data"`` (the default:
training measures it from the train clips), ``"off"``, or four heights in metres; only the lower
part's checkpoint stores it. A checkpoint stores the
flat per-stream config of :func:`stream_config` (everything that fixes the weights' meaning), so a
resume or a load with a different config is refused by ``duet_env.checkpoint.check_config``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..conventions import PART_NAMES, TRANSL_STREAM
from . import features
from .floor import check_floor
from .model import StreamVQVAE

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# the five models, one per token stream (conventions.STREAM_OF_PART names their streams)
STREAMS: tuple[str, ...] = PART_NAMES + (TRANSL_STREAM,)
# Architecture tag stored in every checkpoint: v2 = keyframe/Hermite rotation decoder, joints by FK.
ARCH = "keyframe-fk-v2"
MODEL_KEYS = ("code_dim", "width", "depth", "kernel", "decay", "restart_threshold")


def load_config(name_or_path: str | os.PathLike | dict) -> dict:
    """A config by name ("tiny", "small", "paper"), by JSON file path, or a dict (returned as is)."""
    if isinstance(name_or_path, dict):
        return name_or_path
    p = Path(name_or_path)
    if not p.is_file():
        p = CONFIG_DIR / f"{name_or_path}.json"
    if not p.is_file():
        known = sorted(f.stem for f in CONFIG_DIR.glob("*.json"))
        raise FileNotFoundError(f"VQ-VAE config {str(name_or_path)!r} is neither a file nor a known name {known}")
    try:
        cfg = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"VQ-VAE config {p} is not valid JSON: {e}") from e
    missing = [k for k in ("model", "train") if k not in cfg]
    missing += [f"model.{k}" for k in MODEL_KEYS + ("codebook_size",) if k not in cfg.get("model", {})]
    if missing:
        raise ValueError(f"VQ-VAE config {p} lacks {missing}")
    return cfg


def checkpoint_stem(stream: str) -> str:
    return "transl" if stream == "transl" else f"vqvae_{stream}"


def stream_config(cfg: dict, stream: str) -> dict:
    """Flat model config of one stream, as stored in its checkpoint."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")
    m = cfg["model"]
    out = {"stream": stream, "config_name": cfg.get("name", "custom"),
           "arch": ARCH, "in_dim": features.input_dim(stream), "out_dim": features.output_dim(stream),
           "codebook_size": int(m["codebook_size"][stream])}
    out.update({k: m[k] for k in MODEL_KEYS})
    out["heading_sigma"] = heading_sigma_of(m)
    f = m.get("floor", "data")
    if not (f in ("data", "off") or isinstance(f, (list, tuple))):
        raise ValueError(f"model.floor must be 'data' (measured by training), 'off' or four heights; got {f!r}")
    if stream == "lower" and isinstance(f, (list, tuple)):  # the floor under the feet (tokenizer/floor.py)
        out["floor"] = check_floor(f)
    return out


def heading_sigma_of(cfg: dict) -> float:
    """The leader-frame heading smoothing σ (frames) of a model config (``heading_sigma``;
    :data:`features.HEADING_SIGMA_FRAMES` for configs and checkpoints that predate the key)."""
    return features.check_heading_sigma(cfg.get("heading_sigma", features.HEADING_SIGMA_FRAMES))


def build_model(scfg: dict) -> StreamVQVAE:
    if scfg.get("arch") != ARCH:
        raise ValueError(f"VQ-VAE checkpoint config is of architecture {scfg.get('arch', 'v1 (position decoder)')!r}; "
                         f"this version of duet reads {ARCH!r} (retrain with python -m pretrain.vqvae)")
    return StreamVQVAE(scfg["in_dim"], scfg["out_dim"], scfg["codebook_size"], scfg["code_dim"], scfg["width"],
                       scfg["depth"], scfg["kernel"], scfg["decay"], scfg["restart_threshold"],
                       features.keyframe_offset(scfg["stream"]))
