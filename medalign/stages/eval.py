"""Evaluation stage: the base model, or whatever `init_from` names.

    python -m medalign stage=eval                                             (the base)
    python -m medalign stage=eval init_from=runs/2026-11-25/15-04-39-271896_pubmedqa
    python -m medalign stage=eval init_from=runs/<date>/<time>_curriculum:rl eval.datasets=[medqa]

Writes eval/results.json, eval/predictions.jsonl, eval/summary.md and eval/plots/*.png in
the run directory, and logs eval/<dataset>/<metric> (and the plots) to W&B. The model is
loaded once for all evaluation sets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from medalign.config import RunConfig
from medalign.models.init_from import load_model, resolve_init_from
from medalign.outputs import RunDir
from medalign.registry import register
from medalign.tracking import Tracker

log = logging.getLogger(__name__)


@register("stage", "eval")
def run_eval(cfg: RunConfig, run: RunDir, tracker: Tracker) -> dict[str, float]:
    point = resolve_init_from(cfg.init_from)
    model, tokenizer, base = load_model(cfg, point)
    run.update(
        base_model=base,
        adapter=point.adapter if point else None,
        **({"init_from": point.record()} if point else {}),
    )
    metrics = evaluate_and_report(model, tokenizer, cfg, run.path / "eval", tracker)
    run.update(metrics=metrics)
    return metrics


def evaluate_and_report(
    model: Any, tokenizer: Any, cfg: RunConfig, out: Path, tracker: Tracker
) -> dict[str, float]:
    """Score every evaluation dataset, write the reports under `out`, log them to W&B."""
    from medalign.eval.report import write_reports
    from medalign.eval.runner import evaluate, flat_metrics

    results, predictions = evaluate(model, tokenizer, cfg)
    plots = write_reports(out, results, predictions, plots=cfg.eval.plots)
    metrics = flat_metrics(results)
    tracker.log(metrics)
    tracker.summary(metrics)
    tracker.log_images({f"eval/plots/{name}": path for name, path in plots.items()})
    log.info("evaluation written to %s\n%s", out, (out / "summary.md").read_text())
    return metrics


def evaluate_after_training(
    model: Any, tokenizer: Any, cfg: RunConfig, run: RunDir, tracker: Tracker
) -> dict[str, float]:
    """The stage's evaluation when eval.after_train is set (else no metrics)."""
    if not cfg.eval.after_train:
        return {}
    return evaluate_and_report(model, tokenizer, cfg, run.path / "eval", tracker)
