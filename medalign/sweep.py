"""Multirun sweeps: W&B identity per job, the objective a sweeper optimizes, a summary.

    python -m medalign -m stage=medmcqa lora.r=8,16,32 quant=none,int8 sweep.metric=train/loss
    python -m medalign -m hydra/sweeper=optuna_lora stage=medmcqa eval.after_train=true

Every job is its own W&B run in one group (`sweep.group`, default `sweep-<sweep dir>`),
named after its overrides; it returns `sweep.metric` so Optuna (or any sweeper) can
optimize it; a failed job returns NaN and is marked failed in its manifest while the
others go on. When the sweep ends, `sweep_summary.md`/`.json` in the sweep directory list
every job (overrides, status, metric) with the best first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def job_identity(hydra_cfg: Any, cfg: DictConfig) -> dict[str, str]:
    """W&B group and run name for a multirun job."""
    group = cfg.get("sweep", {}).get("group") or f"sweep-{Path(hydra_cfg.sweep.dir).name}"
    name = hydra_cfg.job.override_dirname or f"job{hydra_cfg.job.num}"
    return {"group": group, "name": name}


def objective(metrics: Any, metric: str | None) -> float | None:
    """The value a sweeper optimizes: `sweep.metric` of the job's metrics."""
    if not isinstance(metrics, dict) or not metric:
        return None
    value = metrics.get(metric)
    return float(value) if isinstance(value, int | float) else None


class SweepSummary(Callback):
    """Hydra callback: after a multirun, tabulate every job of the sweep directory."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        metric = OmegaConf.select(config, "sweep.metric")
        maximize = OmegaConf.select(config, "sweep.direction") != "minimize"
        write_summary(sweep_dir, metric, maximize)
        from medalign.reports.html import write_report_html

        write_report_html(sweep_dir)  # sweep_summary + plots in one page a person opens


def write_summary(sweep_dir: Path, metric: str | None, maximize: bool = True) -> list[dict]:
    rows = []
    for job in sorted(p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")):
        manifest_path = job / "manifest.json"
        if manifest_path.is_file():
            manifest = json.loads(manifest_path.read_text())
            stage = manifest["stages"][-1] if manifest.get("stages") else {}
        else:  # it failed before its run directory was claimed (a config error, say)
            stage = {"status": "failed", "error": f"failed at start-up: see {job}/medalign.log"}
        value = objective(stage.get("metrics") or {}, metric)
        rows.append(
            {
                "job": job.name,
                "overrides": list(OmegaConf.load(job / ".hydra" / "overrides.yaml")),
                "status": stage.get("status"),
                "metric": value,
                "wandb_run_id": stage.get("wandb_run_id"),
            }
        )

    def key(row: dict) -> float:
        value = row["metric"]
        if value is None or math.isnan(value):
            return math.inf
        return -value if maximize else value

    rows.sort(key=key)
    summary = {
        "metric": metric,
        "direction": "maximize" if maximize else "minimize",
        "best": rows[0] if rows and rows[0]["metric"] is not None else None,
        "jobs": rows,
    }
    (sweep_dir / "sweep_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        f"# Sweep {sweep_dir.name}: {metric or '(no sweep.metric)'}",
        "",
        "| job | overrides | status | metric |",
        "|---|---|---|---:|",
    ]
    for r in rows:
        value = "" if r["metric"] is None else f"{r['metric']:.4f}"
        lines.append(f"| {r['job']} | {' '.join(r['overrides'])} | {r['status']} | {value} |")
    (sweep_dir / "sweep_summary.md").write_text("\n".join(lines) + "\n")
    return rows
