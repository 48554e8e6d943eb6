"""Paired statistics: is run B different from run A on the same questions?

    from medalign.compare.stats import paired_test
    paired_test(base_scores, run_scores, clusters=None, resamples=10_000, seed=0)

Why paired: two runs scored on the same questions share each question's difficulty, so
the difference per question has far less variance than either score. Two overlapping
intervals say little; a paired test on the same n says whether the difference is real
(Miller 2024, "Adding Error Bars to Evals", arXiv 2411.00640).

- the interval of the difference: a paired bootstrap, questions (or clusters) resampled
  jointly for both runs, seeded, vectorized as count-weight matrices;
- p for 0/1 scores on independent questions: McNemar's exact test on the discordant
  pairs (b: baseline right, run wrong; c: baseline wrong, run right), via
  `scipy.stats.binomtest`;
- p for continuous scores, and for any score whose questions come in clusters (several
  RadQA questions on one report, seeds of one question): a paired sign-flip permutation
  test on the clusters' summed differences (exact in distribution under the null that the
  two runs are exchangeable within each cluster);
- Holm's step-down correction over a family of p-values;
- the minimum detectable difference at 80% power for that n and that paired variance.

Every function takes values sorted by question id (the caller's job), so results depend
on the values and the seed, never on the order rows were written in.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from medalign.eval.metrics import wilson  # a proportion's interval (eval owns it)
from medalign.eval.permutation import CHUNK, cluster_sums, sign_flip_p  # RL's trace uses it too


def is_binary(*arrays: np.ndarray) -> bool:
    """True when every value is 0 or 1 (accuracy, exact match, refusal)."""
    return all(np.isin(a, (0.0, 1.0)).all() for a in arrays)


def cluster_index(clusters: list[Any] | None, n: int) -> np.ndarray:
    """Integer cluster of each question (each its own cluster when none are declared)."""
    if clusters is None:
        return np.arange(n)
    _, inverse = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    return inverse


def _count_weights(units: int, resamples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Bootstrap draws as count matrices (chunk x units): how often each unit was drawn.
    A weighted sum then replaces a gather of every resample (one BLAS product)."""
    done = 0
    while done < resamples:
        chunk = min(CHUNK, resamples - done)
        draws = rng.integers(0, units, size=(chunk, units))
        offsets = (np.arange(chunk) * units)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=chunk * units)
        yield counts.reshape(chunk, units).astype(np.float32)  # exact: counts < 2**24
        done += chunk


def bootstrap_means(values: np.ndarray, index: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Resampled means (resamples x rows) of each row of `values` (rows x n), clusters
    drawn with replacement (a ratio estimator: resampled sum / resampled count)."""
    sums, counts = cluster_sums(values, index)
    sums, counts = sums.astype(np.float32), counts.astype(np.float32)
    rng = np.random.default_rng(seed)
    out = [
        (w @ sums.T) / np.maximum(w @ counts, 1.0)[:, None]
        for w in _count_weights(len(counts), resamples, rng)
    ]
    return np.concatenate(out) if out else np.empty((0, sums.shape[0]))


def percentile_interval(draws: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return (float(low), float(high))


def mcnemar(base: np.ndarray, run: np.ndarray) -> tuple[int, int, float]:
    """(b, c, p): b = baseline right and run wrong, c = the reverse; p of McNemar's exact
    (binomial) test on the b + c discordant pairs, two-sided."""
    from scipy.stats import binomtest

    b = int(np.sum((base == 1) & (run == 0)))
    c = int(np.sum((base == 0) & (run == 1)))
    p = 1.0 if b + c == 0 else float(binomtest(min(b, c), b + c, 0.5).pvalue)
    return b, c, min(p, 1.0)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def mean_se(values: np.ndarray, index: np.ndarray) -> float:
    """Standard error of a mean, clustered (the cluster-robust sandwich; with one
    question per cluster, the usual s / sqrt(n) up to n/(n-1))."""
    n = len(values)
    if n < 2:
        return math.nan
    sums, counts = cluster_sums(values - values.mean(), index)
    clusters = len(counts)
    if clusters < 2:
        return math.nan
    return math.sqrt(clusters / (clusters - 1) * float(np.sum(sums[0] ** 2))) / n


def min_detectable(
    base: np.ndarray, run: np.ndarray, index: np.ndarray, alpha: float, power: float = 0.8
) -> float:
    """The smallest true difference this n detects with `power` at two-sided `alpha`:
    (z_{1-alpha/2} + z_power) x the standard error of the paired difference. Two runs
    with no discordant question give no paired variance to go on: the unpaired standard
    error then stands in (a conservative bound for positively correlated runs)."""
    from scipy.stats import norm

    se = mean_se(run - base, index)
    if not se > 0:
        se = math.sqrt(mean_se(base, index) ** 2 + mean_se(run, index) ** 2)
    if not se > 0:
        return math.nan
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se)


def paired_tests(
    base: np.ndarray,
    run: np.ndarray,
    clusters: list[Any] | None = None,
    resamples: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """Each row of (rows x n) `run` against the same row of `base`: the same questions in
    the same order, one row per (run, metric). Every row of a dataset shares one set of
    bootstrap draws and one sign matrix, so the rows are resampled jointly and the cost
    is one pass over the questions, whatever the number of runs and metrics.

    Per row: n, both scores with intervals (Wilson for 0/1 scores on independent
    questions, else the bootstrap), the difference with its paired bootstrap interval,
    the test and its p, b and c (0/1 scores), and the minimum detectable difference."""
    base = np.atleast_2d(np.asarray(base, dtype=float))
    run = np.atleast_2d(np.asarray(run, dtype=float))
    if base.shape != run.shape:
        raise ValueError(f"paired_tests: {base.shape} vs {run.shape}")
    rows, n = base.shape
    index = cluster_index(clusters, n)
    clusters = len(np.unique(index))
    clustered = clusters < n
    diffs = run - base
    draws = (
        bootstrap_means(np.vstack([diffs, base, run]), index, resamples, seed)
        if resamples > 0 and n > 0
        else np.empty((0, 3 * rows))
    )
    binary = [is_binary(base[k], run[k]) for k in range(rows)]
    permuted = [k for k in range(rows) if clustered or not binary[k]]
    perm_p = (
        dict(zip(permuted, sign_flip_p(diffs[permuted], index, resamples, seed), strict=True))
        if permuted and n
        else {}
    )
    out = []
    for k in range(rows):
        b, c, exact_p = mcnemar(base[k], run[k]) if binary[k] else (None, None, None)
        if binary[k] and not clustered:
            p, test = exact_p, "mcnemar_exact"
        else:
            p = float(perm_p.get(k, 1.0))
            test = "sign_flip_clustered" if clustered else "sign_flip"
        out.append(
            {
                "n": n,
                "clusters": clusters,
                "baseline": _mean(base[k]),
                "baseline_ci": _interval(base[k], draws, rows + k, clusters, alpha),
                "run": _mean(run[k]),
                "run_ci": _interval(run[k], draws, 2 * rows + k, clusters, alpha),
                "diff": _mean(diffs[k]),
                **dict(zip(("ci_low", "ci_high"), _spread(diffs[k], draws, k, alpha), strict=True)),
                "test": test,
                "p": float(p),
                "b": b,
                "c": c,
                "mde": min_detectable(base[k], run[k], index, alpha),
            }
        )
    return out


def paired_test(base: np.ndarray, run: np.ndarray, **options: Any) -> dict[str, Any]:
    """`paired_tests` for one score of one run (two 1-D arrays over the same questions);
    `options`: its clusters, resamples, seed and alpha."""
    return paired_tests([base], [run], **options)[0]


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan


def _spread(values: np.ndarray, draws: np.ndarray | None, row: int, alpha: float) -> list[float]:
    if len(values) == 0:
        return [math.nan, math.nan]
    if draws is None or len(draws) == 0 or np.all(values == values[0]):
        return [float(values.mean())] * 2
    return list(percentile_interval(draws[:, row], alpha))


def _interval(
    values: np.ndarray, draws: np.ndarray | None, row: int, clusters: int, alpha: float
) -> list[float]:
    """Wilson for 0/1 scores on independent questions; the bootstrap for the rest, but
    where it collapses (0/n, n/n) on clustered questions: Wilson over the clusters."""
    if len(values) and is_binary(values):
        if clusters == len(values):
            return list(wilson(values, alpha))
        if np.all(values == values[0]):
            return list(wilson(np.full(clusters, values[0]), alpha))
    return _spread(values, draws, row, alpha)
