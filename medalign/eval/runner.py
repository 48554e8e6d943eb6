"""Score a loaded model on every evaluation dataset: the loop shared by `stage=eval` and
the evaluation after each training stage (`eval.after_train=true`).

It knows no dataset format: each evaluation set is a Task (medalign/tasks/, found by name
through the registry: data/loading.py `get_task`) that loads its records and scores them
(log-likelihood, generation + parsing, span F1, refusal).
Which sets, splits and sizes come from `eval.datasets` and the dataset catalogue
(`datasets.<name>.*`, composed by Hydra, so `datasets.medqa.options=5` takes effect).
A dataset in `eval.also_cot` is scored twice, in its own mode and by chain-of-thought,
its CoT scores kept under `<name>:cot` (cot_key): the two protocols on the same model
and questions, the pair the two-hop curse is measured by.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from medalign.config import RunConfig
from medalign.data.loading import eval_dataset_config, get_task, load_records
from medalign.eval.cot_score import cot_key

log = logging.getLogger(__name__)


@dataclass
class EvalContext:
    """What a Task's evaluation needs besides its records."""

    model: Any
    tokenizer: Any
    cfg: Any  # EvalConfig
    reward_models: dict[str, str | None]


def evaluate(
    model: Any, tokenizer: Any, cfg: RunConfig
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(results by dataset, per-example predictions) for every dataset in eval.datasets."""
    model.eval()
    ecfg = cfg.eval
    ctx = EvalContext(model, tokenizer, ecfg, dict(cfg.reward.models))
    results, predictions = {}, []
    for name in ecfg.datasets:
        dcfg = eval_dataset_config(cfg, name)
        key = f"datasets.{name}"  # what evaluation reads: its messages name this key
        task = get_task(dcfg, key)
        # eval.mode=cot scores the choice datasets by reasoning; the others (RadQA, safety)
        # are generative already and keep their own mode
        cot_less = ecfg.mode == "cot" and "cot" not in task.eval_modes
        mode = task.resolve_mode("auto" if cot_less else ecfg.mode)
        data = load_records(dcfg, cfg.data_root, split=dcfg.eval_split, key=key)
        records = data.records
        log.info(
            "evaluating %s/%s: %d examples from %s, %s",
            name,
            dcfg.eval_split,
            len(records),
            data.source,
            mode,
        )
        modes = {name: mode}
        if name in (ecfg.also_cot or []) and mode != "cot" and "cot" in task.eval_modes:
            modes[cot_key(name)] = "cot"  # the same questions by reasoning, as its own column
        for column, how in modes.items():
            if how != mode:
                log.info("evaluating %s/%s again, by chain-of-thought", name, dcfg.eval_split)
            result, preds = task.evaluate(ctx, records, how)
            result.update(
                split=dcfg.eval_split,
                mode=how,
                source=data.source,
                fingerprint=data.fingerprint,  # stage=compare refuses runs scored on other data
                limit=dcfg.limit,  # the cap on n, where one applies (eval.limit)
            )
            result.setdefault("protocol", how)  # stage=compare pairs only the same protocol
            if data.skipped:
                result["skipped"] = data.skipped
            results[column] = result
            predictions += [{"dataset": column, **p} for p in preds]
    return results, predictions


def flat_metrics(results: dict[str, Any]) -> dict[str, float]:
    """{"eval/<dataset>/<metric>": value} for W&B and the manifest."""
    return {
        f"eval/{name}/{metric}": value["value"]
        for name, result in results.items()
        for metric, value in result["metrics"].items()
    }
