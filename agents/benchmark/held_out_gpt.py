"""The ``unseen-genre`` task's GPT: trained once without one genre, cached, reused.

Why trained here and not shipped: the shipped checkpoints must stay under 30 MB in all and one
follower GPT is 7.8 MB. So the harness trains it the first time a cell needs it (a one-time cost,
about as long as training the shipped GPT: 30–40 min on a 2-core CPU) and every later cell, run or
process reuses it.

The recipe is the *base* GPT's (:class:`GPTRecipe`, by default the shipped ``default``): its
config, its total training steps and seed are read from its ``gpt.json``, and it is trained with
``python -m pretrain.gpt``'s own code (:func:`pretrain.gpt.train.main`, ``--exclude-genre G``:
the genre leaves the training clips and the validation hold-out; the kept GPT is the run's best
validation point, as the shipped one is). When the shipped GPT is retrained with another config
or step count the cache key changes, so the held-out GPT follows without anyone touching this
file.

Cache: ``<duet cache>/benchmark-gpt/<genre>-<key>/`` (``$DUET_CACHE_DIR``, default
``~/.cache/duet``), key = hash of the dataset (its folder and files' sizes and mtimes), the
tokenizer's weights, the excluded genre, the config, the steps and the seed::

    recipe.json   what was asked (readable provenance)
    config.json   the config trained (the base's, without codebook sizes: the tokenizer gives them)
    run/          pretrain.gpt's training folder: a killed training resumes from its last checkpoint
    policy/       the finished GPT, renamed into place last: its presence means "done"
    .lock         a file lock: when several cells start together one trains, the others wait

``--policy FOLDER`` on the benchmark's command line skips all of this.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

RECIPE_VERSION = 1          # bump when the way this GPT is trained changes without the config changing
POLICY = "policy"


@dataclass(frozen=True)
class GPTRecipe:
    """How the held-out GPT is trained: the base GPT's recipe without ``exclude_genre``.

    ``config`` / ``steps`` / ``seed`` replace the base's (None: the base's); tests pass a tiny
    config and a few steps.
    """
    exclude_genre: str
    base: str = "default"
    config: str | None = None       # a pretrain.gpt config name or JSON path
    steps: int | None = None
    seed: int | None = None


def recipe_settings(recipe: GPTRecipe) -> tuple[dict, int, int]:
    """``(config, steps, seed)`` the recipe trains with (the base's where the recipe says None)."""
    from duet_env.checkpoint import resolve
    from pretrain.gpt.config import load_config
    from pretrain.gpt.policy import CHECKPOINT_STEM

    base = json.loads((resolve(recipe.base) / f"{CHECKPOINT_STEM}.json").read_text())
    config = load_config(recipe.config) if recipe.config is not None else dict(base["config"])
    config = {k: v for k, v in config.items() if k != "codebook_sizes"}
    state = base.get("state", {})
    steps = recipe.steps if recipe.steps is not None else int(state.get("total_steps", config["train"]["steps"]))
    seed = recipe.seed if recipe.seed is not None else int(state.get("seed", 0))
    return config, steps, seed


def cache_folder(recipe: GPTRecipe, data: str, tokenizer: str) -> Path:
    """``<duet cache>/benchmark-gpt/<genre>-<key>``: one folder per dataset, tokenizer, genre and recipe."""
    from duet_env.data import resolve_root
    from duet_env.env import load_tokenizer
    from duet_env.paths import cache_dir
    from pretrain.gpt.data import dataset_fingerprint

    config, steps, seed = recipe_settings(recipe)
    root = resolve_root(data)
    parts = [RECIPE_VERSION, str(Path(root).resolve()), dataset_fingerprint(root),
             load_tokenizer(str(tokenizer)).fingerprint, recipe.exclude_genre, config, steps, seed]
    key = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_dir() / "benchmark-gpt" / f"{recipe.exclude_genre}-{key}"


def held_out_gpt(recipe: GPTRecipe, data: str, tokenizer: str, progress: bool = True) -> Path:
    """The folder of the GPT trained without ``recipe.exclude_genre`` (trained now if not cached).

    Safe to call from several processes at once: a file lock lets one train while the others
    wait, then they all return the same folder. A training killed half-way resumes.
    """
    from filelock import FileLock

    folder = cache_folder(recipe, data, tokenizer)
    done = folder / POLICY
    if (done / "gpt.json").is_file():
        return done
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):
        if not (done / "gpt.json").is_file():  # another process may have finished meanwhile
            _train(recipe, data, tokenizer, folder, progress)
    return done


def _expected_cost(recipe: GPTRecipe, steps: int) -> str:
    """The base GPT's own training pace (its gpt.json's loss history) scaled to ``steps``."""
    from duet_env.checkpoint import resolve

    try:
        history = json.loads((resolve(recipe.base) / "gpt.json").read_text())["state"]["loss_history"]
        last = history[-1]
        minutes = float(last["elapsed_s"]) / int(last["step"]) * steps / 60.0
    except Exception:  # a base without a history: say nothing precise
        return "as long as training the base GPT"
    return f"about {minutes:.0f} min at the base GPT's pace on the machine that trained it"


def _train(recipe: GPTRecipe, data: str, tokenizer: str, folder: Path, progress: bool) -> None:
    from duet_env.atomic import atomic_write_json
    from pretrain.gpt.__main__ import train_parser
    from pretrain.gpt.train import export_weights, main as train_main

    config, steps, seed = recipe_settings(recipe)
    atomic_write_json(folder / "config.json", config)
    atomic_write_json(folder / "recipe.json", {**asdict(recipe), "data": str(data), "tokenizer": str(tokenizer),
                                               "steps": steps, "seed": seed, "version": RECIPE_VERSION})
    run = folder / "run"
    resuming = (run / "gpt.json").is_file()
    print(f"unseen-genre: training the follower GPT without {recipe.exclude_genre} ({steps} steps, the "
          f"{recipe.base!r} GPT's recipe) into {folder}. This is a one-time cost ({_expected_cost(recipe, steps)}); "
          f"later cells and runs reuse it"
          + (" (resuming an interrupted training)" if resuming else "") + ".", file=sys.stderr, flush=True)
    args = train_parser().parse_args(
        ["--data", str(data), "--tokenizer", str(tokenizer), "--config", str(folder / "config.json"),
         "--out", str(run), "--steps", str(steps), "--seed", str(seed), "--resume", "--threads", "0",
         "--exclude-genre", recipe.exclude_genre] + ([] if progress else ["--quiet"]))
    train_main(args)
    best = run / "best"
    src = best if (best / "gpt.json").is_file() else run   # the best validation point, as shipped
    for stale in folder.glob(f".{POLICY}.*.tmp"):  # an export killed half-way (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = folder / f".{POLICY}.{os.getpid()}.tmp"
    export_weights(src, tmp, extra_state={"benchmark_recipe": {**asdict(recipe), "steps": steps, "seed": seed}})
    os.replace(tmp, folder / POLICY)  # last: a folder named policy/ is a finished GPT
