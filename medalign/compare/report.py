"""Write a comparison: compare.json (the table's data), compare.md (the table a person
reads), compare.png (a forest plot of the differences with their intervals).

A primary row is marked where Holm's adjusted p is below alpha (and the configurations
have compare.min_seeds seeds, and the p's Monte Carlo error cannot flip it): only such a
difference is called a gain or a loss; every other row says why not, and how large a
difference its n could have detected (MDE, 80% power). Secondary rows are never marked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medalign.eval.cells import number
from medalign.outputs import write_json_atomic

MARK = "✱"  # Holm-adjusted p below alpha
UNADJUSTED = "†"  # the unadjusted interval excludes 0 beside a verdict that is no claim


def p_cell(p: float | None) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def signed(value: float) -> str:
    """+0.123; a nonzero difference below a thousandth in two significant digits
    (-2.1e-04), so a significant change never reads as -0.000."""
    return f"{value:+.1e}" if 0 < abs(value) < 0.0005 else f"{value:+.3f}"


def interval(low: float | None, high: float | None, signed_values: bool = False) -> str:
    if number(low) == "n/a" or number(high) == "n/a":
        return "n/a"
    if signed_values:
        return f"[{signed(low)}, {signed(high)}]"
    return f"[{low:.3f}, {high:.3f}]"


def n_cell(row: dict[str, Any]) -> str:
    """n, with seeds (questions x seeds) and the cap (eval.limit) where they apply."""
    text = str(row["questions"])
    if row.get("seeds", 1) > 1:
        text += f" x {row['seeds']} seeds"
    if row.get("limit") is not None and row["questions"] >= row["limit"]:
        text += f" (capped: eval.limit={row['limit']})"
    return text


def diff_cell(row: dict[str, Any]) -> str:
    mark = f" {MARK}" if row.get("significant") else ""
    if not row.get("significant") and excludes_zero(row):
        mark = f" {UNADJUSTED}"
    return f"{signed(row['diff'])} {interval(row['ci_low'], row['ci_high'], True)}{mark}"


def excludes_zero(row: dict[str, Any]) -> bool:
    low, high = row.get("ci_low"), row.get("ci_high")
    if number(low) == "n/a" or number(high) == "n/a":
        return False
    return bool(low > 0 or high < 0)


def p_with_error(row: dict[str, Any]) -> str:
    """p, and for a Monte Carlo p its standard error and number of draws."""
    text = p_cell(row["p"])
    se = row.get("p_mc_se")
    if se and number(se) != "n/a":
        text += f" ± {se:.4f} ({row['p_resamples']})"
    return text


def metric_cell(row: dict[str, Any]) -> str:
    role = row.get("role")
    return f"{row['metric']} ({role})" if role else row["metric"]


def score_cell(value: float, ci: list[float], spread: dict[str, Any] | None = None) -> str:
    text = f"{number(value)} {interval(*ci)}"
    if spread and number(spread.get("sd")) != "n/a":
        text += f" (seeds {spread['mean']:.3f} ± {spread['sd']:.3f})"
    return text


def markdown(table: dict[str, Any]) -> str:
    rows = table["rows"]
    alpha = table["alpha"]
    lines = [
        f"# Comparison against {table['baseline']}",
        "",
        f"Paired on the same questions. diff = run - baseline with its 95% paired bootstrap "
        f"interval, unadjusted for multiple comparisons ({table['resamples']} resamples, seed "
        f"{table['seed']}); p: McNemar's exact test for 0/1 scores, a paired sign-flip "
        "permutation test for continuous scores and clustered questions (± its Monte Carlo "
        "standard error and draws; where the 99% Monte Carlo interval of p_holm straddles "
        f"alpha it is resampled more, up to {table.get('max_resamples', table['resamples'])}, "
        "else the verdict is undecided); each dataset's primary metric (its Task's, or "
        "compare.metrics) carries the claim: p_holm is Holm's correction over each run's "
        "primary rows, secondary rows are shown without a verdict. "
        f"{MARK}: p_holm < {alpha} with at least {table.get('min_seeds', 1)} seed(s) per "
        f"configuration (fewer: exploratory, no claim). {UNADJUSTED}: the unadjusted interval "
        "excludes 0 but the row is no claim (Holm's p not below alpha, too few seeds, or a "
        "secondary metric). MDE: the smallest difference this n detects with 80% "
        "power (n/a: both runs score every question the same). Scores: 95% Wilson intervals "
        "for 0/1 scores on independent questions; a cluster bootstrap where questions are "
        "clustered (several on one report, or one question's pooled seeds), Wilson over the "
        "clusters where that collapses (0/n); a bootstrap for continuous scores. test: "
        "mcnemar_exact, sign_flip (paired permutation) or sign_flip_clustered.",
        "",
        "| run | dataset (split) | metric | n | baseline | run | diff [95% CI, unadjusted] "
        "| b / c | test "
        "| p | p_holm | MDE | verdict |",
        "|---|---|---|---|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        spread = r.get("seed_scores") or {}
        bc = "" if r.get("b") is None else f"{r['b']} / {r['c']}"
        split = f" ({r['split']})" if r.get("split") else ""
        lines.append(
            f"| {r['label']} | {r['dataset']}{split} | {metric_cell(r)} | {n_cell(r)} "
            f"| {score_cell(r['baseline'], r['baseline_ci'], spread.get('baseline'))} "
            f"| {score_cell(r['run'], r['run_ci'], spread.get('run'))} | {diff_cell(r)} | {bc} "
            f"| {r['test']} | {p_with_error(r)} | {p_cell(r['p_holm'])} | {number(r['mde'])} "
            f"| {r['verdict']} |"
        )
    if not rows:
        lines.append("| (no metric in common) ||||||||||||")
    needs = table.get("needs") or []
    if needs:
        lines += ["", "No claim yet: too few seeds.", ""] + [f"- {n}" for n in needs]
    return "\n".join(lines) + "\n"


def forest_plot(path: Path, table: dict[str, Any]) -> Path | None:
    """Each (run, dataset) difference with its interval, zero marked: one panel per metric,
    each with its own scale (a log-likelihood's units are not an accuracy's)."""
    rows = table["rows"]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    panels = [[r for r in rows if r["metric"] == m] for m in metrics]
    height = sum(0.3 * len(p) + 0.9 for p in panels) + 0.6
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(9.0, height),
        squeeze=False,
        layout="constrained",
        height_ratios=[len(p) + 2 for p in panels],
    )
    for ax, metric, panel in zip(axes[:, 0], metrics, panels, strict=True):
        ys = list(range(len(panel)))[::-1]
        for y, r in zip(ys, panel, strict=True):
            color = "#C44E52" if r.get("significant") else "#4C72B0"
            low, high = r["diff"] - r["ci_low"], r["ci_high"] - r["diff"]
            ax.errorbar(r["diff"], y, xerr=[[low], [high]], fmt="o", color=color, capsize=3)
        ax.axvline(0.0, color="grey", linestyle="--", linewidth=1)
        labels = [f"{_short(r['label'])} · {r['dataset']} (n={r['n']})" for r in panel]
        ax.set_yticks(ys, labels, fontsize=7)
        ax.set_title(metric, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel(f"run - {_short(table['baseline'])}, 95% paired bootstrap", fontsize=8)
    fig.suptitle(f"Differences (red: Holm-adjusted p < {table['alpha']})", fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _short(label: str, width: int = 48) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def write_comparison(out: Path, table: dict[str, Any], plot: bool = True) -> dict[str, Path]:
    """compare.json, compare.md and (plot) compare.png under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "compare.json", "md": out / "compare.md"}
    write_json_atomic(paths["json"], table)
    paths["md"].write_text(markdown(table))
    if plot and (png := forest_plot(out / "compare.png", table)) is not None:
        paths["png"] = png
    return paths
