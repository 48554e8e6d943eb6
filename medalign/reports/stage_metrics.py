"""Each stage's metrics as report.html shows them: every number with its 95% interval
and its n, or the reason it has none, in the cell itself.

    rows = metric_rows(stage, folder)     # [(metric, "0.310 [0.270, 0.350]", "50"), ...]

Why: the per-stage tables showed ECE, Brier and losses as bare numbers, read as if
exact. An `eval/<dataset>/<metric>` value takes its interval and n from the stage's
eval/results.json (the evaluation's own record); a loss is a mean over training batches
or held-out rows, so its n is those rows and it has no interval over questions; ECE
bins all questions together, so there is no per-question score to resample.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medalign.compare.report import interval
from medalign.eval.cells import number

# why a metric the evaluation recorded has no "ci", by metric name
NO_CI = {
    "ece": "ECE bins all questions together, not a mean over questions to resample",
    "brier": "the evaluation does not resample Brier (per-question scores: predictions.jsonl)",
}
NO_CI_RECORDED = "the evaluation recorded none"
# shares of some of the questions recorded as value and n only: Wilson's interval from
# the two, as results.md's table gives them (reports/paired.py _share_cell)
SHARES = frozenset({"false_confidence"})
# with_ci's point "interval" [v, v], recorded without its kind ("interval")
POINT = "eval.bootstrap=0, fewer than 2 questions, or every score equal"


def metric_rows(stage: dict[str, Any], folder: Path) -> list[tuple[str, str, str]]:
    """(metric, value with its interval or why none, n) for each of `stage`'s metrics."""
    results = _results(folder)
    metrics = stage.get("metrics") or {}
    return [(key, *_cell(key, value, stage, results)) for key, value in metrics.items()]


def _results(folder: Path) -> dict[str, Any] | None:
    """The stage's eval/results.json, or None when it wrote none (or it is unreadable)."""
    path = folder / "eval" / "results.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cell(
    key: str, value: Any, stage: dict[str, Any], results: dict[str, Any] | None
) -> tuple[str, str]:
    """(value cell, n cell) of one metric: an evaluation's from its results.json, a
    loss from the rows it was averaged over, anything else said to have no interval."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "eval":
        return _eval_cell(parts[1], parts[2], value, results)
    if key.endswith("loss"):
        return _loss_cell(key, value, stage)
    pairs = (stage.get("metrics") or {}).get(key.replace("_accuracy", "_heldout_pairs"))
    if "_accuracy" in key and isinstance(pairs, int) and pairs > 0:
        return _share_cell(value, pairs), f"{pairs} held-out pairs"
    if isinstance(value, int) and not isinstance(value, bool):
        return _why(value, "a count"), "n/a (a count)"
    why = "a p-value" if key.endswith("_p") else "not computed for this stage metric"
    return _why(value, why), "not recorded"


def _share_cell(value: Any, n: int) -> str:
    """A share of `n` (a reward model's held-out pairwise accuracy, false confidence on
    the maybe / unanswerable questions), with Wilson's interval: what the reward-model
    and results tables compute from the same two numbers."""
    from medalign.eval.metrics import wilson_count

    if not isinstance(value, int | float) or value != value:
        return _why(value, "nothing was counted")
    return f"{_text(value)} {interval(*wilson_count(int(round(value * n)), n))}"


def _eval_cell(
    dataset: str, metric: str, value: Any, results: dict[str, Any] | None
) -> tuple[str, str]:
    """`value [lo, hi]` and n from results.json; where it holds no interval, why not."""
    result = (results or {}).get(dataset) or {}
    recorded = (result.get("metrics") or {}).get(metric)
    if not isinstance(recorded, dict):
        return _why(value, "eval/results.json does not hold it"), "not recorded"
    n = recorded.get("n", result.get("n"))
    n_text = "not recorded" if n is None else str(n)
    ci, shown = recorded.get("ci"), recorded.get("value", value)
    if not ci and metric in SHARES and isinstance(n, int) and n > 0:
        return _share_cell(shown, n), n_text  # results.md's Wilson interval, the same n
    if not ci:
        return _why(shown, NO_CI.get(metric, NO_CI_RECORDED)), n_text
    if "interval" not in recorded and ci[0] == ci[1]:
        return _why(shown, POINT), n_text
    return f"{_text(shown)} {interval(*ci)}", n_text


def _loss_cell(key: str, value: Any, stage: dict[str, Any]) -> tuple[str, str]:
    """A validation loss: its n is the held-out rows; a training loss: the training rows.
    Neither is a mean over independent questions, so neither gets an interval."""
    if key.startswith("eval/"):
        rows = (stage.get("validation") or {}).get("rows")
        why = "the mean token loss of the held-out rows, recorded without per-row losses"
        return _why(value, why), "not recorded" if rows is None else f"{rows} held-out rows"
    rows = (stage.get("data") or {}).get("rows")
    why = "a mean over training batches, not a sample of questions"
    return _why(value, why), "not recorded" if rows is None else f"{rows} training rows"


def _why(value: Any, reason: str) -> str:
    return f"{_text(value)} (no interval: {reason})"


def _text(value: Any) -> str:
    """As the table printed it before (three decimals below 100, fewer above), a count
    as it is, n/a for nothing."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:.4g}"
    return f"{value:.1f}" if abs(value) >= 100 else number(value)
