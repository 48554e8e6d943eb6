"""The curriculum: stages run in order in one run directory, each continuing the last.

    make curriculum        (= python -m medalign experiment=curriculum)
    python -m medalign experiment=curriculum resume=latest

Each stage is composed from the command line's overrides plus `stage=<name>` (so
`lora.r=16` applies to all stages, `curriculum.stages.<name>.*` to one), runs in
`<run>/<k>-<name>/` exactly as a single stage would, and is recorded in the curriculum's
`manifest.json` (written atomically after every change: the single source of truth for
resume and for `init_from=<run>:<stage>`). Stage k+1 continues stage k's adapter
(`handoff=continue`) or starts a new adapter on stage k merged into the base
(`handoff=merge`). The base
model is evaluated first, every stage after it trains, and the run ends with the table
"stage x dataset" in Markdown, PNG, HTML and W&B (written by medalign/reports/results.py).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from medalign import __version__
from medalign.config import CurriculumStageStep, RunConfig, SFTStageConfig
from medalign.errors import MedalignError
from medalign.locks import run_lock
from medalign.outputs import adopt_hydra_record, failure_status, git_commit, write_json_atomic
from medalign.stages.spec import BEFORE, StageSpec, curriculum_spec, register_stage
from medalign.world.store import describe_data

log = logging.getLogger(__name__)
_DROPPED = ("stage=", "dataset=", "resume=", "curriculum.", "hydra.", "logger.group=", "init_from=")
_COPIED = (
    *("adapter", "base_model", "metrics", "wandb_run_id", "data", "reward_models"),
    "validation",  # trainer.eval_steps: best eval/loss and its step
)


def run_curriculum(
    cfg: RunConfig, run_dir: Path, overrides: list[str], hydra_subdir: str | None = None
) -> dict[str, Any]:
    """Run (or resume) every stage of `cfg.curriculum`, holding the directory's lock;
    return the final results table."""
    target = resolve_resume(cfg.resume, run_dir) if cfg.resume else run_dir
    with run_lock(target):  # one process per curriculum directory
        if cfg.resume:  # replayed, and a changed config refused, before anything is written
            cfg, overrides = _replay(target, overrides)
            log.info("==== resumed %s (pid %d, %s) ====", target, os.getpid(), _now())
            log.info("resuming the curriculum in %s", target)
        if hydra_subdir and target == run_dir:
            adopt_hydra_record(target, hydra_subdir)
        return _run_curriculum(cfg, target, overrides)


def _run_curriculum(cfg: RunConfig, run_dir: Path, overrides: list[str]) -> dict[str, Any]:
    base = [o for o in overrides if not o.lstrip("+~").startswith(_DROPPED)]
    if columns := _own_columns(cfg):  # every stage evaluates what the curriculum trains
        base = [o for o in base if not o.startswith("eval.datasets=")] + [columns]
    recorded = [o for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra."))]
    manifest = _open_manifest(run_dir, cfg, recorded)
    plan = ([BEFORE] if cfg.curriculum.eval_before else []) + list(cfg.curriculum.order)
    # What the finished stages hand on, typed: the StartingPoint of the last SFT stage (and
    # of its merged model under handoff=merge), the reward model dirs, the datasets trained.
    state: dict[str, Any] = {"start": None, "merged": None, "reward_models": {}, "trained": []}
    try:
        for k, name in enumerate(plan):
            spec = curriculum_spec(name)  # its kind's roles, not its name
            entry = _entry(manifest, name, run_dir / f"{k}-{name}")
            stage_dir = Path(entry["dir"])
            _reconcile(entry, stage_dir)
            if entry["status"] != "done":
                start = _start(cfg, spec, state)
                per_dataset = spec.curriculum == "dataset"  # stage.* keys are SFT's
                stage_overrides = [
                    *[o for o in base if per_dataset or not o.startswith("stage.")],
                    *_stage_overrides(cfg, name, spec),
                    *_replay_mix(cfg, name, spec, state["trained"]),
                    *_inputs(spec, start, state),
                    f"logger.group={run_dir.name}",
                ]
                if (stage_dir / "manifest.json").is_file():
                    if spec.resumable:  # continue from its last checkpoint
                        stage_overrides.append("stage.resume_from=latest")
                    else:  # no checkpoints: keep what it left, start it again
                        stage_dir.rename(
                            stage_dir.with_name(f"{stage_dir.name}.interrupted-{_stamp()}")
                        )
                _run_stage(manifest, run_dir, entry, stage_overrides, start)
            _advance(cfg, spec, entry, stage_dir, state)
    except BaseException as exc:
        manifest["status"] = failure_status(exc)
        write_json_atomic(run_dir / "manifest.json", manifest)
        raise
    from medalign.reports.results import results_table, write_results

    table = results_table(manifest)
    manifest.update(results=table, status="done", finished=_now())
    write_json_atomic(run_dir / "manifest.json", manifest)
    write_results(run_dir, table, cfg, manifest)  # results.md, results.png, report.html
    return table


def _own_columns(cfg: RunConfig) -> str | None:
    """`eval.datasets=[...]` with the curriculum's own evaluable SFT datasets added, when
    eval.datasets leaves one out (a stage on a dataset of your own would otherwise be
    trained and never scored); None when it names them all."""
    from medalign.registry import get

    missing = [
        name
        for name in cfg.curriculum.order
        if curriculum_spec(name).curriculum == "dataset"
        and name not in cfg.eval.datasets
        and name in cfg.datasets
        and get("task", cfg.datasets[name].format).eval_modes
    ]
    if not missing:
        return None
    log.info("the curriculum also evaluates its own datasets %s (eval.datasets)", missing)
    return f"eval.datasets=[{','.join([*cfg.eval.datasets, *missing])}]"


def stage_kind(name: str) -> str:
    """The kind of curriculum stage `name` (medalign.stages.spec.curriculum_spec): before
    -> eval; a kind that joins curriculum.order by its own name (pretrain, reward, rl, a
    plugin's) -> that kind; every other name is an SFT stage on that dataset."""
    return curriculum_spec(name).kind


def _start(cfg: RunConfig, spec: StageSpec, state: dict[str, Any]) -> Any:
    """The StartingPoint a stage starts from, typed (handed to medalign.run as `start`, so
    no manifest is read back): the last adapter handed on, or its merged model under
    handoff=merge for a stage that trains an adapter; None for the base model (and for
    the baseline evaluation)."""
    if state["start"] is None or spec.curriculum == "baseline":
        return None
    if spec.hands_on == "adapter" and cfg.curriculum.handoff == "merge":
        return state["merged"]
    return state["start"]


def _inputs(spec: StageSpec, start: Any, state: dict[str, Any]) -> list[str]:
    """The overrides that record where a stage starts, in its config.yaml: `init_from`
    (the `spec` of its `_start`) and, for a reader of reward models (RL), those models."""
    if start is None:
        return []
    out = [f"init_from='{start.spec}'"]
    if spec.reads_reward_models:
        out += [f"reward.models.{k}='{v}'" for k, v in state["reward_models"].items()]
    return out


def _advance(
    cfg: RunConfig, spec: StageSpec, entry: dict[str, Any], stage_dir: Path, state: dict[str, Any]
) -> None:
    """Record what a finished stage hands to the next ones."""
    from medalign.models.init_from import StartingPoint, from_stage_entry

    if spec.curriculum == "dataset" and entry["name"] in cfg.datasets:  # replayed later
        step = cfg.curriculum.stages.get(entry["name"])
        state["trained"] += [entry["name"], *((step.mix if step is not None else None) or {})]
    if spec.hands_on == "adapter" and entry.get("adapter"):
        _check_handed_on(spec, entry)
        run_dir = stage_dir.parent
        state["start"] = from_stage_entry(f"{run_dir}:{entry['name']}", run_dir, entry)
        if cfg.curriculum.handoff == "merge":
            merged = stage_dir / "merged"
            if not (merged / "config.json").is_file():
                from medalign.models.merge import merge_adapter

                merge_adapter(entry["base_model"], entry["adapter"], merged)
            state["merged"] = StartingPoint(base=str(merged), adapter=None, spec=str(merged))
    elif spec.hands_on == "reward_models":
        state["reward_models"] = dict(entry.get("reward_models") or {})


def _check_handed_on(spec: StageSpec, entry: dict[str, Any]) -> None:
    """A stage that hands on an adapter must have written it: found now, not when the next
    stage fails to load it after more training (a plugin runner that records a path only)."""
    adapter = Path(entry["adapter"])
    if not any((adapter / name).is_file() for name in ("adapter_config.json", "config.json")):
        raise MedalignError(
            f"curriculum stage {entry['name']!r} (stage kind {spec.kind!r}, hands_on='adapter') "
            f"recorded adapter={adapter}, which holds neither a LoRA adapter "
            "(adapter_config.json) nor a model (config.json): its runner must save it there "
            "(docs/extend/stage.md)"
        )


def _replay(run_dir: Path, new: list[str]) -> tuple[RunConfig, list[str]]:
    """The curriculum's recorded overrides (+ allowed new ones), after refusing changes."""
    from medalign.compose import compose
    from medalign.config import validate

    overrides = check_replay(run_dir, new)
    return validate(compose(overrides)), overrides


def check_replay(run_dir: Path, new: list[str]) -> list[str]:
    """The overrides a resume of `run_dir` replays (recorded + allowed new ones); an
    override that would change a recorded value is refused here. The CLI calls it before
    Hydra, so a refused resume writes nothing into the run it refuses."""
    from omegaconf import OmegaConf

    from medalign.compose import compose
    from medalign.resume import refuse_changes

    recorded = list(json.loads((run_dir / "manifest.json").read_text()).get("overrides") or [])
    extra = [o for o in new if o not in recorded and not o.startswith(("resume=", "hydra."))]
    before = OmegaConf.to_container(compose(recorded), resolve=True)
    after = OmegaConf.to_container(compose(recorded + extra), resolve=True)
    refuse_changes(before, after, str(run_dir))  # type: ignore[arg-type]
    return recorded + extra


def _reconcile(entry: dict[str, Any], stage_dir: Path) -> None:
    """A stage that finished (its own manifest says done) before the curriculum manifest
    was updated (a kill in between) counts as done: copy its record over."""
    if entry["status"] == "done" or not (stage_dir / "manifest.json").is_file():
        return
    try:
        stage = json.loads((stage_dir / "manifest.json").read_text())["stages"][0]
    except (OSError, json.JSONDecodeError, KeyError, IndexError):
        return
    if stage.get("status") == "done":
        log.info(
            "stage %s finished before the curriculum recorded it; taking its manifest",
            entry["name"],
        )
        entry.update(status="done", **{k: stage.get(k) for k in _COPIED})


def resolve_resume(resume: str, new_dir: Path) -> Path:
    """The curriculum directory `resume` names; `latest` = the newest under runs/."""
    if resume != "latest":
        path = Path(resume)
        if not _is_curriculum(path):
            raise MedalignError(f"resume={resume}: no curriculum manifest.json there")
        return path
    root = new_dir.parent.parent
    found = [p.parent for p in root.glob("*/*/manifest.json") if p.parent != new_dir]
    found = [p for p in found if _is_curriculum(p)]
    if not found:
        raise MedalignError(f"resume=latest: no curriculum run under {root}")
    newest = sorted(found, key=lambda p: (p / "manifest.json").stat().st_mtime, reverse=True)
    unfinished = [p for p in newest if curriculum_status(p) != "done"]
    if not unfinished:  # after a crash, `latest` never means a run that finished since
        raise MedalignError(
            f"resume=latest: no unfinished curriculum under {root} (the newest, {newest[0]}, "
            "is complete)"
        )
    return unfinished[0]


def curriculum_status(path: Path) -> str | None:
    """The top-level status a curriculum manifest records (None if unreadable)."""
    from medalign.locks import reported_status

    try:
        status = json.loads((path / "manifest.json").read_text()).get("status")
    except (OSError, json.JSONDecodeError):
        return None
    return reported_status(status, path)  # `running` with nobody holding it: interrupted


def _is_curriculum(path: Path) -> bool:
    try:
        return json.loads((path / "manifest.json").read_text()).get("kind") == "curriculum"
    except (OSError, json.JSONDecodeError):
        return False


def _open_manifest(run_dir: Path, cfg: RunConfig, overrides: list[str]) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    if path.is_file():
        manifest = json.loads(path.read_text())
        if manifest.get("kind") != "curriculum":
            raise MedalignError(f"{run_dir} holds a single stage run, not a curriculum")
        manifest.update(status="running", resumed=_now())
        write_json_atomic(path, manifest)
        return manifest
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "kind": "curriculum",
        "group": run_dir.name,
        "order": list(cfg.curriculum.order),
        "handoff": cfg.curriculum.handoff,
        "medalign_version": __version__,
        "git_commit": git_commit(),
        "started": _now(),
        "status": "running",
        "overrides": overrides,
        "data_source": describe_data(cfg),
        "stages": [],
    }
    write_json_atomic(path, manifest)
    return manifest


def _entry(manifest: dict[str, Any], name: str, stage_dir: Path) -> dict[str, Any]:
    for entry in manifest["stages"]:
        if entry["name"] == name:
            return entry
    entry = {"name": name, "dir": str(stage_dir), "status": "pending"}
    manifest["stages"].append(entry)
    return entry


def _replay_mix(cfg: RunConfig, name: str, spec: StageSpec, trained: list[str]) -> list[str]:
    """`dataset.mix` for an SFT stage that trains datasets alongside its own
    (`curriculum.stages.<name>.mix`) or replays the earlier stages' datasets (at
    curriculum.replay, or the stage's own `replay`); nothing when it does neither."""
    step = cfg.curriculum.stages.get(name)
    weight = step.replay if step is not None and step.replay is not None else cfg.curriculum.replay
    alongside = dict(step.mix or {}) if step is not None else {}
    # in [0, 1]: refused at start-up otherwise (medalign.checks.check_ranges)
    earlier = [d for d in trained if d != name and d not in alongside] if weight else []
    if spec.curriculum != "dataset" or not (alongside or earlier):
        return []
    parts = {name: 1.0, **alongside, **dict.fromkeys(earlier, weight)}
    mix = ",".join(f"{d}:{w}" for d, w in parts.items())
    return [f"dataset.mix={{{mix}}}"]


def _stage_overrides(cfg: RunConfig, name: str, spec: StageSpec) -> list[str]:
    """How stage `name` is composed: its kind's stage config, and for an SFT stage
    `stage=sft dataset=<name>`, so any dataset in the catalogue is a stage (no stage YAML
    of its own); `curriculum.stages.<name>` (optional) tweaks it."""
    if spec.curriculum == "baseline":
        return [f"stage={spec.kind}", "eval.after_train=false"]
    step = cfg.curriculum.stages.get(name) or CurriculumStageStep()
    out = (
        [f"stage={name}"]
        if spec.curriculum != "dataset"
        else [f"stage={spec.kind}", f"dataset={name}", f"stage.name={name}"]
    )
    for key in ("max_steps", "learning_rate", "num_train_epochs"):
        if getattr(step, key) is not None:
            out.append(f"trainer.{key}={getattr(step, key)}")
    return out + list(step.overrides)


def _run_stage(
    manifest: dict[str, Any],
    run_dir: Path,
    entry: dict[str, Any],
    overrides: list[str],
    start: Any = None,
) -> None:
    from medalign.compose import compose
    from medalign.run import run

    stage_dir = Path(entry["dir"])
    entry.update(status="running", started=entry.get("started") or _now(), overrides=overrides)
    write_json_atomic(run_dir / "manifest.json", manifest)
    log.info("curriculum stage %s -> %s", entry["name"], stage_dir)
    from medalign.models.cache import BUILDS

    started, builds_before = time.perf_counter(), len(BUILDS)
    try:
        run(compose(overrides), stage_dir, start=start)
    except BaseException as exc:
        entry.update(status=failure_status(exc), error=f"{type(exc).__name__}: {exc}")
        write_json_atomic(run_dir / "manifest.json", manifest)
        raise
    stage = json.loads((stage_dir / "manifest.json").read_text())["stages"][0]
    import resource

    entry.update(
        status="done",
        finished=_now(),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        seconds=round(entry.get("seconds", 0) + time.perf_counter() - started, 2),
        **{k: stage.get(k) for k in _COPIED},
    )
    if BUILDS[builds_before:]:  # this stage's time includes building them (report.html)
        entry["builds"] = entry.get("builds", []) + BUILDS[builds_before:]
    entry.pop("error", None)
    write_json_atomic(run_dir / "manifest.json", manifest)


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def check_curriculum(cfg: RunConfig) -> None:
    """The curriculum's own start-up check: the RL algorithm and its preference data
    (dpo, kto, orpo), as for stage=rl."""
    from medalign.stages.rl_algorithms import check_preference_data, check_rl_algorithm

    check_rl_algorithm(cfg)
    check_preference_data(cfg)


SPEC = register_stage(
    StageSpec(
        kind="curriculum",
        schema=SFTStageConfig,  # its keys apply to every SFT stage of the curriculum
        pipeline=run_curriculum,
        check=check_curriculum,
        evaluates="always",
        fine_tunes=True,
        validation="sft",
    )
)
