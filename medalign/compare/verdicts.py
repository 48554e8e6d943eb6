"""Verdicts a reviewer accepts: on which rows a claim is made, how many seeds back it, and
whether a Monte Carlo p is precise enough to decide it.

    primaries = primary_metrics(dataset, runs, metrics, wanted)   # the claim's metrics
    decide(family, settings, refine)        # p_holm, significant, verdict on each row

Why each rule:
- one primary metric per dataset (the Task declares it: accuracy for multiple choice,
  F1 for RadQA, the refusal rate on harmful requests), Holm over those alone: with every
  metric in the family, acc could read "not significant" while acc_norm read "gain" on
  the same comparison, and nothing said which the claim was about. The other metrics are
  shown as secondary, never marked;
- fewer seeds per configuration than compare.min_seeds: a difference between two
  training runs may be the seed's, so it is exploratory, never a gain or a loss;
- a permutation p is an estimate with Monte Carlo standard error sqrt(p(1-p)/R): where
  the 99% interval of Holm's p straddles alpha, the verdict would depend on the draw
  seed, so the test resamples more (x4 each round, up to compare.max_resamples), and
  where it still straddles the verdict reads "undecided at N resamples".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from medalign.errors import MedalignError

log = logging.getLogger(__name__)
Z99 = 2.5758  # two-sided 99% normal quantile: the Monte Carlo interval of a p
GROWTH = 4  # resamples multiply by this each refinement round
# per-question metrics where a smaller value is the better one
LOWER_IS_BETTER = frozenset(
    {
        "brier",
        "harm_score",
        "unparsed_cot_strict",
        "unparsed_cot_flexible",
        "over_refusal_rate",
        "contraindicated_rate",
    }
)
# a dataset no Task names (an lm-eval task, an old run): the first of these it scored
FALLBACK_PRIMARY = ("acc", "f1", "exact_match", "safe_response_rate", "refusal_rate", "exact")
EXACT_TESTS = frozenset({"mcnemar_exact"})


def task_primary(dataset: str, formats: dict[str, str]) -> str | None:
    """The primary metric the dataset's Task declares (its format from the run's recorded
    config, else a Task registered under the dataset's name); None: no Task known."""
    from medalign.eval.cot_score import base_dataset
    from medalign.tasks.base import task_class

    dataset = base_dataset(dataset)  # `medqa:cot` (eval.also_cot) is MedQA's Task
    for name in (formats.get(dataset), dataset):
        if not name:
            continue
        try:
            return task_class(name).primary_metric
        except MedalignError:
            continue
    return None


def primary_metrics(
    dataset: str, formats: dict[str, str], metrics: list[str], wanted: list[str] | None
) -> list[str]:
    """The metrics a claim about `dataset` is made on: compare.metrics where the dataset
    scored one of them, else its Task's primary metric, else the first of
    FALLBACK_PRIMARY it scored (none: every row is secondary, with a warning)."""
    if wanted:
        named = [m for m in wanted if m in metrics]
        if named:
            return named
    declared = task_primary(dataset, formats)
    # under eval.mode=cot the same claim is made on the strict extraction (lm-eval's
    # strict-match), the protocol's own score of the Task's metric
    for candidate in (declared, f"{declared}_cot_strict"):
        if candidate in metrics:
            return [candidate]
    found = next((m for m in FALLBACK_PRIMARY if m in metrics), None)
    if found is None:
        log.warning(
            "compare: %s: no primary metric among %s; compare.metrics=[<metric>] names one",
            dataset,
            ", ".join(metrics),
        )
        return []
    return [found]


def mc_se(p: float, resamples: int) -> float:
    """Monte Carlo standard error of a permutation p estimated from `resamples` draws."""
    if resamples <= 0:
        return math.nan
    return math.sqrt(max(p * (1.0 - p), 0.0) / resamples)


def is_monte_carlo(row: dict[str, Any]) -> bool:
    return row["test"] not in EXACT_TESTS and row.get("p_resamples", 0) > 0


def holm_steps(pvalues: list[float]) -> tuple[list[float], list[int], list[int]]:
    """(Holm-adjusted p, each row's multiplier m - rank, the row whose multiplied p set
    each adjusted value: the running maximum's source), in the input's order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, multiplier, source = [0.0] * m, [0] * m, [0] * m
    running, arg = 0.0, -1
    for rank, i in enumerate(order):
        multiplier[i] = m - rank
        value = min(1.0, (m - rank) * pvalues[i])
        if value >= running or arg < 0:
            running, arg = value, i
        adjusted[i], source[i] = running, arg
    return adjusted, multiplier, source


def _straddles(row: dict[str, Any], multiplier: int, alpha: float) -> bool:
    if not is_monte_carlo(row):
        return False
    half = Z99 * mc_se(row["p"], row["p_resamples"]) * multiplier
    value = multiplier * row["p"]
    return value - half < alpha < value + half


def seed_verdict(seeds: int) -> str:
    return "single-seed: exploratory" if seeds == 1 else f"{seeds}-seed: exploratory"


def decide(
    family: list[dict[str, Any]],
    alpha: float,
    min_seeds: int,
    max_resamples: int,
    refine: Callable[[dict[str, Any], int], float],
) -> None:
    """Set p_holm, p_mc_se, significant and verdict on one configuration's rows. Holm runs
    over the rows whose role is "primary"; `refine(row, resamples)` recomputes a row's
    permutation p with more draws (seeded: the same inputs give the same table)."""
    primary = [r for r in family if r["role"] == "primary"]
    decided = {id(r) for r in primary if r["seeds"] >= min_seeds}
    while True:  # resample more where the verdict hangs on the Monte Carlo draw
        _, multiplier, _ = holm_steps([r["p"] for r in primary])
        at_stake = [
            r
            for r, k in zip(primary, multiplier, strict=True)
            if id(r) in decided and _straddles(r, k, alpha)
        ]
        grow = [r for r in at_stake if r["p_resamples"] < max_resamples]
        if not grow:
            break
        for row in grow:
            more = min(max_resamples, row["p_resamples"] * GROWTH)
            row["p"], row["p_resamples"] = float(refine(row, more)), more
    undecided = {id(r) for r in at_stake}
    adjusted, _, source = holm_steps([r["p"] for r in primary])
    for k, row in enumerate(primary):
        row["p_holm"] = adjusted[k]
        row["verdict"] = _verdict(row, alpha, min_seeds)
        if id(row) in decided and id(primary[source[k]]) in undecided:
            row["verdict"] = f"undecided at {primary[source[k]]['p_resamples']} resamples"
    for row in family:
        row["p_mc_se"] = mc_se(row["p"], row["p_resamples"]) if is_monte_carlo(row) else 0.0
        if row["role"] != "primary":
            row["p_holm"], row["verdict"] = None, "secondary"
        row["significant"] = row["verdict"] in ("gain", "loss")


def _verdict(row: dict[str, Any], alpha: float, min_seeds: int) -> str:
    if row["seeds"] < min_seeds:
        return seed_verdict(row["seeds"])
    if not (row["p_holm"] < alpha) or row["diff"] == 0:
        return "not significant"
    better = row["diff"] < 0 if row["metric"] in LOWER_IS_BETTER else row["diff"] > 0
    return "gain" if better else "loss"
