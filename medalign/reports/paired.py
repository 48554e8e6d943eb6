"""The curriculum's honest tables: each score with its n and interval, and each stage's
change against the previous stage and against `before`, paired on the same questions.

    scores = stage_scores(manifest)                    # {stage: {dataset: cell}}
    text = changes_markdown(run_dir, changes(run_dir, manifest, settings), settings.alpha)

A change is called a gain, a loss or forgetting only when the paired test says so
(Holm-adjusted p below alpha, medalign/compare/); forgetting is a significant drop on a
dataset an earlier stage trained on. Every other change reads "not significant", with the
smallest difference its n could have detected.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from medalign.compare.engine import CompareSettings
from medalign.compare.report import interval, p_cell, signed
from medalign.errors import MedalignError
from medalign.eval.cells import number
from medalign.eval.report import HEADLINES

log = logging.getLogger(__name__)


def stage_scores(manifest: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """{stage: {dataset: {"value", "ci", "n", "split", "limit", "metric"}}} of each
    evaluated stage's headline metric, from its eval/results.json."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for entry in manifest.get("stages", []):
        path = Path(entry.get("dir") or "") / "eval" / "results.json"
        if not path.is_file():
            continue
        results = json.loads(path.read_text())
        row = {}
        for dataset, result in results.items():
            metrics = result.get("metrics") or {}
            metric = next((m for m in HEADLINES if m in metrics), None)
            if metric is None:
                continue
            value = metrics[metric]
            row[dataset] = {
                "value": value.get("value"),
                "ci": value.get("ci"),
                "n": result.get("n"),
                "split": result.get("split", ""),
                "limit": result.get("limit"),
                "metric": metric,
            }
            if "false_confidence" in metrics:
                row[f"{dataset} false-conf"] = _share_cell(
                    metrics["false_confidence"], row[dataset]
                )
        out[entry["name"]] = row
    return out


def _share_cell(share: dict[str, Any], headline: dict[str, Any]) -> dict[str, Any]:
    """A share of some of the questions (false confidence: the maybe / unanswerable ones)
    with its own n and Wilson interval, not the dataset's."""
    from medalign.eval.metrics import wilson_count

    value, n = share.get("value"), int(share.get("n") or 0)
    ci = None
    if n and value is not None and value == value:  # NaN: nothing to count
        ci = list(wilson_count(int(round(value * n)), n))
    return {**headline, "value": value, "ci": ci, "n": n, "metric": "false_confidence"}


def column_heading(dataset: str, cells: list[dict[str, Any]]) -> str:
    """`medqa (test, n=50, capped)`: the split and n a column's scores were read from.
    Where the stages' n differ (false confidence counts only the maybe / unanswerable
    questions each stage gave a verdict on: n=0 before training, n=30 after) the header
    says "n per cell" and each cell names its own n, so no header n sits above cells
    whose intervals are those of another n."""
    first = cells[0]
    n_part = "n per cell" if n_varies(cells) else f"n={first.get('n')}"
    parts = [p for p in (first.get("split"), n_part) if p]
    if first.get("limit") is not None and first.get("n") == first.get("limit"):
        parts.append(f"capped by eval.limit={first['limit']}")
    return f"{dataset} ({', '.join(parts)})"


def n_varies(cells: list[dict[str, Any]]) -> bool:
    """Whether a column's cells were counted over different numbers of questions."""
    return len({cell.get("n") for cell in cells}) > 1


def score_text(cell: dict[str, Any] | None, with_n: bool = False) -> str:
    """`0.250 [0.197, 0.312]`; "n/a" where there was nothing to count (no interval);
    `with_n`: the cell's own n after it (a column whose n differs between stages)."""
    if not cell:
        return ""
    ci = cell.get("ci") or [None, None]
    value = number(cell["value"])
    text = value if value == "n/a" else f"{value} {interval(*ci)}"
    return f"{text} (n={cell.get('n')})" if with_n else text


def scores_markdown(
    manifest: dict[str, Any], table: dict[str, dict[str, float]], columns: list[str]
) -> str:
    """The stage x dataset table: each score with its interval, each column with its
    split and n (values the stages did not record a results.json for: the value alone)."""
    scores = stage_scores(manifest)
    headings, varies = [], {}
    for column in columns:
        cells = [row[column] for row in scores.values() if column in row]
        headings.append(column_heading(column, cells) if cells else column)
        varies[column] = bool(cells) and n_varies(cells)
    lines = ["| stage | " + " | ".join(headings) + " |", "|---|" + "---:|" * len(columns)]
    for stage, row in table.items():
        cells = [
            score_text(scores.get(stage, {}).get(c), varies[c])
            or (number(row[c]) if c in row else "")
            for c in columns
        ]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def changes(
    run_dir: Path, manifest: dict[str, Any], settings: CompareSettings
) -> list[dict[str, Any]]:
    """One row per (stage, dataset): the paired change against the previous evaluated
    stage and against `before` (the first evaluated stage), each with its verdict.

    `verdict` is the verdict against the previous stage, except that a dataset an earlier
    stage trained on reads "forgetting" when its drop from its best row so far is
    significant (the forgetting table's definition) and it is no longer significantly
    above the first evaluation: a score still above where it started is not forgotten.
    `verdict_before` is the verdict against the first evaluation."""
    from medalign.compare.runs import resolve_entry

    evaluated = [
        e["name"]
        for e in manifest.get("stages", [])
        if (Path(e.get("dir") or "") / "eval" / "predictions.jsonl").is_file()
    ]
    if len(evaluated) < 2:
        return []
    runs = {name: resolve_entry(f"{run_dir}:{name}")[0] for name in evaluated}
    pairs = _Pairs(runs, settings)
    scores = stage_scores(manifest)
    rows = []
    for k, name in enumerate(evaluated[1:], start=1):
        by_previous, by_first = pairs.get(evaluated[k - 1], name), pairs.get(evaluated[0], name)
        for key in sorted(by_previous or by_first):
            prev, first = by_previous.get(key), by_first.get(key)
            best = _best_before(key[0], evaluated[:k], scores)
            drop = pairs.get(best, name).get(key) if best else None
            forgetting = _is_forgetting(drop, first)
            rows.append(
                {
                    "stage": name,
                    "dataset": key[0],
                    "metric": key[1],
                    "previous": prev,
                    "before": first,
                    "verdict": "forgetting" if forgetting else (prev or {}).get("verdict", ""),
                    "verdict_before": (first or {}).get("verdict", ""),
                    "best": best,
                }
            )
    return rows


class _Pairs:
    """Paired comparisons between two evaluated stages, each run once: {(dataset,
    metric): row}, empty when the two are not comparable (other questions: logged)."""

    def __init__(self, runs: dict[str, Any], settings: CompareSettings) -> None:
        self.runs, self.settings = runs, settings
        self.done: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}

    def get(self, other: str, name: str) -> dict[tuple[str, str], dict[str, Any]]:
        if (other, name) not in self.done:
            from medalign.compare.engine import compare_groups

            try:
                table = compare_groups([[self.runs[other]], [self.runs[name]]], 0, self.settings)
            except MedalignError as exc:  # not comparable (other questions): say so
                log.warning("results.md: %s vs %s not compared: %s", name, other, exc)
                table = {"rows": []}
            self.done[(other, name)] = {(r["dataset"], r["metric"]): r for r in table["rows"]}
        return self.done[(other, name)]


def _best_before(
    dataset: str, earlier: list[str], scores: dict[str, dict[str, dict[str, Any]]]
) -> str | None:
    """The best row of `dataset` among the earlier stages from the one that trained on it
    (stage names are the datasets they train on); None when no earlier stage did."""
    if dataset not in earlier[1:]:  # earlier[0] is the first evaluation, not training
        return None
    since = earlier[earlier.index(dataset) :]
    return max(since, key=lambda n: scores.get(n, {}).get(dataset, {}).get("value") or -1.0)


def _is_forgetting(drop: dict[str, Any] | None, first: dict[str, Any] | None) -> bool:
    """A significant loss from the best row, and not still a gain over the first row."""
    return bool(drop) and drop["verdict"] == "loss" and (first or {}).get("verdict") != "gain"


def forgetting_rows(
    run_dir: Path, manifest: dict[str, Any], settings: CompareSettings
) -> list[dict[str, Any]]:
    """For each dataset a stage of the curriculum trained on: its best row up to the last
    evaluated stage, and the last stage against that best, paired (Holm over the
    datasets): the forgetting a researcher reports is the drop from the best."""
    from medalign.compare.engine import compare_groups
    from medalign.compare.runs import resolve_entry

    scores = stage_scores(manifest)
    evaluated = list(scores)
    if len(evaluated) < 2:
        return []
    last = evaluated[-1]
    trained = [name for name in evaluated[1:] if name in scores[name]]  # SFT stages
    out = []
    for dataset in trained:
        since = evaluated[evaluated.index(dataset) :]
        best = max(since, key=lambda n: scores[n].get(dataset, {}).get("value") or -1.0)
        cell = scores[best][dataset]
        row = {"dataset": dataset, "metric": cell["metric"], "best": best, "last": last}
        if best != last:
            pair = [
                [resolve_entry(f"{run_dir}:{best}")[0]],
                [resolve_entry(f"{run_dir}:{last}")[0]],
            ]
            try:
                rows = compare_groups(pair, 0, settings)["rows"]
            except MedalignError as exc:
                log.warning("results.md: %s vs %s not compared: %s", last, best, exc)
                rows = []
            match = [r for r in rows if (r["dataset"], r["metric"]) == (dataset, cell["metric"])]
            row["change"] = match[0] if match else None
        out.append(row)
    return out


def forgetting_markdown(rows: list[dict[str, Any]], alpha: float) -> str:
    """results.md's forgetting table: each trained dataset's drop from its best row."""
    if not rows:
        return ""
    lines = [
        "",
        "## Forgetting: each trained dataset, its best row against the last",
        "",
        f"Forgetting is claimed only where the paired drop is significant (✱: p_holm < {alpha}).",
        "",
        "| dataset | metric | best row | last row | last - best | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        change = r.get("change")
        if r["best"] == r["last"]:  # nothing to pair: say so rather than leave it blank
            verdict, text = "best at the end", "no drop: the last row is the best"
        elif change is None:
            verdict, text = "not compared", "n/a: not comparable (the log says why)"
        else:
            lost = change["significant"] and change["diff"] < 0
            verdict = "forgetting" if lost else "no significant drop"
            text = change_text(change)
        lines.append(
            f"| {r['dataset']} | {r['metric']} | {r['best']} | {r['last']} | {text} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def change_text(row: dict[str, Any] | None) -> str:
    if not row:
        return ""
    mark = " ✱" if row["significant"] else ""
    return (
        f"{signed(row['diff'])} {interval(row['ci_low'], row['ci_high'], True)}{mark}, "
        f"p_holm {p_cell(row['p_holm'])}"
    )


def changes_markdown(run_dir: Path, rows: list[dict[str, Any]], alpha: float) -> str:
    """results.md's paired section from `changes` rows, which also go to
    paired_changes.json (report.html)."""
    from medalign.outputs import write_json_atomic

    write_json_atomic(run_dir / "paired_changes.json", rows)
    if not rows:
        return ""
    lines = [
        "",
        "## What each stage changed, paired on the same questions",
        "",
        f"diff = this stage - the other, with its 95% paired bootstrap interval; p_holm: "
        f"McNemar's exact test (a paired permutation test for F1 and clustered questions), "
        f"Holm-corrected over each comparison's datasets; ✱: p_holm < {alpha}. A "
        "change is a gain, a loss or forgetting (a loss on a dataset an earlier stage trained "
        "on) only with ✱; `stage=compare` gives the full table (every metric, b/c, MDE). "
        "Forgetting: a significant drop from the dataset's best row since a stage trained on "
        "it, to a score no longer significantly above the first evaluation (a drop that "
        "leaves it above reads loss in the first verdict and gain in the second).",
        "",
        "| stage | dataset | metric | vs previous stage | vs first evaluation | MDE "
        "| verdict vs previous stage | verdict vs first evaluation |",
        "|---|---|---|---|---|---:|---|---|",
    ]
    for r in rows:
        mde = (r["previous"] or r["before"] or {}).get("mde")
        lines.append(
            f"| {r['stage']} | {r['dataset']} | {r['metric']} | {change_text(r['previous'])} "
            f"| {change_text(r['before'])} | {number(mde)} | {r['verdict']} "
            f"| {r.get('verdict_before', '')} |"
        )
    return "\n".join(lines) + "\n"
