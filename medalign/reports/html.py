"""One self-contained `report.html` for a curriculum, a single stage or a sweep directory:
the results tables, the plots (embedded as base64 PNG), each stage's metrics and links to
its W&B run. Open it in any browser; it loads nothing from the network.

    python -c "from medalign.reports.html import write_report_html; \\
               print(write_report_html('runs/2026-11-25/15-29-08-123456_curriculum'))"

The curriculum calls `write_report_html(run_dir)` after `results.md`, the sweep summary
after `sweep_summary.md`. Everything is read from what the run wrote (`manifest.json`,
each stage's `config.yaml` and `eval/plots/*.png`, `results.png`,
`paired_changes.json`, `results_sections.json`, `sweep_summary.json`): data, never the
Markdown.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

MAX_STAGE_PLOTS = 6  # per stage: the evaluation writes one plot per kind
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1d2430;padding:0 1rem}
h1{font-size:1.5rem}h2{margin-top:2rem;border-bottom:1px solid #dde3ea;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f5f8}
td.best{font-weight:700;background:#eaf6ec}.meta{color:#57606a;font-size:.9rem}
img{max-width:100%;border:1px solid #e1e4e8;margin:.4rem 0}
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:.6rem}
.failed{color:#b3261e}
"""


def write_report_html(run_dir: str | Path) -> Path:
    """Write `<run_dir>/report.html` from what the run recorded; return its path."""
    run_dir = Path(run_dir)
    if (run_dir / "sweep_summary.json").is_file():
        title, body = _sweep(run_dir)
    elif (run_dir / "manifest.json").is_file():
        title, body = _curriculum(run_dir)
    else:
        from medalign.errors import MedalignError

        raise MedalignError(f"{run_dir}: no manifest.json or sweep_summary.json to report on")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
        f"<h1>{_e(title)}</h1>\n{body}\n</body></html>\n"
    )
    out = run_dir / "report.html"
    tmp = out.with_name(".report.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def _curriculum(run_dir: Path) -> tuple[str, str]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    kind = manifest.get("kind", "stage")
    parts = [
        f'<p class="meta">{_e(kind)} in <code>{_e(run_dir)}</code>; medalign '
        f"{_e(manifest.get('medalign_version'))}, commit {_e(manifest.get('git_commit'))}; "
        f"handoff {_e(manifest.get('handoff', '-'))}; started {_e(manifest.get('started', '-'))}"
        "</p>"
    ]
    source = manifest.get("data_source") or (manifest.get("stages") or [{}])[0].get("data_source")
    if source:
        parts.append(f'<p class="meta">Data: {_e(source)}.</p>')
    results = manifest.get("results") or {}
    if results:
        parts += [
            "<h2>Results</h2>",
            "<p>Each dataset after each stage: accuracy (RadQA: F1; MedSafetyBench: refusal "
            "rate, higher is safer) with its 95% interval; each column names its split and n. "
            "<em>false-conf</em>: definite answers to maybe/unanswerable questions (lower is "
            "safer). A unique best per column in bold (none where the best ties).</p>",
            _results_table(results, manifest),
        ]
        parts += _changes_table(run_dir)
        parts += _sections(run_dir)
        png = run_dir / "results.png"
        parts.append(_img(png.read_bytes() if png.is_file() else _plot_results(results), "results"))
    stages = manifest.get("stages", [])
    parts += ["<h2>Stages</h2>", _stages_table(stages, run_dir)]
    for stage in stages:
        parts.append(_stage_section(stage, run_dir))
    return f"medalign report: {run_dir.name}", "\n".join(parts)


def _results_table(results: dict[str, dict[str, float]], manifest: dict[str, Any]) -> str:
    from medalign.reports.paired import column_heading, n_varies, score_text, stage_scores

    scores = stage_scores(manifest)
    columns = sorted({c for row in results.values() for c in row})
    found = {c: [row[c] for row in scores.values() if c in row] for c in columns}
    best: dict[str, float] = {}
    for column in columns:
        values = [row[column] for row in results.values() if _num(row.get(column))]
        if values:
            lower = column.endswith("false-conf")
            top = min(values) if lower else max(values)
            if values.count(top) == 1:  # a tie has no best
                best[column] = top
    rows = []
    for stage, row in results.items():
        cells = []
        for column in columns:
            value = row.get(column)
            mark = " best" if _num(value) and value == best.get(column) else ""
            cell = scores.get(stage, {}).get(column)
            text = score_text(cell, bool(found[column]) and n_varies(found[column])) or _fmt(value)
            cells.append(f'<td class="num{mark}">{_e(text)}</td>')
        rows.append(f"<tr><th>{_e(stage)}</th>{''.join(cells)}</tr>")
    headings = []
    for column in columns:
        headings.append(column_heading(column, found[column]) if found[column] else column)
    head = "".join(f"<th>{_e(c)}</th>" for c in headings)
    return f'<table id="results"><tr><th>stage</th>{head}</tr>{"".join(rows)}</table>'


def _changes_table(run_dir: Path) -> list[str]:
    """results.md's paired changes (paired_changes.json), when the curriculum wrote them."""
    path = run_dir / "paired_changes.json"
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())
    if not rows:
        return []
    from medalign.eval.cells import number
    from medalign.reports.paired import change_text

    body = "".join(
        f"<tr><th>{_e(r['stage'])}</th><td>{_e(r['dataset'])}</td><td>{_e(r['metric'])}</td>"
        f"<td>{_e(change_text(r['previous']))}</td><td>{_e(change_text(r['before']))}</td>"
        f'<td class="num">{_e(number((r["previous"] or r["before"] or {}).get("mde")))}</td>'
        f"<td>{_e(r['verdict'])}</td><td>{_e(r.get('verdict_before', ''))}</td></tr>"
        for r in rows
    )
    return [
        "<h2>What each stage changed (paired)</h2>",
        "<p>Paired on the same questions; ✱: Holm-adjusted p below alpha. Only a marked "
        "change is a gain, a loss or forgetting.</p>",
        '<table id="changes"><tr><th>stage</th><th>dataset</th><th>metric</th>'
        "<th>vs previous stage</th><th>vs first evaluation</th><th>MDE</th>"
        "<th>verdict vs previous stage</th><th>verdict vs first evaluation</th>"
        f"</tr>{body}"
        "</table>",
    ]


def _sections(run_dir: Path) -> list[str]:
    """The results sections the curriculum built as data (results_sections.json: the
    forgetting, reward-model and RL-reward tables; medalign/reports/sections.py), each
    rendered as HTML from the same object results.md was written from."""
    from medalign.reports.sections import Section

    path = run_dir / "results_sections.json"
    if not path.is_file():
        return []
    sections = [Section.from_json(data) for data in json.loads(path.read_text())]
    return [part for section in sections if section.in_html for part in section.html()]


def _stages_table(stages: list[dict[str, Any]], run_dir: Path) -> str:
    rows = []
    for s in stages:
        data = s.get("data") or {}
        metrics = s.get("metrics") or {}
        from medalign.locks import reported_status

        shown = reported_status(s.get("status"), Path(s.get("dir") or run_dir))
        status = _e(shown)
        if shown == "failed":
            status = f'<span class="failed" title="{_e(s.get("error"))}">failed</span>'
        rows.append(
            f"<tr><th>{_e(s.get('name'))}</th><td>{status}</td>"
            f'<td class="num">{_fmt(s.get("seconds"))}{_e(_builds_note(s))}</td>'
            f'<td class="num">{_e(data.get("rows", ""))}</td>'
            f'<td class="num">{_fmt(metrics.get("train/loss"))}</td>'
            f"<td>{_wandb_link(s, run_dir)}</td></tr>"
        )
    return (
        '<table id="stages"><tr><th>stage</th><th>status</th><th>seconds</th><th>rows</th>'
        f"<th>train/loss</th><th>W&amp;B run</th></tr>{''.join(rows)}</table>"
    )


def _builds_note(stage: dict[str, Any]) -> str:
    """` (includes building world-1a2b: 560.0 s)`: a stage's time that includes building
    a cache entry (the first stage pretrains the world model) says so; a later run finds
    the entry built and takes that much less."""
    builds = stage.get("builds") or []
    if not builds:
        return ""
    parts = [f"{b['entry']}: {float(b['seconds']):.1f} s" for b in builds]
    return f" (includes building {'; '.join(parts)}, once per cache)"


def _stage_section(stage: dict[str, Any], run_dir: Path) -> str:
    metrics = stage.get("metrics") or {}
    folder = Path(stage.get("dir") or run_dir)
    plots = sorted((folder / "eval" / "plots").glob("*.png"))[:MAX_STAGE_PLOTS]
    if not metrics and not plots:
        return ""
    from medalign.reports.stage_metrics import metric_rows

    rows = "".join(  # each value with its interval or why none, and its n (issue 36)
        f'<tr><td>{_e(k)}</td><td class="num">{_e(v)}</td><td class="num">{_e(n)}</td></tr>'
        for k, v, n in metric_rows(stage, folder)
    )
    parts = [f"<h2>Stage {_e(stage.get('name'))}</h2>"]
    if rows:
        parts.append(
            '<table class="metrics"><tr><th>metric</th><th>value [95% interval]</th>'
            f"<th>n</th></tr>{rows}</table>"
        )
    if plots:
        images = "".join(_img(p.read_bytes(), f"{stage.get('name')} {p.stem}") for p in plots)
        parts.append(f'<div class="plots">{images}</div>')
    return "\n".join(parts)


def _sweep(sweep_dir: Path) -> tuple[str, str]:
    summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
    metric = summary.get("metric") or "(no sweep.metric)"
    best = summary.get("best") or {}
    rows = []
    for job in summary.get("jobs", []):
        mark = " best" if best and job.get("job") == best.get("job") else ""
        entry = {"wandb_run_id": job.get("wandb_run_id"), "dir": str(sweep_dir / job["job"])}
        rows.append(
            f"<tr><th>{_e(job.get('job'))}</th><td><code>{_e(_job_label(job))}"
            f"</code></td><td>{_e(job.get('status'))}</td>"
            f'<td class="num{mark}">{_fmt(job.get("metric"))}</td>'
            f"<td>{_wandb_link(entry, sweep_dir)}</td></tr>"
        )
    parts = [
        f'<p class="meta">sweep in <code>{_e(sweep_dir)}</code>: {_e(metric)}, '
        f"{_e(summary.get('direction'))}; best job first.</p>",
        "<h2>Jobs</h2>",
        f'<table id="results"><tr><th>job</th><th>changed</th><th>status</th>'
        f"<th>{_e(metric)}</th><th>W&amp;B run</th></tr>{''.join(rows)}</table>",
    ]
    if summary.get("tied"):
        parts.insert(1, f"<p>No single best: {_e('; '.join(summary['tied']))} tie.</p>")
    paired = (summary.get("paired") or {}).get("rows") or []
    if paired:
        from medalign.compare.report import diff_cell, n_cell, p_cell

        body = "".join(
            f"<tr><th>{_e(r['label'])}</th><td>{_e(r['dataset'])}</td><td>{_e(r['metric'])}</td>"
            f'<td class="num">{_e(n_cell(r))}</td><td class="num">{_e(diff_cell(r))}</td>'
            f'<td class="num">{_e(p_cell(r["p_holm"]))}</td><td>{_e(r["verdict"])}</td></tr>'
            for r in paired
        )
        parts += [
            f"<h2>Each job against {_e(summary['paired']['baseline'])} (paired)</h2>",
            '<table id="paired"><tr><th>job</th><th>dataset</th><th>metric</th><th>n</th>'
            f"<th>diff [95% CI]</th><th>p_holm</th><th>verdict</th></tr>{body}</table>",
        ]
    scored = [j for j in summary.get("jobs", []) if _num(j.get("metric"))]
    if scored:
        parts.append(_img(_plot_sweep(scored, metric), "sweep"))
    return f"medalign sweep: {sweep_dir.name}", "\n".join(parts)


def _job_label(job: dict[str, Any]) -> str:
    """What a sweep job changed (summaries before labels existed: all its overrides)."""
    return job.get("label") or " ".join(job.get("overrides", [])) or job.get("job", "")


def _wandb_link(stage: dict[str, Any], run_dir: Path) -> str:
    """A link to the stage's W&B run when its entity and project are known, else the id."""
    if stage.get("wandb_url"):
        return f'<a href="{_e(stage["wandb_url"])}">{_e(stage.get("wandb_run_id") or "run")}</a>'
    run_id = stage.get("wandb_run_id")
    if not run_id:
        return ""
    logger = _recorded(Path(stage.get("dir") or run_dir)).get("logger") or {}
    entity, project = logger.get("entity"), logger.get("project") or "medalign"
    if entity:
        url = f"https://wandb.ai/{entity}/{project}/runs/{run_id}"
        return f'<a href="{_e(url)}">{_e(run_id)}</a>'
    return f"<code>{_e(run_id)}</code> ({_e(project)})"


def _recorded(folder: Path) -> dict[str, Any]:
    path = folder / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return {}
    return config if isinstance(config, dict) else {}


def _plot_results(results: dict[str, dict[str, float]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(results)
    columns = sorted({c for row in results.values() for c in row})
    fig, ax = plt.subplots(figsize=(1.5 * len(stages) + 3, 3.8))
    for column in columns:
        ax.plot(stages, [results[s].get(column, math.nan) for s in stages], "o-", label=column)
    ax.set_ylim(0, 1)
    ax.set_xlabel("after stage")
    ax.set_ylabel("accuracy / F1 / refusal rate")
    ax.legend(fontsize=8)
    return _png(fig)


def _plot_sweep(jobs: list[dict[str, Any]], metric: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(jobs) + 2), 3.5))
    ax.bar([_job_label(j) for j in jobs], [j["metric"] for j in jobs], color="#4c72b0")
    ax.set_ylabel(metric)
    ax.set_xlabel("job (what it changed)")
    ax.tick_params(axis="x", rotation=45)
    return _png(fig)


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return (
            f"{value:.4g}"
            if abs(value) >= 1000
            else f"{value:.1f}"
            if abs(value) >= 100
            else f"{value:.3f}"
        )
    return _e(value)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)
