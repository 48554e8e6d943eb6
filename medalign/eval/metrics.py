"""Aggregate metrics with 95% confidence intervals, and calibration.

Accuracy is a mean of per-example 0/1 scores: its interval is Wilson's (a proportion's
interval that stays honest at 0/n and n/n). Other means (F1, harm scores) get
`scipy.stats.bootstrap` (percentile), seeded, on the sorted values: the interval is a
function of the values and the seed alone, never of the order the rows were scored in.
Calibration uses the choice probabilities
(softmax over the choices' log-likelihoods): expected calibration error over equal-width
confidence bins of the top choice, and the multi-class Brier score.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np


def with_ci(values: list[float], resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """{"value", "ci": [low, high], "n", "interval"} for the mean of `values`
    (order-independent). A proportion (every value 0 or 1) gets Wilson's score interval,
    right at 0/n and n/n where a percentile bootstrap collapses to a point; any other mean
    a seeded percentile bootstrap. `resamples=0`: no interval."""
    data = np.sort(np.asarray(values, dtype=float))
    value = float(data.mean()) if len(data) else float("nan")
    if len(data) and resamples > 0 and np.isin(data, (0.0, 1.0)).all():
        return {"value": value, "ci": list(wilson(data)), "n": len(data), "interval": "wilson"}
    if len(data) < 2 or resamples <= 0 or np.all(data == data[0]):
        return {"value": value, "ci": [value, value], "n": len(data)}
    from scipy.stats import bootstrap

    res = bootstrap((data,), np.mean, n_resamples=resamples, method="percentile", random_state=seed)
    return {
        "value": value,
        "ci": [float(res.confidence_interval.low), float(res.confidence_interval.high)],
        "n": len(data),
        "interval": "bootstrap",
    }


def wilson(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion: right at 0/n and n/n, where a percentile
    bootstrap collapses to [0, 0] or [1, 1]."""
    return wilson_count(int(round(float(np.sum(values)))), len(values), alpha)


def wilson_count(hits: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The Wilson interval of `hits` of `n` (a share recorded as value and n)."""
    from scipy.stats import binomtest

    if n == 0:
        return (math.nan, math.nan)
    ci = binomtest(hits, n).proportion_ci(confidence_level=1 - alpha, method="wilson")
    return (float(ci.low), float(ci.high))


def softmax(scores: list[float]) -> list[float]:
    x = np.asarray(scores, dtype=float)
    e = np.exp(x - x.max())
    return (e / e.sum()).tolist()


def expected_calibration_error(probs: list[list[float]], gold: list[int], bins: int = 10) -> float:
    """Sum over bins of |accuracy - mean confidence| weighted by the bin's share."""
    p = np.asarray(probs, dtype=float)
    confidence, predicted = p.max(axis=1), p.argmax(axis=1)
    correct = (predicted == np.asarray(gold)).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def reliability_bins(probs: list[list[float]], gold: list[int], bins: int = 10) -> list[dict]:
    p = np.asarray(probs, dtype=float)
    confidence, correct = p.max(axis=1), (p.argmax(axis=1) == np.asarray(gold))
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high)
        if in_bin.any():
            out.append(
                {
                    "low": float(low),
                    "high": float(high),
                    "n": int(in_bin.sum()),
                    "confidence": float(confidence[in_bin].mean()),
                    "accuracy": float(correct[in_bin].mean()),
                }
            )
    return out


def brier(probs: list[list[float]], gold: list[int]) -> float:
    """Mean over examples of the squared distance between probabilities and the one-hot gold."""
    from sklearn.metrics import brier_score_loss

    p = np.asarray(probs, dtype=float)
    labels = list(range(p.shape[1]))
    return float(brier_score_loss(np.asarray(gold), p, labels=labels, scale_by_half=False))


def grouped_accuracy(groups: list[str | None], correct: list[float]) -> dict[str, dict]:
    table: dict[str, list[float]] = defaultdict(list)
    for group, ok in zip(groups, correct, strict=True):
        table[group or "unknown"].append(ok)
    return {g: {"acc": float(np.mean(v)), "n": len(v)} for g, v in sorted(table.items())}


def rate_missing(parsed: list[float]) -> dict[str, Any]:
    """Share of outputs with no parseable answer (reported, never scored as an answer)."""
    return {"value": 1.0 - sum(parsed) / max(len(parsed), 1), "n": len(parsed)}


def share(flags: list[float]) -> dict[str, Any]:
    """Mean of 0/1 flags; NaN (not 0) when there is nothing to count."""
    return {"value": sum(flags) / len(flags) if flags else float("nan"), "n": len(flags)}


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """The Student t interval of the mean of `values` (None under 2 values): the standard
    error Welch's test compares, so an RL fifth's interval and its p tell the same story."""
    import math as _math

    from scipy import stats

    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    sem = float(stats.sem(values))
    if sem == 0 or _math.isnan(sem):
        return (mean, mean)
    low, high = stats.t.interval(level, len(values) - 1, loc=mean, scale=sem)
    return (float(low), float(high))


def welch_p(first: list[float], last: list[float]) -> float:
    """Welch's two-sided p for equal means (1.0 when neither part varies): the RL stage's
    first-versus-last-fifth test (stages/rl.py, rewards/hacking.py)."""
    import warnings

    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # a constant part: scipy warns, and p is nan or exact
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(first, last, equal_var=False).pvalue)
    return 1.0 if math.isnan(p) else p
