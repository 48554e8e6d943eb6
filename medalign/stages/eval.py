"""Evaluation stage: a base model, a base + adapter, or a finished run's stage.

    python -m medalign stage=eval eval.run=runs/2026-11-25/15-04-39-271896_pubmedqa
    python -m medalign stage=eval eval.adapter=path/to/adapter eval.datasets=[medqa]

Writes eval/results.json, eval/predictions.jsonl, eval/summary.md and eval/plots/*.png in
the run directory, and logs eval/<dataset>/<metric> (and the plots) to W&B.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from medalign.config import EvalConfig, RunConfig
from medalign.errors import MedalignError
from medalign.outputs import RunDir
from medalign.registry import register
from medalign.tracking import Tracker

log = logging.getLogger(__name__)


@register("stage", "eval")
def run_eval(cfg: RunConfig, run: RunDir, tracker: Tracker) -> dict[str, float]:
    from medalign.models.load import load_causal_lm, load_tokenizer, model_source

    adapter = resolve_adapter(cfg.eval)
    source = model_source(cfg.model)
    tokenizer = load_tokenizer(cfg.model, source)
    model = load_causal_lm(cfg.model, cfg.quant, source)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    run.update(base_model=source, adapter=adapter)
    metrics = evaluate_and_report(model, tokenizer, cfg, run.path / "eval", tracker)
    run.update(metrics=metrics)
    return metrics


def evaluate_and_report(
    model: Any, tokenizer: Any, cfg: RunConfig, out: Path, tracker: Tracker
) -> dict[str, float]:
    """Score every evaluation dataset, write the reports under `out`, log them to W&B."""
    from medalign.eval.report import write_reports
    from medalign.eval.runner import evaluate, flat_metrics

    results, predictions = evaluate(
        model, tokenizer, cfg.eval, cfg.dataset, cfg.data_root, cfg.reward.models
    )
    plots = write_reports(out, results, predictions)
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


def resolve_adapter(cfg: EvalConfig) -> str | None:
    """The adapter directory named by eval.adapter, or by eval.run (+ eval.stage)."""
    if cfg.adapter:
        if not Path(cfg.adapter, "adapter_config.json").is_file():
            raise MedalignError(
                f"eval.adapter: no LoRA adapter (adapter_config.json) in {cfg.adapter}"
            )
        return cfg.adapter
    if not cfg.run:
        return None
    manifest_path = Path(cfg.run) / "manifest.json"
    if not manifest_path.is_file():
        raise MedalignError(f"eval.run: no manifest.json in {cfg.run}")
    stages = json.loads(manifest_path.read_text()).get("stages", [])
    done = [s for s in stages if s.get("status") == "done" and s.get("adapter")]
    if cfg.stage:
        done = [s for s in done if s.get("name") == cfg.stage]
    if not done:
        names = ", ".join(f"{s.get('name')} ({s.get('status')})" for s in stages) or "none"
        wanted = f"stage {cfg.stage!r}" if cfg.stage else "a finished stage with an adapter"
        raise MedalignError(f"eval.run: {manifest_path} has no {wanted}; its stages: {names}")
    return done[-1]["adapter"]
