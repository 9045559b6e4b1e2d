"""Shared fixtures: a tiny SynthDuet dataset and a tiny untrained tokenizer checkpoint, made
once per test session in a temporary folder (never in the repo or the user's cache)."""
from __future__ import annotations

import os
import tempfile

import pytest

# librosa jit-compiles with numba's on-disk cache inside site-packages; two pytest-xdist
# workers compiling the same function at once on a fresh install corrupt that cache and
# segfault. Give each worker its own cache folder (read by numba at import, so set it here,
# before any test module imports librosa).
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"duet-numba-{os.getuid()}-{_worker}")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` skip cleanly on a machine without CUDA."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine run far faster on one torch thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def restore_reward_registry():
    """Terms and composites a test registers are forgotten after it: no leaks between tests."""
    from rewards import registry

    terms, composites = dict(registry._TERMS), {k: dict(v) for k, v in registry._COMPOSITES.items()}
    yield
    registry._TERMS.clear()
    registry._TERMS.update(terms)
    registry._COMPOSITES.clear()
    registry._COMPOSITES.update(composites)


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    """A private DUET_CACHE_DIR for the whole session (music features, token caches)."""
    path = tmp_path_factory.mktemp("duet_cache")
    old = os.environ.get("DUET_CACHE_DIR")
    os.environ["DUET_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("DUET_CACHE_DIR", None)
    else:
        os.environ["DUET_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory, session_cache):
    """A ~2-minute SynthDuet dataset in DD100 layout (train and test clips of every genre)."""
    from duet_env.data import synth

    root = tmp_path_factory.mktemp("synth_tiny")
    synth.generate(root, seed=0, minutes=2.0, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """Folder of an untrained tiny tokenizer checkpoint (shapes and plumbing, not quality)."""
    from duet_env.tokenizer import Tokenizer

    folder = tmp_path_factory.mktemp("tok_tiny")
    Tokenizer.from_config("tiny", seed=0).save(folder)
    return folder


@pytest.fixture(scope="session")
def env_kwargs(tiny_synth, tiny_tokenizer):
    """gym.make kwargs of a small, fast DuetAccompany env on the tiny data."""
    return {"data": str(tiny_synth), "tokenizer": str(tiny_tokenizer), "episode_tokens": 12,
            "history_tokens": 4, "lookahead_tokens": 2}


@pytest.fixture(scope="session")
def tiny_gpt(tmp_path_factory, tiny_tokenizer):
    """Folder of an untrained tiny follower GPT matching the tiny tokenizer's codebooks."""
    import torch

    from duet_env.tokenizer import Tokenizer
    from duet_env import checkpoint
    from pretrain.gpt.config import load_config, with_codebook_sizes
    from pretrain.gpt.model import FollowerGPT

    cfg = with_codebook_sizes(load_config("tiny"), Tokenizer.load(str(tiny_tokenizer)).codebook_sizes)
    torch.manual_seed(0)
    model = FollowerGPT(cfg)
    folder = tmp_path_factory.mktemp("gpt_tiny")
    checkpoint.save(folder, "gpt", model.state_dict(), cfg)
    return folder


@pytest.fixture(scope="session")
def gpt_train_args(tiny_synth, tiny_tokenizer, tmp_path_factory):
    """``python -m pretrain.gpt`` arguments for the tiny data and tokenizer (a private token cache)."""
    cache = tmp_path_factory.mktemp("gpt_tokens")
    return ["--data", str(tiny_synth), "--tokenizer", str(tiny_tokenizer), "--cache", str(cache),
            "--threads", "1", "--quiet"]


@pytest.fixture(scope="session")
def gpt_validated_config(tmp_path_factory):
    """Path of the tiny GPT config with a validation hold-out of every 4th clip."""
    import json

    from pretrain.gpt.config import load_config

    cfg = {**load_config("tiny"), "name": "tiny-val"}
    cfg["train"] = {**cfg["train"], "validation_fraction": 0.25, "checkpoint_every": 2}
    path = tmp_path_factory.mktemp("cfg") / "tiny_val.json"
    path.write_text(json.dumps(cfg))
    return path
