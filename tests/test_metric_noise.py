"""benchmarks/metric_noise.py scores its random test sets as agents.evaluate scores a split."""
from collections import Counter

import numpy as np
import pytest
from benchmark_scripts import load_benchmark_script


@pytest.fixture(scope="module")
def metric_noise():
    return load_benchmark_script("metric_noise")


def test_a_set_scores_as_evaluate_duets_scores_it(metric_noise, tiny_synth):
    from agents.evaluate import duets_of
    from duet_env.data import load_split
    from duet_env.metrics import ReferenceStats, evaluate_duets

    clips = load_split(tiny_synth, "all", progress=False)
    reference = ReferenceStats.from_duets(duets_of(load_split(tiny_synth, "train", progress=False)))
    rng = np.random.default_rng(0)
    # followers that are not the ground truth (and of other lengths), so nothing matches by accident
    followers = [c.follower.joints[: len(c) - 7] + rng.normal(0, 0.01, (len(c) - 7, 55, 3)) for c in clips]
    duets = duets_of(clips, followers)
    scores = metric_noise.clip_scores(duets)
    idx = np.array([0, 2, 3, len(clips) - 1])
    got = metric_noise.set_metrics(reference, scores, idx)
    want = evaluate_duets([duets[i] for i in idx], reference)
    for key in ("FID_k", "FID_g", "FID_cd", "BAS"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), key


def test_stratified_draws_keep_the_genre_counts_times_k(metric_noise):
    genres = np.array(["A"] * 10 + ["B"] * 6 + ["C"] * 9)
    rng = np.random.default_rng(1)
    for k in (1, 2):
        idx = metric_noise.stratified_draw(rng, genres, {"A": 3, "B": 2, "C": 1}, k)
        assert len(set(idx.tolist())) == len(idx)  # no clip twice in one set
        assert Counter(genres[idx].tolist()) == {"A": 3 * k, "B": 2 * k, "C": k}


def test_the_default_synthduet_is_refused_as_the_pool(metric_noise):
    with pytest.raises(SystemExit, match="must not be the default SynthDuet"):
        metric_noise.main(["--pool", "synth"])
