"""Export: a run's model as a publishable folder (merged weights or the adapter) with a
model card, optionally pushed to the Hugging Face hub.

    python -m medalign stage=export init_from=runs/2026-11-25/15-29-08-123456_curriculum
    python -m medalign stage=export init_from=<run>:medqa export.what=adapter export.dry_run=true
    python -m medalign stage=export init_from=<run> export.push_to_hub=true export.repo_id=me/model

Reads the run's manifest through `init_from` (a single stage or a curriculum; `:<stage>`
picks a stage, default the last one done) and stages, in this export's own run
directory, exactly the
folder that would be uploaded: `model/` (merged safetensors, config, tokenizer) or
`adapter/` (the LoRA adapter, its config pointing at the base's hub id, the tokenizer),
each with `README.md`. `export.dry_run=true` stops there and lists the files.
`export.push_to_hub=true` checks the hub token and connection *before* merging or
uploading anything, then creates the repo (private unless `export.private=false`) and
uploads that folder with `huggingface_hub`. The source run is only read, never written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from medalign.config import KindOnlyStageConfig, RunConfig
from medalign.errors import MedalignError
from medalign.models.init_from import StartingPoint, base_source
from medalign.stages.model_card import base_model_id, model_card
from medalign.stages.spec import StageInputs, StageSpec, register_stage

log = logging.getLogger(__name__)
__all__ = ["model_card", "run_export", "check_hub_access", "staged_files"]


def run_export(cfg: RunConfig, inputs: StageInputs) -> dict[str, Any]:
    out = inputs.record
    settings = cfg.export
    if settings.push_to_hub and not settings.repo_id:
        raise MedalignError(
            "export.push_to_hub=true needs export.repo_id=<user or org>/<name> "
            "(created private unless export.private=false)"
        )
    if settings.push_to_hub and not settings.dry_run:
        check_hub_access()  # one clear line, before anything is read, merged or uploaded
    point = inputs.start
    if point is None or not point.adapter:
        raise MedalignError(
            "stage=export needs init_from=<a run directory> (or <run dir>:<stage>, or an "
            "adapter directory): the adapter to merge or publish"
        )
    source = Path(point.run or Path(point.adapter).parent)
    manifest, stage = _source_stage(source, point, base_source(point, cfg.model))
    configs = _stage_configs(manifest, source)
    if settings.what == "adapter":
        _check_adapter_export(stage, source)
        staged = _stage_adapter(stage, configs.get(stage["name"], {}), out.path / "adapter")
    else:
        staged = _merged(stage, source, out.path / "model", settings.safe_serialization)
    card = model_card(
        manifest,
        stage,
        configs,
        source_name=source.name,
        what=settings.what,
        repo_id=settings.repo_id,
        license=settings.license,
    )
    (staged / "README.md").write_text(card)
    files = staged_files(staged)
    out.update(
        exported=str(staged),
        source_run=str(source),
        source_stage=stage["name"],
        what=settings.what,
        staged_files=files,
    )
    listing = "\n".join(f"  {name}  ({size:,} bytes)" for name, size in files.items())
    metrics: dict[str, Any] = {"export/files": len(files), "export/bytes": sum(files.values())}
    if settings.dry_run or not settings.push_to_hub:
        verb = "would upload" if settings.push_to_hub or settings.dry_run else "staged"
        log.info("export %s %d files from %s:\n%s", verb, len(files), staged, listing)
        return metrics
    url = _push(staged, settings, stage["name"], source.name)
    out.update(hub_url=url, repo_id=settings.repo_id, private=settings.private)
    log.info("uploaded %d files to %s:\n%s", len(files), url, listing)
    return metrics


def check_hub_access() -> str:
    """The hub user name, or MedalignError (one line) when offline, without a token, or
    when the hub refuses the token; nothing is uploaded before this passes."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.utils import get_token

    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in constants.ENV_VARS_TRUE_VALUES
    if offline or constants.HF_HUB_OFFLINE:
        raise MedalignError(
            "export.push_to_hub: HF_HUB_OFFLINE=1 (no network), nothing uploaded; unset it "
            "to push, or use export.dry_run=true to stage the files only"
        )
    token = get_token()
    if not token:
        raise MedalignError(
            "export.push_to_hub: no Hugging Face token (set HF_TOKEN or run `hf auth login`), "
            "nothing uploaded"
        )
    try:
        user = HfApi().whoami(token=token)
    except Exception as exc:  # network down, DNS, 401: one line, no traceback
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise MedalignError(
            f"export.push_to_hub: cannot reach the hub with this token ({first}), nothing uploaded"
        ) from None
    return str(user.get("name"))


def staged_files(folder: Path) -> dict[str, int]:
    """Relative path -> size of every file under `folder` (what upload_folder sends)."""
    return {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _push(staged: Path, settings: Any, stage: str, source: str) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        repo = api.create_repo(settings.repo_id, private=settings.private, exist_ok=True)
        api.upload_folder(
            repo_id=settings.repo_id,
            folder_path=staged,
            commit_message=f"medalign export: stage {stage} of {source} ({settings.what})",
        )
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise MedalignError(f"export.repo_id={settings.repo_id}: upload failed ({first})") from None
    return str(repo)


def _source_stage(
    source: Path, point: StartingPoint, base: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's manifest and the entry of the stage `init_from` resolved to (a bare
    adapter directory gets a one-stage manifest of its own)."""
    manifest_path = source / "manifest.json"
    if point.run is None or not manifest_path.is_file():
        stage = {"name": "adapter", "status": "done", "base_model": base, "adapter": point.adapter}
        return {"stages": [stage]}, stage
    manifest = json.loads(manifest_path.read_text())
    stage = next(s for s in manifest.get("stages", []) if s.get("name") == point.stage)
    return manifest, {**stage, "base_model": base, "adapter": point.adapter}


def _stage_configs(manifest: dict[str, Any], source: Path) -> dict[str, dict[str, Any]]:
    """Stage name -> the config that stage recorded (its own dir, or the run's)."""
    from omegaconf import OmegaConf

    configs = {}
    for stage in manifest.get("stages", []):
        path = Path(stage.get("dir") or source) / "config.yaml"
        if path.is_file():
            config = OmegaConf.to_container(OmegaConf.load(path))
            configs[stage["name"]] = config if isinstance(config, dict) else {}
    return configs


def _check_adapter_export(stage: dict[str, Any], source: Path) -> None:
    adapter = Path(stage["adapter"])
    if not (adapter / "adapter_config.json").is_file():
        raise MedalignError(
            f"export.what=adapter: stage {stage['name']!r} saved a full model ({adapter}), "
            "not a LoRA adapter; use export.what=merged"
        )
    base = Path(str(stage.get("base_model")))
    if base.is_absolute() and base.resolve().is_relative_to(source.resolve()):
        raise MedalignError(
            f"export.what=adapter: stage {stage['name']!r} trained its adapter on a model "
            f"merged inside the run ({base}), which is not on the hub; use export.what=merged"
        )


def _stage_adapter(stage: dict[str, Any], config: dict[str, Any], out: Path) -> Path:
    """Copy the adapter (and tokenizer) to `out`; point its base at the base's hub id."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(stage["adapter"], partial)
    base = base_model_id(config)
    if base:
        adapter_config = partial / "adapter_config.json"
        data = json.loads(adapter_config.read_text())
        data["base_model_name_or_path"] = base
        adapter_config.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(partial, out)
    return out


def _merged(stage: dict[str, Any], source: Path, out: Path, safe_serialization: bool) -> Path:
    """The stage's merged model in `out`: a copy of the one its curriculum already wrote
    (`<curriculum>/merged/<stage dir>/`, for the reward and RL stages), else merged now."""
    shared = source / "merged" / Path(stage["adapter"]).parent.name
    if (shared / "config.json").is_file() and safe_serialization:
        log.info("export: reusing the curriculum's merged model %s", shared)
        shutil.copytree(shared, out.with_name(out.name + ".partial"), dirs_exist_ok=True)
        os.replace(out.with_name(out.name + ".partial"), out)
        return out
    from medalign.models.merge import merge_adapter

    return merge_adapter(stage["base_model"], stage["adapter"], out, safe_serialization)


SPEC = register_stage(StageSpec(kind="export", schema=KindOnlyStageConfig, run=run_export))
