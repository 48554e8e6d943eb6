"""stage=compare: is a difference between runs real? Paired tests on the same questions.

    python -m medalign stage=compare 'compare.runs=[runs/<date>/<a>,runs/<date>/<b>]'
    python -m medalign stage=compare 'compare.runs=[<curriculum>:medqa,<other curriculum>:medqa]'
    python -m medalign stage=compare 'compare.runs=[runs/multirun/<date>/<sweep>]' \\
        compare.baseline='lora.r=8'

Reads each run's eval/predictions.jsonl (the first entry is the baseline unless
compare.baseline names one), pools runs that differ only in their seed, and writes
compare.json, compare.md and compare.png into its own run directory; the table goes to the
console and to W&B. No model is loaded: it takes seconds (medalign/compare/).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from medalign.config import KindOnlyStageConfig, RunConfig
from medalign.errors import MedalignError
from medalign.stages.spec import StageInputs, StageSpec, register_stage
from medalign.tracking import Tracker

log = logging.getLogger(__name__)


def run_compare(cfg: RunConfig, inputs: StageInputs) -> dict[str, Any]:
    out, tracker = inputs.record, inputs.tracker
    from medalign.compare.engine import compare_groups
    from medalign.compare.report import markdown, write_comparison

    # the runs the start-up check already read (check_compare), else read now
    groups, baseline, settings = inputs.checked or plan_comparison(cfg)
    table = compare_groups(groups, baseline, settings)
    paths = write_comparison(out.path, table, plot=cfg.eval.plots)
    print(markdown(table))
    for need in table["needs"]:
        log.warning("compare: %s", need)
    print("written: " + ", ".join(str(p) for p in paths.values()))
    _log_table(tracker, table, paths)
    rows = table["rows"]
    return {
        "compare/rows": len(rows),
        "compare/significant": sum(r["significant"] for r in rows),
    }


def plan_comparison(cfg: RunConfig) -> tuple[list, int, Any]:
    """(seed groups, the baseline's index, settings) of cfg.compare; every entry read."""
    from medalign.compare.engine import CompareSettings
    from medalign.compare.runs import group_by_seed, resolve_entry

    ccfg = cfg.compare
    if not ccfg.runs:
        raise MedalignError(
            "compare.runs is empty: give the runs to compare, e.g. "
            "'compare.runs=[runs/<date>/<a>,runs/<date>/<b>]'"
        )
    if ccfg.min_seeds < 1:
        raise MedalignError(f"compare.min_seeds={ccfg.min_seeds}: give 1 or more")
    runs = [r for entry in ccfg.runs for r in resolve_entry(str(entry))]
    groups = group_by_seed(runs, pool=ccfg.pool_seeds)
    baseline = baseline_index(groups, ccfg.baseline)
    settings = CompareSettings(
        alpha=ccfg.alpha,
        resamples=ccfg.resamples,
        seed=ccfg.seed,
        on=ccfg.on,
        primary=list(ccfg.metrics) if ccfg.metrics else None,
        datasets=list(ccfg.datasets) if ccfg.datasets else None,
        min_seeds=ccfg.min_seeds,
        max_resamples=max(ccfg.max_resamples, ccfg.resamples),
    )
    from medalign.compare.engine import check_metrics

    check_metrics(groups, settings.primary)  # a metric typo, not an empty table
    return groups, baseline, settings


def check_compare(cfg: RunConfig) -> tuple[list, int, Any]:
    """At start-up, before the run directory exists: every entry found and readable, the
    runs comparable (same data, same questions, one backend). No resampling. Returns what
    it read, which medalign.run hands to the stage (`inputs.checked`): every file is read
    once."""
    import dataclasses

    from medalign.compare.engine import compare_groups

    planned = plan_comparison(cfg)
    groups, baseline, settings = planned
    compare_groups(groups, baseline, dataclasses.replace(settings, resamples=0))
    return planned


def baseline_index(groups: list, wanted: str | None) -> int:
    """groups' index of a baseline named by a run's label, path or folder; default 0."""
    from medalign.compare.runs import group_label

    if not wanted:
        return 0
    wanted = str(wanted).rstrip("/")
    for k, group in enumerate(groups):
        label = group_label(group)
        names = {label, re.sub(r" \(seeds [^)]*\)$", "", label)} | {
            str(p) for r in group for p in (r.label, r.folder, r.folder.parent, r.root) if p
        }
        if wanted in names or wanted in {Path(n).name for n in names}:
            return k
    known = "; ".join(group_label(g) for g in groups)
    raise MedalignError(f"baseline {wanted!r} names none of the runs compared: {known}")


def _log_table(tracker: Tracker, table: dict[str, Any], paths: dict) -> None:
    if not tracker.enabled:
        return
    import wandb

    columns = ["run", "dataset", "metric", "role", "n", "baseline", "run_score", "diff"]
    columns += ["ci_low", "ci_high", "p", "p_mc_se", "p_holm", "b", "c", "mde", "verdict"]
    data = [
        [r["label"], r["dataset"], r["metric"], r["role"], r["n"], r["baseline"], r["run"]]
        + [r["diff"], r["ci_low"], r["ci_high"], r["p"], r["p_mc_se"], r["p_holm"], r["b"]]
        + [r["c"], r["mde"], r["verdict"]]
        for r in table["rows"]
    ]
    tracker.log({"compare/table": wandb.Table(columns=columns, data=data)})
    if "png" in paths:
        tracker.log_images({"compare/forest": paths["png"]})


SPEC = register_stage(
    StageSpec(kind="compare", schema=KindOnlyStageConfig, run=run_compare, check=check_compare)
)
