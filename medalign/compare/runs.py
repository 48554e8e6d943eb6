"""Find the evaluations `compare.runs` names and read their per-question scores.

    entries = ["runs/2026-12-01/10-00-00_medmcqa",          a run directory
               "runs/2026-12-01/11-00-00_curriculum:medqa", a curriculum's stage
               "runs/2026-12-01/11-00-00_curriculum",       its last evaluated stage
               "runs/multirun/2026-12-01/12-00-00"]         a sweep: every job
    runs = [run for entry in entries for run in resolve_entry(entry)]

A run's `eval/predictions.jsonl` holds one row per question with `scores` (each
per-question metric: acc, acc_norm, brier, loglik, exact, f1, refusal_rate ...) and, where
the task declares one, `cluster`; `eval/results.json` holds each dataset's split, n and
fingerprint. Each run also records the overrides it was launched with: runs whose
overrides differ only in `seed=` are one configuration (see `group_by_seed`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medalign.errors import MedalignError

log = logging.getLogger(__name__)
SEED = re.compile(r"^(\+{0,2})seed=")
# overrides and recorded keys that do not change what a run computes, or name the run
_NOT_CONFIG = ("hydra.", "logger.", "logger=", "resume=", "eval.plots=")
_NOT_CONFIG_KEYS = ("seed", "logger", "hydra", "resume", "sweep", "eval.plots")


@dataclass
class Question:
    scores: dict[str, float]
    cluster: str | None


@dataclass
class EvaluatedRun:
    """One evaluation: where it is, what it was launched with, its scores by dataset."""

    label: str
    folder: Path  # the eval folder (predictions.jsonl, results.json)
    overrides: list[str]
    seed: int | None
    backend: str
    results: dict[str, Any]
    questions: dict[str, dict[str, Question]] = field(default_factory=dict)

    config_key: tuple[str, ...] = ()  # what it computed with, but its seed
    root: Path | None = None  # the directory compare.runs named (a curriculum, a sweep job)
    formats: dict[str, str] = field(default_factory=dict)  # dataset name -> its Task
    launch: list[str] | None = None  # the command's overrides (a curriculum's, not a stage's)

    @property
    def launch_without_seed(self) -> list[str]:
        """The overrides that would run this configuration again, but its seed."""
        given = self.overrides if self.launch is None else self.launch
        return [o for o in given if not SEED.match(o) and not o.startswith(_NOT_CONFIG)]

    @property
    def shared_name(self) -> str:
        """Its launch overrides without the seed (a seed group's name)."""
        return " ".join(
            o for o in self.overrides if not SEED.match(o) and not o.startswith(_NOT_CONFIG)
        )


def resolve_entry(entry: str) -> list[EvaluatedRun]:
    """The evaluated runs one `compare.runs` entry names (a sweep names several)."""
    path, stage = _split_stage(entry)
    if not path.exists():
        raise MedalignError(f"compare.runs: {entry!r}: no such directory")
    manifest = _manifest(path)
    if manifest.get("kind") == "curriculum":
        return [_curriculum_stage(path, manifest, stage, entry)]
    if stage:
        raise MedalignError(
            f"compare.runs: {entry!r}: {path} is not a curriculum, so it has no stage {stage!r}"
        )
    jobs = _sweep_jobs(path)
    if jobs:
        labels = varying_labels([_overrides(job) for job in jobs], [j.name for j in jobs])
        found, missing = [], []
        for job, label in zip(jobs, labels, strict=True):
            try:
                found.append(_sweep_job(job, label))
            except MedalignError:  # a job that failed or never evaluated
                missing.append(job.name)
        if missing:
            log.warning(
                "compare: %d job(s) of %s have no evaluation and are left out: %s",
                len(missing),
                path,
                ", ".join(missing),
            )
        if not found:
            raise MedalignError(
                f"compare.runs: {entry!r}: no job of this sweep has predictions.jsonl (run the "
                "sweep with eval.after_train=true)"
            )
        return found
    return [_read(path, _evaluation(path, entry), path.name)]


def _split_stage(entry: str) -> tuple[Path, str | None]:
    """`<dir>:<stage>` -> (dir, stage); a plain path (even one holding ':') -> (path, None)."""
    head, sep, tail = str(entry).rpartition(":")
    if sep and head and "/" not in tail and not Path(entry).exists():
        return Path(head).expanduser(), tail
    return Path(entry).expanduser(), None


def _manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _curriculum_stage(
    path: Path, manifest: dict[str, Any], stage: str | None, entry: str
) -> EvaluatedRun:
    """A curriculum's stage (default: its last evaluated one), launched with the
    curriculum's overrides plus `stage=<name>`."""
    evaluated = [
        s
        for s in manifest.get("stages", [])
        if (Path(s["dir"]) / "eval" / "results.json").is_file()
    ]
    if stage is None:
        if not evaluated:
            raise MedalignError(f"compare.runs: {entry!r}: no stage of this curriculum evaluated")
        chosen = evaluated[-1]
    else:
        chosen = next((s for s in manifest.get("stages", []) if s["name"] == stage), None)
        if chosen is None:
            names = ", ".join(s["name"] for s in manifest.get("stages", []))
            raise MedalignError(f"compare.runs: {entry!r}: no stage {stage!r}; stages: {names}")
    stage_dir = Path(chosen["dir"])
    if not stage_dir.is_absolute():
        stage_dir = path / stage_dir
    folder = _evaluation(stage_dir, entry)
    overrides = [*manifest.get("overrides", []), f"stage={chosen['name']}"]
    key = tuple(sorted(o for o in overrides if not SEED.match(o) and not o.startswith(_NOT_CONFIG)))
    label = f"{path.name}:{chosen['name']}"
    experiment = [o for o in overrides if o.startswith("experiment=")]
    if experiment:  # which curriculum it is, where the folder names do not say
        label += f" ({experiment[-1]})"
    run = _read(stage_dir, folder, label, overrides, key)
    run.root = path
    run.launch = list(manifest.get("overrides", []))
    return run


def _sweep_jobs(path: Path) -> list[Path]:
    """The job directories of a sweep directory (each has `.hydra/overrides.yaml`)."""
    if (path / "manifest.json").is_file():
        return []
    return sorted(
        (p.parent.parent for p in path.glob("*/.hydra/overrides.yaml")),
        key=lambda p: (len(p.name), p.name),  # 2 before 10
    )


def _sweep_job(job: Path, label: str) -> EvaluatedRun:
    """A job of a sweep: a stage run, or a curriculum (its last evaluated stage, labelled
    by what the job changed)."""
    manifest = _manifest(job)
    if manifest.get("kind") == "curriculum":
        run = _curriculum_stage(job, manifest, None, str(job))
        run.label = f"{label}:{run.label.rsplit(':', 1)[-1]}"
        return run
    return _read(job, _evaluation(job, str(job)), label)


def varying_labels(overrides: list[list[str]], fallback: list[str]) -> list[str]:
    """Each sweep job by the overrides that differ between the jobs (`lora.r=16 seed=2`),
    not by its folder name; a job with nothing of its own keeps `fallback`."""
    common = set(overrides[0]).intersection(*map(set, overrides[1:])) if overrides else set()
    return [
        " ".join(o for o in job if o not in common) or name
        for job, name in zip(overrides, fallback, strict=True)
    ]


def _evaluation(run_dir: Path, entry: str) -> Path:
    for folder in (run_dir / "eval", run_dir):
        if (folder / "predictions.jsonl").is_file():
            return folder
    raise MedalignError(
        f"compare.runs: {entry!r}: no predictions.jsonl in {run_dir} (nor in its eval/): "
        f"evaluate it first, e.g. python -m medalign stage=eval init_from={run_dir}"
    )


def _overrides(run_dir: Path) -> list[str]:
    import yaml

    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    return [str(o) for o in (yaml.safe_load(path.read_text()) or [])]


def _recorded_config(run_dir: Path) -> dict[str, Any]:
    import yaml

    try:
        return yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _formats(config: dict[str, Any]) -> dict[str, str]:
    """{dataset name: its format (Task)} from a recorded config's catalogue and dataset."""
    out = {}
    entries = dict(config.get("datasets") or {})
    single = config.get("dataset") or {}
    if isinstance(single, dict) and single.get("name"):
        entries.setdefault(single["name"], single)
    for name, entry in entries.items():
        if isinstance(entry, dict) and entry.get("format"):
            out[str(name)] = str(entry["format"])
    return out


def _config_key(config: dict[str, Any]) -> tuple[str, ...]:
    """The recorded config as sorted `key=value` lines, without the seed and the keys that
    only name or log the run: equal keys = one configuration."""
    from medalign.tracking import flatten

    flat = flatten(config)
    return tuple(
        sorted(
            f"{k}={v!r}"
            for k, v in flat.items()
            if not any(k == d or k.startswith(d + ".") for d in _NOT_CONFIG_KEYS)
        )
    )


def _read(
    run_dir: Path,
    folder: Path,
    label: str,
    overrides: list[str] | None = None,
    key: tuple[str, ...] | None = None,
) -> EvaluatedRun:
    """A curriculum's stages are keyed by the curriculum's overrides (their recorded
    configs name their own run directory); every other run by its recorded config."""
    config = _recorded_config(run_dir)
    results_path = folder / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    run = EvaluatedRun(
        label=label,
        folder=folder,
        overrides=_overrides(run_dir) if overrides is None else list(overrides),
        seed=config.get("seed"),
        backend=str((config.get("eval") or {}).get("backend") or "builtin"),
        results=results,
        config_key=_config_key(config) if key is None else key,
        formats=_formats(config),
    )
    from medalign.data.files import read_jsonl
    from medalign.data.records import BadRows

    path = folder / "predictions.jsonl"
    made = "a run's evaluation writes it whole: evaluate again, stage=eval init_from=<run>"
    for where, row in read_jsonl(path, BadRows(str(path), "error", hint=made)):
        dataset, key, question = _question(row, path, where)
        run.questions.setdefault(dataset, {})[key] = question
    return run


def _question(row: dict[str, Any], path: Path, where: str) -> tuple[str, str, Question]:
    """(dataset, question id, scores) of one predictions.jsonl row. Rows written before
    `scores` existed are scored from gold/predicted (accuracy) or `refused`."""
    if "dataset" not in row or "id" not in row:
        raise MedalignError(f"{path}, {where}: a prediction needs 'dataset' and 'id'")
    scores = row.get("scores")
    if scores is None:
        scores = {}
        if "refused" in row:
            scores["refusal_rate"] = float(bool(row["refused"]))
        elif "gold" in row and "predicted" in row and not isinstance(row["gold"], list):
            scores["acc"] = float(row["predicted"] == row["gold"])
    if not scores:
        raise MedalignError(
            f"{path}, {where}: no per-question scores (field 'scores'); evaluate the "
            "run again with this medalign to write them"
        )
    dataset = str(row["dataset"])
    key = str(row["id"])
    if row.get("filter") not in (None, "none"):  # lm-eval: one row per filter
        key = f"{key}#{row['filter']}"
    cluster = row.get("cluster")
    return dataset, key, Question({k: float(v) for k, v in scores.items()}, cluster)


def group_by_seed(runs: list[EvaluatedRun], pool: bool = True) -> list[list[EvaluatedRun]]:
    """Runs whose launch overrides differ only in `seed=` (and the stage they stand for)
    form one group, in first-seen order; `pool=False` keeps every run on its own."""
    if not pool:
        return [[run] for run in runs]
    groups: dict[tuple[str, ...], list[EvaluatedRun]] = {}
    for run in runs:
        groups.setdefault(run.config_key, []).append(run)
    out = []
    for members in groups.values():
        seeds = [m.seed for m in members]
        if len(set(seeds)) < len(seeds):  # the same config twice: not seeds of one config
            out += [[m] for m in members]
        else:
            out.append(sorted(members, key=lambda m: (m.seed is None, m.seed)))
    return out


def group_label(members: list[EvaluatedRun]) -> str:
    """One configuration's name: a lone run's label; for seeds, the overrides they share
    (or the first run's label) and the seeds."""
    if len(members) == 1:
        return members[0].label
    words = members[0].label.split(" ")
    if any(SEED.match(w) for w in words):  # a sweep job's label: what it changed
        shared = " ".join(w for w in words if not SEED.match(w))
    else:  # a curriculum's stage or a run directory: its launch overrides
        shared = members[0].shared_name or members[0].label
    return f"{shared or members[0].label} (seeds {','.join(str(m.seed) for m in members)})"


def distinguishing_labels(groups: list[list[EvaluatedRun]], labels: list[str]) -> list[str]:
    """Each configuration's label with every override in which the compared
    configurations differ (`[curriculum.replay=0.5]`), so two runs of one experiment are
    not told apart by their timestamps alone. Where the overrides are the same but the
    recorded configs differ, the differing config entries (at most 4) stand in."""
    words = [set(g[0].launch_without_seed) for g in groups]
    shared = set.intersection(*words) if words else set()
    keys = [set(g[0].config_key) for g in groups]
    common_keys = set.intersection(*keys) if keys else set()
    out = []
    for k, label in enumerate(labels):
        own = [w for w in groups[k][0].launch_without_seed if w in words[k] - shared]
        twins = [j for j in range(len(groups)) if j != k and words[j] == words[k]]
        if any(keys[j] != keys[k] for j in twins):  # same overrides, other config
            extra = sorted(keys[k] - common_keys)
            own += extra[:4] + ([f"+{len(extra) - 4} more"] if len(extra) > 4 else [])
        said = set(label.replace("(", " ").replace(")", " ").split())
        own = [w for w in own if w not in said and not _names_stage(w, label)]
        out.append(f"{label} [{' '.join(own)}]" if own else label)
    return out


def _names_stage(word: str, label: str) -> bool:
    """`stage=medqa` beside a label `<curriculum>:medqa ...` says nothing new."""
    head, _, value = word.partition("=")
    return head == "stage" and f":{value}" in label
