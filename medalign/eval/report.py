"""Write an evaluation's reports: results.json, predictions.jsonl, summary.md and plots.

The Markdown table is what a person reads first; the PNGs are for looking (accuracy with
its 95% interval per dataset, and a reliability diagram per choice dataset).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medalign.eval.cells import number
from medalign.outputs import write_json_atomic


def write_reports(
    out: Path, results: dict[str, Any], predictions: list[dict], plots: bool = True
) -> dict[str, Path]:
    """results.json, predictions.jsonl and summary.md first; then the plots, if asked."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", results)
    with (out / "predictions.jsonl").open("w") as handle:
        for row in predictions:
            handle.write(json.dumps(row) + "\n")
    (out / "summary.md").write_text(summary_markdown(results))
    return plot(out / "plots", results) if plots else {}


# each dataset's headline metric, the first of these it scored: accuracy (by CoT: the
# strict extraction, lm-eval's strict-match), F1 for extractive QA; on harmful requests the
# safe-response rate where the data knows the drug to avoid (the world), else the refusal
# rate; over-refusal of benign questions (XSTest: lower is better)
HEADLINES = (
    "acc",
    "acc_cot_strict",
    "f1",
    "safe_response_rate",
    "over_refusal_rate",
    "refusal_rate",
)


def headline(result: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The metric a dataset is judged by: accuracy, or F1 for extractive QA (an lm-eval
    task without either: its first metric)."""
    for name in HEADLINES:
        if name in result["metrics"]:
            return name, result["metrics"][name]
    if result.get("mode") == "lm_eval" and result["metrics"]:
        return next(iter(result["metrics"].items()))
    raise KeyError(f"no headline metric in {sorted(result['metrics'])}")


def score_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(protocol, metric, its unparsed metric) for each row a dataset gets in a table: the
    headline under its mode (loglik, generate ...), or under eval.mode=cot one row per
    extraction ("cot strict", "cot flexible", and "cot strict maj@k" ... with k samples),
    so no score is shown without the protocol that measured it."""
    if result.get("mode") != "cot":
        return [(result["mode"], headline(result)[0], "unparseable_rate")]
    metrics = result["metrics"]
    rows = []
    for how in ("strict", "flexible"):
        rows.append((f"cot {how}", f"acc_cot_{how}", f"unparsed_cot_{how}"))
        voted = [m for m in metrics if m.startswith("maj") and m.endswith(f"_cot_{how}")]
        rows += [(f"cot {how} maj@{m[3:].split('_')[0]}", m, "") for m in voted]
    return rows


def summary_markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Evaluation",
        "",
        "| dataset | split | mode | n | metric | value | 95% CI | acc_norm | ECE | Brier "
        "| unparseable |",
        "|---|---|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, result in results.items():
        cell = _cells(result["metrics"])
        for protocol, metric, unparsed in score_rows(result):
            if metric not in result["metrics"]:  # no question scored
                continue
            value = result["metrics"][metric]
            lo, hi = value.get("ci", [value["value"]] * 2)
            n = value.get("n", result["n"])  # the metric's own rows (XSTest: safe prompts)
            lines.append(
                f"| {name} | {result['split']} | {protocol} | {n} | {metric} | "
                f"{number(value['value'])} | {_interval(lo, hi)} | {cell('acc_norm')} | "
                f"{cell('ece')} | {cell('brier')} | {cell(unparsed)} |"
            )
    safety_keys = (
        "false_confidence",
        "safe_response_rate",
        "refusal_rate",
        "over_refusal_rate",
        "contraindicated_rate",
        "safety_reward",
        "harm_score",
    )
    safety_rows = [
        f"| {name} | {key} | {number(cell['value'])} | "
        f"{_interval(*cell.get('ci', [cell['value']] * 2))} | {cell['n']} |"
        for name, result in results.items()
        for key in safety_keys
        if (cell := result["metrics"].get(key)) is not None
    ]
    if safety_rows:
        lines += [
            "",
            "## Safety (false confidence on maybe/unanswerable, over-refusal of benign "
            "questions, recommending a contraindicated drug: lower is safer; safe response to "
            "and refusal of harmful requests: higher is safer; safety_reward: the safety "
            "reward model's judgement, not an outcome)",
            "",
            "| dataset | metric | value | 95% CI | n |",
            "|---|---|---:|---|---:|",
            *safety_rows,
        ]
    for name, result in results.items():
        for key, title in (
            ("by_subject", "subject"),
            ("by_step", "step"),
            ("by_category", "AMA principle (refusal rate)"),
        ):
            if key in result:
                lines += [
                    "",
                    f"## {name}: accuracy by {title}",
                    "",
                    f"| {title} | n | acc |",
                    "|---|---:|---:|",
                ]
                rows = result[key].items()
                lines += [f"| {g} | {v['n']} | {number(v['acc'])} |" for g, v in rows]
        if "confusion" in result:
            cols = list(next(iter(result["confusion"].values())))
            lines += [
                "",
                f"## {name}: confusion (rows gold, columns predicted)",
                "",
                "| gold | " + " | ".join(cols) + " |",
                "|---|" + "---:|" * len(cols),
            ]
            lines += [
                f"| {g} | " + " | ".join(str(row[c]) for c in cols) + " |"
                for g, row in result["confusion"].items()
            ]
    return "\n".join(lines) + "\n"


def _interval(lo: float | None, hi: float | None) -> str:
    return "n/a" if number(lo) == "n/a" or number(hi) == "n/a" else f"{lo:.3f}-{hi:.3f}"


def _cells(metrics: dict[str, Any]):
    def cell(key: str) -> str:
        return number(metrics[key]["value"]) if key and key in metrics else ""

    return cell


def plot(folder: Path, results: dict[str, Any]) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    names = list(results)
    values = [headline(results[n])[1] for n in names]
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.5))
    heights = [v["value"] for v in values]
    errors = [
        [v["value"] - v.get("ci", [v["value"]] * 2)[0] for v in values],
        [v.get("ci", [v["value"]] * 2)[1] - v["value"] for v in values],
    ]
    ticks = [f"{n}\n{results[n].get('split', '')} n={results[n]['n']}" for n in names]
    ax.bar(ticks, heights, yerr=errors, capsize=4, color="#4C72B0")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (RadQA: F1, safety: refusal rate)")
    ax.set_title("Evaluation: 95% intervals (Wilson for accuracy), n under each bar")
    fig.tight_layout()
    paths["accuracy"] = folder / "accuracy.png"
    fig.savefig(paths["accuracy"], dpi=100)
    plt.close(fig)

    reliability = {n: r["reliability"] for n, r in results.items() if r.get("reliability")}
    if reliability:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        for name, bins in reliability.items():
            ax.plot(
                [b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label=name
            )
        ax.set_xlabel("confidence of the top choice")
        ax.set_ylabel("accuracy")
        ax.set_title("Reliability")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths["reliability"] = folder / "reliability.png"
        fig.savefig(paths["reliability"], dpi=100)
        plt.close(fig)
    return paths
