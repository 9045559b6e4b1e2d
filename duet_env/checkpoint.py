"""Checkpoints: safetensors weights + a JSON config beside them, written atomically.

A checkpoint is a folder ``DIR/`` holding ``<stem>.safetensors`` (model weights, plus any
optimiser tensors under an ``optim/`` prefix when saved for resuming) and ``<stem>.json``
(``{"config": ..., "state": ...}`` — the model config and JSON-serialisable training state
such as step and RNG seeds). Loading by name looks in the package's shipped folder
(``duet_env/checkpoints/<name>/``); anything else is a path.

Both files are written to temporary names and renamed into place (``os.replace`` is
atomic on POSIX), the JSON last, so a killed run leaves either the previous complete
checkpoint or the new complete one, never a torn file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from duet_env.atomic import atomic_write, atomic_write_json  # noqa: F401  (atomic_write_json: public here too)

SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"


class CheckpointError(ValueError):
    """A checkpoint is missing, torn, or does not match the config it is loaded with."""


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A shipped checkpoint name ("default") or a folder path -> the folder."""
    p = Path(name_or_path)
    if p.exists():
        return p
    shipped = SHIPPED_DIR / str(name_or_path)
    if shipped.exists():
        return shipped
    known = sorted(d.name for d in SHIPPED_DIR.iterdir() if d.is_dir()) if SHIPPED_DIR.exists() else []
    raise CheckpointError(
        f"checkpoint {str(name_or_path)!r} is neither an existing path nor a shipped name (shipped: {known})"
    )


def save(folder: str | os.PathLike, stem: str, tensors: dict[str, torch.Tensor], config: dict,
         state: dict | None = None) -> Path:
    """Write ``folder/stem.safetensors`` and ``folder/stem.json`` atomically (JSON last)."""
    folder = Path(folder)
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(folder / f"{stem}.safetensors", lambda tmp: save_file(flat, tmp))
    atomic_write_json(folder / f"{stem}.json", {"config": config, "state": state or {}})
    return folder


def load(folder: str | os.PathLike, stem: str, device: str | torch.device = "cpu"
         ) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """Read ``(tensors, config, state)`` of a checkpoint written by :func:`save`."""
    folder = resolve(folder)
    wpath, jpath = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    for p in (wpath, jpath):
        if not p.exists():
            raise CheckpointError(f"checkpoint file {p} is missing")
    try:
        meta = json.loads(jpath.read_text())
        tensors = load_file(str(wpath), device=str(device))
    except Exception as e:  # torn or foreign file
        raise CheckpointError(f"cannot read checkpoint {folder}/{stem}: {e}") from e
    return tensors, meta.get("config", {}), meta.get("state", {})


def check_config(expected: dict, found: dict, where: str) -> None:
    """Refuse a checkpoint whose config differs from the one asked for, naming the keys."""
    diffs = [
        f"{k}: asked {expected.get(k)!r}, checkpoint has {found.get(k)!r}"
        for k in sorted(set(expected) | set(found))
        if expected.get(k) != found.get(k)
    ]
    if diffs:
        raise CheckpointError(f"config does not match checkpoint {where}: " + "; ".join(diffs))


def load_state_dict_strict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """load_state_dict with a readable error when shapes or keys differ."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    shape = [f"{k}: model {tuple(own[k].shape)} vs checkpoint {tuple(tensors[k].shape)}"
             for k in own if k in tensors and own[k].shape != tensors[k].shape]
    if missing or unexpected or shape:
        raise CheckpointError(
            f"checkpoint {where} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"shape mismatches {shape[:5]}"
        )
    module.load_state_dict(tensors)


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


OPTIM_PREFIX = "optim/"


def optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter state as flat tensors ``optim/<param index>/<name>``, for
    saving beside the weights in one safetensors file."""
    out = {}
    for idx, st in opt.state_dict()["state"].items():
        for name, value in st.items():
            out[f"{OPTIM_PREFIX}{idx}/{name}"] = torch.as_tensor(value).clone()
    return out


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Load the state written by :func:`optimizer_tensors` into ``opt`` (other keys are ignored)."""
    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(OPTIM_PREFIX):
            idx, name = key[len(OPTIM_PREFIX):].split("/", 1)
            state.setdefault(int(idx), {})[name] = value
    sd["state"] = state
    opt.load_state_dict(sd)
