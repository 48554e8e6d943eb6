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
