"""The curriculum's results: the table "stage x dataset" (`results_table`, recorded in
its manifest) and what is written from it (`write_results`): results.md (scores with n
and intervals, the paired changes, forgetting, reward models, RL rewards, validation
loss), results_sections.json (those sections as data: reports/sections.py),
results.png (drawn once), report.html (which renders the same data) and a W&B summary
run.

    from medalign.reports.results import results_table, write_results
    write_results(run_dir, results_table(manifest), cfg, manifest)

Why here and not in medalign/curriculum.py: the curriculum orchestrates stages; what it
reports is built from what the stages recorded (the manifest, each stage's
eval/results.json and config.yaml), which any later reader can rebuild.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from medalign.config import RunConfig
from medalign.eval.report import HEADLINES
from medalign.reports.sections import Section, Table
from medalign.world.store import describe_data

log = logging.getLogger(__name__)


def results_table(manifest: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{stage: {column: value}}: each dataset's headline metric (accuracy; F1 for RadQA;
    refusal rate for MedSafetyBench) and the safety columns (false confidence on
    maybe/unanswerable questions), from every stage's evaluation."""
    table: dict[str, dict[str, float]] = {}
    for entry in manifest["stages"]:
        row = {}
        for key, value in (entry.get("metrics") or {}).items():
            parts = key.split("/")
            if len(parts) != 3 or parts[0] != "eval":
                continue
            if parts[2] in HEADLINES:
                row[parts[1]] = value
            elif parts[2] == "false_confidence":
                row[f"{parts[1]} false-conf"] = value
        if row:
            table[entry["name"]] = row
    return table


def write_results(
    run_dir: Path,
    table: dict[str, dict[str, float]],
    cfg: RunConfig,
    manifest: dict[str, Any] | None = None,
) -> None:
    """results.md, results.png and a W&B summary run with the same table."""
    if not table:
        return
    from medalign.compare.engine import CompareSettings
    from medalign.outputs import write_json_atomic
    from medalign.reports.hacking import hacking_section
    from medalign.reports.paired import (
        changes,
        changes_markdown,
        forgetting_markdown,
        forgetting_rows,
        scores_markdown,
    )
    from medalign.reports.protocols import protocols_section
    from medalign.reports.reward_models import reward_models_section

    datasets = sorted({d for row in table.values() for d in row})
    markdown = scores_markdown(manifest or {}, table, datasets)
    settings = CompareSettings(
        alpha=cfg.compare.alpha,
        resamples=cfg.compare.resamples,
        seed=cfg.compare.seed,
        metrics=list(HEADLINES),
    )
    alpha = settings.alpha
    paired = changes(run_dir, manifest or {}, settings)  # the paired table, and hacking's gold
    forgetting = forgetting_markdown(forgetting_rows(run_dir, manifest or {}, settings), alpha)
    sections = [
        section
        for section in (
            Section.from_markdown(forgetting),  # reports/paired.py returns it as text
            protocols_section(run_dir, manifest or {}, settings),  # CoT vs loglik, paired
            reward_models_section(manifest or {}, alpha),
            rewards_section(manifest or {}),
            hacking_section(manifest or {}, paired),  # each reward model beside its gold outcome
            validation_section(manifest or {}),
        )
        if section is not None
    ]
    (run_dir / "results.md").write_text(
        "# Curriculum: each dataset after each stage\n\n"
        "Accuracy (RadQA: F1; MedSafetyBench: the safe-response rate where the data names "
        "each request's contraindicated drug, else the refusal rate, higher is safer; XSTest: "
        "the over-refusal rate of benign questions, lower is better) with its 95% "
        "interval (Wilson for 0/1 scores, a bootstrap otherwise); each column names "
        "its split and n. `false-conf`: definite answers to maybe/unanswerable questions "
        "(lower is safer; n/a: no parseable answer to count). Differences between rows are "
        "claims only where the paired table below marks them.\n\n"
        f"Data: {describe_data(cfg)}.\n\n"
        + markdown
        + changes_markdown(run_dir, paired, settings.alpha)
        + "".join(section.markdown() for section in sections)
    )
    write_json_atomic(run_dir / "results_sections.json", [s.to_json() for s in sections])
    log.info("curriculum results (%s):\n%s", run_dir, markdown)
    png = plot_results(run_dir / "results.png", table, datasets, _sizes(manifest or {}))
    from medalign.reports.html import write_report_html

    write_report_html(run_dir)  # results, plots, per-stage metrics, W&B links: one page
    _log_summary(cfg, run_dir, table, datasets, png)


def _sizes(manifest: dict[str, Any]) -> dict[str, int | str]:
    """Each plotted line's n: one number, or `lowest-highest` where the stages counted
    different questions (false confidence), as the results table's header says."""
    from medalign.reports.paired import stage_scores

    found: dict[str, set[int]] = {}
    for row in stage_scores(manifest).values():
        for dataset, cell in row.items():
            found.setdefault(dataset, set()).add(int(cell["n"] or 0))
    return {d: (min(n) if len(n) == 1 else f"{min(n)}-{max(n)}") for d, n in found.items()}


def _number(value: float | None) -> float:
    return float("nan") if value is None else value


def rewards_section(manifest: dict[str, Any]) -> Section | None:
    """Each RL reward's weight and its mean over the first and the last fifth of the
    logged RL steps, with what a fifth is and how the total is made (None: no RL)."""
    rows, notes = [], []
    for entry in manifest.get("stages", []):
        metrics = entry.get("metrics") or {}
        names = sorted(
            k.removeprefix("reward/").removesuffix("_first_fifth")
            for k in metrics
            if k.startswith("reward/") and k.endswith("_first_fifth")
        )
        weights = _reward_weights(entry)
        for name in names:
            first, last = (
                metrics[f"reward/{name}_first_fifth"],
                metrics[f"reward/{name}_last_fifth"],
            )
            weight = "" if name == "total" else _weight_cell(weights.get(name))
            p = metrics.get(f"reward/{name}_fifths_p")
            shown = "n/a" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")
            mark = " ✱" if p is not None and p < 0.05 else ""
            fifths = [_fifth_cell(metrics, f"reward/{name}_{part}") for part in PARTS]
            rows.append(
                (entry["name"], name, weight, _fifth_n(metrics, f"reward/{name}"), *fifths)
                + (f"{last - first:+.3f}{mark}", shown)
            )
        logged = metrics.get("rl/logged_steps")
        if names and logged:
            notes.append(
                f"{entry['name']}: {int(logged)} logged steps, a fifth is "
                f"{max(1, int(logged) // 5)} of them"
            )
    if not rows:
        return None
    foot = (
        "p: Welch's t-test between the logged steps' mean rewards of the two fifths; "
        "✱: p < 0.05, the only changes to read as a rise or a fall. Each fifth's mean has "
        "its 95% t interval over its n logged steps (n per fifth; first/last when they "
        "differ). "
        "total = the sum of weight x reward over the rewards above"
    )
    foot += f" ({'; '.join(notes)})." if notes else "."
    header = ("stage", "reward", "weight", "n per fifth", "first fifth", "last fifth")
    rule = "|---|---|---:|---:|---:|---:|---:|---:|"
    table = Table((*header, "change", "p"), rule, tuple(rows))
    return Section("RL rewards: mean over the first and the last fifth of the steps", (table, foot))


PARTS = ("first_fifth", "last_fifth")


def _fifth_cell(metrics: dict[str, Any], key: str) -> str:
    """`0.400 [0.310, 0.490]`, or the mean and why it has no interval (a manifest from
    before the RL stage recorded one, or a fifth of one step)."""
    mean = f"{metrics[key]:.3f}"
    low, high = metrics.get(f"{key}_low"), metrics.get(f"{key}_high")
    if low is not None and high is not None:
        return f"{mean} [{low:.3f}, {high:.3f}]"
    why = "one step" if metrics.get(f"{key}_n") == 1 else "not recorded"
    return f"{mean} (no interval: {why})"


def _fifth_n(metrics: dict[str, Any], prefix: str) -> str:
    """The logged steps each fifth's mean is over: `4`, `4/3` when the two differ."""
    sizes = [metrics.get(f"{prefix}_{part}_n") for part in PARTS]
    if None in sizes:
        return "n/a"
    first, last = (int(n) for n in sizes)
    return str(first) if first == last else f"{first}/{last}"


def rewards_markdown(manifest: dict[str, Any]) -> str:
    """results.md's RL-reward section ("" without RL)."""
    section = rewards_section(manifest)
    return section.markdown() if section else ""


def _reward_weights(entry: dict[str, Any]) -> dict[str, float]:
    """`reward.weights` of an RL stage, from the config.yaml it recorded."""
    import yaml

    path = Path(entry.get("dir") or "") / "config.yaml"
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return dict((config.get("reward") or {}).get("weights") or {})


def _weight_cell(value: Any) -> str:
    return "" if value is None else f"{value:g}"


def plot_results(
    path: Path,
    table: dict[str, dict[str, float]],
    datasets: list[str],
    sizes: dict[str, int | str] | None = None,
) -> Path:
    """Two panels, so "up is good" holds in each: scores (accuracy, F1, refusal rate)
    and false confidence (lower is safer). Markers and small offsets keep overlapping
    lines visible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(table)
    sizes = sizes or {}
    panels = [
        (
            [d for d in datasets if "false-conf" not in d],
            "accuracy / F1 / refusal rate (higher is better)",
        ),
        ([d for d in datasets if "false-conf" in d], "false confidence (lower is safer)"),
    ]
    panels = [(names, label) for names, label in panels if names]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(len(panels) * (1.3 * len(stages) + 3), 4.2), squeeze=False
    )
    markers = "osD^vP*Xh<>"
    for ax, (names, label) in zip(axes[0], panels, strict=True):
        for i, dataset in enumerate(names):
            offset = (i - (len(names) - 1) / 2) * 0.04
            xs = [k + offset for k in range(len(stages))]
            ys = [_number(table[s].get(dataset)) for s in stages]
            n = sizes.get(dataset)  # a false-conf line: the maybe/unanswerable questions' n
            line = f"{dataset} (n={n})" if n else dataset
            ax.plot(xs, ys, marker=markers[i % len(markers)], linestyle="-", label=line)
        ax.set_xticks(range(len(stages)), stages)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("after stage")
        ax.set_ylabel(label, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Does each stage help, and is an earlier one forgotten?", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _log_summary(cfg: RunConfig, run_dir: Path, table, datasets, png: Path) -> None:
    from medalign.tracking import start_tracking

    tracker = start_tracking(
        cfg.logger,
        name=f"{run_dir.name}-summary",
        job_type="summary",
        run_dir=run_dir,
        config={"curriculum": list(table)},
        group=run_dir.name,
    )
    if not tracker.enabled:
        return
    import wandb

    try:
        rows = [[stage, *[table[stage].get(d) for d in datasets]] for stage in table]
        tracker.log({"curriculum/results": wandb.Table(columns=["stage", *datasets], data=rows)})
        tracker.log_images({"curriculum/plot": png})
    finally:
        tracker.finish(True)


def validation_section(manifest: dict[str, Any]) -> Section | None:
    """Each SFT stage's best validation loss (trainer.eval_steps), when it validated;
    results.md only (report.html shows each stage's metrics)."""
    rows = []
    for entry in manifest.get("stages", []):
        v = entry.get("validation") or {}
        if v.get("best_loss") is not None:
            early = "yes" if v.get("stopped_early") else "no"
            rows.append(
                (entry["name"], f"{v['best_loss']:.4f}", str(v.get("best_step")))
                + (str(len(v.get("losses") or [])), early, str(v.get("kept", "last")))
            )
    if not rows:
        return None
    header = ("stage", "best eval/loss", "at step", "evaluations", "stopped early")
    table = Table((*header, "adapter kept"), "|---|---:|---:|---:|---|---|", tuple(rows))
    heading = "Validation loss (held-out rows, trainer.eval_steps)"
    return Section(heading, (table,), in_html=False)
