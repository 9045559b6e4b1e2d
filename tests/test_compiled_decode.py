"""The compiled decode step (duet_env/tokenizer/compiled.py): equal to the eager step, tiered
("auto"), and falling back to eager with a warning when torch.compile fails."""
from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import duet_env  # noqa: F401
from duet_env.tokenizer import Tokenizer, compiled


@pytest.fixture(scope="module")
def tk(tiny_tokenizer):
    return Tokenizer.load(tiny_tokenizer)


def _inputs(n_steps: int, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 16, (n_steps, batch, 5), generator=g)
    lead = torch.randn(n_steps, batch, 4, 55, 3, generator=g) * 0.3
    fwd = torch.nn.functional.normalize(torch.randn(n_steps, batch, 4, 3, generator=g) * torch.tensor([1.0, 0.0, 1.0]),
                                        dim=-1)
    return tokens, lead, fwd


def _run(dec, tokens, lead, fwd, reset_at: int | None = None):
    outs = []
    for i in range(len(tokens)):
        if i == reset_at:
            dec.reset(np.array([True] + [False] * (dec.batch_size - 1)))
        outs.append(dec.step(tokens[i], lead[i], fwd[i]))
    return {k: torch.stack([o[k] for o in outs]) for k in outs[0]}


@pytest.mark.skipif(compiled.unavailable_reason(torch.device("cpu")) is not None,
                    reason="torch.compile cannot build here (no C++ compiler)")
def test_compiled_step_equals_eager_step(tk):
    tokens, lead, fwd = _inputs(24, 2)
    eager = _run(tk.streaming_decoder(2), tokens, lead, fwd, reset_at=10)
    dec = tk.streaming_decoder(2, compile=True)
    got = _run(dec, tokens, lead, fwd, reset_at=10)
    assert dec.is_compiled
    for key, ref in eager.items():
        assert (got[key] - ref).abs().max().item() < 1e-5, key
    assert eager["joints"][11:, 0].sub(eager["joints"][11:, 1]).abs().max() > 1e-3  # the reset did something


def test_auto_compiles_after_its_threshold_and_only_small_batches(tk, monkeypatch):
    built = []

    def fake_compile(fn, **kwargs):  # records the call; the "compiled" step is the eager one
        built.append(kwargs)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(compiled, "AUTO_AFTER_STEPS", 5)
    monkeypatch.setattr(compiled, "unavailable_reason", lambda device: None)
    tokens, lead, fwd = _inputs(8, 1)
    dec = tk.streaming_decoder(1, compile="auto")
    for i in range(5):
        dec.step(tokens[i], lead[i], fwd[i])
    assert not dec.is_compiled and built == []
    dec.step(tokens[5], lead[5], fwd[5])  # the sixth step: 5 eager steps are behind it
    assert dec.is_compiled and len(built) == 1
    big = tk.streaming_decoder(compiled.AUTO_MAX_BATCH + 1, compile="auto")
    tb, lb, fb = _inputs(7, compiled.AUTO_MAX_BATCH + 1)
    for i in range(7):
        big.step(tb[i], lb[i], fb[i])
    assert not big.is_compiled and len(built) == 1
    never = tk.streaming_decoder(1, compile=False)
    for i in range(8):
        never.step(tokens[i], lead[i], fwd[i])
    assert not never.is_compiled and len(built) == 1


def test_a_failing_compile_falls_back_to_eager_with_one_warning(tk, monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(compiled, "unavailable_reason", lambda device: None)
    tokens, lead, fwd = _inputs(6, 1)
    ref = _run(tk.streaming_decoder(1), tokens, lead, fwd)
    dec = tk.streaming_decoder(1, compile=True)
    with pytest.warns(RuntimeWarning, match="InvalidCxxCompiler"):
        first = dec.step(tokens[0], lead[0], fwd[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning only: the later steps run eagerly in silence
        rest = [dec.step(tokens[i], lead[i], fwd[i]) for i in range(1, 6)]
    got = torch.stack([o["joints"] for o in [first, *rest]])
    assert not dec.is_compiled
    assert (got - ref["joints"]).abs().max().item() == 0.0  # the eager path, state intact


def test_bad_compile_setting_is_refused(tk, env_kwargs):
    with pytest.raises(ValueError, match="compile_decoder must be True, False or 'auto'"):
        tk.streaming_decoder(1, compile="yes")
    with pytest.raises(ValueError, match="compile_decoder"):
        gym.make("DuetAccompany-v0", **env_kwargs, compile_decoder=1)


def test_auto_without_a_compiler_stays_eager_quietly(tk, monkeypatch):
    monkeypatch.setattr(compiled, "AUTO_AFTER_STEPS", 1)
    monkeypatch.setattr(compiled, "unavailable_reason", lambda device: "no C++ compiler found")
    tokens, lead, fwd = _inputs(3, 1)
    dec = tk.streaming_decoder(1, compile="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(3):
            dec.step(tokens[i], lead[i], fwd[i])
    assert not dec.is_compiled
    strict = tk.streaming_decoder(1, compile=True)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        strict.step(tokens[0], lead[0], fwd[0])
