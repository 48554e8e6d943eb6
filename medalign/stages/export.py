"""Export: merge a run's adapter into its base model, with a model card.

    python -m medalign stage=export run=runs/2026-11-25/15-29-08-123456_curriculum

Reads the run's manifest (a single stage or a curriculum; `export.stage` picks a stage,
default the last one done), writes `model/` (merged weights as safetensors, config,
tokenizer: ready for `from_pretrained` and `push_to_hub`) and `model/README.md` into this
export's own run directory. The source run is only read, never written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medalign.config import RunConfig
from medalign.errors import MedalignError
from medalign.outputs import RunDir
from medalign.registry import register
from medalign.tracking import Tracker


@register("stage", "export")
def run_export(cfg: RunConfig, run: RunDir, tracker: Tracker) -> dict[str, Any]:
    from medalign.models.merge import merge_adapter

    if not cfg.run:
        raise MedalignError("stage=export needs run=<a run directory> to export")
    source = Path(cfg.run)
    manifest_path = source / "manifest.json"
    if not manifest_path.is_file():
        raise MedalignError(f"run={cfg.run}: no manifest.json there")
    manifest = json.loads(manifest_path.read_text())
    stages = [
        s for s in manifest.get("stages", []) if s.get("status") == "done" and s.get("adapter")
    ]
    if cfg.export.stage:
        stages = [s for s in stages if s["name"] == cfg.export.stage]
    if not stages:
        raise MedalignError(f"run={cfg.run}: no finished stage with an adapter to export")
    stage = stages[-1]
    out = merge_adapter(
        stage["base_model"], stage["adapter"], run.path / "model", cfg.export.safe_serialization
    )
    (out / "README.md").write_text(model_card(manifest, stage, source))
    run.update(exported=str(out), source_run=str(source), source_stage=stage["name"])
    return {"export/stages": len(manifest.get("stages", []))}


def model_card(manifest: dict[str, Any], stage: dict[str, Any], source: Path) -> str:
    """A Hugging Face model card: base, data, stages, hyper-parameters, evaluation."""
    done = [s for s in manifest.get("stages", []) if s.get("status") == "done"]
    config = _stage_config(stage, source)
    lines = [
        "---",
        "library_name: transformers",
        "tags: [medalign, medical, clinical-qa, lora]",
        "---",
        "",
        f"# medalign model: {source.name}",
        "",
        f"Merged from the LoRA adapter of stage **{stage['name']}** of `{source}` "
        f"(medalign {manifest.get('medalign_version')}, commit {manifest.get('git_commit')}).",
        "",
        "## Base model",
        "",
        f"`{config.get('model', {}).get('path') or config.get('model', {}).get('name')}` "
        f"(loaded from `{stage.get('base_model')}`)",
        "",
        "## Stages and data",
        "",
        "| stage | data | rows | fingerprint | seconds |",
        "|---|---|---:|---|---:|",
    ]
    for s in done:
        data = s.get("data") or {}
        lines.append(
            f"| {s['name']} | {data.get('source', '')} | {data.get('rows', '')} | "
            f"{data.get('fingerprint', '')} | {s.get('seconds', '')} |"
        )
    lora, st = config.get("lora", {}), config.get("stage", {})
    lines += [
        "",
        "## Hyper-parameters",
        "",
        f"LoRA r={lora.get('r')}, alpha={lora.get('alpha')}, dropout={lora.get('dropout')}, "
        f"targets={lora.get('target_modules')}; learning rate {st.get('learning_rate')}, "
        f"{st.get('max_steps')} steps, batch {st.get('per_device_train_batch_size')}, "
        f"max length {st.get('max_length')}; handoff {manifest.get('handoff', 'single stage')}.",
        "",
        "## Evaluation",
        "",
    ]
    results = source / "results.md"
    if results.is_file():
        lines.append(results.read_text().split("\n", 2)[-1])
    else:
        metrics = stage.get("metrics") or {}
        lines += ["| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in metrics.items() if isinstance(v, float)]
    return "\n".join(lines) + "\n"


def _stage_config(stage: dict[str, Any], source: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    folder = Path(stage.get("dir") or source)
    path = folder / "config.yaml"
    if not path.is_file():
        return {}
    config = OmegaConf.to_container(OmegaConf.load(path))
    return config if isinstance(config, dict) else {}
