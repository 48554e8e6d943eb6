"""Evaluation stage: the base model, or whatever `init_from` names.

    python -m medalign stage=eval                                             (the base)
    python -m medalign stage=eval init_from=runs/2026-11-25/15-04-39-271896_pubmedqa
    python -m medalign stage=eval init_from=runs/<date>/<time>_curriculum:rl eval.datasets=[medqa]
    python -m medalign stage=eval eval.backend=lm_eval eval.lm_eval.tasks=[mmlu_anatomy] \\
        init_from=runs/2026-11-25/15-04-39-271896_pubmedqa       (any lm-eval task)

Writes eval/results.json, eval/predictions.jsonl, eval/summary.md and eval/plots/*.png in
the run directory, and logs eval/<dataset>/<metric> (and the plots) to W&B. The model is
loaded once for all evaluation sets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from medalign.config import EvalStageConfig, RunConfig
from medalign.models.init_from import load_model
from medalign.outputs import RunDir
from medalign.stages.spec import StageInputs, StageSpec, register_stage
from medalign.tracking import Tracker

log = logging.getLogger(__name__)


def run_eval(cfg: RunConfig, inputs: StageInputs) -> dict[str, float]:
    out, tracker = inputs.record, inputs.tracker
    point = inputs.start
    if cfg.eval.backend == "lm_eval":  # lm-eval builds the model from the resolved dirs
        from medalign.eval import harness

        results, predictions, base = harness.evaluate(cfg, point)
    else:
        from medalign.eval.runner import evaluate

        model, tokenizer, base = load_model(cfg, point)
        results, predictions = evaluate(model, tokenizer, cfg)
    adapter = point.adapter if point else None
    log.info("evaluated %s%s", base, f" + adapter {adapter}" if adapter else "")
    out.update(
        base_model=base,
        adapter=adapter,
        **({"init_from": point.record()} if point else {}),
    )
    metrics = report(results, predictions, out.path / "eval", tracker, cfg.eval.plots)
    out.update(metrics=metrics)
    return metrics


def evaluate_and_report(
    model: Any, tokenizer: Any, cfg: RunConfig, out: Path, tracker: Tracker
) -> dict[str, float]:
    """Score every evaluation dataset (eval.backend=lm_eval: every eval.lm_eval.tasks),
    write the reports under `out`, log them to W&B."""
    if cfg.eval.backend == "lm_eval":
        from medalign.eval import harness

        results, predictions, _ = harness.evaluate(cfg, model=model, tokenizer=tokenizer)
    else:
        from medalign.eval.runner import evaluate

        results, predictions = evaluate(model, tokenizer, cfg)
    return report(results, predictions, out, tracker, plots_wanted=cfg.eval.plots)


def report(
    results: dict[str, Any],
    predictions: list[dict],
    out: Path,
    tracker: Tracker,
    plots_wanted: bool = True,
) -> dict[str, float]:
    """results.json, predictions.jsonl, summary.md, then the plots (eval.plots) under
    `out`; metrics to W&B."""
    from medalign.eval.report import write_reports
    from medalign.eval.runner import flat_metrics

    plots = write_reports(out, results, predictions, plots=plots_wanted)
    metrics = flat_metrics(results)
    tracker.log(metrics)
    tracker.summary(metrics)
    tracker.log_images({f"eval/plots/{name}": path for name, path in plots.items()})
    log.info("evaluation written to %s\n%s", out, (out / "summary.md").read_text())
    return metrics


def evaluate_after_training(
    model: Any, tokenizer: Any, cfg: RunConfig, out: RunDir, tracker: Tracker
) -> dict[str, float]:
    """The stage's evaluation when eval.after_train is set (else no metrics)."""
    if not cfg.eval.after_train:
        return {}
    return evaluate_and_report(model, tokenizer, cfg, out.path / "eval", tracker)


def evaluate_saved(
    cfg: RunConfig, out: RunDir, tracker: Tracker, saved: Path, source: str
) -> dict[str, Any]:
    """Finish a stage whose training completed before a kill: load the saved adapter (or
    full model) and run only the evaluation; the training metrics come from the manifest
    (`train_metrics`, recorded when the adapter was saved)."""
    from medalign.models.load import load_causal_lm, load_tokenizer

    log.info("%s is complete: training is skipped, the stage resumes at its evaluation", saved)
    tokenizer = load_tokenizer(cfg.model, str(saved))
    if saved.name == "adapter":
        from peft import PeftModel

        model = PeftModel.from_pretrained(load_causal_lm(cfg.model, cfg.quant, source), saved)
    else:
        model = load_causal_lm(cfg.model, cfg.quant, str(saved))
    metrics = dict(out.stage.get("train_metrics") or {})
    if not metrics:  # killed in the moment between saving and recording them
        log.warning("the training metrics of %s were not recorded before the kill", saved)
    metrics.update(evaluate_after_training(model, tokenizer, cfg, out, tracker))
    out.update(adapter=str(saved), metrics=metrics, resumed_at="evaluation")
    tracker.summary(metrics)
    return metrics


SPEC = register_stage(
    StageSpec(
        kind="eval", schema=EvalStageConfig, run=run_eval, curriculum="baseline", evaluates="always"
    )
)
