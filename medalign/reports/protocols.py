"""The same model scored two ways on the same questions: log-likelihood of the answer line
(no reasoning) against generated chain-of-thought (`eval.also_cot`, the `<name>:cot`
results), paired, for every evaluated stage of a curriculum.

    section = protocols_section(run_dir, manifest, settings)    # None: nothing scored twice

Why: the two-hop curse (Balesni et al. 2024) is a claim about one model answering one
question with and without reasoning. Two columns of the results table side by side do
not test it; the paired test on the questions both scored does (McNemar's exact test on
the 0/1 scores, Holm over the stages), and a stage is said to reason better by CoT only
where that test says so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from medalign.compare.engine import CompareSettings, verdict
from medalign.compare.report import interval, p_cell, signed
from medalign.compare.stats import holm, paired_test
from medalign.errors import MedalignError
from medalign.eval.cells import number
from medalign.eval.cot_score import COT_SUFFIX, base_dataset
from medalign.reports.sections import Section, Table

log = logging.getLogger(__name__)
LOGLIK_METRIC, COT_METRIC = "acc", "acc_cot_strict"


def protocol_rows(
    run_dir: Path, manifest: dict[str, Any], settings: CompareSettings
) -> list[dict[str, Any]]:
    """Per evaluated stage and dataset scored both ways: the paired test of CoT (strict)
    against log-likelihood accuracy, with Holm's p over every row."""
    from medalign.compare.runs import resolve_entry

    rows = []
    for entry in manifest.get("stages", []):
        if not (Path(entry.get("dir") or "") / "eval" / "predictions.jsonl").is_file():
            continue
        try:
            run = resolve_entry(f"{run_dir}:{entry['name']}")[0]
        except MedalignError as exc:
            log.warning("results.md: %s not read for the CoT table: %s", entry["name"], exc)
            continue
        for key in sorted(k for k in run.questions if k.endswith(COT_SUFFIX)):
            dataset = base_dataset(key)
            loglik, cot = run.questions.get(dataset, {}), run.questions[key]
            ids = sorted(set(loglik) & set(cot))
            if not ids:
                continue
            base = np.array([loglik[i].scores.get(LOGLIK_METRIC, np.nan) for i in ids])
            reasoned = np.array([cot[i].scores.get(COT_METRIC, np.nan) for i in ids])
            if np.isnan(base).any() or np.isnan(reasoned).any():
                continue
            test = paired_test(base, reasoned, resamples=settings.resamples, seed=settings.seed)
            rows.append({"stage": entry["name"], "dataset": dataset, **test})
    for row, adjusted in zip(rows, holm([r["p"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
        row["verdict"] = _verdict(row, settings.alpha)
    return rows


def _verdict(row: dict[str, Any], alpha: float) -> str:
    """compare's verdict (a direction only where Holm's p is below alpha), said of CoT."""
    said = verdict({**row, "metric": COT_METRIC}, alpha)
    return {"gain": "CoT better", "loss": "CoT worse"}.get(said, said)


def protocols_section(
    run_dir: Path, manifest: dict[str, Any], settings: CompareSettings
) -> Section | None:
    """results.md's and report.html's table of the rows above (None: none)."""
    rows = protocol_rows(run_dir, manifest, settings)
    if not rows:
        return None
    body = tuple(
        (
            r["stage"],
            r["dataset"],
            str(r["n"]),
            f"{number(r['baseline'])} {interval(*r['baseline_ci'])}",
            f"{number(r['run'])} {interval(*r['run_ci'])}",
            f"{signed(r['diff'])} {interval(r['ci_low'], r['ci_high'], True)}"
            + (" ✱" if r["verdict"] != "not significant" else ""),
            f"{r['b']}/{r['c']}" if r["b"] is not None else "n/a",
            p_cell(r["p_holm"]),
            r["verdict"],
        )
        for r in rows
    )
    header = (
        "stage",
        "dataset",
        "n",
        "log-likelihood acc",
        "CoT strict acc",
        "CoT - loglik",
        "b/c",
        "p_holm",
        "verdict",
    )
    note = (
        "The same model on the same questions, both in eval.prompt's prompt: the answer "
        "line's log-likelihood (no reasoning) against the answer it reasons to "
        "(eval.also_cot: generated greedily, the strict final-answer line). Intervals: "
        "Wilson for each score, a paired bootstrap for the difference (unadjusted); b/c: "
        "questions only log-likelihood / only CoT got right; p_holm: McNemar's exact "
        f"test, Holm over the rows; ✱: p_holm < {settings.alpha}."
    )
    table = Table(header, "|---|---|---:|---:|---:|---:|---:|---:|---|", body)
    return Section("Reasoning: chain-of-thought against log-likelihood, paired", (note, table))
