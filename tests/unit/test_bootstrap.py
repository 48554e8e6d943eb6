"""Bootstrap intervals are a function of the values and the seed, never of row order."""

from __future__ import annotations

import random

from medalign.eval.metrics import with_ci


def test_bootstrap_interval_ignores_row_order() -> None:
    rng = random.Random(1)
    values = [float(rng.random() < 0.6) for _ in range(80)]
    shuffled = values[:]
    for seed in range(3):
        random.Random(seed).shuffle(shuffled)
        assert with_ci(shuffled, resamples=200, seed=0) == with_ci(values, resamples=200, seed=0)


def test_bootstrap_interval_is_seeded() -> None:
    values = [0.1, 0.9, 0.4, 0.4, 0.7, 0.2, 0.8, 0.3]
    assert with_ci(values, resamples=200, seed=3) == with_ci(values, resamples=200, seed=3)
    low, high = with_ci(values, resamples=200, seed=3)["ci"]
    assert low < sum(values) / len(values) < high


def test_a_proportion_at_zero_or_one_has_an_interval_that_is_not_a_point() -> None:
    """Regression: the percentile bootstrap of 0/4 read "0.000-0.000"; Wilson's interval
    of a proportion is right at the edges."""
    none = with_ci([0.0] * 4, resamples=200)
    assert none["ci"][0] == 0.0 and 0.4 < none["ci"][1] < 0.5
    assert none["interval"] == "wilson"
    every = with_ci([1.0] * 10, resamples=200)
    assert 0.7 < every["ci"][0] < 0.75 and every["ci"][1] == 1.0
    assert with_ci([0.2, 0.7, 0.4], resamples=200)["interval"] == "bootstrap"
