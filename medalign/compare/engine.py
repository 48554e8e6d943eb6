"""Compare configurations (each one run, or several seeds) against a baseline, question
by question.

    groups = group_by_seed(runs)                       # medalign/compare/runs.py
    table = compare_groups(groups, baseline=0, settings=CompareSettings())

For each other configuration, dataset and per-question metric: the paired test of
medalign/compare/stats.py on the questions both evaluated (seeds paired by rank and
pooled, each question's seeds resampled together). Each dataset's primary metric (its
Task's, or compare.metrics) carries the claim: Holm's correction runs over that
configuration's primary rows, the rest are secondary (medalign/compare/verdicts.py, with
the seed rule and the Monte Carlo precision of a permutation p). The result is
`compare.json`'s content; its schema is `SCHEMA` below and README "Compare runs".
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medalign.compare.runs import EvaluatedRun, distinguishing_labels, group_label
from medalign.compare.stats import cluster_index, paired_tests, sign_flip_p
from medalign.compare.verdicts import LOWER_IS_BETTER, decide, primary_metrics
from medalign.errors import MedalignError
from medalign.eval.cot_checks import check_same_protocol

log = logging.getLogger(__name__)
SCHEMA = 2
__all__ = ["LOWER_IS_BETTER", "CompareSettings", "compare_groups", "verdict"]


@dataclass
class CompareSettings:
    alpha: float = 0.05
    resamples: int = 10_000
    seed: int = 0
    on: str = "same"  # same: refuse differing question sets | intersection: compare the common
    metrics: list[str] | None = None  # the rows shown; null: every metric the runs share
    datasets: list[str] | None = None  # null: every dataset the runs share
    # the claim's metrics (compare.metrics); null: each dataset's Task's primary metric
    primary: list[str] | None = None
    # seeds per configuration below which a verdict is exploratory. 1 here: the
    # curriculum's tables compare one run's checkpoints (a fixed model against another);
    # stage=compare compares configurations and passes compare.min_seeds (default 3)
    min_seeds: int = 1
    max_resamples: int = 200_000  # a permutation p near alpha is resampled up to this


def verdict(row: dict[str, Any], alpha: float) -> str:
    """gain | loss | not significant: a direction only where Holm's p is below alpha."""
    if not (row["p_holm"] < alpha) or row["diff"] == 0:
        return "not significant"
    better = row["diff"] < 0 if row["metric"] in LOWER_IS_BETTER else row["diff"] > 0
    return "gain" if better else "loss"


def compare_groups(
    groups: list[list[EvaluatedRun]], baseline: int, settings: CompareSettings
) -> dict[str, Any]:
    """compare.json's content: every other configuration against groups[baseline]."""
    if len(groups) < 2:
        runs = [r.label for g in groups for r in g]
        if len(runs) > 1:
            raise MedalignError(
                f"compare.runs: all {len(runs)} runs are seeds of one configuration "
                f"({', '.join(runs)}): nothing to compare them against "
                "(compare.pool_seeds=false compares the seeds one by one)"
            )
        raise MedalignError(
            f"compare.runs: a comparison needs at least two runs; got {runs or 'none'}"
        )
    _check_backends(groups)
    _check_distinct(groups)
    base = groups[baseline]
    labels = distinguishing_labels(groups, [group_label(g) for g in groups])
    datasets = _shared_datasets(groups, settings.datasets)
    check_same_protocol([r for g in groups for r in g], datasets)  # loglik vs cot: refused
    others = {
        k: _pair_seeds(base, group, labels[baseline], labels[k])
        for k, group in enumerate(groups)
        if k != baseline
    }
    found: dict[int, list[dict[str, Any]]] = {k: [] for k in others}
    for dataset in datasets:  # every run of a dataset in one pass over its questions
        for k, dataset_rows in _dataset_rows(dataset, others, labels, settings).items():
            found[k] += dataset_rows
    rows: list[dict[str, Any]] = []

    def refine(row: dict[str, Any], resamples: int) -> float:
        diffs, index = row["_perm"]
        return float(sign_flip_p(diffs[None, :], index, resamples, settings.seed)[0])

    for family in found.values():  # Holm over each run's primary rows (its datasets)
        decide(family, settings.alpha, settings.min_seeds, settings.max_resamples, refine)
        for row in family:
            row.pop("_perm", None)
        rows += family
    return {
        "schema": SCHEMA,
        "baseline": labels[baseline],
        "alpha": settings.alpha,
        "resamples": settings.resamples,
        "max_resamples": settings.max_resamples,
        "min_seeds": settings.min_seeds,
        "seed": settings.seed,
        "on": settings.on,
        "needs": seed_needs(groups, labels, settings.min_seeds) if rows else [],
        "runs": [
            {
                "label": labels[k],
                "baseline": k == baseline,
                "folders": [str(r.folder) for r in g],
                "seeds": [r.seed for r in g],
            }
            for k, g in enumerate(groups)
        ],
        "rows": rows,
    }


def seed_needs(groups: list[list[EvaluatedRun]], labels: list[str], min_seeds: int) -> list[str]:
    """For each configuration with fewer seeds than `min_seeds`: the command that runs the
    rest (`-m` first, as Hydra's command line needs it, then its launch overrides and
    `seed=...` with seeds it has not run)."""
    out = []
    for members, label in zip(groups, labels, strict=True):
        if len(members) >= min_seeds:
            continue
        have = {m.seed for m in members}
        new = [s for s in range(1, 10 * min_seeds + len(have)) if s not in have]
        seeds = ",".join(str(s) for s in new[: min_seeds - len(members)])
        launch = " ".join(members[0].launch_without_seed)
        command = f"python -m medalign -m {launch} seed={seeds}".replace("  ", " ")
        out.append(
            f"{label}: {len(members)} seed(s) of the {min_seeds} a claim needs "
            f"(compare.min_seeds); run the rest with: {command}, then compare again with "
            "those runs added to compare.runs (seeds of one configuration are pooled)"
        )
    return out


def _check_distinct(groups: list[list[EvaluatedRun]]) -> None:
    seen: dict[Path, str] = {}
    for run in (r for g in groups for r in g):
        folder = run.folder.resolve()
        if folder in seen:
            raise MedalignError(
                f"compare.runs: {run.label} and {seen[folder]} are the same evaluation "
                f"({folder}); a run compared with itself shows nothing"
            )
        seen[folder] = run.label


def check_metrics(groups: list[list[EvaluatedRun]], wanted: list[str] | None) -> None:
    """A compare.metrics name no run scored is a typo, not an empty table."""
    if not wanted:
        return
    found = {
        m
        for g in groups
        for r in g
        for questions in r.questions.values()
        for q in list(questions.values())[:1]
        for m in q.scores
    }
    unknown = [m for m in wanted if m not in found]
    if unknown:
        raise MedalignError(
            f"compare.metrics: no run scored {unknown[0]!r} per question; these did: "
            f"{', '.join(sorted(found))}"
        )


def _check_backends(groups: list[list[EvaluatedRun]]) -> None:
    runs = [r for g in groups for r in g]
    backends = {r.backend for r in runs}
    if len(backends) > 1:
        a = next(r for r in runs if r.backend == "lm_eval")
        b = next(r for r in runs if r.backend != "lm_eval")
        raise MedalignError(
            f"compare.runs: {a.label} was scored by lm-eval (eval.backend=lm_eval) and "
            f"{b.label} by medalign's built-in scorer: lm-eval numbers questions by position, "
            "medalign by the dataset's ids, so no question can be paired; evaluate both with "
            "the same eval.backend"
        )


def _shared_datasets(groups: list[list[EvaluatedRun]], wanted: list[str] | None) -> list[str]:
    runs = [r for g in groups for r in g]
    shared = set(runs[0].questions)
    for run in runs[1:]:
        shared &= set(run.questions)
    every = sorted({d for r in runs for d in r.questions})
    if wanted:
        missing = [d for d in wanted if d not in shared]
        if missing:
            lacking = [r.label for r in runs if missing[0] not in r.questions]
            raise MedalignError(
                f"compare.datasets: {missing[0]!r} was not evaluated by {', '.join(lacking)}"
            )
        return list(wanted)
    left = [d for d in every if d not in shared]
    if left:
        log.warning("compare: not every run evaluated %s: left out", ", ".join(left))
    if not shared:
        raise MedalignError("compare.runs: the runs evaluated no dataset in common")
    return [d for d in every if d in shared]


def _pair_seeds(
    base: list[EvaluatedRun], group: list[EvaluatedRun], base_label: str, label: str
) -> list[tuple[EvaluatedRun, EvaluatedRun]]:
    """Seed s of the baseline with seed s of the run, for every seed both ran; the seeds
    only one side ran are then paired by rank (so 1, 2, 42 against 42 pairs 42 with 42,
    not 1 with 42), and the left-over ones of the larger side are not compared."""
    by_seed = {r.seed: r for r in group}
    shared = [(r, by_seed[r.seed]) for r in base if r.seed is not None and r.seed in by_seed]
    used = {id(r) for pair in shared for r in pair}
    rest = list(
        zip(
            [r for r in base if id(r) not in used],
            [r for r in group if id(r) not in used],
            strict=False,
        )
    )
    if len(base) != len(group):
        paired = ", ".join(f"{a.seed}~{b.seed}" for a, b in [*shared, *rest])
        log.warning(
            "compare: %s has %d seeds and %s %d: only %d pairs are compared (seeds %s)",
            base_label,
            len(base),
            label,
            len(group),
            min(len(base), len(group)),
            paired,
        )
    return [*shared, *rest]


def _question_ids(dataset: str, runs: list[EvaluatedRun], on: str) -> list[str]:
    """The questions every run scored on `dataset` (sorted); differing sets are refused
    unless compare.on=intersection, and the same ids on other data always are."""
    first = runs[0]
    ids = set(first.questions[dataset])
    for run in runs[1:]:
        other = set(run.questions[dataset])
        if other != ids:
            common = ids & other
            if on != "intersection":
                raise MedalignError(
                    f"compare: {dataset}: {first.label} scored {len(ids)} questions and "
                    f"{run.label} {len(other)}, {len(common)} in common; compare.on=intersection "
                    f"compares those {len(common)}"
                )
            log.warning(
                "compare: %s: %d questions of %s and %d of %s; comparing the %d in common",
                dataset,
                len(ids),
                first.label,
                len(other),
                run.label,
                len(common),
            )
            ids = common
        else:
            _check_fingerprint(dataset, first, run)
    if not ids:
        raise MedalignError(f"compare: {dataset}: the runs share no question")
    return sorted(ids)


def _check_fingerprint(dataset: str, a: EvaluatedRun, b: EvaluatedRun) -> None:
    fa = (a.results.get(dataset) or {}).get("fingerprint")
    fb = (b.results.get(dataset) or {}).get("fingerprint")
    if fa and fb and fa != fb:
        raise MedalignError(
            f"compare: {dataset}: {a.label} and {b.label} were evaluated on different data "
            f"(fingerprint {fa} vs {fb}) under the same question ids; compare runs scored on "
            "the same evaluation set"
        )


def _dataset_rows(
    dataset: str,
    others: dict[int, list[tuple[EvaluatedRun, EvaluatedRun]]],
    labels: list[str],
    settings: CompareSettings,
) -> dict[int, list[dict[str, Any]]]:
    """{run index: its rows on `dataset`}. Runs with as many seed pairs share one call of
    `paired_tests` (one set of draws for all their metrics)."""
    runs = [r for pairs in others.values() for pair in pairs for r in pair]
    ids = _question_ids(dataset, runs, settings.on)
    metrics = _shared_metrics(dataset, runs, ids, settings.metrics)
    out: dict[int, list[dict[str, Any]]] = {k: [] for k in others}
    if not metrics:
        return out
    primaries = primary_metrics(dataset, runs[0].formats, metrics, settings.primary)
    by_pairs: dict[int, list[int]] = {}
    for k, pairs in others.items():
        by_pairs.setdefault(len(pairs), []).append(k)
    for count, members in by_pairs.items():
        first = others[members[0]][0][0]
        clusters = _clusters(dataset, first, ids, pooled=count > 1)
        base = {k: _matrix(others[k], 0, dataset, ids, metrics) for k in members}
        run = {k: _matrix(others[k], 1, dataset, ids, metrics) for k in members}
        tests = paired_tests(
            np.vstack([base[k].reshape(len(metrics), -1) for k in members]),
            np.vstack([run[k].reshape(len(metrics), -1) for k in members]),
            None if clusters is None else clusters * count,
            settings.resamples,
            settings.seed,
            settings.alpha,
        )
        result = first.results.get(dataset) or {}
        index = cluster_index(None if clusters is None else clusters * count, len(ids) * count)
        for j, k in enumerate(members):
            for m, metric in enumerate(metrics):
                test = tests[j * len(metrics) + m]
                row = {
                    "label": labels[k],
                    "dataset": dataset,
                    "split": result.get("split", ""),
                    "limit": result.get("limit"),
                    "metric": metric,
                    "questions": len(ids),
                    "seeds": count,
                    "role": "primary" if metric in primaries else "secondary",
                    **test,
                    "p_resamples": 0 if test["test"] == "mcnemar_exact" else settings.resamples,
                    "_perm": ((run[k][m] - base[k][m]).reshape(-1), index),
                }
                if count > 1:
                    row["seed_scores"] = {
                        "baseline": _mean_sd(base[k][m].mean(axis=1)),
                        "run": _mean_sd(run[k][m].mean(axis=1)),
                    }
                out[k].append(row)
    return out


def _matrix(
    pairs: list[tuple[EvaluatedRun, EvaluatedRun]],
    side: int,
    dataset: str,
    ids: list[str],
    metrics: list[str],
) -> np.ndarray:
    """(metrics x seed pairs x questions) scores of one side (0: baseline, 1: run)."""
    return np.array([[_values(pair[side], dataset, ids, m) for pair in pairs] for m in metrics])


def _shared_metrics(
    dataset: str, runs: list[EvaluatedRun], ids: list[str], wanted: list[str] | None
) -> list[str]:
    shared: set[str] | None = None
    for run in runs:
        for key in ids:
            names = set(run.questions[dataset][key].scores)
            shared = names if shared is None else shared & names
    found = sorted(shared or ())
    return [m for m in found if m in wanted] if wanted else found


def _clusters(dataset: str, run: EvaluatedRun, ids: list[str], pooled: bool) -> list[str] | None:
    """Each question's cluster: the task's (a RadQA report), else the question itself
    when seeds are pooled (its seeds move together), else none (independent)."""
    declared = [run.questions[dataset][key].cluster for key in ids]
    if any(c is not None for c in declared):
        return [
            str(c) if c is not None else f"id:{key}" for c, key in zip(declared, ids, strict=True)
        ]
    return list(ids) if pooled else None


def _values(run: EvaluatedRun, dataset: str, ids: list[str], metric: str) -> list[float]:
    questions = run.questions[dataset]
    return [questions[key].scores[metric] for key in ids]


def _mean_sd(per_seed: np.ndarray) -> dict[str, Any]:
    sd = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else math.nan
    return {"mean": float(np.mean(per_seed)), "sd": sd, "per_seed": per_seed.tolist()}
