"""The reward models' held-out pairwise accuracy, as the curriculum's results.md shows it.

    section = reward_models_section(manifest)   # data: results.md and report.html
    text = reward_models_markdown(manifest)

A reward stage scores its held-out pairs (questions no training pair asked): accuracy is
the share whose chosen answer scores above the rejected one, overall and per kind of pair
(a templated kind can be trivially separable while another needs knowledge). Each row
carries n, a Wilson interval and an exact binomial test against chance (0.5): a model is
"above chance" only where that test says so, "below chance" where it says the model
prefers the rejected answers (the world's safety model on dose questions, 2026-12-07: the
benign twins reward the same answer), and a 1.000 is named for what it is.
"""

from __future__ import annotations

from typing import Any

from medalign.compare.report import p_cell
from medalign.eval.metrics import wilson_count
from medalign.reports.sections import Section, Table

OBJECTIVES = ("helpfulness", "safety")
BELOW = "below chance ✱: prefers the rejected answer (RL against it is paid for it)"


def reward_model_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per objective (kind "all") and per kind of pair: accuracy, n, interval, p."""
    from scipy.stats import binomtest

    rows = []
    for objective in OBJECTIVES:
        prefix = f"reward/{objective}_"
        kinds = sorted(
            k.removeprefix(prefix + "accuracy_")
            for k in metrics
            if k.startswith(prefix + "accuracy_")
        )
        for kind in ["all", *kinds] if len(kinds) > 1 else ["all"]:  # one kind: "all" is it
            suffix = "" if kind == "all" else f"_{kind}"
            accuracy = metrics.get(f"{prefix}accuracy{suffix}")
            n = int(metrics.get(f"{prefix}heldout_pairs{suffix}") or 0)
            if accuracy is None or n == 0:
                continue
            wins = int(round(accuracy * n))
            low, high = wilson_count(wins, n)
            rows.append(
                {
                    "objective": objective,
                    "kind": kind,
                    "n": n,
                    "accuracy": wins / n,
                    "ci": (low, high),
                    "p_chance": float(binomtest(wins, n, 0.5).pvalue),
                }
            )
    return rows


def reward_models_section(manifest: dict[str, Any], alpha: float = 0.05) -> Section | None:
    """results.md's reward-model table (None where no stage trained a reward model)."""
    rows = []
    for entry in manifest.get("stages", []):
        for row in reward_model_rows(entry.get("metrics") or {}):
            low, high = row["ci"]
            verdict = "not above chance"
            if row["p_chance"] < alpha:  # a model that prefers the rejected answer: RL
                below = row["accuracy"] < 0.5  # against it is paid for what it should avoid
                verdict = BELOW if below else "above chance ✱"
            if row["accuracy"] == 1.0:
                verdict += "; every pair right (separable: check what differs)"
            rows.append(
                (entry["name"], row["objective"], row["kind"], str(row["n"]))
                + (f"{row['accuracy']:.3f} [{low:.3f}, {high:.3f}]", p_cell(row["p_chance"]))
                + (verdict,)
            )
    if not rows:
        return None
    about = (
        "Share of held-out preference pairs (questions no training pair asked) whose chosen "
        "answer the model scores above the rejected one, with its 95% Wilson interval; p: "
        "exact binomial test against chance (0.5)."
    )
    header = ("stage", "model", "pairs", "n", "accuracy", "p (vs 0.5)", "reading")
    table = Table(header, "|---|---|---|---:|---:|---:|---|", tuple(rows))
    return Section("Reward models: held-out pairwise accuracy", (about, table))


def reward_models_markdown(manifest: dict[str, Any], alpha: float = 0.05) -> str:
    """results.md's reward-model section ("" where no stage trained a reward model)."""
    section = reward_models_section(manifest, alpha)
    return section.markdown() if section else ""
