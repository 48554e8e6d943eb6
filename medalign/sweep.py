"""Multirun sweeps: W&B identity per job, the objective a sweeper optimizes, a summary.

    python -m medalign -m stage=medmcqa lora.r=8,16,32 quant=none,int8 sweep.metric=train/loss
    python -m medalign -m hydra/sweeper=optuna_lora stage=medmcqa eval.after_train=true

Every job is its own W&B run in one group (`sweep.group`, default `sweep-<sweep dir>`),
named after its overrides; it returns `sweep.metric` so Optuna (or any sweeper) can
optimize it; a failed job returns NaN and is marked failed in its manifest while the
others go on. When the sweep ends, `sweep_summary.md`/`.json` in the sweep directory list
every job (overrides, status, metric) with the best first.

Optuna sweeps survive a kill: `hydra/sweeper=optuna_lora` keeps its study in
`<sweep dir>/optuna.db` (SQLite), and the same command with the same `hydra.sweep.dir`
continues it (`resume_study`): the trials already finished are kept (never rerun), a trial
the kill interrupted is tried again with the same parameters, and only
`n_trials - finished` new trials run, in new job directories.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from medalign.outputs import write_json_atomic

log = logging.getLogger(__name__)
INTERRUPTED = "medalign_interrupted"  # user attribute of a trial a killed sweep left running


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


def check_sweep_metric(hydra_cfg: Any, cfg: Any) -> None:
    """Refuse, before the job trains, a sweep whose objective cannot exist: an Optuna
    sweep with no `sweep.metric`, or an `eval/<dataset>/...` metric that no evaluation of
    this job will produce."""
    from medalign.errors import MedalignError

    target = str(OmegaConf.select(hydra_cfg, "sweeper._target_", default="") or "")
    metric = cfg.sweep.metric
    if not metric:
        if "optuna" in target.lower():
            raise MedalignError(
                "an Optuna sweep optimizes sweep.metric, which is not set: give e.g. "
                "sweep.metric=eval/medmcqa/acc (with eval.after_train=true) or "
                "sweep.metric=train/loss"
            )
        return
    parts = metric.split("/")
    if parts[0] != "eval" or len(parts) < 3 or cfg.eval.backend != "builtin":
        return
    from medalign.stages.spec import stage_spec

    if not stage_spec(cfg.stage.kind).will_evaluate(cfg.eval.after_train):
        raise MedalignError(
            f"sweep.metric={metric}: these jobs do not evaluate; add eval.after_train=true"
        )
    if parts[1] not in cfg.eval.datasets:
        raise MedalignError(
            f"sweep.metric={metric}: {parts[1]!r} is not in eval.datasets {list(cfg.eval.datasets)}"
        )


def sweep_objective(metrics: Any, metric: str | None) -> float | None:
    """`objective`, but a named metric the job did not produce is an error naming the
    ones it did (the sweeper would otherwise get None and stop with a traceback)."""
    from medalign.errors import MedalignError

    value = objective(metrics, metric)
    if metric and value is None:
        have = sorted(
            k
            for k, v in (metrics or {}).items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        )
        raise MedalignError(
            f"sweep.metric={metric!r} is not among this job's metrics: {', '.join(have)}"
        )
    return value


class SweepSummary(Callback):
    """Hydra callback: after a multirun, tabulate every job of the sweep directory."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        metric = OmegaConf.select(config, "sweep.metric")
        maximize = OmegaConf.select(config, "sweep.direction") != "minimize"
        write_summary(sweep_dir, metric, maximize, config)
        from medalign.reports.html import write_report_html

        write_report_html(sweep_dir)  # sweep_summary + plots in one page a person opens


def settle_killed_jobs(sweep_dir: Path, wait_s: float = 15.0) -> list[str]:
    """Mark `interrupted` (with when and why) every job of `sweep_dir` whose manifest
    reads `running` but whose directory no live process holds: a job killed, or one the
    launcher stopped because another was. A job still held after `wait_s` (its process
    not yet gone) is left as it is. Returns the names of the jobs marked."""
    import time

    from medalign.locks import holder

    deadline = time.monotonic() + wait_s
    marked = []
    for job in sorted(p.parent for p in sweep_dir.glob("*/manifest.json")):
        manifest = json.loads((job / "manifest.json").read_text())
        stages = manifest.get("stages") or []
        if not stages or stages[-1].get("status") != "running":
            continue
        while holder(job) is not None and time.monotonic() < deadline:
            time.sleep(0.2)  # the launcher is still killing it
        if holder(job) is not None:
            continue
        stages[-1].update(
            status="interrupted",
            finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            error=f"its process (pid {stages[-1].get('pid')}) ended without a word: "
            "killed, or stopped with the sweep when another job was killed",
        )
        write_json_atomic(job / "manifest.json", manifest)
        marked.append(job.name)
    return marked


def stop_after_killed_job(config: DictConfig, exc: BaseException) -> None:
    """A job's process was killed under `hydra/launcher=local_parallel` (joblib stops the
    others with it): record every job, write the summary, say so in one line, exit 1."""
    import sys

    sweep_dir = Path(config.hydra.sweep.dir)
    marked = settle_killed_jobs(sweep_dir)
    SweepSummary().on_multirun_end(config)
    why = str(exc).split("\n")[0].split(". ")[0].strip()
    print(
        f"medalign: a job's process was killed ({why}); the sweep stopped and "
        f"{len(marked)} job(s) read interrupted ({', '.join(marked) or 'none'}); every job's "
        f"status: {sweep_dir / 'sweep_summary.md'}",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(1)


def write_summary(
    sweep_dir: Path, metric: str | None, maximize: bool = True, cfg: Any = None
) -> list[dict]:
    """sweep_summary.json/.md: every job (labelled by what it changed), best first; no
    best where the top jobs tie; and, where the jobs evaluated, each job against the
    first (or sweep.baseline) paired on the same questions, seeds pooled."""
    from medalign.compare.runs import varying_labels
    from medalign.locks import reported_status

    rows = []
    jobs = sorted(
        (p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")),
        key=lambda p: (len(p.name), p.name),
    )
    overrides = [[str(o) for o in OmegaConf.load(j / ".hydra" / "overrides.yaml")] for j in jobs]
    labels = varying_labels(overrides, [j.name for j in jobs])
    for job, job_overrides, label in zip(jobs, overrides, labels, strict=True):
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
                "label": label,
                "overrides": job_overrides,
                "status": reported_status(stage.get("status"), job),  # a dead `running`
                "metric": value,
                "n": _metric_n(job, metric),  # questions behind an eval/<dataset>/ metric
                "wandb_run_id": stage.get("wandb_run_id"),
            }
        )

    def key(row: dict) -> float:
        value = row["metric"]
        if value is None or math.isnan(value):
            return math.inf
        return -value if maximize else value

    rows.sort(key=key)
    scored = [r for r in rows if r["metric"] is not None and not math.isnan(r["metric"])]
    tied = [r for r in scored if r["metric"] == scored[0]["metric"]] if scored else []
    summary = {
        "metric": metric,
        "direction": "maximize" if maximize else "minimize",
        "best": tied[0] if len(tied) == 1 else None,  # a tie names no best
        "tied": [r["label"] for r in tied] if len(tied) > 1 else [],
        "jobs": rows,
    }
    paired = _paired_section(sweep_dir, cfg)
    summary["paired"] = paired.get("table")
    write_json_atomic(sweep_dir / "sweep_summary.json", summary)
    lines = [f"# Sweep {sweep_dir.name}: {metric or '(no sweep.metric)'}", ""]
    if summary["tied"]:
        lines += [
            f"No single best: {len(tied)} jobs tie at {tied[0]['metric']:.4f} "
            f"({'; '.join(summary['tied'])}).",
            "",
        ]
    lines += ["| job | changed | status | metric | n |", "|---|---|---|---:|---:|"]
    for r in rows:
        value = "" if r["metric"] is None else f"{r['metric']:.4f}"
        n = "" if r.get("n") is None else str(r["n"])
        lines.append(f"| {r['job']} | {r['label']} | {r['status']} | {value} | {n} |")
    (sweep_dir / "sweep_summary.md").write_text("\n".join(lines) + "\n" + paired.get("md", ""))
    return rows


def _metric_n(job: Path, metric: str | None) -> int | None:
    """How many questions an `eval/<dataset>/<metric>` value of `job` was scored on."""
    parts = (metric or "").split("/")
    if len(parts) != 3 or parts[0] != "eval":
        return None
    try:
        results = json.loads((job / "eval" / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return (results.get(parts[1]) or {}).get("n")


def _paired_section(sweep_dir: Path, cfg: Any) -> dict[str, Any]:
    """Each job (seeds pooled) against the first or `sweep.baseline`, paired, when at
    least two jobs wrote predictions; {} otherwise (a train/loss sweep, failed jobs)."""
    from medalign.compare.engine import CompareSettings, compare_groups
    from medalign.compare.report import markdown
    from medalign.compare.runs import group_by_seed, resolve_entry
    from medalign.errors import MedalignError
    from medalign.stages.compare import baseline_index

    if not any(sweep_dir.glob("*/eval/predictions.jsonl")) and not any(
        sweep_dir.glob("*/*/eval/predictions.jsonl")  # curricula: their stages evaluated
    ):
        return {}
    settings = CompareSettings(
        alpha=OmegaConf.select(cfg, "compare.alpha", default=0.05) if cfg else 0.05,
        resamples=OmegaConf.select(cfg, "compare.resamples", default=10_000) if cfg else 10_000,
        metrics=["acc", "f1", "refusal_rate"],
        # a sweep's jobs are configurations: one seed each is exploratory, as in compare
        min_seeds=OmegaConf.select(cfg, "compare.min_seeds", default=3) if cfg else 3,
        max_resamples=OmegaConf.select(cfg, "compare.max_resamples", default=200_000)
        if cfg
        else 200_000,
    )
    try:
        runs = resolve_entry(str(sweep_dir))
        groups = group_by_seed(runs)
        wanted = OmegaConf.select(cfg, "sweep.baseline") if cfg else None
        table = compare_groups(groups, baseline_index(groups, wanted), settings)
    except MedalignError as exc:
        log.warning("sweep summary: the jobs were not compared: %s", exc)
        return {"md": f"\nThe jobs were not compared: {exc}\n"}
    text = markdown(table).replace("# Comparison against", "## Each job against", 1)
    return {"table": table, "md": "\n" + text}


def resume_study(impl: Any) -> dict[str, int]:
    """Continue the Optuna study of a sweeper (hydra-optuna-sweeper's `OptunaSweeperImpl`)
    stored in `impl.storage`: set `impl.n_trials` to the trials still to run and
    `impl.job_idx` past every trial already started (their job directories are kept).
    A trial left `RUNNING` by a killed sweep is marked failed (`medalign_interrupted`) and
    its parameters enqueued, so it runs again; it does not count as done. The sampler is
    reseeded: with the same seed it would draw the first run's parameters again.
    Returns {"done", "interrupted", "remaining"} (all 0 for a new study)."""
    storage = impl.storage
    if not storage:
        return {"done": 0, "interrupted": 0, "remaining": impl.n_trials}
    storage = str(storage)
    if storage.startswith("sqlite:///"):
        prepare_sqlite(storage)
    import optuna
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=impl.study_name, storage=storage)
    except KeyError:  # no such study yet: the plugin creates it
        return {"done": 0, "interrupted": 0, "remaining": impl.n_trials}
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state.is_finished() and not t.user_attrs.get(INTERRUPTED)]
    stale = [t for t in trials if t.state == TrialState.RUNNING]
    for trial in stale:
        study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        study.tell(trial.number, state=TrialState.FAIL)
        if trial.params:
            with warnings.catch_warnings():  # enqueue_trial is "experimental" in optuna 2.10
                warnings.simplefilter("ignore")
                study.enqueue_trial(trial.params)
    remaining = max(impl.n_trials - len(done), 0)
    log.info(
        "Optuna study %r in %s: %d trials done, %d interrupted (run again), %d of n_trials=%d "
        "to run",
        impl.study_name,
        storage,
        len(done),
        len(stale),
        remaining,
        impl.n_trials,
    )
    impl.n_trials = remaining
    # new job directories after those of every trial already started
    impl.job_idx = sum(t.state != TrialState.WAITING for t in trials)
    if trials and hasattr(impl.sampler, "reseed_rng"):  # not the first run's draws again
        impl.sampler.reseed_rng()
    return {"done": len(done), "interrupted": len(stale), "remaining": remaining}


def prepare_sqlite(url: str) -> None:
    """Create the folder and the schema of a SQLite study database, once.

    optuna 2.10 (hydra-optuna-sweeper needs optuna < 3) stamps a new database's schema
    version on a connection SQLAlchemy 2 never commits, then fails its own check with a
    bare AssertionError. Creating optuna's tables and committing the stamp first leaves it
    a database it accepts; an existing database is left as it is."""
    import os

    import alembic.migration
    import alembic.script
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb import storage as rdb

    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sqlalchemy.create_engine(url)
    try:
        models.BaseModel.metadata.create_all(engine)
        script = alembic.script.ScriptDirectory(
            os.path.join(os.path.dirname(rdb.__file__), "alembic")
        )
        with engine.begin() as connection:
            context = alembic.migration.MigrationContext.configure(connection)
            if context.get_current_revision() is None:
                context.stamp(script, script.get_current_head())
    finally:
        engine.dispose()


def main(argv: list[str]) -> int:
    """`python -m medalign.sweep <sweep dir> [sweep.metric] [minimize]`: the summary of a
    sweep that was killed before Hydra's end-of-sweep callback could write it (its killed
    jobs read `interrupted`)."""
    if not argv or not Path(argv[0]).is_dir():
        print(
            "usage: python -m medalign.sweep <sweep dir> [metric, e.g. eval/medqa/acc] [minimize]"
        )
        return 2
    sweep_dir = Path(argv[0])
    metric = argv[1] if len(argv) > 1 else None
    rows = write_summary(sweep_dir, metric, maximize="minimize" not in argv[2:])
    from medalign.reports.html import write_report_html

    write_report_html(sweep_dir)
    print(f"{len(rows)} jobs: {sweep_dir / 'sweep_summary.md'}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
